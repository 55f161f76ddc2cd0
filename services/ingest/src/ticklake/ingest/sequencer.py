"""The sequencer: ticks_topic (keyed by anything) -> sequenced_topic (keyed by symbol).

Runs in every ingest replica when ``ordering=sequence``. Glue only: the merge
is :class:`~ticklake.ingest.merge.EventTimeMerge`, the choice of the one
active replica is :class:`SingleOwnerAssignor`. Why it is exact (see also
``docs/architecture.md``):

* all input partitions go to ONE member of the sequencer's consumer group, so
  one merge sees every partition; the other replicas are hot standbys that
  take over at the next rebalance;
* what the merge releases is produced keyed by symbol in a Kafka transaction
  that also commits the input offsets (the first unreleased offset of each
  partition): the internal topic gets each record exactly once, and a new
  owner resumes exactly after the last committed transaction;
* the transactional id is the same on every replica, so a new owner's producer
  fences an old one that is still alive (a zombie cannot commit);
* ingest reads the internal topic with ``isolation_level=read_committed``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from ticklake.core import topics
from ticklake.core.errors import TickDecodeError
from ticklake.core.tick import decode_tick
from ticklake.core.topic_admin import TopicSetupError, TopicSpec, ensure_topics
from ticklake.ingest.merge import NO_TIME, EventTimeMerge, Released
from ticklake.ingest.ordering_metrics import OrderingMetrics
from ticklake.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

Outgoing = tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int | None, int]
"""(key, value, headers, timestamp_ms, target partition) of a record to forward."""


def target_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partition of ``key`` (murmur2, as the Java client and aiokafka):
    the sequenced topic is partitioned exactly as a producer keying by symbol would."""
    partition: int = (murmur2(key) & 0x7FFFFFFF) % partitions
    return partition


def sequencer_instance_id(group_instance_id: str | None) -> str | None:
    """The sequencer's static member id: the replica's own, suffixed (unique per group)."""
    return f"{group_instance_id}.sequencer" if group_instance_id else None


# --- who runs the merge -----------------------------------------------------------------


def choose_owner(members: Mapping[str, bool]) -> str:
    """The member that gets every partition: member id -> "owns them now".

    A current owner keeps them (a replica joining does not move the merge);
    otherwise the smallest member id, so every leader decides the same.
    """
    if not members:
        raise ValueError("no members to choose from")
    owners = sorted(m for m, owns in members.items() if owns)
    return owners[0] if owners else min(members)


class SingleOwnerAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    """Assigns every subscribed partition to one member (:func:`choose_owner`).

    An instance per consumer: it remembers whether its member owns the
    partitions and says so in its join metadata.
    """

    name = "ticklake-single-owner"
    version = 0

    def __init__(self) -> None:
        self.owning = False

    def assign(
        self, cluster: ClusterMetadata, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        owner = choose_owner({m: meta.user_data == b"1" for m, meta in members.items()})
        wanted: dict[str, list[int]] = {}
        for topic in sorted({t for meta in members.values() for t in meta.subscription}):
            partitions = cluster.partitions_for_topic(topic)
            if partitions:
                wanted[topic] = sorted(partitions)
        return {
            member: ConsumerProtocolMemberAssignment(
                self.version, sorted(wanted.items()) if member == owner else [], b""
            )
            for member in members
        }

    def metadata(self, topics_: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(
            self.version, sorted(topics_), b"1" if self.owning else b"0"
        )

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        self.owning = any(parts for _, parts in assignment.assignment)


# --- the stage ----------------------------------------------------------------------------


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: Sequencer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.on_revoked()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner.on_assigned(sorted(tp.partition for tp in assigned))


class SequencerError(RuntimeError):
    """The sequencer cannot go on (fenced by a newer owner, or a transaction it cannot
    abort): the service stops so the pod restarts and rejoins as a standby."""


class Sequencer:
    """Consumes every input partition (when chosen), merges, re-keys, forwards.

    Why one class of ~380 lines: its consumer, its transactional producer and the merge
    buffer change state together (take-over, forward, commit offsets in the transaction,
    abort on revocation or fencing), so a split would pass all three across objects for
    every step. What is pure already lives elsewhere: the merge (``merge.py``), the owner
    choice (:func:`choose_owner`), the partitioner (:func:`target_partition`).
    """

    def __init__(self, settings: IngestSettings, metrics: OrderingMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.source = settings.ticks_topic
        self.target = settings.sequenced_topic
        self.transactional_id = f"{settings.sequencer_group}.{self.source}"
        self.assignor = SingleOwnerAssignor()
        self.merge: EventTimeMerge[Outgoing] = EventTimeMerge(
            settings.sequencer_allowed_lateness_ms * 1_000_000
        )
        self.active = False
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._txn_open = False
        self._txn_started = 0.0
        self._txn_sent: list[asyncio.Future[Any]] = []
        self._txn_records = 0
        self._paused: set[int] = set()
        self._closed = False
        self._target_partitions = 0
        self._missing_keys = metrics.key_not_symbol.labels("sequencer", "missing")
        self._mismatched_keys = metrics.key_not_symbol.labels("sequencer", "mismatch")
        self._partition_of: dict[bytes, int] = {}
        """Target partition per key: murmur2 in Python costs more than the rest of a record."""
        self.fatal: BaseException | None = None
        """Set when taking the partitions over failed: :meth:`run` raises it (aiokafka only
        logs a failing rebalance listener, and the merge would then stall unseen)."""

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Create the internal topic if needed, join the sequencer's group."""
        s = self.settings
        await self._ensure_target_topic()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            **s.kafka_client_options(),
            group_id=s.sequencer_group,
            client_id=f"{s.client_id}-sequencer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            partition_assignment_strategy=(self.assignor,),
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            max_partition_fetch_bytes=s.max_partition_fetch_bytes,
            fetch_max_bytes=s.fetch_max_bytes,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
            # static like the replica's consumer: a restarted owner gets the input back at
            # once instead of a standby waiting out the dead member's session
            group_instance_id=sequencer_instance_id(s.group_instance_id),
        )
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        consumer.subscribe([self.source], listener=_Rebalance(self))
        log.info(
            "sequencer joined",
            extra={"source": self.source, "target": self.target, "group": s.sequencer_group},
        )

    async def _ensure_target_topic(self) -> None:
        """Create the internal topic like the input (partitions, replication) if missing."""
        s = self.settings
        admin = AIOKafkaAdminClient(
            bootstrap_servers=s.kafka_bootstrap_servers, **s.kafka_client_options()
        )
        await admin.start()
        try:
            described = (await admin.describe_topics([self.source]))[0]
            source_partitions = described.get("partitions") or []
            if described.get("error_code") or not source_partitions:
                raise SequencerError(
                    f"input topic {self.source!r} not found: the sequencer sizes "
                    f"{self.target!r} after it"
                )
        finally:
            await admin.close()
        partitions = s.sequenced_partitions or len(source_partitions)
        replication = len(source_partitions[0].get("replicas") or [1])
        try:
            await ensure_topics(
                s.kafka_bootstrap_servers,
                [TopicSpec(self.target, partitions, replication)],
                client_options=s.kafka_client_options(),
            )
        except TopicSetupError as e:
            raise SequencerError(f"the sequenced topic: {e}") from e

    async def run(self, stop: asyncio.Event) -> None:
        assert self._consumer is not None
        s = self.settings
        poll_ms = max(1, min(s.poll_timeout_ms, s.sequencer_allowed_lateness_ms or 1))
        backoff = 0.2
        while not stop.is_set():
            if self.fatal is not None:
                raise SequencerError("the sequencer could not take the input over") from self.fatal
            try:
                data = await self._consumer.getmany(
                    timeout_ms=poll_ms, max_records=s.max_batch_records
                )
            except (KafkaError, OSError) as e:
                log.warning("sequencer fetch failed; retrying", extra={"error": repr(e)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, s.kafka_retry_max_seconds)
                continue
            backoff = 0.2
            async with self._lock:
                if not self.active:
                    continue
                try:
                    await self._step(data)
                except KafkaError as e:
                    await self._recover(e)

    async def close(self) -> None:
        """Commit what was released, leave the group. Idempotent."""
        if self._closed:
            return
        self._closed = True
        async with self._lock:
            if self.active:
                try:
                    await self._commit()
                except KafkaError as e:
                    log.warning("last sequencer commit failed", extra={"error": repr(e)})
                await self._stop_producer()
        if self._consumer is not None:
            try:
                await self._consumer.stop()
            except KafkaError as e:
                log.warning("sequencer consumer did not stop cleanly", extra={"error": repr(e)})

    # --- one step -------------------------------------------------------------------

    async def _step(self, data: dict[TopicPartition, list[Any]]) -> None:
        assert self._consumer is not None
        now = time.monotonic_ns()
        for tp, records in data.items():
            if tp.partition not in self.merge.partitions:
                continue
            expected = self.merge.next_offset(tp.partition)
            for record in records:
                if record.offset >= expected:  # not fetched before a seek back
                    self._add(tp.partition, record, now)
        caught_up = self._caught_up()
        released = self.merge.release(now, caught_up)
        self.metrics.sequencer_idle_partitions.set(len(self.merge.idle(now, caught_up)))
        if released:
            await self._forward(released)
        self._apply_backpressure()
        self.metrics.sequencer_buffered.set(self.merge.buffered)
        if self.merge.released_ts != NO_TIME:
            self.metrics.sequencer_delay.set((time.time_ns() - self.merge.released_ts) / 1e9)
        if self._txn_open and (
            time.monotonic() - self._txn_started >= self.settings.sequencer_transaction_ms / 1000
        ):
            await self._commit()

    def _add(self, partition: int, record: Any, now: int) -> None:
        key = record.key
        value = record.value
        headers = list(record.headers or ())
        headers.append(
            (topics.HEADER_SOURCE, f"{self.source}/{partition}/{record.offset}".encode())
        )
        try:
            tick = decode_tick(value or b"")
        except TickDecodeError:
            # Not a tick: forwarded as it is, and ingest dead-letters it. It takes its
            # partition's current time, so it neither waits nor holds anything back.
            watermark = self.merge.watermark_of(partition)
            ts = watermark if watermark != NO_TIME else record.timestamp * 1_000_000
            target = self._target_of(key) if key else partition % self._target_partitions
            outgoing: Outgoing = (key, value, headers, record.timestamp, target)
            self.merge.add(partition, record.offset, ts, outgoing, now)
            return
        symbol_key = topics.tick_key(tick.symbol)
        if not key:
            self._missing_keys.inc()
        elif key != symbol_key and key.decode("utf-8", "replace").strip().upper() != tick.symbol:
            self._mismatched_keys.inc()
        outgoing = (symbol_key, value, headers, record.timestamp, self._target_of(symbol_key))
        self.merge.add(partition, record.offset, tick.ts_ns, outgoing, now)

    def _target_of(self, key: bytes) -> int:
        target = self._partition_of.get(key)
        if target is None:
            if len(self._partition_of) > 1_000_000:  # bounded, whatever the keys
                self._partition_of.clear()
            target = target_partition(key, self._target_partitions)
            self._partition_of[key] = target
        return target

    def _caught_up(self) -> set[int]:
        assert self._consumer is not None
        caught = set()
        for partition in self.merge.partitions:
            tp = TopicPartition(self.source, partition)
            end = self._consumer.last_stable_offset(tp)
            if end is None:
                end = self._consumer.highwater(tp)
            if end is not None and self.merge.next_offset(partition) >= end:
                caught.add(partition)
        return caught

    async def _forward(self, released: list[Released[Outgoing]]) -> None:
        """Append the released records to one batch per target partition, in order."""
        producer = self._producer
        assert producer is not None
        if not self._txn_open:
            await producer.begin_transaction()
            self._txn_open = True
            self._txn_started = time.monotonic()
        batches: dict[int, Any] = {}
        late = 0
        for r in released:
            key, value, headers, timestamp_ms, target = r.item
            batch = batches.get(target)
            if batch is None:
                batch = batches[target] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=timestamp_ms, headers=headers) is None:
                # full: send it, start the next one (order within a partition is kept)
                self._txn_sent.append(
                    await producer.send_batch(batch, self.target, partition=target)
                )
                batch = batches[target] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=timestamp_ms, headers=headers)
            late += r.late
        for target, batch in batches.items():
            self._txn_sent.append(await producer.send_batch(batch, self.target, partition=target))
        self._txn_records += len(released)
        if late:
            self.metrics.sequencer_late.inc(late)
            log.warning(
                "sequencer released records older than ones already released",
                extra={
                    "late": late,
                    "allowed_lateness_ms": self.settings.sequencer_allowed_lateness_ms,
                },
            )

    async def _commit(self) -> None:
        """Commit the open transaction: the records sent and the input offsets after them."""
        if not self._txn_open:
            return
        assert self._producer is not None
        if self._txn_sent:
            await asyncio.gather(*self._txn_sent)
        offsets = {
            TopicPartition(self.source, p): o for p, o in self.merge.resume_offsets().items()
        }
        await self._producer.send_offsets_to_transaction(offsets, self.settings.sequencer_group)
        await self._producer.commit_transaction()
        self._txn_open = False
        self.metrics.sequencer_transactions.labels("committed").inc()
        self.metrics.sequencer_records.inc(self._txn_records)
        self._txn_sent = []
        self._txn_records = 0

    def _apply_backpressure(self) -> None:
        assert self._consumer is not None
        limit = self.settings.sequencer_max_buffered_records
        for partition in self.merge.partitions:
            tp = TopicPartition(self.source, partition)
            full = self.merge.buffered_in(partition) >= limit
            if full and partition not in self._paused:
                self._consumer.pause(tp)
                self._paused.add(partition)
            elif not full and partition in self._paused:
                self._consumer.resume(tp)
                self._paused.discard(partition)

    # --- ownership ------------------------------------------------------------------

    async def on_assigned(self, partitions: list[int]) -> None:
        async with self._lock:
            if not partitions:
                log.info("sequencer standing by")
                return
            try:
                await self._take_over(partitions)
            except Exception as e:
                log.exception("sequencer could not take the input over")
                self.fatal = e

    async def _take_over(self, partitions: list[int]) -> None:
        # Fence any older owner first: its open transaction is aborted, so the
        # committed offsets read next are final.
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id=f"{self.settings.client_id}-sequencer",
            transactional_id=self.transactional_id,
            acks="all",
            linger_ms=5,
            **self.settings.kafka_client_options(),
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer
        self._target_partitions = len(await producer.partitions_for(self.target))
        self._partition_of.clear()
        await self._open(partitions)
        self.active = True
        self.metrics.sequencer_active.set(1)
        log.info("sequencer active", extra={"partitions": partitions})

    async def _open(self, partitions: list[int]) -> None:
        """Start the merge at the committed offsets (the first unreleased records)."""
        assert self._consumer is not None
        self.merge.close_all()
        self._paused.clear()
        now = time.monotonic_ns()
        tps = [TopicPartition(self.source, p) for p in partitions]
        beginnings = await self._consumer.beginning_offsets(tps)
        for tp in tps:
            committed = await self._consumer.committed(tp)
            start = committed if committed is not None else beginnings[tp]
            self._consumer.seek(tp, start)
            self._consumer.resume(tp)
            self.merge.open_partition(tp.partition, start, now)

    async def on_revoked(self) -> None:
        async with self._lock:
            if not self.active:
                return
            try:
                await self._commit()
            except KafkaError as e:
                log.warning(
                    "sequencer commit on revoke failed; the next owner redoes it",
                    extra={"error": repr(e)},
                )
                await self._abort()
            await self._stop_producer()
            self.merge.close_all()
            self.active = False
            self.metrics.sequencer_active.set(0)
            self.metrics.sequencer_buffered.set(0)

    async def _recover(self, error: KafkaError) -> None:
        """A transaction failed: abort it and resume from the committed offsets."""
        log.error(
            "sequencer transaction failed; aborting, resuming from the last commit",
            extra={"error": repr(error)},
        )
        await self._abort()
        await self._open(self.merge.partitions)

    async def _abort(self) -> None:
        if not self._txn_open or self._producer is None:
            return
        self._txn_sent = []
        self._txn_records = 0
        try:
            await self._producer.abort_transaction()
        except KafkaError as e:
            raise SequencerError(
                f"could not abort a sequencer transaction ({e!r}); another replica owns the "
                "input now (this one is fenced)"
            ) from e
        finally:
            self._txn_open = False
        self.metrics.sequencer_transactions.labels("aborted").inc()

    async def _stop_producer(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            self._txn_open = False
            try:
                await producer.stop()
            except KafkaError as e:
                log.warning("sequencer producer did not stop cleanly", extra={"error": repr(e)})
