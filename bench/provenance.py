"""Which commit a benchmark result was measured on, and whether it may be written at all.

Every scenario script and ``run_all.py`` call :func:`stamp` before measuring:
a tree with modified tracked files is refused (the figures would belong to no
commit anyone can check out) unless ``--allow-dirty`` is given, and then the
result carries ``"dirty": true`` and the report says so in its first lines.

The decision is :func:`decide`, a pure function of the commit, the modified
paths and the flag; :func:`tree_state` is the only part that runs git.
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

OUTPUT_PATHS = ("bench/results/", "docs/")
"""What the benchmarks themselves write (results, the generated report and the doc
blocks filled from them). Modified files here do not make a tree dirty: a second run
before committing the first one's output measures the same code, and nothing under
``docs/`` is executed by a benchmark."""


class DirtyTreeError(SystemExit):
    """Tracked source files differ from the commit: the figures would name no real commit.

    Commit (or stash) the changes and run again, or pass ``--allow-dirty`` to get a
    result marked DIRTY."""


def measured_paths(modified: Sequence[str]) -> list[str]:
    """The modified paths that can change a measurement (everything but the outputs)."""
    return sorted(p for p in modified if not p.startswith(OUTPUT_PATHS))


def decide(commit: str, modified: Sequence[str], *, allow_dirty: bool) -> dict[str, Any]:
    """The provenance a result records, or :class:`DirtyTreeError` when it may not be written.

    ``commit`` is the full hash of HEAD, ``modified`` the tracked paths that differ
    from it (staged or not). The returned mapping is merged into each result file.
    """
    if not commit:
        raise DirtyTreeError("benchmark results need a git commit; none found (not a git tree?)")
    changed = measured_paths(modified)
    if changed and not allow_dirty:
        shown = ", ".join(changed[:10]) + (" ..." if len(changed) > 10 else "")
        raise DirtyTreeError(
            f"refusing to measure a dirty tree ({len(changed)} modified tracked files: {shown}); "
            "commit the changes first, or pass --allow-dirty for a result marked DIRTY"
        )
    return {"git_commit": commit, "dirty": bool(changed), "dirty_files": changed}


def tree_state(root: Path = ROOT) -> tuple[str, list[str]]:
    """(HEAD's full hash, tracked paths modified against it), from git."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    ).stdout.strip()
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=root, capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    # porcelain v1: two status letters, a space, then the path ("old -> new" for renames)
    modified = [line[3:].split(" -> ")[-1] for line in status.splitlines() if line.strip()]
    return head, modified


def stamp(allow_dirty: bool) -> dict[str, Any]:
    """Check the working tree now and return the provenance to record (or exit)."""
    commit, modified = tree_state()
    return decide(commit, modified, allow_dirty=allow_dirty)


def add_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--allow-dirty`` flag every benchmark script takes."""
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="measure even with modified tracked files; the result is marked DIRTY",
    )
