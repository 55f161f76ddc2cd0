"""docs/settings.md lists every setting of every service, generated from the classes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_settings_table_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "settings_doc.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_every_secret_is_masked_when_settings_are_printed() -> None:
    from ticklake.ingest.settings import IngestSettings

    settings = IngestSettings(redis_password="hunter2", s3_secret_access_key="s3cret")
    printed = repr(settings) + str(settings.model_dump())
    assert "hunter2" not in printed
    assert "s3cret" not in printed
