"""The chart's version history, from git: which commit last bumped
``Chart.yaml``'s ``version``, and the chart as it was before that.

Works in a fresh clone of main (CI has main's history, no tags needed): the
history of ``charts/ticklake/Chart.yaml`` is walked newest first until the
version differs from the one before.
"""

from __future__ import annotations

import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from chartkit import CHART, ROOT

CHART_PATH = CHART.relative_to(ROOT).as_posix()


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def version_at(commit: str) -> str | None:
    """Chart.yaml's version at ``commit`` (None where the chart did not exist)."""
    try:
        text = git("show", f"{commit}:{CHART_PATH}/Chart.yaml")
    except RuntimeError:
        return None
    return str(yaml.safe_load(text)["version"])


def working_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["version"])


def semver(version: str) -> tuple[int, ...]:
    core = version.split("-", 1)[0].split("+", 1)[0]
    return tuple(int(part) for part in core.split("."))


@dataclass(frozen=True)
class Bump:
    commit: str
    """The commit that set the version HEAD has."""
    version: str
    previous: str | None
    """The version before it (None: the chart's first version)."""


def last_bump() -> Bump:
    if git("rev-parse", "--is-shallow-repository").strip() == "true":
        raise RuntimeError("a shallow clone has no chart history: clone with full history")
    commits = git("log", "--format=%H", "--", f"{CHART_PATH}/Chart.yaml").split()
    if not commits:
        raise RuntimeError(f"no commit touches {CHART_PATH}/Chart.yaml")
    for commit in commits:
        here, before = version_at(commit), version_at(f"{commit}^")
        if here != before:
            assert here is not None
            return Bump(commit, here, before)
    raise AssertionError("unreachable: the first commit adding Chart.yaml changes its version")


def changed_since(commit: str) -> list[str]:
    """Chart files that differ between ``commit`` and the working tree
    (committed or not, plus untracked ones)."""
    diff = git("diff", "--name-only", commit, "--", CHART_PATH).split()
    untracked = git("ls-files", "--others", "--exclude-standard", "--", CHART_PATH).split()
    return sorted(set(diff) | set(untracked))


def previous_release_commit() -> str:
    """The commit whose chart is the version before the working tree's: HEAD
    when the working tree bumped the version and has not committed it yet,
    else the parent of the last bump."""
    bump = last_bump()
    if working_version() != bump.version:
        return "HEAD"
    if bump.previous is None:
        raise RuntimeError("the chart has had one version only: nothing to upgrade from")
    return f"{bump.commit}^"


def extract_chart(commit: str, into: Path) -> Path:
    """The chart folder as of ``commit``, unpacked under ``into``."""
    with tempfile.TemporaryFile() as archive:
        subprocess.run(
            ["git", "archive", "--format=tar", commit, CHART_PATH],
            cwd=ROOT,
            stdout=archive,
            check=True,
        )
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            tar.extractall(into, filter="data")
    return into / CHART_PATH
