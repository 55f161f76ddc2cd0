"""The scale-out model of ``docs/scaling.md``: a deployment for a tick rate, on paper.

Pure arithmetic, no I/O: :class:`Measured` holds figures read from
``bench/results/*.json`` (``bench/report.py`` fills it), :class:`Assumptions`
the things no benchmark here can measure (how many cores a broker has, the
replication factor, the query load, how much headroom to leave), each with its
reason. :func:`plan` turns the two and a tick rate into a :class:`Plan`:
Kafka partitions, ingest replicas, brokers, Redis operations and cores, S3
requests and object sizes, query replicas, and what the operator's rule
(:func:`ticklake.operator.decision.decide`, the same function the operator
runs) does with that topic. ``tests/bench/test_scaling_model.py`` checks the
arithmetic on round numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ticklake.operator import decision


@dataclass(frozen=True)
class Measured:
    """Per-unit costs from the benchmarks (one core, one process, one tick)."""

    ingest_ticks_per_cpu_s: float
    """Ticks one ingest replica makes durable per CPU-second, all its threads
    (``scaleout.json``, one replica: backlog / ingest CPU from first record to durable)."""
    produce_ticks_per_s: float
    """Ticks/s of one producer process, zstd (``produce.json``)."""
    broker_produce_cpu_us_per_tick: float
    """Broker CPU (µs) to append one tick, one copy (``scaleout.json``, the fill)."""
    broker_fetch_cpu_us_per_tick: float
    """Broker CPU (µs) to serve one tick to one reader (``scaleout.json``, the drain by one
    replica)."""
    topic_bytes_per_tick: float
    """Bytes of log segment per tick, one copy (``scaleout.json``, the fill; uncompressed)."""
    redis_cpu_us_per_tick: float
    """Redis server CPU (µs) per tick of a live feed, where every tick is one entry of its
    symbol's tail (``scaleout.json``, one replica: the server's CPU over the tail entries
    written; a drain writes only the newest of each symbol's ticks per call)."""
    redis_commands_per_tick: float
    """Redis commands per tick of a live feed (``INFO commandstats``, script calls and the
    commands run inside them, per tail entry written)."""
    lake_bytes_per_row: float
    """Bytes per row of the tick files (``scaleout.json``, one replica)."""
    lake_puts_per_flush: float
    """Objects written per flush of a partition: the checkpoint and one file per dataset."""
    bars_bytes_per_flush: float
    """Bytes of the bar files one flush writes (they depend on symbols × seconds per file)."""
    latest_rps_per_replica: float
    """``/latest`` requests/s one query API process serves with API keys on, the chart's
    default (``query.json``, max throughput)."""


@dataclass(frozen=True)
class Assumptions:
    """What the model takes as given; ``docs/scaling.md`` gives the reasons."""

    headroom: float = 0.7
    """Fraction of a unit's measured capacity planned for: the rest works off a backlog
    after a rebalance or an outage and absorbs a busy minute."""
    ingest_cores_per_replica: float = 1.0
    """Cores one ingest replica uses (one asyncio loop, a lake-writer thread)."""
    broker_cores: float = 8.0
    """Cores of one Kafka broker."""
    replication_factor: int = 3
    """Copies of each partition (the chart's value with 3 brokers or more)."""
    redis_cores_per_shard: float = 1.0
    """Redis runs commands on one thread: one core per server, whatever the machine."""
    latest_requests_per_s: float = 50_000.0
    """``/latest`` load of the clients; it follows the users, not the tick rate."""
    roll_rows: int = 100_000
    """``TICKLAKE_LAKE_ROLL_ROWS`` (ingest's default)."""
    roll_seconds: float = 30.0
    """``TICKLAKE_LAKE_ROLL_SECONDS`` (ingest's default)."""
    max_replicas: int = decision.Policy().max_replicas
    """The IngestScaler's ``maxReplicas`` (the CRD's default)."""


@dataclass(frozen=True)
class Plan:
    """One deployment for ``ticks_per_s``. Counts are whole units, rates per second."""

    ticks_per_s: float
    ingest_cores: float
    ingest_replicas: int
    partitions: int
    per_partition_ticks_per_s: float
    producers: int
    broker_cores: float
    brokers: int
    broker_write_mb_per_s: float
    redis_cores: float
    redis_shards: int
    redis_commands_per_s: float
    lake_rows_per_file: float
    lake_tick_file_mb: float
    lake_bars_mb_per_flush: float
    lake_flushes_per_s: float
    lake_puts_per_s: float
    query_replicas: int
    operator_partitions_mode: int
    operator_lag_mode: int
    operator_lag_per_partition: int


def units(load: float, per_unit: float, headroom: float) -> int:
    """Whole units, each planned at ``headroom`` of its ``per_unit`` capacity (at least 1)."""
    return max(1, math.ceil(load / (per_unit * headroom) - 1e-9))


