"""docs/reliability.md's fault table is what bench/chaos_report.py renders from chaos.json."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_fault_table_is_rendered_from_the_results() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos_report.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
