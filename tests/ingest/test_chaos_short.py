"""The short fault suite (``make chaos`` runs the long one): SIGKILLs and a Redis outage.

Runs ``bench/chaos.py`` as its own process with a small feed; its checker
(DuckDB over the lake, pandas EMAs over the produced stream, plain Redis
reads) decides: nothing lost, nothing doubled, features and Redis equal to a
clean run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_short_fault_suite_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    run = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "chaos.py"),
            "--ticks", "9000", "--kills", "4", "--redis-down-s", "5",
            "--scenarios", "kill9,redis_stop", "--json", str(out),
        ],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    scenarios = json.loads(out.read_text())["scenarios"]
    for name, result in scenarios.items():
        assert result["lost"] == 0, (name, result)
        assert result["duplicated"] == 0, (name, result)
        assert result["feature_rows_differing"] == 0, (name, result)
        assert result["redis_latest_stale_symbols"] == 0, (name, result)
    assert scenarios["kill9"]["process_restarts"] >= 1
