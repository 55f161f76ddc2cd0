"""Dead letters: rejected records, published with their original bytes and a reason.

A dead letter keeps the record's key, value and headers as they were and adds
the ``tl-dlq-*`` headers of :mod:`ticklake.core.topics`: reason (a
:class:`~ticklake.core.errors.DecodeReason` value or an ingest reason),
detail, source topic, partition and offset, and ``tl-dlq-id``
(``topic/partition/offset``), the record's identity.

Letters are queued per source partition while the consume loop runs (no I/O
there, so a dead-letter topic that refuses writes never holds healthy
partitions back). The partition's flush task publishes the letters its flush
covers and waits for the broker's acknowledgement before it writes the lake
files (:meth:`DeadLetterPublisher.publish_below`): a durable flush, and so a
committed offset, never covers a dead letter that was not stored. If a step
fails, the letters not acknowledged stay queued and are sent again with the
same identity.

Delivery is at least once: after a crash, records since the partition's last
durable flush are processed again and their dead letters published again. A
reader of the topic deduplicates by ``tl-dlq-id`` (see ``docs/ingest.md``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from ticklake.core import topics
from ticklake.ingest.normalise import DeadLetter

log = logging.getLogger(__name__)

DETAIL_MAX_CHARS: Final = 1_000
TRUNCATED_MAX_BYTES: Final = 64 * 1024
HEADER_DLQ_TRUNCATED: Final = "tl-dlq-truncated"
"""Set (to the original size) when the value was too large for the dead-letter topic."""


def dead_letter_id(letter: DeadLetter) -> str:
    """``topic/partition/offset`` of the rejected record: equal for every re-publication."""
    return f"{letter.topic}/{letter.partition}/{letter.offset}"


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The original headers followed by the dead-letter headers."""
    return [
        *letter.headers,
        (topics.HEADER_DLQ_REASON, letter.reason.encode()),
        (topics.HEADER_DLQ_DETAIL, letter.detail[:DETAIL_MAX_CHARS].encode()),
        (topics.HEADER_DLQ_SOURCE_TOPIC, letter.topic.encode()),
        (topics.HEADER_DLQ_SOURCE_PARTITION, str(letter.partition).encode()),
        (topics.HEADER_DLQ_SOURCE_OFFSET, str(letter.offset).encode()),
        (topics.HEADER_DLQ_ID, dead_letter_id(letter).encode()),
    ]


class DeadLetterError(RuntimeError):
    """Some dead letters were not acknowledged; they stay queued and are sent again."""


@dataclass(slots=True)
class _Queued:
    letter: DeadLetter
    truncated_from: int | None = None
    """Original value size once the value was cut to fit the topic."""

    @property
    def value(self) -> bytes | None:
        value = self.letter.value
        if self.truncated_from is not None:
            return (value or b"")[:TRUNCATED_MAX_BYTES]
        return value


class DeadLetterPublisher:
    """Queues dead letters per source partition and sends them to ``topic``."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._queued: dict[int, deque[_Queued]] = {}

    def queue(self, letters: Iterable[DeadLetter]) -> None:
        """Keep ``letters`` until their partition's flush publishes them (no I/O)."""
        for letter in letters:
            self._queued.setdefault(letter.partition, deque()).append(_Queued(letter))

    def pending(self, partition: int | None = None) -> int:
        """Letters queued and not yet acknowledged (of one partition, or all)."""
        if partition is not None:
            return len(self._queued.get(partition, ()))
        return sum(len(q) for q in self._queued.values())

    def forget(self, partition: int) -> None:
        """Drop a revoked partition's letters: its next owner processes those records again."""
        self._queued.pop(partition, None)

    async def publish_below(self, partition: int, next_offset: int) -> int:
        """Publish the partition's letters for offsets below ``next_offset``; wait for acks.

        Returns how many were acknowledged. Raises :class:`DeadLetterError` if any
        was not (they stay queued, in offset order, for the next attempt).
        """
        queue = self._queued.get(partition)
        if not queue:
            return 0
        batch: list[_Queued] = []
        while queue and queue[0].letter.offset < next_offset:
            batch.append(queue.popleft())
        failed: list[tuple[_Queued, BaseException]] = []
        try:
            outcomes = await self._send_all(batch)
            retry = []
            for item, error in zip(batch, outcomes, strict=True):
                if isinstance(error, MessageSizeTooLargeError) and item.truncated_from is None:
                    log.warning(
                        "dead letter too large for its topic; storing its first bytes",
                        extra={"partition": partition, "offset": item.letter.offset},
                    )
                    item.truncated_from = len(item.letter.value or b"")
                    retry.append(item)
                elif error is not None:
                    failed.append((item, error))
            if retry:
                for item, error in zip(retry, await self._send_all(retry), strict=True):
                    if error is not None:
                        failed.append((item, error))
        except BaseException:
            queue.extendleft(reversed(batch))  # cancelled mid-way: nothing is known acked
            raise
        if failed:
            failed.sort(key=lambda f: f[0].letter.offset)
            queue.extendleft(reversed([item for item, _ in failed]))
            first = failed[0][1]
            raise DeadLetterError(
                f"{len(failed)} of {len(batch)} dead letters of partition {partition} not "
                f"acknowledged by {self._topic!r}: {type(first).__name__}: {first}"
            ) from first
        return len(batch)

    async def _send_all(self, items: list[_Queued]) -> list[BaseException | None]:
        futures: list[asyncio.Future[object] | BaseException] = []
        for item in items:
            try:
                futures.append(await self._send(item))
            except KafkaError as e:  # e.g. no metadata for the topic, buffer full
                futures.append(e)
        outcomes: list[BaseException | None] = []
        for future in futures:
            if isinstance(future, BaseException):
                outcomes.append(future)
                continue
            try:
                await future
                outcomes.append(None)
            except KafkaError as e:
                outcomes.append(e)
        return outcomes

    async def _send(self, item: _Queued) -> asyncio.Future[object]:
        letter = item.letter
        headers = dead_letter_headers(letter)
        if item.truncated_from is not None:
            headers.append((HEADER_DLQ_TRUNCATED, str(item.truncated_from).encode()))
        value = item.value
        if value is None and letter.key is None:
            value = b""  # Kafka clients refuse a record with neither key nor value
        future: asyncio.Future[object] = await self._producer.send(
            self._topic, value=value, key=letter.key, headers=headers
        )
        return future
