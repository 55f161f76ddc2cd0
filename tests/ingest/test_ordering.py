"""Per-symbol event-time order whatever the producer's key (real Kafka and Redis).

An unkeyed feed puts each tick on a random partition (each partition stays in
time order, as any single producer's would). Two ``ticklake-ingest`` processes
run with ``ordering=sequence``; the one whose sequencer is active is killed
with SIGKILL mid-way and restarted. The checks are computed independently from
what was sent (pandas, sorted by event time), never by ingest's own code:
every tick exactly once in the lake; per symbol the features of one run in
event-time order; 1-minute OHLCV bars; Redis latest = the last tick by time.
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.dataset as ds
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from ingest_kit import (
    RunningIngest,
    assert_features_match,
    create_topic,
    env_of,
    lake_row_count,
    produce,
    sent_frame,
    settings_for,
    start_ingest,
    tick_messages,
    tick_stream,
    unique_prefix,
    unique_topic,
    wait_assigned,
    wait_until,
)

from ticklake.core import hot_cache
from ticklake.core.tick import Tick, encode_tick
from ticklake.ingest.sequencer import choose_owner

PARTITIONS = 4
TOTAL = 6_000
STEP_NS = 50_000_000  # 6,000 ticks x 50 ms = 5 minutes of event time: several 1-minute bars


@pytest.mark.parametrize(
    ("members", "owner"),
    [
        ({"b": False, "a": False}, "a"),  # nobody owns: the smallest id, on every leader
        ({"a": False, "b": True}, "b"),  # the current owner keeps the partitions
        ({"c": True, "b": True, "a": False}, "b"),  # two claim (a stale view): one wins
    ],
)
def test_one_member_is_chosen_and_a_current_owner_is_kept(
    members: dict[str, bool], owner: str
) -> None:
    assert choose_owner(members) == owner


def test_choosing_among_no_members_is_an_error() -> None:
    with pytest.raises(ValueError, match="no members"):
        choose_owner({})


async def _produce_unkeyed(bootstrap: str, topic: str, ticks: list[Tick], seed: int) -> None:
    """Each tick on a random partition, no key; chunks spread over the test's kill."""
    rng = random.Random(seed)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for start in range(0, len(ticks), 500):
            futures = [
                await producer.send(
                    topic, value=encode_tick(t), partition=rng.randrange(PARTITIONS)
                )
                for t in ticks[start : start + 500]
            ]
            await asyncio.gather(*futures)
            await asyncio.sleep(0.5)
    finally:
        await producer.stop()


async def _metric(port: int, name: str) -> float:
    async with httpx.AsyncClient(timeout=2.0) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _lake_bars(lake: Path, dataset: str) -> pd.DataFrame:
    """Partial bar rows merged as docs/lake.md says readers do."""
    df = ds.dataset(f"{lake}/{dataset}", format="parquet", partitioning="hive").to_table()
    df = df.to_pandas()
    rows = []
    for (symbol, start), g in df.groupby(["symbol", "start_ns"]):
        rows.append(
            {
                "symbol": symbol,
                "start_ns": start,
                "open": g.sort_values(["open_ts_ns", "first_offset"])["open"].iloc[0],
                "high": g["high"].max(),
                "low": g["low"].min(),
                "close": g.sort_values(["close_ts_ns", "last_offset"])["close"].iloc[-1],
                "volume": g["volume"].sum(),
                "tick_count": g["tick_count"].sum(),
            }
        )
    return pd.DataFrame(rows).sort_values(["symbol", "start_ns"]).reset_index(drop=True)


