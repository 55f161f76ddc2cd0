"""The consume loop: fetch, process, hand to the sinks, flush the lake, commit.

Glue only: decisions live in :mod:`~ticklake.ingest.partition` (what a batch
becomes) and :mod:`~ticklake.ingest.sinks.lake` (when and how a flush is
written, how a partition is recovered). The rules this loop keeps:

* an offset is committed only after the lake flush covering it is durable,
  and after every dead letter below it is acknowledged;
* a partition's flushes are written one at a time and in order: a failing
  step (dead letters, lake write, commit) is retried with backoff by the same
  flush task, so nothing later is written or committed for that partition;
  the partition shows as stalled (:mod:`~ticklake.ingest.stalls`), pauses once
  too much waits, and a stall that outlasts ``stall_fatal_after_seconds``
  stops the process (non-zero exit: Kubernetes restarts it, recovery resumes
  from the last durable flush);
* a flush task that dies (a bug, not a failed step: those are retried) has
  lost its job, so the process stops rather than write the next one past a gap;
* on revoke the partition is flushed and committed before it moves; on assign
  the lake is recovered (interrupted flushes removed) and the state at the
  resume offset loaded, so the series continues exactly;
* processing, revoking and assigning never interleave (one lock).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from ticklake.core.lake_fs import Lake
from ticklake.core.retry import after_attempts, retry_with_backoff
from ticklake.ingest.dead_letters import DeadLetterPublisher
from ticklake.ingest.faults import FaultSwitch
from ticklake.ingest.features import FeatureParams
from ticklake.ingest.metrics import IngestMetrics
from ticklake.ingest.partition import PartitionProcessor, ProcessedBatch
from ticklake.ingest.settings import IngestSettings
from ticklake.ingest.sinks.lake import (
    FlushJob,
    LakeOptions,
    LakeSink,
    LakeWriteError,
    LakeWriter,
    WrittenFile,
)
from ticklake.ingest.sinks.redis_writer import RedisWriter
from ticklake.ingest.stalls import PartitionStalls, Stage
from ticklake.ingest.state import PartitionState

log = logging.getLogger(__name__)


def lake_options(settings: IngestSettings) -> LakeOptions:
    return LakeOptions(
        roll_rows=settings.lake_roll_rows,
        roll_bytes=settings.lake_roll_bytes,
        roll_seconds=settings.lake_roll_seconds,
        buffer_max_bytes=settings.lake_buffer_max_bytes,
        row_group_rows=settings.lake_row_group_rows,
        zstd_level=settings.lake_zstd_level,
    )


def feature_params(settings: IngestSettings) -> FeatureParams:
    return FeatureParams(
        ema_fast_span=settings.ema_fast_span,
        ema_slow_span=settings.ema_slow_span,
        vol_span=settings.vol_span,
    )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: IngestConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner.on_assigned(assigned)


class IngestConsumer:
    """Owns the Kafka consumer, the dead-letter producer, and the per-partition pipeline."""

    def __init__(
        self,
        settings: IngestSettings,
        lake: Lake,
        metrics: IngestMetrics,
        cache: RedisWriter | None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.cache = cache
        # ordering=sequence: the sequencer re-keyed the input into this topic, transactionally
        sequenced = settings.ordering == "sequence"
        self.topic = settings.sequenced_topic if sequenced else settings.ticks_topic
        self.isolation_level = "read_committed" if sequenced else "read_uncommitted"
        self.params = feature_params(settings)
        self.writer = LakeWriter(lake, self.topic, lake_options(settings))
        self.lake = LakeSink(self.writer, self._state_of, self._count_written)
        self.processors: dict[int, PartitionProcessor] = {}
        self.committed: dict[int, int] = {}
        self.lake_ok = True
        self.lake_error: str | None = None
        self.group_joined = False
        self.fatal: BaseException | None = None
        self.stalls = PartitionStalls(metrics)
        self.faults = FaultSwitch(settings.fault_injection_file)
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._inflight_jobs: dict[int, FlushJob] = {}
        self._paused: set[int] = set()
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._dlq: DeadLetterPublisher | None = None
        self._stopping = False
        self._closed = False
        self._last_lag_update = 0.0

    # --- lifecycle --------------------------------------------------------------------

    async def start(self, give_up: Callable[[], bool] = lambda: False) -> None:
        """Connect to Kafka (retrying with backoff) and join the group."""
        s = self.settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            client_id=f"{s.client_id}-dlq",
            acks="all",
            linger_ms=5,
        )
        await retry_with_backoff(
            "connecting the dead-letter producer to Kafka",
            self._producer.start,
            (KafkaError, OSError),
            max_delay=s.kafka_retry_max_seconds,
            give_up=give_up,
        )
        self._dlq = DeadLetterPublisher(self._producer, s.dead_letter_topic)

        async def start_consumer() -> None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=s.kafka_bootstrap_servers,
                group_id=s.consumer_group,
                client_id=s.client_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=s.fetch_max_wait_ms,
                fetch_min_bytes=s.fetch_min_bytes,
                max_partition_fetch_bytes=s.max_partition_fetch_bytes,
                fetch_max_bytes=s.fetch_max_bytes,
                session_timeout_ms=s.session_timeout_ms,
                heartbeat_interval_ms=s.heartbeat_interval_ms,
                max_poll_interval_ms=s.max_poll_interval_ms,
                group_instance_id=s.group_instance_id or None,
                isolation_level=self.isolation_level,
            )
            try:
                await consumer.start()
            except BaseException:
                await consumer.stop()
                raise
            self._consumer = consumer

        await retry_with_backoff(
            "connecting the consumer to Kafka",
            start_consumer,
            (KafkaError, OSError),
            max_delay=s.kafka_retry_max_seconds,
            give_up=give_up,
        )
        assert self._consumer is not None
        self._consumer.subscribe([self.topic], listener=_Rebalance(self))
        log.info(
            "consuming",
            extra={
                "topic": self.topic,
                "group": s.consumer_group,
                "group_instance_id": s.group_instance_id,
            },
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; then flush and commit (see :meth:`close`)."""
        assert self._consumer is not None
        s = self.settings
        backoff = 0.2
        while not stop.is_set():
            self._check_stalls()
            try:
                data = await self._consumer.getmany(
                    timeout_ms=s.poll_timeout_ms, max_records=s.max_batch_records
                )
            except (KafkaError, OSError) as e:
                log.warning(
                    "fetch failed; retrying", extra={"error": repr(e), "retry_in_s": backoff}
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, s.kafka_retry_max_seconds)
                continue
            backoff = 0.2
            async with self._lock:
                if data:
                    await self._process(data)
                await self._roll_due()
            now = time.monotonic()
            if now - self._last_lag_update >= s.metrics_lag_interval_seconds:
                self._last_lag_update = now
                self._update_lag()
        self._check_stalls()

    def _check_stalls(self) -> None:
        """Raise if the service cannot go on: a fatal error, or a stall past its bound."""
        if self.fatal is not None:
            raise RuntimeError(f"ingest cannot continue: {self.fatal!r}") from self.fatal
        overdue = self.stalls.overdue(self.settings.stall_fatal_after_seconds)
        if overdue is not None and not self._stopping:
            partition, stall = overdue
            log.critical(
                "partition stalled too long; exiting so that a restart recovers it",
                extra={
                    "partition": partition,
                    "stage": stall.stage.value,
                    "reason": stall.reason,
                    "failures": stall.failures,
                    "fatal_after_s": self.settings.stall_fatal_after_seconds,
                },
            )
            self.fatal = RuntimeError(
                f"partition {partition} stalled at {stall.stage.value} for over "
                f"{self.settings.stall_fatal_after_seconds} s ({stall.reason})"
            )
            raise RuntimeError(f"ingest cannot continue: {self.fatal}")

    async def close(self, grace_seconds: float | None = None) -> None:
        """Flush and commit every partition, leave the group. Idempotent.

        Bounded by ``grace_seconds``: what is not durable by then is simply not
        committed, and the next owner processes it again.
        """
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        grace = self.settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        deadline = time.monotonic() + grace
        if self.fatal is not None:
            # Exiting on a failure: a stalled flush would only hold the exit up to the
            # grace period. Everything not committed is processed again after restart.
            for task in list(self._inflight.values()):
                task.cancel()
        else:
            try:
                await asyncio.wait_for(self._flush_all(deadline), max(0.1, grace - 1.0))
            except Exception as e:
                log.error(
                    "shutdown flush incomplete; uncommitted records will be re-processed",
                    extra={"error": repr(e)},
                )
        if self._consumer is not None:
            try:
                await asyncio.wait_for(self._consumer.stop(), max(0.1, deadline - time.monotonic()))
            except (TimeoutError, KafkaError) as e:
                log.warning("consumer did not stop cleanly", extra={"error": repr(e)})
        if self._producer is not None:
            try:
                await asyncio.wait_for(self._producer.stop(), max(0.1, deadline - time.monotonic()))
            except (TimeoutError, KafkaError) as e:
                log.warning("producer did not stop cleanly", extra={"error": repr(e)})

    async def _flush_all(self, deadline: float) -> None:
        async with self._lock:
            for partition in list(self.processors):
                await self._finish_partition(partition, deadline)

    # --- processing ---------------------------------------------------------------------

    async def _process(self, data: dict[TopicPartition, list[Any]]) -> None:
        started = time.perf_counter()
        ingest_ns = time.time_ns()
        total = 0
        batches: list[ProcessedBatch] = []
        assert self._dlq is not None
        for tp, records in data.items():
            processor = self.processors.get(tp.partition)
            buffer = self.lake.buffers.get(tp.partition)
            if processor is None or buffer is None or not records:
                continue  # revoked while these were in flight
            if records[0].offset < buffer.next_offset:
                records = [r for r in records if r.offset >= buffer.next_offset]
                if not records:
                    continue
            batch = processor.process(records, ingest_ns)
            total += len(records)
            if self.cache is not None:
                self.cache.add(batch)
            batches.append(batch)
        if not batches:
            return
        # Let the cache writer send these ticks now: getmany() returns without
        # suspending while records are buffered, which would starve it.
        await asyncio.sleep(0)
        for batch in batches:
            self._account(batch)
            if batch.dead_letters:
                # published by the partition's flush task, before the flush covering them
                self._dlq.queue(batch.dead_letters)
            self.lake.add(batch)
        self.metrics.dead_letters_pending.set(self._dlq.pending())
        self.metrics.batch_size.observe(total)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)

    def _account(self, batch: ProcessedBatch) -> None:
        m = self.metrics
        m.consumed.inc(batch.consumed)
        m.processed.inc(batch.num_rows)
        if batch.duplicates:
            m.duplicates.labels("exact").inc(batch.duplicates)
        if batch.stale:
            m.duplicates.labels("stale").inc(batch.stale)
        if batch.gaps:
            m.gaps.inc(batch.gaps)
            log.debug("sequence gap", extra={"partition": batch.partition, "missing": batch.gaps})
        if batch.out_of_order:
            m.out_of_order.inc(batch.out_of_order)
        if batch.late:
            m.ordering.late_ticks.inc(batch.late)
            log.warning(
                "late ticks: older than their symbol's latest; stored, skipped by features",
                extra={"partition": batch.partition, "late": batch.late},
            )
        if batch.unkeyed:
            m.ordering.key_not_symbol.labels("ingest", "missing").inc(batch.unkeyed)
        if batch.key_mismatches:
            m.ordering.key_not_symbol.labels("ingest", "mismatch").inc(batch.key_mismatches)
        if batch.resets:
            m.sequence_resets.inc(batch.resets)
            log.info(
                "source sequence restarted",
                extra={"partition": batch.partition, "symbols": batch.resets},
            )
        for letter in batch.dead_letters:
            m.dead_letters.labels(letter.reason).inc()
            log.info(
                "dead letter",
                extra={
                    "partition": letter.partition,
                    "offset": letter.offset,
                    "reason": letter.reason,
                    "detail": letter.detail[:200],
                },
            )

    def _state_of(self, partition: int) -> bytes:
        return self.processors[partition].state.to_json(self.lake.buffers[partition].next_offset)

    def _count_written(self, written: list[WrittenFile]) -> None:
        for f in written:
            self.metrics.lake_rows.labels(f.dataset).inc(f.rows)
            self.metrics.lake_files.labels(f.dataset).inc()
            self.metrics.lake_bytes.labels(f.dataset).inc(f.bytes)

    # --- flushing and committing --------------------------------------------------------

    async def _roll_due(self) -> None:
        assert self._consumer is not None and self._dlq is not None
        for partition in list(self._paused):
            if partition not in self._inflight:
                self._consumer.resume(TopicPartition(self.topic, partition))
                self._paused.discard(partition)
        for partition in self.lake.due():
            task = self._inflight.get(partition)
            if task is not None:
                if (
                    self.lake.pending_rows(partition) >= self.settings.lake_max_pending_rows
                    or self._dlq.pending(partition) >= self.settings.dead_letter_max_pending
                ):
                    if partition not in self._paused:
                        log.warning(
                            "pausing partition: its flushes are behind",
                            extra={
                                "partition": partition,
                                "pending_rows": self.lake.pending_rows(partition),
                                "pending_dead_letters": self._dlq.pending(partition),
                            },
                        )
                        self._consumer.pause(TopicPartition(self.topic, partition))
                        self._paused.add(partition)
                continue
            job = self.lake.take(partition)
            if job is None:
                continue
            task = asyncio.create_task(self._write_and_commit(job), name=f"flush-p{partition}")
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
        if self._stopping:
            # shutdown's deadline passed mid-retry: nothing was committed past the gap,
            # and the next owner resumes from the last durable flush
            log.error("flush abandoned at shutdown", extra={"partition": partition})
            return
        # Every failing step is retried inside the task, so getting here is a bug; the
        # job's rows are gone from the buffer, and writing the next job would leave a
        # gap under a later commit. Stop instead: the restart recovers from the lake.
        self.stalls.failed(partition, Stage.FLUSH_TASK, error)
        log.critical("flush task died", exc_info=error, extra={"partition": partition})
        self.fatal = error

    async def _write_and_commit(self, job: FlushJob, deadline: float | None = None) -> None:
        """Dead letters, then the lake files, then the commit: each retried until done.

        With a ``deadline`` (shutdown, revoke) a step that still fails raises instead.
        """
        partition = job.partition
        assert self._dlq is not None
        dlq = self._dlq
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
        self.lake_ok = True
        self.lake_error = None
        await self._until_done(
            partition, Stage.COMMIT, lambda: self._commit(partition, job.next_offset), deadline
        )
        try:
            await asyncio.to_thread(self.writer.prune, partition, job.next_offset)
        except (OSError, LakeWriteError) as e:
            log.warning("could not prune old checkpoints", extra={"error": str(e)})

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
                    self.lake_ok = False
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

    async def _commit(self, partition: int, next_offset: int) -> None:
        """Commit once; a commit for a partition that moved is dropped, not retried."""
        assert self._consumer is not None
        tp = TopicPartition(self.topic, partition)
        try:
            await self._consumer.commit({tp: next_offset})
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

    async def _finish_partition(self, partition: int, deadline: float) -> None:
        """Wait for the partition's in-flight flush, flush the rest, commit."""
        assert self._dlq is not None
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
            await self._write_and_commit(job, deadline)

    # --- rebalancing ----------------------------------------------------------------------

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        ours = [tp.partition for tp in revoked if tp.topic == self.topic]
        if not ours:
            return
        log.info("partitions revoked", extra={"partitions": sorted(ours)})
        deadline = time.monotonic() + max(1.0, self.settings.session_timeout_ms / 1000 / 2)
        async with self._lock:
            for partition in ours:
                if partition not in self.processors:
                    continue
                try:
                    await self._finish_partition(partition, deadline)
                except Exception as e:
                    log.error(
                        "could not flush a revoked partition; its new owner re-processes",
                        extra={"partition": partition, "error": repr(e)},
                    )
                self._drop(partition)

    def _drop(self, partition: int) -> None:
        self.processors.pop(partition, None)
        self.lake.close_partition(partition)
        self.committed.pop(partition, None)
        self._paused.discard(partition)
        self.stalls.forget(partition)
        if self._dlq is not None:
            self._dlq.forget(partition)
        try:
            self.metrics.committed_lag.remove(str(partition))
        except KeyError:
            pass
        self.metrics.assigned_partitions.set(len(self.processors))

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        assert self._consumer is not None
        ours = sorted(tp.partition for tp in assigned if tp.topic == self.topic)
        async with self._lock:
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
                    self.fatal = e
                    return
            self.group_joined = True
            self.metrics.assigned_partitions.set(len(self.processors))
        log.info("partitions assigned", extra={"partitions": ours})

    async def _assign(self, partition: int) -> None:
        assert self._consumer is not None
        tp = TopicPartition(self.topic, partition)
        committed = await self._consumer.committed(tp)
        recovery = await retry_with_backoff(
            f"recovering partition {partition} from the lake",
            lambda: asyncio.to_thread(self.writer.recover, partition, committed),
            (LakeWriteError,),
            max_delay=self.settings.lake_retry_max_seconds,
            give_up=lambda: self._stopping,
        )
        state = None
        if recovery.state is not None:
            state, _ = PartitionState.from_json(recovery.state)
        if recovery.resume_offset is not None:
            start = recovery.resume_offset
        elif committed is not None:
            start = committed
        else:
            start = (await self._consumer.beginning_offsets([tp]))[tp]
        self._consumer.seek(tp, start)
        self.processors[partition] = PartitionProcessor(
            partition, self.params, self.settings.dedup_window, state
        )
        self.lake.open_partition(partition, start)
        if recovery.resume_offset is not None and recovery.resume_offset != committed:
            # bounded here (it runs inside the rebalance); if Kafka keeps refusing,
            # on_assigned stops the service, which is visible and restarts clean
            await retry_with_backoff(
                f"committing partition {partition}'s recovery point",
                lambda: self._commit(partition, start),
                (KafkaError,),
                max_delay=self.settings.kafka_retry_max_seconds,
                give_up=after_attempts(5),
            )
        else:
            self.committed[partition] = start
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

    # --- observability --------------------------------------------------------------------

    def _update_lag(self) -> None:
        if self._consumer is None:
            return
        for partition, committed in self.committed.items():
            highwater = self._consumer.highwater(TopicPartition(self.topic, partition))
            if highwater is not None:
                self.metrics.committed_lag.labels(str(partition)).set(max(0, highwater - committed))

    @property
    def assigned(self) -> list[int]:
        return sorted(self.processors)
