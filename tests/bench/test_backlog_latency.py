"""The backlog scenario's pure parts: where the backlog goes, which ticks count in which
window, and how Kafka's own reference picks the same event-time window as the observer."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import bench_backlog_latency as backlog  # noqa: E402
from bench_ingest_latency import kafka_own_latencies  # noqa: E402

S = 1_000_000_000
MS = 1_000_000


@pytest.mark.parametrize("backlog_partitions", [1, 2, 3])
def test_the_backlog_stays_off_the_last_partition_and_each_symbol_keeps_one(
    backlog_partitions: int,
) -> None:
    used = {backlog.backlog_partition(i, backlog_partitions) for i in range(100)}
    assert used == set(range(backlog_partitions))
    assert backlog.backlog_partition(7, backlog_partitions) == backlog.backlog_partition(
        7, backlog_partitions
    )


def test_the_drain_window_covers_warm_up_end_to_backlog_processed() -> None:
    windows = backlog.drain_windows(feed_started_ns=10 * S, drained_ns=30 * S, end_ns=60 * S)
    assert windows["during"] == (10 * S + int(backlog.WARMUP_S * S), 30 * S)
    assert windows["after"] == (30 * S + int(backlog.AFTER_GAP_S * S), 60 * S)


def test_a_window_reports_how_many_of_its_ticks_were_seen() -> None:
    summary = backlog.latency_summary([1.0, 2.0, 3.0], sent_in_window=4)
    assert summary["ticks_seen"] == 3
    assert summary["ticks_in_window"] == 4
    assert summary["p50_ms"] == 2.0
    assert summary["max_ms"] == 3.0


def test_a_window_with_nothing_seen_has_no_percentiles() -> None:
    assert backlog.latency_summary([], sent_in_window=5) == {
        "ticks_seen": 0,
        "ticks_in_window": 5,
    }


def test_kafka_own_latency_keeps_the_observer_event_time_window_in_sub_milliseconds() -> None:
    pairs = [(0, 2 * MS), (5 * MS, 5 * MS + 250_000), (9 * MS, 9 * MS + 1_500_000)]
    # the first tick is before the window, the last after it
    assert kafka_own_latencies(pairs, 1 * MS, 9 * MS) == [0.25]
    assert kafka_own_latencies(pairs, 1 * MS) == [0.25, 1.5]
