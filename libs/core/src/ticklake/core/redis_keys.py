"""Redis key names and the fields of the latest-tick hash.

Ingest writes these and the query API reads them; both import them from here.
"""

from __future__ import annotations

from typing import Final

SYMBOLS_KEY: Final = "ticklake:symbols"
"""Set of every symbol ingest has seen."""

TICKS_CHANNEL: Final = "ticklake:ticks"
"""Pub/sub channel: one message per ingest batch, a JSON array of latest-hash
objects (one per symbol that changed), for live streaming."""

TAIL_MAX_LEN: Final = 10_000
"""Default approximate length cap of a symbol's recent-ticks stream."""


def latest_key(symbol: str) -> str:
    """Hash with the newest tick of ``symbol`` (and its features)."""
    return f"sym:{symbol}:latest"


def tail_key(symbol: str) -> str:
    """Redis Stream with the recent ticks of ``symbol`` that may not be in the lake yet.

    Each entry holds one tick: ``kafka_offset`` and ``tick`` (the lake columns
    as a JSON object); encode and decode with :mod:`ticklake.core.latest_hash`.
    """
    return f"sym:{symbol}:tail"


# Fields of the latest hash that existing tools read; ingest writes these plus
# every feature column, under the same names as the lake.
FIELD_SYMBOL: Final = "symbol"
FIELD_PRICE: Final = "price"
FIELD_SIZE: Final = "size"
FIELD_TIMESTAMP: Final = "timestamp"
"""ISO-8601 UTC time of the tick (what older dashboards read)."""
FIELD_TS_NS: Final = "ts_ns"
FIELD_SEQ: Final = "seq"
FIELD_PARTITION: Final = "kafka_partition"
FIELD_OFFSET: Final = "kafka_offset"
FIELD_INGEST_NS: Final = "ingest_ns"
