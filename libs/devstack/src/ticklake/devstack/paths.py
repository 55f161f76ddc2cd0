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


def shared_dir() -> Path:
    """The folder that holds the shared test data (``k8s-crds``): ``$TICKLAKE_SHARED_DIR``,
    else ``shared`` beside the repository (a CI clone), else ``/work/shared`` (a git
    worktree elsewhere on this machine). The data is read there, never copied in."""
    candidates = [
        os.environ.get("TICKLAKE_SHARED_DIR", ""),
        str(repo_root().parent / "shared"),
        "/work/shared",
    ]
    for candidate in filter(None, candidates):
        if (Path(candidate) / "k8s-crds").is_dir():
            return Path(candidate)
    raise FileNotFoundError(
        "no k8s-crds folder: clone the shared data beside the repository "
        f"({repo_root().parent / 'shared' / 'k8s-crds'}) or set TICKLAKE_SHARED_DIR"
    )
