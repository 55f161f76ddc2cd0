"""The layering rules, enforced: services share only ticklake.core (see .importlinter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--config", str(ROOT / ".importlinter")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_service_is_its_own_distribution() -> None:
    for folder in ["services/producer", "services/ingest", "services/query-api", "operator"]:
        assert (ROOT / folder / "pyproject.toml").exists(), folder
        # a namespace package: no __init__.py directly in src/ticklake
        assert not (ROOT / folder / "src" / "ticklake" / "__init__.py").exists(), folder
