"""Kafka topic names and message headers: the wire contract around a tick.

A tick is published with key = its symbol (UTF-8), so every tick of a symbol
lands in one partition (Kafka's default murmur2 partitioner) and stays ordered.
"""

from __future__ import annotations

from typing import Final

TICKS_TOPIC: Final = "market.ticks"
"""Default topic for ticks."""

DEAD_LETTER_TOPIC: Final = "market.ticks.dlq"
"""Default dead-letter topic: the original bytes of every rejected payload."""

SEQUENCED_TOPIC: Final = "market.ticks.by-symbol"
"""Internal topic of ingest's ``ordering=sequence`` mode: the input re-keyed by symbol,
in event-time order per symbol, written transactionally by the sequencer."""

CONSUMER_GROUP: Final = "ticklake-ingest"
"""Default consumer group of the ingest service (the operator reads its lag)."""

HEADER_SCHEMA: Final = "tl-schema"
"""Set by the producer: ``tick/<version>`` (bytes)."""

HEADER_DLQ_REASON: Final = "tl-dlq-reason"
"""On a dead letter: :class:`ticklake.core.errors.DecodeReason` value."""

HEADER_DLQ_DETAIL: Final = "tl-dlq-detail"
"""On a dead letter: human-readable detail of the rejection."""

HEADER_SOURCE: Final = "tl-source"
"""Set by the sequencer on what it forwards: ``<topic>/<partition>/<offset>`` of the
original record (bytes), so a row or a dead letter can be traced to the input."""

HEADER_DLQ_SOURCE_TOPIC: Final = "tl-dlq-source-topic"
HEADER_DLQ_SOURCE_PARTITION: Final = "tl-dlq-source-partition"
HEADER_DLQ_SOURCE_OFFSET: Final = "tl-dlq-source-offset"
HEADER_DLQ_ID: Final = "tl-dlq-id"
"""On a dead letter: ``topic/partition/offset`` of the rejected record. A record
dead-lettered again after a crash carries the same id (deduplicate by it)."""


def tick_key(symbol: str) -> bytes:
    """The Kafka key of a tick: its symbol as UTF-8."""
    return symbol.encode()