@pytest.mark.slow
async def test_an_unkeyed_feed_gets_per_symbol_event_time_order_despite_kill_9(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, PARTITIONS)
    symbols = [f"{unique_prefix()}{i}" for i in range(6)]
    ticks = tick_stream(symbols, TOTAL, seed=31, step_ns=STEP_NS)
    lake = tmp_path / "lake"
    settings = settings_for(
        kafka_bootstrap,
        topic,
        lake,
        ingest_redis,
        redis_password,
        ordering="sequence",
        sequenced_topic=f"{topic}.by-symbol",
        sequencer_group=f"s-{topic}",
        # longer than the producer's pauses, so no partition is ever left behind as idle
        sequencer_allowed_lateness_ms=2_000,
        lake_roll_rows=400,
        lake_roll_seconds=0.2,
        max_batch_records=300,
    )
    env = env_of(settings)
    logs = [tmp_path / "ingest-a.log", tmp_path / "ingest-b.log"]
    procs = [start_ingest(env, logs[0]), start_ingest(env, logs[1])]
    producing = asyncio.create_task(_produce_unkeyed(kafka_bootstrap, topic, ticks, seed=8))
    try:
        for _, port in procs:
            await wait_assigned(port, timeout_s=90)
        # kill the replica whose sequencer is active, in the middle of the feed
        await wait_until(lambda: lake_row_count(lake) >= TOTAL // 3, 120, "a third in the lake")
        active = [
            i
            for i, (_, port) in enumerate(procs)
            if await _metric(port, "ticklake_ingest_sequencer_active") == 1
        ]
        assert len(active) == 1, f"exactly one sequencer should be active, saw {active}"
        victim = active[0]
        procs[victim][0].send_signal(signal.SIGKILL)
        procs[victim][0].wait()
        await asyncio.sleep(2.0)
        procs[victim] = start_ingest(env, logs[victim])
        await producing
        await wait_assigned(procs[victim][1], timeout_s=90)
        await wait_until(lambda: lake_row_count(lake) >= TOTAL, 180, "every tick in the lake")
        # whichever live replica sequenced the feed after the kill counted its missing keys
        missing_keys = sum(
            [await _metric(port, "ticklake_ingest_key_not_symbol_total") for _, port in procs]
        )
        for proc, _ in procs:
            proc.send_signal(signal.SIGTERM)
        for i, (proc, _) in enumerate(procs):
            assert proc.wait(timeout=60) == 0, logs[i].read_text()[-3000:]
    finally:
        producing.cancel()
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()

    assert missing_keys > 0, "the unkeyed input should show in ticklake_ingest_key_not_symbol"
    table = ds.dataset(f"{lake}/ticks", format="parquet", partitioning="hive").to_table()
    df = table.to_pandas()
    # exactly once
    assert len(df) == TOTAL
    assert df[["symbol", "seq"]].drop_duplicates().shape[0] == TOTAL

    # the lake's per-symbol order (its position in the re-keyed topic) is event-time order
    for symbol, g in df.sort_values(["kafka_partition", "kafka_offset"]).groupby("symbol"):
        assert g["kafka_partition"].nunique() == 1, symbol
        assert g["ts_ns"].is_monotonic_increasing, f"{symbol} out of event-time order"

    # features of one run over each symbol's ticks in event-time order (independent pandas)
    sent = sent_frame(ticks).sort_values("ts_ns", kind="stable").reset_index(drop=True)
    merged = assert_features_match(
        df,
        sent,
        settings,
        ["ret_simple", "ret_log", "ema_fast", "ema_slow", "vol_ewma", "vwap_day"],
    )
    assert len(merged) == TOTAL

    # 1-minute bars equal the OHLCV of what was sent
    sent["start_ns"] = sent["ts_ns"] // 60_000_000_000 * 60_000_000_000
    expected = (
        sent.groupby(["symbol", "start_ns"])
        .agg(
            open=("price", "first"),
            high=("price", "max"),
            low=("price", "min"),
            close=("price", "last"),
            volume=("size", "sum"),
            tick_count=("price", "size"),
        )
        .reset_index()
    )
    bars = _lake_bars(lake, "bars_1m")
    assert len(expected) > len(symbols), "the feed should span several minutes"
    pd.testing.assert_frame_equal(
        bars[expected.columns].reset_index(drop=True), expected, check_dtype=False
    )

    # Redis latest = each symbol's last tick by event time
    client = aioredis.Redis.from_url(ingest_redis, password=redis_password)
    try:
        for symbol in symbols:
            last = sent[sent["symbol"] == symbol].iloc[-1]
            fields = await client.hgetall(hot_cache.latest_key(symbol))
            assert int(fields[b"ts_ns"]) == last["ts_ns"], symbol
            assert float(fields[b"price"]) == last["price"], symbol
    finally:
        await client.aclose()


async def test_keyed_mode_counts_input_that_is_not_keyed_by_symbol(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 2)
    symbols = [f"{unique_prefix()}{i}" for i in range(3)]
    ticks = tick_stream(symbols, 300, seed=4)
    keyed = tick_messages(ticks[:200])
    unkeyed = [(None, value, headers) for _, value, headers in tick_messages(ticks[200:])]
    settings = settings_for(kafka_bootstrap, topic, tmp_path / "lake", ingest_redis, redis_password)
    assert settings.ordering == "keyed"
    async with RunningIngest(settings) as ingest:
        await produce(kafka_bootstrap, topic, keyed)
        await wait_until(lambda: ingest.counter("ticklake_ingest_processed_total") >= 200, 60)
        name = "ticklake_ingest_key_not_symbol_total"
        assert ingest.counter(name, stage="ingest", kind="missing") == 0
        await produce(kafka_bootstrap, topic, unkeyed)
        await wait_until(lambda: ingest.counter("ticklake_ingest_processed_total") >= 300, 60)
        assert ingest.counter(name, stage="ingest", kind="missing") == 100
