"""The report's latency tables: Kafka's own end-to-end latency as the reference where the
results measured it (sub-millisecond, so no "n/a" ratio), the older references where they
did not, and the backlog scenario's table only once it has results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import report  # noqa: E402
import run_all  # noqa: E402

RUN = {"git_commit": "0" * 40, "dirty": False, "dirty_files": []}


def section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def rendered(outputs: dict[str, dict[str, Any]]) -> str:
    return report.write_report(report.build_latest(outputs, RUN), [])


BACKLOG = {
    "backlog": 200_000,
    "symbols": 100,
    "partitions": 4,
    "backlog_partitions": 3,
    "rate_per_idle_symbol": 200,
    "warmup_s": 1.0,
    "after_gap_s": 2.0,
    "drain_ticks_per_s": 40_000,
    "seconds": {"feed_to_drained": 5.0, "drained_to_durable": 30.0, "settle": 5.0},
    "latency_ms": {
        "idlefree_during": {"p50_ms": 20.0, "p99_ms": 80.0},
        "idlefree_after": {"p50_ms": 4.0, "p99_ms": 10.0},
        "idlebehind_during": {"p50_ms": 2000.0, "p99_ms": 4000.0},
    },
    "rss_mb": {"peak_while_draining": 320.0, "after_steady": 180.0},
    "command": "uv run python bench/bench_backlog_latency.py --backlog 200000",
}


def test_run_all_and_the_report_list_the_same_scenarios() -> None:
    assert [s.name for s in run_all.SCENARIOS] == list(report.SCENARIOS)


def test_without_backlog_results_there_is_no_backlog_table_and_no_backlog_figures() -> None:
    latest = report.build_latest({}, RUN)
    assert "backlog" not in latest
    assert "Latency while a backlog drains" not in report.write_report(latest, [])


def test_the_backlog_table_compares_the_idle_symbol_with_itself_after_the_drain() -> None:
    table = section(rendered({"backlog_latency": BACKLOG}), "Latency while a backlog drains")
    free_row = next(line for line in table.splitlines() if "**without** backlog" in line)
    assert "80.0 ms" in free_row and "10.0 ms" in free_row and "8×" in free_row
    assert "≤ 50 ms: **NOT met**" in free_row
    assert "≤ 300 MB: **NOT met**" in table and "≤ 200 MB: met" in table
    # a smaller backlog than the scenario's says so
    assert "a quick run" in table


def test_latency_at_several_rates_takes_kafkas_own_sub_millisecond_reference() -> None:
    row = {"p50_ms": 11.8, "p99_ms": 43.1, "p999_ms": 75.0, "kafka_e2e_p50_ms": 0.0,
           "kafka_own_p50_ms": 0.8, "kafka_own_p99_ms": 2.5, "kafka_own_p999_ms": 6.0}  # fmt: skip
    latency = {"latency": {"5000": row}, "kafka_own_reference": "Kafka's own e2e, paced"}
    table = section(rendered({"latency": latency}), "Latency at several rates")
    p50 = next(line for line in table.splitlines() if line.startswith("| 5,000/s p50 event"))
    assert "Kafka's own e2e p50" in p50 and "14.8×" in p50
    rows_at_5k = [line for line in table.splitlines() if line.startswith("| 5,000/s")]
    assert not any("EndToEndLatency" in line for line in rows_at_5k)


def test_older_latency_results_keep_the_java_tool_as_their_reference() -> None:
    latency = {"latency": {"5000": {"p50_ms": 11.8, "kafka_e2e_p50_ms": 1.0}}}
    table = section(rendered({"latency": latency}), "Latency at several rates")
    assert "Kafka EndToEndLatency p50" in table


def test_the_steady_rate_table_has_the_target_against_kafkas_own_p99() -> None:
    il = {
        "kafka_reference": "Kafka's own end-to-end latency: ...",
        "medians_ms": {"ticklake": {"p50": 3.0, "p99": 6.0}, "raw": {"p50": 1.0, "p99": 2.5}},
    }
    table = section(rendered({"ingest_latency": il}), "End-to-end latency at a steady rate")
    row = next(line for line in table.splitlines() if "against Kafka's own" in line)
    assert "2.4×" in row
    assert "≤ 3× Kafka's own: met; ≤ 5 ms: **NOT met**" in row
