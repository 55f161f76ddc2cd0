"""A partition's flush and commit lifecycle on its own: real Kafka, a real lake, no loop.

``PartitionFlushes`` is driven directly (batches added to the lake buffer by
hand, ``roll_due`` called as the loop would), with a Kafka consumer that owns
the partition by manual assignment, so the commits it makes are Kafka's own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from ingest_kit import create_topic, records, settings_for, unique_topic, wait_until

from ticklake.core.lake_fs import open_lake
from ticklake.ingest.consumer import feature_params, lake_options
from ticklake.ingest.dead_letters import DeadLetterPublisher
from ticklake.ingest.flushes import PartitionFlushes
from ticklake.ingest.metrics import IngestMetrics
from ticklake.ingest.partition import PartitionProcessor
from ticklake.ingest.sinks.lake import LakeSink, LakeWriter
from ticklake.ingest.stalls import PartitionStalls


async def test_a_failing_lake_write_holds_the_commit_which_follows_once_it_clears(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 1)
    fault = tmp_path / "fault"
    settings = settings_for(
        kafka_bootstrap,
        topic,
        tmp_path / "lake",
        "redis://unused",
        "unused",
        lake_roll_rows=100,
        fault_injection_file=fault,
    )
    metrics = IngestMetrics()
    stalls = PartitionStalls(metrics)
    processor = PartitionProcessor(0, feature_params(settings), settings.dedup_window)
    writer = LakeWriter(open_lake(settings), topic, lake_options(settings))
    lake = LakeSink(writer, lambda p: processor.state.to_json(lake.buffers[p].next_offset))
    fatal: list[BaseException] = []
    flushes = PartitionFlushes(settings, topic, lake, metrics, stalls, fatal.append)
    kafka = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=settings.consumer_group)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await kafka.start()
    await producer.start()
    tp = TopicPartition(topic, 0)
    try:
        kafka.assign([tp])
        flushes.attach(kafka, DeadLetterPublisher(producer, settings.dead_letter_topic))
        lake.open_partition(0, 0)

        lake.add(processor.process(records(150), 1))
        await flushes.roll_due()
        await wait_until(lambda: flushes.committed.get(0) == 150, 30, "first commit")
        assert await kafka.committed(tp) == 150

        fault.write_text("lake_write")
        lake.add(processor.process(records(150, start=150), 2))
        await flushes.roll_due()
        await wait_until(lambda: stalls.report().get("0") is not None, 30, "the stall shows")
        await asyncio.sleep(1.0)  # retried meanwhile, and still nothing committed past it
        assert await kafka.committed(tp) == 150
        assert flushes.lake_error is not None and "injected fault" in flushes.lake_error
        lake.add(processor.process(records(100, start=300), 3))
        await flushes.roll_due()  # the next flush waits for the failing one
        assert await kafka.committed(tp) == 150

        fault.unlink()
        await wait_until(lambda: flushes.committed.get(0) == 300, 30, "the held flush")
        await flushes.roll_due()
        await wait_until(lambda: flushes.committed.get(0) == 400, 30, "the next flush")
        assert await kafka.committed(tp) == 400
        assert flushes.lake_error is None and stalls.report() == {}
        assert fatal == []
    finally:
        await kafka.stop()
        await producer.stop()
