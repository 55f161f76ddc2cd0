"""``ticklake-ingest`` as a process: SIGTERM flushes, commits and exits in time."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from ingest_kit import (
    create_topic,
    env_of,
    lake_row_count,
    produce,
    settings_for,
    start_ingest,
    tick_messages,
    tick_stream,
    unique_prefix,
    unique_topic,
    wait_assigned,
    wait_until,
)


async def test_sigterm_flushes_the_lake_commits_and_exits_within_the_grace_period(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 2)
    ticks = tick_stream([f"{unique_prefix()}{i}" for i in range(3)], 700, seed=6)
    lake = tmp_path / "lake"
    # Nothing would roll on its own for minutes: only the shutdown flush writes the lake.
    settings = settings_for(
        kafka_bootstrap,
        topic,
        lake,
        ingest_redis,
        redis_password,
        lake_roll_rows=1_000_000,
        lake_roll_seconds=600,
        shutdown_grace_seconds=10,
    )
    await produce(kafka_bootstrap, topic, tick_messages(ticks))
    log = tmp_path / "ingest.log"
    proc, port = start_ingest(env_of(settings), log)
    try:
        await wait_assigned(port)

        async def processed_all() -> bool:
            async with httpx.AsyncClient(timeout=1.0) as client:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            return "ticklake_ingest_processed_total 700.0" in text

        await wait_until(processed_all, 60, "every tick processed")
        assert lake_row_count(lake) == 0
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()[-2000:]
        assert time.monotonic() - started < settings.shutdown_grace_seconds
    finally:
        if proc.poll() is None:
            proc.kill()
    assert lake_row_count(lake) == 700
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=settings.consumer_group)
    await consumer.start()
    try:
        committed = [await consumer.committed(TopicPartition(topic, p)) for p in (0, 1)]
    finally:
        await consumer.stop()
    assert sum(c or 0 for c in committed) == 700
    assert '"signal received; stopping"' in log.read_text().replace(" ", "") or (
        "signal received" in log.read_text()
    )


async def test_sigterm_while_kafka_is_unreachable_exits_cleanly(
    ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    settings = settings_for(
        "127.0.0.1:1", unique_topic(), tmp_path / "lake", ingest_redis, redis_password
    )
    log = tmp_path / "ingest.log"
    proc, _ = start_ingest(env_of(settings), log)
    try:
        await wait_until(lambda: "retrying" in log.read_text(), 30, "a retry logged")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped while still connecting to Kafka" in log.read_text()
