"""Dead letters: rejected records, published with their original bytes and a reason.

A dead letter keeps the record's key, value and headers as they were and adds
the ``tl-dlq-*`` headers of :mod:`ticklake.core.topics`: reason (a
:class:`~ticklake.core.errors.DecodeReason` value or ``key_mismatch``),
detail, and source topic, partition and offset. Sends are pipelined; the
consumer awaits :meth:`DeadLetterPublisher.flush` before it checkpoints a
flush, so a committed offset never covers a dead letter that was not stored.
After a crash the records since the last commit are processed again, so a
dead letter can appear twice (at least once, like Kafka Connect's DLQ).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
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


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The original headers followed by the dead-letter headers."""
    return [
        *letter.headers,
        (topics.HEADER_DLQ_REASON, letter.reason.encode()),
        (topics.HEADER_DLQ_DETAIL, letter.detail[:DETAIL_MAX_CHARS].encode()),
        (topics.HEADER_DLQ_SOURCE_TOPIC, letter.topic.encode()),
        (topics.HEADER_DLQ_SOURCE_PARTITION, str(letter.partition).encode()),
        (topics.HEADER_DLQ_SOURCE_OFFSET, str(letter.offset).encode()),
    ]


class DeadLetterPublisher:
    """Sends dead letters to ``topic`` through a shared producer."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._pending: list[tuple[DeadLetter, asyncio.Future[object]]] = []

    async def publish(self, letters: Iterable[DeadLetter]) -> None:
        """Queue ``letters`` (returns once they are in the producer's buffer)."""
        for letter in letters:
            future = await self._send(letter, letter.value)
            self._pending.append((letter, future))

    async def _send(
        self, letter: DeadLetter, value: bytes | None, original_size: int | None = None
    ) -> asyncio.Future[object]:
        headers = dead_letter_headers(letter)
        if original_size is not None:
            headers.append((HEADER_DLQ_TRUNCATED, str(original_size).encode()))
        if value is None and letter.key is None:
            value = b""  # Kafka clients refuse a record with neither key nor value
        future: asyncio.Future[object] = await self._producer.send(
            self._topic, value=value, key=letter.key, headers=headers
        )
        return future

    async def flush(self, retry_delay: float = 0.5) -> None:
        """Wait until every queued dead letter is acknowledged; resend failures."""
        while self._pending:
            pending, self._pending = self._pending, []
            for letter, future in pending:
                try:
                    await future
                except MessageSizeTooLargeError:
                    value = (letter.value or b"")[:TRUNCATED_MAX_BYTES]
                    log.warning(
                        "dead letter too large for its topic; storing its first bytes",
                        extra={"partition": letter.partition, "offset": letter.offset},
                    )
                    size = len(letter.value or b"")
                    self._pending.append((letter, await self._send(letter, value, size)))
                except KafkaError as e:
                    log.warning(
                        "dead letter not acknowledged; resending",
                        extra={"offset": letter.offset, "error": str(e)},
                    )
                    await asyncio.sleep(retry_delay)
                    self._pending.append((letter, await self._send(letter, letter.value)))

    @property
    def pending(self) -> int:
        return len(self._pending)
