"""Failures in a partition's write path hold it, show, and end in a restart if they last.

Real Kafka and Redis. Faults are injected where they happen in production:
an exception out of the lake writer (not a ``LakeWriteError``: a bug or an
unexpected library error), a commit that Kafka refuses, a dead-letter topic
that refuses every record, and, for the real process, a lake it cannot write.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError
from ingest_kit import (
    RunningIngest,
    consume_all,
    create_topic,
    env_of,
    lake_row_count,
    produce,
    settings_for,
    start_ingest,
    tick_messages,
    tick_stream,
    ticks_frame,
    unique_prefix,
    unique_topic,
    wait_assigned,
    wait_until,
)

from ticklake.core import topics
from ticklake.core.tick import encode_tick
from ticklake.core.topic_admin import TopicSpec, ensure_topics


class Injected(Exception):
    """Stands for an unexpected error in the flush path (not a LakeWriteError)."""


def stalled(running: RunningIngest, partition: int) -> float:
    return running.counter("ticklake_ingest_partition_stalled", partition=str(partition))


async def test_an_exception_in_the_flush_path_holds_the_partition_until_it_clears(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 1)
    ticks = tick_stream([unique_prefix()], 600, seed=21)
    lake = tmp_path / "lake"
    settings = settings_for(
        kafka_bootstrap, topic, lake, ingest_redis, redis_password, stall_fatal_after_seconds=120
    )
    async with RunningIngest(settings) as running:
        consumer = running.service.consumer
        await produce(kafka_bootstrap, topic, tick_messages(ticks[:200]))
        await wait_until(lambda: consumer.committed.get(0) == 200, 60, "first commit")

        real_write = consumer.writer.write
        broken = True

        def write(job: Any) -> Any:
            if broken:
                raise Injected("disk controller said no")
            return real_write(job)

        consumer.writer.write = write  # type: ignore[method-assign]
        await produce(kafka_bootstrap, topic, tick_messages(ticks[200:400]))
        await wait_until(
            lambda: running.counter("ticklake_ingest_failures_total", stage="lake_write") >= 3,
            30,
            "repeated lake write failures",
        )
        # later data keeps arriving, and still nothing past the failing flush is committed
        await produce(kafka_bootstrap, topic, tick_messages(ticks[400:500]))
        await asyncio.sleep(1.5)
        assert consumer.committed[0] == 200
        assert lake_row_count(lake) == 200
        assert stalled(running, 0) == 1
        report = await running.service.readiness()
        assert not report["ready"] and not report["checks"]["partitions_progressing"]
        assert report["stalled_partitions"]["0"]["stage"] == "lake_write"
        assert "disk controller said no" in report["stalled_partitions"]["0"]["reason"]
        assert running.task is not None and not running.task.done()

        broken = False
        await produce(kafka_bootstrap, topic, tick_messages(ticks[500:]))
        await wait_until(lambda: consumer.committed.get(0) == 600, 60, "commit after the fault")
        assert stalled(running, 0) == 0
        report = await running.service.readiness()
        assert report["checks"]["partitions_progressing"] and report["stalled_partitions"] == {}
    df = ticks_frame(lake)
    assert df["seq"].tolist() == list(range(1, 601))


async def test_refused_commits_are_retried_and_visible(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 1)
    ticks = tick_stream([unique_prefix()], 400, seed=22)
    lake = tmp_path / "lake"
    settings = settings_for(kafka_bootstrap, topic, lake, ingest_redis, redis_password)
    async with RunningIngest(settings) as running:
        consumer = running.service.consumer
        await produce(kafka_bootstrap, topic, tick_messages(ticks[:200]))
        await wait_until(lambda: consumer.committed.get(0) == 200, 60, "first commit")
        kafka_consumer = consumer._consumer
        assert kafka_consumer is not None
        real_commit = kafka_consumer.commit
        refusing = True

        async def commit(offsets: Any = None) -> None:
            if refusing:
                raise KafkaConnectionError("coordinator unreachable (injected)")
            await real_commit(offsets)

        kafka_consumer.commit = commit  # type: ignore[method-assign]
        await produce(kafka_bootstrap, topic, tick_messages(ticks[200:300]))
        await wait_until(
            lambda: running.counter("ticklake_ingest_failures_total", stage="commit") >= 3,
            30,
            "repeated commit failures",
        )
        assert lake_row_count(lake) == 300  # the flush is durable; only the commit waits
        assert consumer.committed[0] == 200
        assert running.counter("ticklake_ingest_commit_errors_total") >= 3
        report = await running.service.readiness()
        assert not report["ready"]
        assert report["stalled_partitions"]["0"]["stage"] == "commit"

        refusing = False
        await produce(kafka_bootstrap, topic, tick_messages(ticks[300:]))
        await wait_until(lambda: consumer.committed.get(0) == 400, 60, "commits resume")
        assert (await running.service.readiness())["stalled_partitions"] == {}


async def test_a_dead_letter_topic_refusing_writes_holds_only_partitions_with_dead_letters(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    dlq = f"{topic}.dlq"
    await ensure_topics(
        kafka_bootstrap,
        [
            TopicSpec(topic, 2),
            # every dead letter is larger than this, even cut down: the topic refuses all
            TopicSpec(dlq, 1, configs={"max.message.bytes": "64"}),
        ],
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        prefix = unique_prefix()
        clean, dirty = tick_stream([f"{prefix}A"], 300, seed=23), tick_stream([f"{prefix}B"], 300)
        lake = tmp_path / "lake"
        settings = settings_for(kafka_bootstrap, topic, lake, ingest_redis, redis_password)
        async with RunningIngest(settings) as running:
            consumer = running.service.consumer
            # partition 0 carries only good ticks; partition 1 good ticks and 30 bad payloads
            await produce_to(kafka_bootstrap, topic, 0, [encode_tick(t) for t in clean])
            mixed = []
            for i, t in enumerate(dirty):
                mixed.append(encode_tick(t))
                if i % 10 == 0:
                    mixed.append(b'{"symbol": "' + prefix.encode() + b'B", "price": -1}')
            await produce_to(kafka_bootstrap, topic, 1, mixed)
            await wait_until(lambda: consumer.committed.get(0) == 300, 60, "healthy partition")
            await wait_until(
                lambda: (
                    running.counter("ticklake_ingest_failures_total", stage="dead_letters") >= 2
                ),
                30,
                "dead-letter failures",
            )
            report = await running.service.readiness()
            assert not report["ready"]
            assert report["stalled_partitions"]["1"]["stage"] == "dead_letters"
            assert "MessageSizeTooLarge" in report["stalled_partitions"]["1"]["reason"]
            assert consumer.committed.get(1, 0) <= 1  # nothing past the first bad one
            assert running.counter("ticklake_ingest_dead_letters_pending") >= 1
            assert stalled(running, 0) == 0 and stalled(running, 1) == 1

            await admin.alter_configs(
                [
                    ConfigResource(
                        ConfigResourceType.TOPIC, dlq, configs={"max.message.bytes": "1048588"}
                    )
                ]
            )
            await wait_until(lambda: consumer.committed.get(1) == 330, 60, "after the outage")
            assert stalled(running, 1) == 0
    finally:
        await admin.close()
    letters = await consume_all(kafka_bootstrap, dlq, 30)
    ids = {dict(r.headers)[topics.HEADER_DLQ_ID].decode() for r in letters}
    bad_offsets = {i + i // 10 for i in range(0, 300, 10)}  # a bad one follows every 10th
    assert ids == {f"{topic}/1/{o + 1}" for o in bad_offsets}
    df = ticks_frame(lake)
    assert len(df) == 600 and not df.duplicated(["symbol", "seq"]).any()


async def produce_to(bootstrap: str, topic: str, partition: int, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, partition=partition) for v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@pytest.mark.slow
async def test_a_fault_that_persists_makes_the_process_exit_non_zero_and_a_restart_recovers(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 1)
    ticks = tick_stream([unique_prefix()], 400, seed=24)
    lake = tmp_path / "lake"
    fatal_after = 4.0
    settings = settings_for(
        kafka_bootstrap,
        topic,
        lake,
        ingest_redis,
        redis_password,
        stall_fatal_after_seconds=fatal_after,
    )
    env = env_of(settings)
    log = tmp_path / "ingest.log"
    proc, port = start_ingest(env, log)
    try:
        await wait_assigned(port)
        await produce(kafka_bootstrap, topic, tick_messages(ticks[:200]))
        await wait_until(lambda: lake_row_count(lake) >= 200, 60, "first ticks")
        await asyncio.sleep(0.5)  # let the commit follow the flush

        # the lake's disk "breaks": the ticks dataset cannot be written (works as root too)
        shutil.move(lake / "ticks", tmp_path / "ticks-aside")
        (lake / "ticks").write_bytes(b"in the way")
        broke = time.monotonic()
        await produce(kafka_bootstrap, topic, tick_messages(ticks[200:300]))
        rc = await asyncio.to_thread(proc.wait, 60)
        took = time.monotonic() - broke
        text = log.read_text()
        assert rc != 0, text[-3000:]
        # the bound plus a roll interval, a retry delay and the exit itself
        assert took < fatal_after + 10, f"exited after {took:.1f}s"
        assert "stalled too long" in text and "lake_write" in text

        (lake / "ticks").unlink()
        shutil.move(tmp_path / "ticks-aside", lake / "ticks")
        proc, port = start_ingest(env, log)
        await wait_assigned(port)
        await produce(kafka_bootstrap, topic, tick_messages(ticks[300:]))
        await wait_until(lambda: lake_row_count(lake) >= 400, 60, "everything after restart")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    df = ticks_frame(lake)
    assert df["seq"].tolist() == list(range(1, 401))


async def test_a_table_log_that_cannot_be_written_holds_commits_until_it_can(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    """The lake's "catalog" is each dataset's Delta log: while ingest cannot commit to one,
    no offset is committed past the flush, readiness says why, and once the log is back
    the flush completes and every row is in the table once."""
    from deltalake import DeltaTable

    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 1)
    ticks = tick_stream([unique_prefix()], 400, seed=23)
    lake = tmp_path / "lake"
    settings = settings_for(
        kafka_bootstrap, topic, lake, ingest_redis, redis_password, stall_fatal_after_seconds=120
    )
    async with RunningIngest(settings) as running:
        consumer = running.service.consumer
        await produce(kafka_bootstrap, topic, tick_messages(ticks[:200]))
        await wait_until(lambda: consumer.committed.get(0) == 200, 60, "first commit")
        log_dir = lake / "bars_1m" / "_delta_log"
        aside = log_dir.with_name("log-aside")
        log_dir.rename(aside)
        log_dir.write_bytes(b"not a directory: the table's log is unreachable")
        await produce(kafka_bootstrap, topic, tick_messages(ticks[200:]))
        await wait_until(
            lambda: running.counter("ticklake_ingest_failures_total", stage="lake_write") >= 2,
            30,
            "table commits failing",
        )
        assert consumer.committed[0] == 200
        report = await running.service.readiness()
        assert not report["ready"]
        assert report["stalled_partitions"]["0"]["stage"] == "lake_write"
        assert "bars_1m" in report["stalled_partitions"]["0"]["reason"]
        log_dir.unlink()
        aside.rename(log_dir)
        await wait_until(lambda: consumer.committed.get(0) == 400, 60, "commit once it is back")
    for dataset in ("ticks", "bars_1s", "bars_1m"):
        table = DeltaTable(str(lake / dataset))
        assert table.transaction_version(f"ticklake/{topic}/p0000") == 400
    offsets = DeltaTable(str(lake / "ticks")).to_pyarrow_dataset().to_table().column("seq")
    assert sorted(offsets.to_pylist()) == list(range(1, 401))
