"""Every benchmark figure in docs/ is what bench/report.py renders from bench/results/*.json.

docs/benchmarks.md as a whole, bench/results/latest.json, and the marked blocks in other pages
(``<!-- bench:begin NAME -->``) are compared with a fresh rendering; the copies in a temporary
tree show that the check does fail when a figure was typed by hand or the results moved on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import report  # noqa: E402  # bench/ is a folder of scripts, not a package


def test_the_benchmark_pages_are_rendered_from_the_results() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "report.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the pages and results that the check reads."""
    shutil.copytree(ROOT / "bench" / "results", tmp_path / "bench" / "results")
    (tmp_path / "docs").mkdir()
    for page in {"docs/benchmarks.md", *(page for page, _ in report.BLOCKS.values())}:
        shutil.copy(ROOT / page, tmp_path / page)
    assert report.stale(tmp_path) == []
    return tmp_path


def test_a_hand_edited_figure_in_a_block_is_caught(tree: Path) -> None:
    page = tree / "docs" / "ingest.md"
    text = page.read_text()
    start = text.index(report.begin("ingest-throughput"))
    edited = text[:start] + text[start:].replace("|", "| 999,999", 1)
    page.write_text(edited)
    assert report.stale(tree) == [page]


def test_results_that_moved_on_are_caught(tree: Path) -> None:
    path = tree / "bench" / "results" / "produce.json"
    produce = json.loads(path.read_text())
    produce["records_per_run"] = produce.get("records_per_run", 0) + 1
    path.write_text(json.dumps(produce))
    assert tree / "docs" / "producer.md" in report.stale(tree)


def test_a_block_whose_markers_were_removed_is_caught(tree: Path) -> None:
    page = tree / "docs" / "architecture.md"
    page.write_text(page.read_text().replace(report.end("sequencer-summary"), ""))
    with pytest.raises(report.MissingMarkers):
        report.stale(tree)


def test_a_dirty_run_says_so_first() -> None:
    run = {"git_commit": "0" * 40, "dirty": True, "dirty_files": ["bench/bench_ingest.py"]}
    text = report.write_report(report.build_latest({}, run), [])
    assert "DIRTY TREE" in text.split("\n## ")[0]  # before the first table
