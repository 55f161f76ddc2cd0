"""Helpers for the producer tests against real Kafka (imported by the tests).

Named ``producer_kit`` because pytest puts each test folder on sys.path and a
generic name would clash with another folder's module.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from ticklake.producer.settings import ProducerSettings


def unique_topic() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def producer_settings(bootstrap: str, topic: str, **overrides: Any) -> ProducerSettings:
    """Settings for a test producer: explicit values only, so the environment cannot leak in."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "ticks_topic": topic,
        "dead_letter_topic": f"{topic}.dlq",
        "topic_partitions": 3,
        "connect_retry_max_s": 30.0,
        "progress_interval_s": 0.5,
    }
    values.update(overrides)
    return ProducerSettings(**values)


async def partitions_of(bootstrap: str, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert described["error_code"] == 0, f"topic {topic}: {described}"
    return sorted(p["partition"] for p in described["partitions"])


async def consume_all(
    bootstrap: str, topic: str, timeout_s: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` up to its current end offsets, in partition-offset order."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in await partitions_of(bootstrap, topic)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: dict[int, list[ConsumerRecord[bytes, bytes]]] = {
            p.partition: [] for p in partitions
        }
        deadline = time.monotonic() + timeout_s
        while True:
            positions = [await consumer.position(tp) for tp in partitions]
            if all(pos >= end[tp] for pos, tp in zip(positions, partitions, strict=True)):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"consuming {topic}: not at the end offsets after {timeout_s}s")
            batch = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for tp, recs in batch.items():
                records[tp.partition].extend(recs)
        return [r for p in sorted(records) for r in records[p]]
    finally:
        await consumer.stop()


async def eventually(check: Any, timeout_s: float = 30.0, interval_s: float = 0.1) -> Any:
    """Poll ``check()`` until it returns a truthy value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)
