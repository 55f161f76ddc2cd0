"""Consumer lag read from Kafka itself: end offsets minus the group's committed offsets.

Nothing is asked of the ingest pods: a stalled or crash-looping consumer still
shows its lag here, which is exactly when scaling decisions matter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError


class KafkaUnavailable(RuntimeError):
    """Kafka could not be read now; a later attempt may succeed."""


class TopicNotFound(KafkaUnavailable):
    """The topic does not exist (yet): Strimzi or a script may still create it."""


@dataclass(frozen=True)
class PartitionOffsets:
    beginning: int
    """First offset still in the log (retention may have deleted older ones)."""
    end: int
    """Offset the next message will get (the high watermark)."""
    committed: int | None
    """The group's committed offset; None when it never committed here."""


@dataclass(frozen=True)
class TopicLag:
    topic: str
    partitions: int
    offsets: Mapping[int, PartitionOffsets]

    @property
    def per_partition(self) -> dict[int, int]:
        return {p: partition_lag(o) for p, o in self.offsets.items()}

    @property
    def total(self) -> int:
        return sum(self.per_partition.values())


def partition_lag(o: PartitionOffsets) -> int:
    """Messages the group still has to read in one partition.

    With no commit, everything retained is unread (the ingest consumer starts
    from the earliest offset). A commit older than the log start (retention
    deleted what the group never read) counts from the log start, since those
    messages can no longer be read anyway.
    """
    start = o.beginning if o.committed is None or o.committed < 0 else max(o.committed, o.beginning)
    return max(0, o.end - start)


async def read_topic_lag(
    bootstrap_servers: str,
    topic: str,
    group: str,
    *,
    timeout_s: float,
    client_options: Mapping[str, Any] | None = None,
) -> TopicLag:
    """Partitions and per-partition offsets of ``topic`` for ``group``.

    Retriable Kafka errors (a coordinator being elected, a leader moving) are
    retried within ``timeout_s``: they last milliseconds to seconds, and
    failing the whole reconcile for them would only delay scaling.
    """
    try:
        return await asyncio.wait_for(
            _read_retrying(bootstrap_servers, topic, group, dict(client_options or {})), timeout_s
        )
    except TimeoutError as e:
        raise KafkaUnavailable(
            f"Kafka at {bootstrap_servers} did not answer in {timeout_s}s"
        ) from e
    except (KafkaError, OSError) as e:
        raise KafkaUnavailable(f"Kafka at {bootstrap_servers}: {e!r}") from e


async def _read_retrying(
    bootstrap_servers: str, topic: str, group: str, options: dict[str, Any]
) -> TopicLag:
    while True:
        try:
            return await _read(bootstrap_servers, topic, group, options)
        except KafkaError as e:
            if not getattr(e, "retriable", False):
                raise
            await asyncio.sleep(0.5)


async def _read(
    bootstrap_servers: str, topic: str, group: str, options: dict[str, Any]
) -> TopicLag:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="ticklake-operator", **options
    )
    # A group-less consumer only to ask for offsets; it never subscribes.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        client_id="ticklake-operator",
        group_id=None,
        enable_auto_commit=False,
        **options,
    )
    await admin.start()
    try:
        await consumer.start()
        try:
            # All topics, not [topic]: a metadata request that names a topic
            # makes a broker with auto.create.topics.enable create it, and the
            # operator must never create the topic it watches.
            described = await admin.describe_topics()
            meta = next((t for t in described if t["topic"] == topic), None)
            # error_code 3 = UNKNOWN_TOPIC_OR_PARTITION
            if meta is None or meta["error_code"] == 3 or not meta["partitions"]:
                raise TopicNotFound(f"topic {topic!r} does not exist")
            if meta["error_code"]:
                raise KafkaUnavailable(f"metadata for {topic!r}: error code {meta['error_code']}")
            tps = [TopicPartition(topic, p["partition"]) for p in meta["partitions"]]
            begin = await consumer.beginning_offsets(tps)
            end = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        finally:
            await consumer.stop()
    finally:
        await admin.close()
    offsets = {}
    for tp in tps:
        c = committed.get(tp)
        offsets[tp.partition] = PartitionOffsets(
            beginning=begin[tp],
            end=end[tp],
            committed=c.offset if c is not None and c.offset >= 0 else None,
        )
    return TopicLag(topic=topic, partitions=len(tps), offsets=offsets)
