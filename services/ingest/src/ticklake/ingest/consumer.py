"""The consume loop: fetch, process, hand to the sinks; the Kafka clients' lifecycle.

Glue only. Three seams, each its own module:

* this loop (:class:`IngestConsumer`): connect, fetch, turn records into batches
  (:mod:`~ticklake.ingest.partition`), hand them to the Redis writer and the lake
  buffers, count what happened, stop when asked or when it cannot go on;
* a partition's flush and commit lifecycle (:mod:`~ticklake.ingest.flushes`):
  an offset is committed only after the lake flush covering it is durable and
  every dead letter below it acknowledged; flushes of a partition are written one
  at a time and in order; a failing step holds the partition (retried, visible),
  and a stall that outlasts ``stall_fatal_after_seconds`` stops the process
  (non-zero exit: Kubernetes restarts it, recovery resumes from the last durable
  flush);
* partitions arriving and leaving (:mod:`~ticklake.ingest.rebalance`): flushed and
  committed before they move; recovered from the lake and their state loaded on
  arrival, so the series continues exactly.

Processing, revoking and assigning never interleave (one lock).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from ticklake.core.lake_fs import Lake
from ticklake.core.retry import retry_with_backoff
from ticklake.ingest.dead_letters import DeadLetterPublisher
from ticklake.ingest.features import FeatureParams
from ticklake.ingest.flushes import PartitionFlushes
from ticklake.ingest.metrics import IngestMetrics
from ticklake.ingest.partition import PartitionProcessor, ProcessedBatch
from ticklake.ingest.rebalance import PartitionOwnership
from ticklake.ingest.settings import IngestSettings
from ticklake.ingest.sinks.lake import LakeOptions, LakeSink, LakeWriter, WrittenFile
from ticklake.ingest.sinks.redis_writer import RedisWriter
from ticklake.ingest.stalls import PartitionStalls

log = logging.getLogger(__name__)

CATCHING_UP_RECORDS: Final = 1_000
"""A partition bringing this many records to one step is catching up on a backlog: the
step yields before processing it, so what the quieter partitions brought is sent first."""


def lake_options(settings: IngestSettings) -> LakeOptions:
    return LakeOptions(
        roll_rows=settings.lake_roll_rows,
        roll_bytes=settings.lake_roll_bytes,
        roll_seconds=settings.lake_roll_seconds,
        roll_idle_seconds=settings.lake_roll_idle_seconds,
        roll_idle_min_rows=settings.lake_roll_idle_min_rows,
        buffer_max_bytes=settings.lake_buffer_max_bytes,
        row_group_rows=settings.lake_row_group_rows,
        zstd_level=settings.lake_zstd_level,
        table=settings.lake_table == "delta",
    )


def feature_params(settings: IngestSettings) -> FeatureParams:
    return FeatureParams(
        ema_fast_span=settings.ema_fast_span,
        ema_slow_span=settings.ema_slow_span,
        vol_span=settings.vol_span,
    )


def count_batch(m: IngestMetrics, batch: ProcessedBatch) -> None:
    """Count (and log) what processing one batch found: rows, duplicates, gaps, late
    ticks, keys, source restarts, dead letters."""
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


class IngestConsumer:
    """Owns the Kafka consumer, the dead-letter producer, and the per-partition pipeline.

    Longer than most classes here (~280 lines) because it owns the two Kafka clients'
    whole lifecycle (connect with retries, bounded close) beside the loop; what a
    partition's flush or a rebalance does lives in ``flushes.py`` and ``rebalance.py``.
    """

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
        self.writer = LakeWriter(
            lake,
            self.topic,
            lake_options(settings),
            lambda dataset, seconds: metrics.lake_table_commit_seconds.labels(dataset).observe(
                seconds
            ),
        )
        self.lake = LakeSink(self.writer, self._state_of, self._count_written)
        self.fatal: BaseException | None = None
        """Why the service cannot go on (a dead flush task, a failed takeover, a dead
        sequencer): :meth:`run` raises it."""
        self.stalls = PartitionStalls(metrics)
        self._lock = asyncio.Lock()
        self.flushes = PartitionFlushes(
            settings, self.topic, self.lake, metrics, self.stalls, self._set_fatal
        )
        self.ownership = PartitionOwnership(
            settings,
            self.topic,
            self.params,
            self.writer,
            self.lake,
            self.flushes,
            self.stalls,
            metrics,
            self._lock,
            self._set_fatal,
        )
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._dlq: DeadLetterPublisher | None = None
        self._closed = False
        self._last_lag_update = 0.0
        self._trim: asyncio.Task[None] | None = None

    def _set_fatal(self, error: BaseException) -> None:
        self.fatal = error

    @property
    def processors(self) -> dict[int, PartitionProcessor]:
        return self.ownership.processors

    @property
    def committed(self) -> dict[int, int]:
        return self.flushes.committed

    @property
    def group_joined(self) -> bool:
        return self.ownership.group_joined

    @property
    def lake_error(self) -> str | None:
        return self.flushes.lake_error

    @property
    def assigned(self) -> list[int]:
        return sorted(self.processors)

    # --- lifecycle --------------------------------------------------------------------

    async def start(self, give_up: Callable[[], bool] = lambda: False) -> None:
        """Connect to Kafka (retrying with backoff) and join the group."""
        s = self.settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            client_id=f"{s.client_id}-dlq",
            acks="all",
            linger_ms=5,
            **s.kafka_client_options(),
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
                **s.kafka_client_options(),
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
        self.flushes.attach(self._consumer, self._dlq)
        self.ownership.attach(self._consumer)
        self._consumer.subscribe([self.topic], listener=self.ownership)
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
                data = await self._fetch_fairly()
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
                await self.flushes.roll_due()
            self._trim_memory()
            now = time.monotonic()
            if now - self._last_lag_update >= s.metrics_lag_interval_seconds:
                self._last_lag_update = now
                self._update_lag()
        self._check_stalls()

    async def _fetch_fairly(self) -> dict[TopicPartition, list[Any]]:
        """Up to ``max_batch_records`` records, at most an equal share from each partition.

        One ``getmany`` hands out the client's buffered records partition by partition
        in the order they arrived, so a partition with a backlog (a fetch holds up to
        ``max_partition_fetch_bytes`` of it) filled whole steps while a quiet partition's
        new ticks waited behind it for seconds (``bench/bench_backlog_latency.py``). Here
        each assigned partition gets a share of the step: the first call waits for
        anything, the others only take what is already buffered.
        """
        assert self._consumer is not None
        s = self.settings
        assigned = self._consumer.assignment()
        share = max(1, s.max_batch_records // max(1, len(assigned)))
        data: dict[TopicPartition, list[Any]] = await self._consumer.getmany(
            timeout_ms=s.poll_timeout_ms, max_records=share
        )
        if not data or len(assigned) <= 1:
            return data
        for tp in assigned:
            if tp not in data:
                more = await self._consumer.getmany(tp, timeout_ms=0, max_records=share)
                data.update(more)
        return data

    def _trim_memory(self) -> None:
        """Start a trim in a thread when one is due and none is running."""
        if self._trim is not None and not self._trim.done():
            return
        if self.flushes.trimmer.due():
            self._trim = asyncio.create_task(
                asyncio.to_thread(self.flushes.trimmer.trim), name="malloc-trim"
            )

    def _check_stalls(self) -> None:
        """Raise if the service cannot go on: a fatal error, or a stall past its bound."""
        if self.fatal is not None:
            raise RuntimeError(f"ingest cannot continue: {self.fatal!r}") from self.fatal
        overdue = self.stalls.overdue(self.settings.stall_fatal_after_seconds)
        if overdue is not None and not self.flushes.stopping:
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
        self.flushes.stopping = True
        grace = self.settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        deadline = time.monotonic() + grace
        if self.fatal is not None:
            # Exiting on a failure: a stalled flush would only hold the exit up to the
            # grace period. Everything not committed is processed again after restart.
            self.flushes.cancel_all()
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
                await self.flushes.finish(partition, deadline)

    # --- processing ---------------------------------------------------------------------

    async def _process(self, data: dict[TopicPartition, list[Any]]) -> None:
        started = time.perf_counter()
        ingest_ns = time.time_ns()
        total = 0
        batches: list[ProcessedBatch] = []
        assert self._dlq is not None
        # Quietest partitions first, and a yield before each partition catching up on
        # thousands: the cache writer sends the keeping-up partitions' few new ticks, and
        # the client reads the next fetch, before the loop is held by a backlog (that is
        # what made an idle symbol wait behind a backlog on another partition). A step
        # of small batches only (a steady feed) still yields once, at its end, so the
        # writer sends all of it in one flush.
        unsent = False
        for tp, records in sorted(data.items(), key=lambda item: len(item[1])):
            if unsent and len(records) >= CATCHING_UP_RECORDS:
                await asyncio.sleep(0)
                unsent = False
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
            unsent = True
        if not batches:
            return
        # getmany() returns without suspending while records are buffered, so without
        # this the cache writer and the fetcher would starve.
        await asyncio.sleep(0)
        for batch in batches:
            count_batch(self.metrics, batch)
            if batch.dead_letters:
                # published by the partition's flush task, before the flush covering them
                self._dlq.queue(batch.dead_letters)
            self.lake.add(batch)
        self.metrics.dead_letters_pending.set(self._dlq.pending())
        self.metrics.batch_size.observe(total)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)

    def _state_of(self, partition: int) -> bytes:
        return self.processors[partition].state.to_json(self.lake.buffers[partition].next_offset)

    def _count_written(self, written: list[WrittenFile]) -> None:
        for f in written:
            self.metrics.lake_rows.labels(f.dataset).inc(f.rows)
            self.metrics.lake_files.labels(f.dataset).inc()
            self.metrics.lake_bytes.labels(f.dataset).inc(f.bytes)

    # --- observability --------------------------------------------------------------------

    def _update_lag(self) -> None:
        if self._consumer is None:
            return
        for partition, committed in self.committed.items():
            highwater = self._consumer.highwater(TopicPartition(self.topic, partition))
            if highwater is not None:
                self.metrics.committed_lag.labels(str(partition)).set(max(0, highwater - committed))
