"""The test-only fault switch: inert unless its file exists and names the stage."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticklake.ingest.faults import FaultSwitch, InjectedFault
from ticklake.ingest.settings import IngestSettings


def test_unset_it_never_raises_and_never_looks_at_the_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TICKLAKE_FAULT_INJECTION_FILE", raising=False)
    switch = FaultSwitch(IngestSettings().fault_injection_file)
    assert switch.path is None
    switch.check("lake_write")
    switch.check("flush_task")


def test_it_raises_only_at_the_stages_its_file_names_and_only_while_it_exists(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fault"
    switch = FaultSwitch(path)
    switch.check("lake_write")  # no file yet
    path.write_text("lake_write\n")
    with pytest.raises(InjectedFault, match="lake_write"):
        switch.check("lake_write")
    switch.check("flush_task")
    path.write_text("flush_task lake_write")
    with pytest.raises(InjectedFault, match="flush_task"):
        switch.check("flush_task")
    path.unlink()
    switch.check("lake_write")