def rows_per_file(per_partition_ticks_per_s: float, roll_rows: int, roll_seconds: float) -> float:
    """Rows of one lake file: a partition's file rolls at ``roll_rows`` rows or when its oldest
    row is ``roll_seconds`` old, whichever comes first."""
    return min(float(roll_rows), per_partition_ticks_per_s * roll_seconds)


def plan(ticks_per_s: float, m: Measured, a: Assumptions = Assumptions()) -> Plan:
    """The deployment ``ticks_per_s`` needs, from measured costs ``m`` and assumptions ``a``."""
    replica_capacity = m.ingest_ticks_per_cpu_s * a.ingest_cores_per_replica
    replicas = units(ticks_per_s, replica_capacity, a.headroom)
    # one partition is read by one replica, so a partition must not carry more than a
    # replica works off; the operator's default is one replica per partition
    partitions = replicas
    per_partition = ticks_per_s / partitions
    # every copy is appended (produce on the leader, replication on the followers) and read
    # once by a follower or by ingest: RF appends and RF reads of each tick
    broker_us = a.replication_factor * (
        m.broker_produce_cpu_us_per_tick + m.broker_fetch_cpu_us_per_tick
    )
    broker_cores = ticks_per_s * broker_us / 1e6
    redis_cores = ticks_per_s * m.redis_cpu_us_per_tick / 1e6
    query_replicas = units(a.latest_requests_per_s, m.latest_rps_per_replica, a.headroom)
    rows = rows_per_file(per_partition, a.roll_rows, a.roll_seconds)
    flushes = ticks_per_s / rows
    # the lake's offsets are committed only once a file is written, so in steady state a
    # partition's committed lag runs from 0 to a whole file: half of one on average
    lag_per_partition = int(rows // 2)
    policy = decision.Policy(max_replicas=a.max_replicas)
    lag_policy = decision.Policy(mode=decision.Mode.LAG, max_replicas=a.max_replicas)
    at_start = decision.Observation(partitions=partitions, current_replicas=1, lag={})
    lagging = decision.Observation(
        partitions=partitions,
        current_replicas=1,
        lag={p: lag_per_partition for p in range(partitions)},
    )
    return Plan(
        ticks_per_s=ticks_per_s,
        ingest_cores=ticks_per_s / m.ingest_ticks_per_cpu_s,
        ingest_replicas=replicas,
        partitions=partitions,
        per_partition_ticks_per_s=per_partition,
        producers=units(ticks_per_s, m.produce_ticks_per_s, a.headroom),
        broker_cores=broker_cores,
        brokers=max(a.replication_factor, units(broker_cores, a.broker_cores, a.headroom)),
        broker_write_mb_per_s=ticks_per_s * m.topic_bytes_per_tick * a.replication_factor / 1e6,
        redis_cores=redis_cores,
        redis_shards=units(redis_cores, a.redis_cores_per_shard, a.headroom),
        redis_commands_per_s=ticks_per_s * m.redis_commands_per_tick,
        lake_rows_per_file=rows,
        lake_tick_file_mb=rows * m.lake_bytes_per_row / 1e6,
        lake_bars_mb_per_flush=m.bars_bytes_per_flush / 1e6,
        lake_flushes_per_s=flushes,
        lake_puts_per_s=flushes * m.lake_puts_per_flush,
        query_replicas=query_replicas,
        operator_partitions_mode=decision.decide(at_start, policy).desired,
        operator_lag_mode=decision.decide(lagging, lag_policy).desired,
        operator_lag_per_partition=lag_per_partition,
    )


@dataclass(frozen=True)
class Ceiling:
    """The tick rate at which one thing is full."""

    what: str
    ticks_per_s: float


def ceilings(m: Measured, a: Assumptions, *, partitions: int, brokers: int) -> list[Ceiling]:
    """The rates at which a deployment with ``partitions`` partitions, ``brokers`` brokers and
    one Redis server is full, lowest first (the first is what saturates first as the feed
    grows). Ingest is scaled by the operator, one replica per partition up to
    ``a.max_replicas``; every unit at 100 % of its measured capacity, not at the headroom."""
    replica = m.ingest_ticks_per_cpu_s * a.ingest_cores_per_replica
    broker_us = a.replication_factor * (
        m.broker_produce_cpu_us_per_tick + m.broker_fetch_cpu_us_per_tick
    )
    found = [
        Ceiling(
            f"ingest: {partitions} partitions, maxReplicas {a.max_replicas}",
            min(partitions, a.max_replicas) * replica,
        ),
        Ceiling("one Redis server", a.redis_cores_per_shard * 1e6 / m.redis_cpu_us_per_tick),
        Ceiling(f"{brokers} Kafka brokers", brokers * a.broker_cores * 1e6 / broker_us),
    ]
    return sorted(found, key=lambda c: c.ticks_per_s)
