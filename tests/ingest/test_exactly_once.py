"""Exactly-once into the lake while the ingest process is killed with SIGKILL.

A producer keeps writing while ingest (a real ``ticklake-ingest`` process) is
killed several times at random moments: during start-up, while recovering,
in the middle of flushes. At the end every produced (symbol, seq) and every
(partition, offset) is in the lake exactly once, and the features are those
of one uninterrupted run (the pandas reference on the produced stream). The
datasets' Delta tables hold exactly the files on disk, each partition's
transaction version is where its rows end, and a read through the table
snapshot gives the same rows.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable
from ingest_kit import (
    assert_features_match,
    create_topic,
    drain_and_stop,
    env_of,
    kill_9_repeatedly,
    produce,
    sent_frame,
    settings_for,
    tick_messages,
    tick_stream,
    ticks_frame,
    unique_prefix,
    unique_topic,
)

TOTAL = 12_000
KILLS = 5


@pytest.mark.slow
async def test_every_tick_lands_exactly_once_despite_repeated_kill_9(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 3)
    symbols = [f"{unique_prefix()}{i}" for i in range(8)]
    ticks = tick_stream(symbols, TOTAL, seed=13)
    lake = tmp_path / "lake"
    settings = settings_for(
        kafka_bootstrap,
        topic,
        lake,
        ingest_redis,
        redis_password,
        lake_roll_rows=400,
        lake_roll_seconds=0.2,
        max_batch_records=300,
    )
    env = env_of(settings)
    log = tmp_path / "ingest.log"
    rng = random.Random(2024)

    producing = asyncio.create_task(_produce_slowly(kafka_bootstrap, topic, ticks))
    try:
        await kill_9_repeatedly(env, log, KILLS, rng, (0.05, 1.5), first_during_startup=True)
        await producing
        await drain_and_stop(env, log, lake, TOTAL)
    finally:
        producing.cancel()

    restored = log.read_text().count('"state":"restored"')
    assert restored >= 2, "the kills should have interrupted work that later runs resumed"

    con = duckdb.connect()
    # date=*/ only: the table log's checkpoints are Parquet files too
    glob = f"{lake}/ticks/date=*/*.parquet"
    total, distinct_ticks, distinct_offsets = con.execute(
        f"select count(*), count(distinct (symbol, seq)), "
        f"count(distinct (kafka_partition, kafka_offset)) "
        f"from read_parquet('{glob}', hive_partitioning=true)"
    ).fetchone()
    assert (total, distinct_ticks, distinct_offsets) == (TOTAL, TOTAL, TOTAL)
    bar_ticks = con.execute(
        f"select sum(tick_count) from read_parquet('{lake}/bars_1s/date=*/*.parquet')"
    ).fetchone()[0]
    assert bar_ticks == TOTAL

    # The tables: every file on disk added once, nothing else, offsets as versions.
    for dataset in ("ticks", "bars_1s", "bars_1m"):
        table = DeltaTable(str(lake / dataset))
        in_table = table.file_uris()
        assert len(in_table) == len(set(in_table))
        assert sorted(in_table) == sorted(str(p) for p in (lake / dataset).glob("date=*/*.parquet"))
    ticks_table = DeltaTable(str(lake / "ticks"))
    through_table = con.execute(
        "select count(*), count(distinct (kafka_partition, kafka_offset)) from read_parquet($f)",
        {"f": ticks_table.file_uris()},
    ).fetchone()
    assert through_table == (TOTAL, TOTAL)
    # each partition's last flush ended at its last offset: the version is the next one
    ends = con.execute(
        "select kafka_partition, max(kafka_offset) + 1 from read_parquet($f) group by 1",
        {"f": ticks_table.file_uris()},
    ).fetchall()
    assert ends
    for partition, end in ends:
        assert ticks_table.transaction_version(f"ticklake/{topic}/p{partition:04d}") == end

    # Each restart resumed from a checkpoint: the features equal one continuous run.
    assert_features_match(
        ticks_frame(lake),
        sent_frame(ticks),
        settings,
        ["ret_simple", "ema_fast", "ema_slow", "vol_ewma", "vwap_day", "ticks_day"],
    )


async def _produce_slowly(bootstrap: str, topic: str, ticks: list) -> None:
    """Spread the stream over the kills so some arrive while ingest is down."""
    chunk = 600
    for start in range(0, len(ticks), chunk):
        await produce(bootstrap, topic, tick_messages(ticks[start : start + chunk]))
        await asyncio.sleep(0.6)
