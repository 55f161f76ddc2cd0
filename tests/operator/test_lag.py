"""Lag = end offset - committed offset, in pure form and read from a real Kafka."""

from __future__ import annotations

import uuid

import pytest

from ticklake.core.topic_admin import TopicSpec, ensure_topics
from ticklake.operator import lag
from ticklake.operator.lag import PartitionOffsets


@pytest.mark.parametrize(
    ("o", "want"),
    [
        (PartitionOffsets(beginning=0, end=100, committed=40), 60),
        (PartitionOffsets(beginning=0, end=100, committed=None), 100),
        (PartitionOffsets(beginning=30, end=100, committed=None), 70),
        (PartitionOffsets(beginning=50, end=100, committed=10), 50),  # retention ate the rest
        (PartitionOffsets(beginning=0, end=100, committed=100), 0),
        (PartitionOffsets(beginning=0, end=0, committed=None), 0),
    ],
)
def test_partition_lag(o: PartitionOffsets, want: int) -> None:
    assert lag.partition_lag(o) == want


async def test_reads_lag_from_kafka(kafka_bootstrap: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    topic, group = f"test.lag.{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 3)])

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for _ in range(10):
            await producer.send_and_wait(topic, value=b"x", partition=0)
        for _ in range(4):
            await producer.send_and_wait(topic, value=b"x", partition=1)
    finally:
        await producer.stop()

    before = await lag.read_topic_lag(kafka_bootstrap, topic, group, timeout_s=20)
    assert before.partitions == 3
    assert before.per_partition == {0: 10, 1: 4, 2: 0}

    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(7, "")})
    finally:
        await consumer.stop()
    after = await lag.read_topic_lag(kafka_bootstrap, topic, group, timeout_s=20)
    assert after.per_partition == {0: 3, 1: 4, 2: 0}
    assert after.total == 7


async def test_missing_topic_is_a_temporary_condition(kafka_bootstrap: str) -> None:
    with pytest.raises(lag.TopicNotFound):
        await lag.read_topic_lag(kafka_bootstrap, f"missing.{uuid.uuid4().hex}", "g", timeout_s=20)


async def test_unreachable_kafka_is_reported_not_hung() -> None:
    from ticklake.devstack.kubeapi import free_port

    with pytest.raises(lag.KafkaUnavailable):
        await lag.read_topic_lag(f"127.0.0.1:{free_port()}", "t", "g", timeout_s=3)


async def test_reading_a_missing_topic_does_not_create_it(kafka_bootstrap: str) -> None:
    """The session broker auto-creates topics on a named metadata request."""
    from aiokafka.admin import AIOKafkaAdminClient

    topic = f"never.{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        with pytest.raises(lag.TopicNotFound):
            await lag.read_topic_lag(kafka_bootstrap, topic, "g", timeout_s=20)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert topic not in await admin.list_topics()
    finally:
        await admin.close()
