"""Partitions arriving and leaving: the consumer's rebalance listener.

On revoke a partition's flush is finished and committed before it moves (or
abandoned if it cannot finish in time: the next owner re-processes). On assign
the lake is recovered first (interrupted flushes removed, a complete flush whose
commit was lost adopted), then the partition's state at the resume offset is
loaded and the consumer seeks there, so the series continues exactly. Runs
under the consumer's lock, so it never interleaves with processing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from ticklake.core.retry import after_attempts, retry_with_backoff
from ticklake.ingest.features import FeatureParams
from ticklake.ingest.flushes import PartitionFlushes
from ticklake.ingest.metrics import IngestMetrics
from ticklake.ingest.partition import PartitionProcessor
from ticklake.ingest.settings import IngestSettings
from ticklake.ingest.sinks.lake import LakeSink, LakeWriteError, LakeWriter
from ticklake.ingest.stalls import PartitionStalls
from ticklake.ingest.state import PartitionState

log = logging.getLogger(__name__)


class PartitionOwnership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Which partitions this replica owns, with their processors; takes them over and
    hands them back."""

    def __init__(
        self,
        settings: IngestSettings,
        topic: str,
        params: FeatureParams,
        writer: LakeWriter,
        lake: LakeSink,
        flushes: PartitionFlushes,
        stalls: PartitionStalls,
        metrics: IngestMetrics,
        lock: asyncio.Lock,
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.params = params
        self.writer = writer
        self.lake = lake
        self.flushes = flushes
        self.stalls = stalls
        self.metrics = metrics
        self.lock = lock
        self._on_fatal = on_fatal
        self.kafka: AIOKafkaConsumer | None = None
        self.processors: dict[int, PartitionProcessor] = {}
        self.group_joined = False

    def attach(self, kafka: AIOKafkaConsumer) -> None:
        self.kafka = kafka

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        ours = [tp.partition for tp in revoked if tp.topic == self.topic]
        if not ours:
            return
        log.info("partitions revoked", extra={"partitions": sorted(ours)})
        deadline = time.monotonic() + max(1.0, self.settings.session_timeout_ms / 1000 / 2)
        async with self.lock:
            for partition in ours:
                if partition not in self.processors:
                    continue
                try:
                    await self.flushes.finish(partition, deadline)
                except Exception as e:
                    log.error(
                        "could not flush a revoked partition; its new owner re-processes",
                        extra={"partition": partition, "error": repr(e)},
                    )
                self._drop(partition)

    def _drop(self, partition: int) -> None:
        self.processors.pop(partition, None)
        self.lake.close_partition(partition)
        self.flushes.forget(partition)
        self.stalls.forget(partition)
        if self.flushes.dlq is not None:
            self.flushes.dlq.forget(partition)
        try:
            self.metrics.committed_lag.remove(str(partition))
        except KeyError:
            pass
        self.metrics.assigned_partitions.set(len(self.processors))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        assert self.kafka is not None
        ours = sorted(tp.partition for tp in assigned if tp.topic == self.topic)
        async with self.lock:
            for partition in ours:
                if partition in self.processors:
                    continue
                try:
                    await self._assign(partition)
                except Exception as e:
                    # aiokafka would log a failed listener and go on fetching, and the
                    # partition would be skipped for good: stop the service instead, so
                    # the pod restarts and the partition moves.
                    log.exception("could not take over a partition", extra={"partition": partition})
                    self._on_fatal(e)
                    return
            self.group_joined = True
            self.metrics.assigned_partitions.set(len(self.processors))
        log.info("partitions assigned", extra={"partitions": ours})

    async def _assign(self, partition: int) -> None:
        assert self.kafka is not None
        tp = TopicPartition(self.topic, partition)
        committed = await self.kafka.committed(tp)
        recovery = await retry_with_backoff(
            f"recovering partition {partition} from the lake",
            lambda: asyncio.to_thread(self.writer.recover, partition, committed),
            (LakeWriteError,),
            max_delay=self.settings.lake_retry_max_seconds,
            give_up=lambda: self.flushes.stopping,
        )
        state = None
        if recovery.state is not None:
            state, _ = PartitionState.from_json(recovery.state)
        if recovery.resume_offset is not None:
            start = recovery.resume_offset
        elif committed is not None:
            start = committed
        else:
            start = (await self.kafka.beginning_offsets([tp]))[tp]
        self.kafka.seek(tp, start)
        self.processors[partition] = PartitionProcessor(
            partition, self.params, self.settings.dedup_window, state
        )
        self.lake.open_partition(partition, start)
        if recovery.resume_offset is not None and recovery.resume_offset != committed:
            # bounded here (it runs inside the rebalance); if Kafka keeps refusing,
            # on_partitions_assigned stops the service, which is visible and restarts clean
            await retry_with_backoff(
                f"committing partition {partition}'s recovery point",
                lambda: self.flushes.commit(partition, start),
                (KafkaError,),
                max_delay=self.settings.kafka_retry_max_seconds,
                give_up=after_attempts(5),
            )
        else:
            self.flushes.committed[partition] = start
        log.info(
            "partition ready",
            extra={
                "partition": partition,
                "start_offset": start,
                "committed": committed,
                "state": "restored" if state is not None else "fresh",
                "removed_files": len(recovery.deleted),
            },
        )
