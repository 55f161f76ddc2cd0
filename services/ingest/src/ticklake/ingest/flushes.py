"""A partition's flush and commit lifecycle (the consumer's write path).

One flush task per partition at a time, so a partition's flushes are written
and committed in order. A flush is three steps, each retried with backoff by
the task until it succeeds (any exception counts): publish the dead letters
below the flush's end, write the lake files, commit. While a step fails
nothing later is written or committed for that partition, which shows as
stalled (:mod:`~ticklake.ingest.stalls`) and is paused once too much waits.
A task that dies instead (a bug: its job's rows have left the buffer) is
reported to ``on_fatal``, because the next flush would land past a gap.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from ticklake.ingest.dead_letters import DeadLetterPublisher
from ticklake.ingest.faults import FaultSwitch
from ticklake.ingest.memory import MemoryTrimmer
from ticklake.ingest.metrics import IngestMetrics
from ticklake.ingest.settings import IngestSettings
from ticklake.ingest.sinks.lake import FlushJob, LakeSink, LakeWriteError
from ticklake.ingest.stalls import PartitionStalls, Stage

log = logging.getLogger(__name__)


class PartitionFlushes:
    """Flush tasks, commits and pauses of the partitions this replica owns."""

    def __init__(
        self,
        settings: IngestSettings,
        topic: str,
        lake: LakeSink,
        metrics: IngestMetrics,
        stalls: PartitionStalls,
        on_fatal: Callable[[BaseException], None],
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.lake = lake
        self.metrics = metrics
        self.stalls = stalls
        self.faults = FaultSwitch(settings.fault_injection_file)
        self._on_fatal = on_fatal
        self.kafka: AIOKafkaConsumer | None = None
        self.dlq: DeadLetterPublisher | None = None
        self.committed: dict[int, int] = {}
        """Partition -> the offset last committed (what the lag is measured from)."""
        self.lake_error: str | None = None
        """The last lake write error, until a write succeeds (shown in /readyz)."""
        self.stopping = False
        """Set at shutdown: a flush failing then is abandoned, not a reason to stop."""
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._inflight_jobs: dict[int, FlushJob] = {}
        self._paused: set[int] = set()
        self.trimmer = MemoryTrimmer()
        """Gives the flushes' freed buffers back to the system (ticklake.ingest.memory)."""

    def attach(self, kafka: AIOKafkaConsumer, dlq: DeadLetterPublisher) -> None:
        """The clients, once connected."""
        self.kafka, self.dlq = kafka, dlq

    def forget(self, partition: int) -> None:
        """The partition left this replica (its flush already finished or abandoned)."""
        self.committed.pop(partition, None)
        self._paused.discard(partition)

    def cancel_all(self) -> None:
        """Exiting on a failure: stop every flush; nothing more is committed."""
        for task in list(self._inflight.values()):
            task.cancel()

    async def roll_due(self) -> None:
        """Start a flush task for every partition due to roll; pause the ones too far behind."""
        assert self.kafka is not None and self.dlq is not None
        for partition in list(self._paused):
            if partition not in self._inflight:
                self.kafka.resume(TopicPartition(self.topic, partition))
                self._paused.discard(partition)
        for partition in self.lake.due():
            task = self._inflight.get(partition)
            if task is not None:
                if (
                    self.lake.pending_rows(partition) >= self.settings.lake_max_pending_rows
                    or self.dlq.pending(partition) >= self.settings.dead_letter_max_pending
                ):
                    if partition not in self._paused:
                        log.warning(
                            "pausing partition: its flushes are behind",
                            extra={
                                "partition": partition,
                                "pending_rows": self.lake.pending_rows(partition),
                                "pending_dead_letters": self.dlq.pending(partition),
                            },
                        )
                        self.kafka.pause(TopicPartition(self.topic, partition))
                        self._paused.add(partition)
                continue
            job = self.lake.take(partition)
            if job is None:
                continue
            task = asyncio.create_task(self.write_and_commit(job), name=f"flush-p{partition}")
            self._inflight[partition] = task
            self._inflight_jobs[partition] = job
            task.add_done_callback(functools.partial(self._flush_done, partition))

    def _flush_done(self, partition: int, task: asyncio.Task[None]) -> None:
        if self._inflight.get(partition) is task:
            del self._inflight[partition]
            self._inflight_jobs.pop(partition, None)
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        assert error is not None
        if self.stopping:
            # shutdown's deadline passed mid-retry: nothing was committed past the gap,
            # and the next owner resumes from the last durable flush
            log.error("flush abandoned at shutdown", extra={"partition": partition})
            return
        # Every failing step is retried inside the task, so getting here is a bug; the
        # job's rows are gone from the buffer, and writing the next job would leave a
        # gap under a later commit. Stop instead: the restart recovers from the lake.
        self.stalls.failed(partition, Stage.FLUSH_TASK, error)
        log.critical("flush task died", exc_info=error, extra={"partition": partition})
        self._on_fatal(error)

    async def write_and_commit(self, job: FlushJob, deadline: float | None = None) -> None:
        """Dead letters, then the lake files, then the commit: each retried until done.

        With a ``deadline`` (shutdown, revoke) a step that still fails raises instead.
        """
        partition = job.partition
        assert self.dlq is not None
        dlq = self.dlq
        self.faults.check("flush_task")
        await self._until_done(
            partition,
            Stage.DEAD_LETTERS,
            lambda: dlq.publish_below(partition, job.next_offset),
            deadline,
        )
        self.metrics.dead_letters_pending.set(dlq.pending())
        started = time.perf_counter()
        await self._until_done(partition, Stage.LAKE_WRITE, lambda: self._write(job), deadline)
        self.metrics.lake_flush_seconds.observe(time.perf_counter() - started)
        self.lake_error = None
        await self._until_done(
            partition, Stage.COMMIT, lambda: self.commit(partition, job.next_offset), deadline
        )
        try:
            await asyncio.to_thread(self.lake.writer.prune, partition, job.next_offset)
        except (OSError, LakeWriteError) as e:
            log.warning("could not prune old checkpoints", extra={"error": str(e)})
        self.trimmer.request()

    async def _write(self, job: FlushJob) -> None:
        self.faults.check("lake_write")
        await self.lake.write(job)

    async def _until_done(
        self,
        partition: int,
        stage: Stage,
        attempt: Callable[[], Awaitable[Any]],
        deadline: float | None,
    ) -> None:
        """Run ``attempt`` until it succeeds, with backoff; every failure is recorded.

        Any exception counts (not only the expected ones): a failure in the write path
        must hold the partition, never be logged and passed over.
        """
        delay = 0.2
        max_delay = self.settings.lake_retry_max_seconds
        while True:
            try:
                await attempt()
            except Exception as e:
                stall = self.stalls.failed(partition, stage, e)
                if stage is Stage.LAKE_WRITE:
                    self.metrics.lake_errors.inc()
                    self.lake_error = str(e) or type(e).__name__
                elif stage is Stage.COMMIT:
                    self.metrics.commit_errors.inc()
                log.error(
                    f"{stage.value} failed; partition holds, retrying",
                    exc_info=not isinstance(e, (LakeWriteError, KafkaError)),
                    extra={
                        "partition": partition,
                        "stage": stage.value,
                        "error": f"{type(e).__name__}: {e}",
                        "failures": stall.failures,
                        "retry_in_s": delay,
                    },
                )
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)
                continue
            self.stalls.progressed(partition)
            return

    async def commit(self, partition: int, next_offset: int) -> None:
        """Commit once; a commit for a partition that moved is dropped, not retried."""
        assert self.kafka is not None
        tp = TopicPartition(self.topic, partition)
        try:
            await self.kafka.commit({tp: next_offset})
        except (CommitFailedError, IllegalStateError) as e:
            # We no longer own the partition. The flush is durable and complete,
            # so the new owner's recovery resumes after it: nothing is lost or doubled.
            self.metrics.commit_errors.inc()
            log.warning(
                "commit rejected (partition moved)",
                extra={"partition": partition, "error": repr(e)},
            )
            return
        self.committed[partition] = next_offset
        self.metrics.commits.inc()

    async def finish(self, partition: int, deadline: float) -> None:
        """Wait for the partition's in-flight flush, flush the rest, commit."""
        assert self.dlq is not None
        task = self._inflight.get(partition)
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), max(0.1, deadline - time.monotonic()))
            except Exception as e:
                # The partition is leaving: its flush must not land later, after the next
                # owner recovered from the lake (its rows would then be there twice). Stop
                # the retries, make the writer refuse the job's remaining files, and wait
                # for a write already running in the writer thread to end.
                job = self._inflight_jobs.get(partition)
                if job is not None:
                    job.abandoned = True
                task.cancel()
                settled = await self.lake.settle(max(0.1, deadline - time.monotonic()))
                log.error(
                    "in-flight flush did not finish; abandoned (the next owner re-processes)",
                    extra={"partition": partition, "error": repr(e), "writer_idle": settled},
                )
                return
        job = self.lake.take(partition)
        if job is not None:
            await self.write_and_commit(job, deadline)
