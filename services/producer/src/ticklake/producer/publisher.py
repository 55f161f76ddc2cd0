"""Publish encoded ticks to Kafka with the idempotent aiokafka producer.

Ticks are grouped by partition and appended to one open record batch per
partition (aiokafka's ``create_batch``); a full batch, or every open batch when
the feed has caught up with the clock (:meth:`TickPublisher.submit_open`), is
handed over with ``send_batch``. That costs one future per batch instead of
one per tick, and it keeps the number of outstanding awaits bounded: aiokafka
holds at most one queued and one in-flight batch per partition, and
``send_batch`` waits when the queue slot is taken, which is the backpressure.

The partition of a symbol is computed with the same partitioner object the
producer uses for ``send()`` (Kafka's murmur2 on the key), so a tick lands
where any other Kafka client would put it. Delivery outcomes are counted:
every tick is either acknowledged (``acked``) or failed (``failed``), never
silently dropped. Idempotence (``enable_idempotence=True``, ``acks="all"``)
lets aiokafka retry a batch across a broker restart without duplicates.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from ticklake.core import topics
from ticklake.core.tick import SCHEMA_VERSION
from ticklake.producer.metrics import ProducerMetrics

log = logging.getLogger(__name__)

SCHEMA_HEADER: tuple[str, bytes] = (topics.HEADER_SCHEMA, f"tick/{SCHEMA_VERSION}".encode())
"""``tl-schema: tick/1`` on every record."""


@dataclass(frozen=True, slots=True)
class PublisherConfig:
    bootstrap_servers: str
    topic: str
    compression: str | None = "zstd"
    max_batch_bytes: int = 262_144
    request_timeout_ms: int = 30_000
    client_id: str = "ticklake-producer"
    client_options: Mapping[str, Any] = field(default_factory=dict)
    """Security settings for the client (``KafkaFields.kafka_client_options``)."""


@dataclass(slots=True)
class DeliveryStats:
    """Tick counts. ``submitted == acked + failed + in_flight`` at all times."""

    submitted: int = 0
    acked: int = 0
    failed: int = 0
    batches: int = 0

    @property
    def in_flight(self) -> int:
        return self.submitted - self.acked - self.failed


class TickPublisher:
    """Idempotent, batched publishing of (symbol, payload) pairs to one topic."""

    def __init__(self, config: PublisherConfig, metrics: ProducerMetrics | None = None) -> None:
        self._config = config
        self._metrics = metrics or ProducerMetrics()
        self._partitioner = DefaultPartitioner()
        self._producer: AIOKafkaProducer | None = None
        self._partitions: list[int] = []
        self._partition_of: dict[str, int] = {}
        self._key_of: dict[str, bytes] = {}
        self._open: dict[int, BatchBuilder] = {}
        self._pending: set[asyncio.Future[Any]] = set()
        self._headers = [SCHEMA_HEADER]
        self.stats = DeliveryStats()
        self._started = False
        self._closed = False
        self.last_error: str | None = None

    @property
    def metrics(self) -> ProducerMetrics:
        return self._metrics

    @property
    def started(self) -> bool:
        return self._started and not self._closed

    @property
    def partitions(self) -> list[int]:
        return list(self._partitions)

    async def start(self) -> None:
        """Connect and learn the topic's partitions. One attempt; see :func:`start_with_retry`."""
        if self._started:
            return
        cfg = self._config
        producer = AIOKafkaProducer(
            bootstrap_servers=cfg.bootstrap_servers,
            client_id=cfg.client_id,
            enable_idempotence=True,
            acks="all",
            compression_type=cfg.compression,
            max_batch_size=cfg.max_batch_bytes,
            # Our own pacing slices are the linger: closed batches go out at once.
            linger_ms=0,
            request_timeout_ms=cfg.request_timeout_ms,
            partitioner=self._partitioner,
            **dict(cfg.client_options),
        )
        try:
            await producer.start()
            partitions = await producer.partitions_for(cfg.topic)
        except BaseException:
            await producer.stop()
            raise
        self._producer = producer
        self._partitions = sorted(partitions)
        self._started = True
        log.info(
            "publishing to %s (%d partitions) at %s, compression=%s",
            cfg.topic,
            len(self._partitions),
            cfg.bootstrap_servers,
            cfg.compression,
        )

    def partition_for(self, symbol: str) -> int:
        """The partition of ``symbol``'s ticks (murmur2 of the key, as every Kafka client)."""
        partition = self._partition_of.get(symbol)
        if partition is None:
            key = topics.tick_key(symbol)
            self._key_of[symbol] = key
            partition = self._partitioner(key, self._partitions, self._partitions)
            self._partition_of[symbol] = partition
        return partition

    async def publish(self, symbols: Sequence[str], payloads: Sequence[bytes]) -> None:
        """Append ticks (in order) to their partitions' batches; full batches are sent.

        Per-symbol order is kept: a symbol always maps to one partition, its
        ticks are appended in the order given, and batches of one partition
        are sent in order (aiokafka keeps one in flight per partition).
        """
        producer = self._require_producer()
        timestamp_ms = time.time_ns() // 1_000_000
        headers = self._headers
        open_batches = self._open
        partition_of = self._partition_of
        key_of = self._key_of
        for symbol, payload in zip(symbols, payloads, strict=True):
            partition = partition_of.get(symbol)
            if partition is None:
                partition = self.partition_for(symbol)
            builder = open_batches.get(partition)
            if builder is None:
                builder = open_batches[partition] = producer.create_batch()
            key = key_of[symbol]
            if builder.append(timestamp=timestamp_ms, key=key, value=payload, headers=headers):
                continue
            # Full: send it and start the next one with this tick.
            del open_batches[partition]
            await self._submit(builder, partition)
            builder = open_batches[partition] = producer.create_batch()
            appended = builder.append(
                timestamp=timestamp_ms, key=key, value=payload, headers=headers
            )
            if appended is None:
                raise ValueError(
                    f"a {len(payload)}-byte tick does not fit in an empty batch "
                    f"(max_batch_bytes={self._config.max_batch_bytes})"
                )

    async def submit_open(self) -> None:
        """Send every open batch now (call when the feed is idle or caught up)."""
        if not self._open:
            return
        batches = list(self._open.items())
        self._open.clear()
        for partition, builder in batches:
            await self._submit(builder, partition)

    async def flush(self) -> None:
        """Send open batches and wait until every tick is acknowledged or failed."""
        if self._producer is None:
            return
        await self.submit_open()
        await self._producer.flush()
        if self._pending:
            await asyncio.wait(list(self._pending))

    async def stop(self) -> None:
        """Flush, then close the connection. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._producer is None:
            return
        try:
            await self.flush()
        finally:
            await self._producer.stop()
            self._producer = None

    async def __aenter__(self) -> TickPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _require_producer(self) -> AIOKafkaProducer:
        if self._producer is None or self._closed:
            raise RuntimeError("TickPublisher is not started (or already stopped)")
        return self._producer

    async def _submit(self, builder: BatchBuilder, partition: int) -> None:
        count = builder.record_count()
        if count == 0:
            return
        # Closed, so aiokafka sends it on the next drain instead of lingering.
        builder.close()
        producer = self._require_producer()
        self.stats.submitted += count
        self.stats.batches += 1
        self._metrics.ticks_in_flight.inc(count)
        self._metrics.batch_size.observe(count)
        started = time.perf_counter()
        try:
            future = await producer.send_batch(builder, self._config.topic, partition=partition)
        except KafkaError as e:
            # The batch never reached the client's queue (timed out waiting for room).
            self._record_failure(count, e)
            return
        except asyncio.CancelledError as e:
            # Stopping while blocked on a full queue: these ticks will never be sent.
            self._record_failure(count, e)
            raise
        self._pending.add(future)
        future.add_done_callback(functools.partial(self._on_delivery, count=count, started=started))

    def _on_delivery(self, future: asyncio.Future[Any], count: int, started: float) -> None:
        self._pending.discard(future)
        if future.cancelled():
            self._record_failure(count, asyncio.CancelledError())
            return
        error = future.exception()
        if error is not None:
            self._record_failure(count, error)
            return
        self.stats.acked += count
        self._metrics.ticks_in_flight.dec(count)
        self._metrics.ticks_sent.inc(count)
        self._metrics.send_latency.observe(time.perf_counter() - started)

    def _record_failure(self, count: int, error: BaseException) -> None:
        self.stats.failed += count
        self._metrics.ticks_in_flight.dec(count)
        self._metrics.send_errors.labels(error=type(error).__name__).inc(count)
        self.last_error = f"{type(error).__name__}: {error}"
        log.error("%d ticks were not delivered to %s: %r", count, self._config.topic, error)
