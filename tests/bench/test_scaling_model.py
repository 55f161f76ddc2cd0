"""The scale-out model's arithmetic (bench/scaling_model.py) on round numbers."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import scaling_model  # noqa: E402  # bench/ is a folder of scripts, not a package

MEASURED = scaling_model.Measured(
    ingest_ticks_per_cpu_s=100_000,
    produce_ticks_per_s=200_000,
    broker_produce_cpu_us_per_tick=1.0,
    broker_fetch_cpu_us_per_tick=0.5,
    topic_bytes_per_tick=100,
    redis_cpu_us_per_tick=2.0,
    redis_commands_per_tick=1.5,
    lake_bytes_per_row=40,
    lake_puts_per_flush=4,
    bars_bytes_per_flush=50_000,
    latest_rps_per_replica=10_000,
)
PLAIN = scaling_model.Assumptions(headroom=1.0, latest_requests_per_s=50_000)


def test_one_million_ticks_at_full_use_of_every_unit() -> None:
    p = scaling_model.plan(1_000_000, MEASURED, PLAIN)
    assert p.ingest_cores == pytest.approx(10)
    assert (p.ingest_replicas, p.partitions) == (10, 10)
    assert p.per_partition_ticks_per_s == pytest.approx(100_000)
    assert p.producers == 5
    # RF 3: three appends and three reads of 1.5 µs together per tick
    assert p.broker_cores == pytest.approx(4.5)
    assert p.brokers == 3  # 4.5 cores fit one 8-core broker, but RF 3 needs three
    assert p.broker_write_mb_per_s == pytest.approx(300)
    assert p.redis_cores == pytest.approx(2)
    assert p.redis_shards == 2
    assert p.redis_commands_per_s == pytest.approx(1_500_000)
    assert p.query_replicas == 5


def test_files_roll_by_rows_when_a_partition_is_busy_and_by_age_when_quiet() -> None:
    busy = scaling_model.plan(1_000_000, MEASURED, PLAIN)
    assert busy.lake_rows_per_file == 100_000  # 100,000/s per partition reaches the rows first
    assert busy.lake_tick_file_mb == pytest.approx(4.0)
    assert busy.lake_flushes_per_s == pytest.approx(10)
    assert busy.lake_puts_per_s == pytest.approx(40)
    assert busy.lake_bars_mb_per_flush == pytest.approx(0.05)
    quiet = scaling_model.plan(1_000, MEASURED, PLAIN)  # one partition, 1,000/s
    assert quiet.lake_rows_per_file == pytest.approx(30_000)  # 30 s of it
    assert quiet.lake_flushes_per_s == pytest.approx(1 / 30)


def test_headroom_buys_more_units() -> None:
    p = scaling_model.plan(1_000_000, MEASURED, replace(PLAIN, headroom=0.5))
    assert (p.ingest_replicas, p.partitions, p.redis_shards, p.query_replicas) == (20, 20, 4, 10)


def test_the_operator_follows_the_partitions_up_to_max_replicas() -> None:
    ten = scaling_model.plan(1_000_000, MEASURED, PLAIN)
    assert ten.operator_partitions_mode == 10
    capped = scaling_model.plan(20_000_000, MEASURED, PLAIN)  # 200 partitions
    assert capped.partitions == 200
    assert capped.operator_partitions_mode == PLAIN.max_replicas == 100


def test_lag_mode_sees_half_a_file_per_partition_and_asks_for_every_replica() -> None:
    p = scaling_model.plan(1_000_000, MEASURED, PLAIN)
    assert p.operator_lag_per_partition == 50_000
    assert p.operator_lag_mode == p.partitions


def test_the_lowest_ceiling_comes_first() -> None:
    found = scaling_model.ceilings(
        MEASURED, replace(PLAIN, max_replicas=6), partitions=6, brokers=3
    )
    assert [(c.what, c.ticks_per_s) for c in found] == [
        ("one Redis server", pytest.approx(500_000)),
        ("ingest: 6 partitions, maxReplicas 6", pytest.approx(600_000)),
        ("3 Kafka brokers", pytest.approx(3 * 8 * 1e6 / 4.5)),
    ]


def test_a_unit_is_never_planned_below_one() -> None:
    assert scaling_model.units(0, 100, 0.7) == 1
    assert scaling_model.units(70, 100, 0.7) == 1
    assert scaling_model.units(71, 100, 0.7) == 2
