"""The whole service against real Kafka and Redis: lake, features, cache, metrics."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from ingest_kit import (
    RunningIngest,
    assert_features_match,
    create_topic,
    lake_row_count,
    produce,
    sent_frame,
    settings_for,
    tick_messages,
    tick_stream,
    ticks_frame,
    unique_prefix,
    unique_topic,
    wait_until,
)

from ticklake.core import hot_cache


async def test_ticks_reach_the_lake_and_redis_with_features_like_the_reference(
    kafka_bootstrap: str,
    ingest_redis: str,
    redis_password: str,
    tmp_path: Path,
    redis_client: aioredis.Redis,
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 3)
    prefix = unique_prefix()
    symbols = [f"{prefix}{i}" for i in range(6)]
    ticks = tick_stream(symbols, 3_000, seed=5)
    settings = settings_for(kafka_bootstrap, topic, tmp_path / "lake", ingest_redis, redis_password)
    async with RunningIngest(settings) as running:
        await produce(kafka_bootstrap, topic, tick_messages(ticks[:1_000]))
        await wait_until(lambda: lake_row_count(tmp_path / "lake") >= 1_000, 60, "first ticks")
        await produce(kafka_bootstrap, topic, tick_messages(ticks[1_000:]))
        await wait_until(lambda: lake_row_count(tmp_path / "lake") >= 3_000, 60, "all ticks")
        await wait_until(lambda: running.counter("ticklake_ingest_processed_total") >= 3_000)
        await wait_until(
            lambda: running.service.cache.healthy and not running.service.cache.has_pending
        )

    lake = ticks_frame(tmp_path / "lake")
    assert len(lake) == 3_000
    assert not lake.duplicated(["symbol", "seq"]).any()
    # Features against an independent pandas computation on the produced stream,
    # per symbol in production order (each symbol lives in one partition).
    features = ["mid", "spread_bps", "ret_log", "ema_fast", "ema_slow", "vol_ewma", "vwap_day"]
    features += ["volume_day", "ticks_day"]
    merged = assert_features_match(lake, sent_frame(ticks), settings, features)
    assert len(merged) == 3_000

    # Redis: the newest tick of every symbol, and its tail.
    for symbol in symbols:
        newest = max((t for t in ticks if t.symbol == symbol), key=lambda t: t.seq)
        fields = hot_cache.decode_latest_hash(
            await redis_client.hgetall(hot_cache.latest_key(symbol))
        )
        assert fields["seq"] == newest.seq and fields["price"] == newest.price
        assert fields["symbol"] == symbol and fields["timestamp"].endswith("Z")
        row = merged[(merged.symbol == symbol) & (merged.seq == newest.seq)].iloc[0]
        assert fields["ema_slow"] == row["ema_slow"]
        tail = await redis_client.xrange(hot_cache.tail_key(symbol))
        seqs = [hot_cache.decode_tail_entry(f)["seq"] for _, f in tail]
        assert seqs == sorted(t.seq for t in ticks if t.symbol == symbol)
    members = {m.decode() for m in await redis_client.smembers(hot_cache.SYMBOLS_KEY)}
    assert set(symbols) <= members

    # bars datasets exist and add up to the ticks
    import pyarrow.dataset as ds

    bars = ds.dataset(tmp_path / "lake" / "bars_1m", partitioning="hive").to_table().to_pandas()
    assert bars["tick_count"].sum() == 3_000
    assert running.counter("ticklake_ingest_e2e_latency_seconds_count") >= 3_000


async def test_a_failing_lake_holds_commits_back_and_loses_nothing(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 1)
    ticks = tick_stream([unique_prefix()], 600, seed=8)
    lake = tmp_path / "lake"
    settings = settings_for(kafka_bootstrap, topic, lake, ingest_redis, redis_password)
    async with RunningIngest(settings) as running:
        await produce(kafka_bootstrap, topic, tick_messages(ticks[:200]))
        await wait_until(lambda: lake_row_count(lake) >= 200, 60, "first ticks")
        # the commit follows the durable flush, so it may land a moment after the files
        await wait_until(
            lambda: running.service.consumer.committed.get(0) == 200, 30, "first commit"
        )
        committed = running.service.consumer.committed[0]

        # the disk "fails": the ticks dataset cannot be written (works as root too)
        shutil.move(lake / "ticks", tmp_path / "ticks-aside")
        (lake / "ticks").write_bytes(b"in the way")
        await produce(kafka_bootstrap, topic, tick_messages(ticks[200:400]))
        await wait_until(
            lambda: running.counter("ticklake_ingest_lake_errors_total") >= 2, 30, "lake errors"
        )
        report = await running.service.readiness()
        assert not report["ready"] and not report["checks"]["lake_writable"]
        assert "offsets" in report["lake_error"]
        assert running.service.consumer.committed[0] == committed

        (lake / "ticks").unlink()
        shutil.move(tmp_path / "ticks-aside", lake / "ticks")
        await produce(kafka_bootstrap, topic, tick_messages(ticks[400:]))
        await wait_until(lambda: lake_row_count(lake) >= 600, 60, "everything after recovery")
        await wait_until(lambda: running.service.consumer.committed[0] == 600, 30, "committed")
        assert (await running.service.readiness())["checks"]["lake_writable"]
    df = ticks_frame(lake)
    assert df["seq"].tolist() == list(range(1, 601))


async def test_a_checkpoint_it_cannot_read_stops_the_service_instead_of_skipping_data(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 1)
    lake = tmp_path / "lake"
    settings = settings_for(kafka_bootstrap, topic, lake, ingest_redis, redis_password)
    await produce(kafka_bootstrap, topic, tick_messages(tick_stream([unique_prefix()], 100)))
    async with RunningIngest(settings) as running:
        await wait_until(lambda: running.service.consumer.committed.get(0) == 100, 60, "commit")
    checkpoint = lake / "_state" / topic / f"p0000-{100:020d}.json"
    doc = orjson.loads(checkpoint.read_bytes())
    doc["state"]["format"] = 99  # written by a future version
    checkpoint.write_bytes(orjson.dumps(doc))

    running = RunningIngest(settings)
    await running.__aenter__()
    assert running.task is not None
    with pytest.raises(RuntimeError, match="cannot continue"):
        await asyncio.wait_for(running.task, 60)
