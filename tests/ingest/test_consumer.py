"""Two replicas, a rebalance in the middle: nothing lost, nothing doubled, and the
features are bit-for-bit those of one replica processing the partition in one go."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis.asyncio as aioredis
from ingest_kit import (
    RunningIngest,
    consume_all,
    create_topic,
    lake_row_count,
    produce,
    settings_for,
    tick_messages,
    tick_stream,
    ticks_frame,
    unique_prefix,
    unique_topic,
    wait_until,
)

from ticklake.core import hot_cache
from ticklake.devstack.kafka import KafkaBroker
from ticklake.ingest.consumer import feature_params
from ticklake.ingest.features import FEATURES
from ticklake.ingest.partition import PartitionProcessor


async def test_a_rebalance_between_two_replicas_continues_every_series_exactly(
    kafka_bootstrap: str,
    ingest_redis: str,
    redis_password: str,
    tmp_path: Path,
    redis_client: aioredis.Redis,
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 4)
    symbols = [f"{unique_prefix()}{i}" for i in range(10)]
    ticks = tick_stream(symbols, 5_000, seed=21)
    lake = tmp_path / "lake"
    settings = settings_for(
        kafka_bootstrap,
        topic,
        lake,
        ingest_redis,
        redis_password,
        lake_roll_rows=300,
        max_batch_records=200,
    )

    async with RunningIngest(settings) as a:
        await produce(kafka_bootstrap, topic, tick_messages(ticks[:1_500]))
        await wait_until(lambda: lake_row_count(lake) >= 1_000, 60, "replica A working")
        async with RunningIngest(settings) as b:
            await wait_until(lambda: len(b.service.consumer.assigned) > 0, 60, "B gets partitions")
            assert len(a.service.consumer.assigned) < 4
            await produce(kafka_bootstrap, topic, tick_messages(ticks[1_500:3_500]))
            await wait_until(lambda: lake_row_count(lake) >= 3_500, 60, "both replicas working")
            b_processed = b.counter("ticklake_ingest_processed_total")
        # B left: A owns everything again and resumes B's partitions from B's checkpoints
        await wait_until(lambda: len(a.service.consumer.assigned) == 4, 60, "A takes over")
        await produce(kafka_bootstrap, topic, tick_messages(ticks[3_500:]))
        await wait_until(lambda: lake_row_count(lake) >= 5_000, 60, "all ticks")
        await wait_until(lambda: not a.service.cache.has_pending, 30, "cache written")
    assert b_processed > 0

    df = ticks_frame(lake)
    assert len(df) == 5_000
    assert not df.duplicated(["symbol", "seq"]).any()
    assert not df.duplicated(["kafka_partition", "kafka_offset"]).any()

    # One replica, one batch per partition, straight from Kafka: the same bits.
    records = await consume_all(kafka_bootstrap, topic, 5_000)
    by_partition: dict[int, list] = defaultdict(list)
    for r in records:
        by_partition[r.partition].append(r)
    expected = []
    for partition, recs in by_partition.items():
        recs.sort(key=lambda r: r.offset)
        processor = PartitionProcessor(partition, feature_params(settings), settings.dedup_window)
        expected.append(processor.process(recs, 0).rows().to_pandas())
    ref = pd.concat(expected).sort_values(["kafka_partition", "kafka_offset"])
    ref = ref.reset_index(drop=True)
    for feature in FEATURES:
        ours, theirs = df[feature.name].to_numpy(), ref[feature.name].to_numpy()
        same = (ours == theirs) | (pd.isna(ours) & pd.isna(theirs))
        assert same.all(), f"{feature.name} differs at {np.flatnonzero(~same)[:5]}"

    # the cache holds every symbol's newest tick
    for symbol in symbols:
        newest = max(t.seq for t in ticks if t.symbol == symbol)
        fields = await redis_client.hgetall(hot_cache.latest_key(symbol))
        assert hot_cache.decode_latest_hash(fields)["seq"] == newest


@pytest.mark.slow
async def test_a_kafka_outage_is_ridden_out_and_nothing_is_lost_or_doubled(
    ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    broker = KafkaBroker(tmp_path / "kafka")
    broker.start()
    try:
        topic = unique_topic()
        await create_topic(broker.bootstrap, topic, 2)
        ticks = tick_stream([f"{unique_prefix()}{i}" for i in range(3)], 600, seed=12)
        lake = tmp_path / "lake"
        settings = settings_for(broker.bootstrap, topic, lake, ingest_redis, redis_password)
        async with RunningIngest(settings) as running:
            await produce(broker.bootstrap, topic, tick_messages(ticks[:300]))
            await wait_until(lambda: lake_row_count(lake) >= 300, 60, "before the outage")
            await asyncio.to_thread(broker.stop)
            await asyncio.sleep(3)
            assert running.task is not None and not running.task.done()
            await asyncio.to_thread(broker.start)
            await produce(broker.bootstrap, topic, tick_messages(ticks[300:]))
            await wait_until(lambda: lake_row_count(lake) >= 600, 90, "after the outage")
            await wait_until(
                lambda: sum(running.service.consumer.committed.values()) == 600, 60, "committed"
            )
        df = ticks_frame(lake)
        assert len(df) == 600 and not df.duplicated(["symbol", "seq"]).any()
    finally:
        broker.stop()
