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


def fake_scaleout(ticks_per_cpu_s: float) -> dict[str, object]:
    """A ``scaleout.json`` with what the scale-out model reads (medians of one replica)."""

    def med(value: float) -> dict[str, float]:
        return {"median": value, "min": value, "max": value}

    one = {
        "ticks_per_ingest_cpu_s": med(ticks_per_cpu_s),
        "durable_ticks_per_s": med(50_000),
        "broker_cpu_us_per_tick": med(0.5),
        "redis_cpu_us_per_tick": med(2.0),
        "redis_commands_per_tick": med(1.5),
        "redis_tail_entries_per_tick": med(0.5),
        "lake_ticks_files": med(10),
        "lake_ticks_bytes": med(40_000_000),
        "lake_bars_1s_files": med(10),
        "lake_bars_1s_bytes": med(400_000),
        "lake_bars_1m_files": med(10),
        "lake_bars_1m_bytes": med(100_000),
    }
    return {
        "ticks": 1_000_000,
        "replicas": 2,
        "partitions": 8,
        "settings": {"lake_roll_rows": 100_000, "lake_roll_seconds_default": 30.0},
        "fill": {"broker_cpu_us_per_tick": 1.0, "topic_bytes_per_tick": 100.0},
        "one_replica": one,
        "scaled": {"durable_ticks_per_s": med(90_000)},
        "ratio": 1.8,
        "git_commit": "0" * 40,
    }


def test_the_scaling_page_is_the_model_of_the_results(tree: Path) -> None:
    (tree / "bench" / "results" / "scaleout.json").write_text(json.dumps(fake_scaleout(100_000)))
    page = tree / "docs" / "scaling.md"
    assert page in report.stale(tree)
    run = json.loads((tree / "bench" / "results" / "latest.json").read_text())
    text = report.rendered(tree, run)[page]
    block = text[text.index(report.begin("scaling")) : text.index(report.end("scaling"))]
    # 100,000 ticks per CPU-second, planned at 70 %: 1M/70,000 and 10M/70,000 replicas
    assert "| ingest replicas = Kafka partitions | **15** | **143** |" in block
    # 40 MB of tick files over 1M rows is 40 B a row; a 100,000-row file is 4 MB
    assert "| lake: tick object size (MB) | 4 | 4 |" in block
    assert "[`scaleout.json`](../bench/results/scaleout.json)" in block


def test_a_missing_scaleout_result_leaves_the_model_uncomputed(tree: Path) -> None:
    (tree / "bench" / "results" / "scaleout.json").unlink(missing_ok=True)
    text = report.rendered(tree, {})[tree / "docs" / "scaling.md"]
    assert "Not computed: a figure is missing" in text
    assert "| ingest replicas" not in text
