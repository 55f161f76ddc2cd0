"""A benchmark result names a clean commit, or is refused, or is marked dirty on request."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import provenance  # noqa: E402  # bench/ is a folder of scripts, not a package

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_a_clean_tree_records_its_commit() -> None:
    assert provenance.decide(COMMIT, [], allow_dirty=False) == {
        "git_commit": COMMIT,
        "dirty": False,
        "dirty_files": [],
    }


def test_a_modified_source_file_is_refused() -> None:
    with pytest.raises(provenance.DirtyTreeError, match=r"services/ingest/x\.py"):
        provenance.decide(COMMIT, ["services/ingest/x.py"], allow_dirty=False)


def test_allow_dirty_marks_the_result() -> None:
    stamp = provenance.decide(COMMIT, ["bench/bench_ingest.py"], allow_dirty=True)
    assert stamp["dirty"] is True
    assert stamp["dirty_files"] == ["bench/bench_ingest.py"]


@pytest.mark.parametrize(
    "path", ["bench/results/ingest.json", "docs/benchmarks.md", "docs/ingest.md"]
)
def test_the_benchmarks_own_outputs_do_not_make_a_tree_dirty(path: str) -> None:
    assert provenance.decide(COMMIT, [path], allow_dirty=False)["dirty"] is False


def test_outputs_beside_a_source_change_still_refuse() -> None:
    with pytest.raises(provenance.DirtyTreeError):
        provenance.decide(COMMIT, ["bench/results/ingest.json", "Makefile"], allow_dirty=False)


def test_no_commit_is_refused_even_when_dirty_is_allowed() -> None:
    with pytest.raises(provenance.DirtyTreeError):
        provenance.decide("", [], allow_dirty=True)


def test_the_tree_state_is_read_from_git() -> None:
    commit, modified = provenance.tree_state()
    assert len(commit) == 40
    assert all(not line.startswith(" ") for line in modified)
