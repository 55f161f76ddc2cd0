"""Where the stack keeps downloads (outside the repository) and run-time data."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Download/build cache shared by every checkout: ``$TICKLAKE_CACHE`` or ~/.cache/ticklake."""
    root = Path(os.environ.get("TICKLAKE_CACHE", Path.home() / ".cache" / "ticklake"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def repo_root() -> Path:
    """The checkout this package is installed from (editable install in the workspace)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "libs").is_dir():
            return parent
    return Path.cwd()


def stack_dir() -> Path:
    """Run-time data of the local stack (ignored by git): ``<repo>/.ticklake``."""
    path = repo_root() / ".ticklake"
    path.mkdir(parents=True, exist_ok=True)
    return path
