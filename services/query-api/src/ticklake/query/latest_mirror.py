"""An in-process copy of the Redis latest hashes, kept current by the tick channel.

Every ingest batch publishes the new latest rows on
:data:`ticklake.core.hot_cache.TICKS_CHANNEL` right after writing the hashes,
so a process subscribed to the channel can answer ``/latest`` from memory
instead of paying a Redis round trip per request (redis-py's asyncio client
costs a few hundred microseconds per command, more than the rest of the
request). The copy is only trusted while the subscription is up:

* when the subscription (re)connects or drops, the copy is emptied and its
  *generation* moves on; reads then go to Redis (or the lake) as before;
* a row from the channel always replaces the copy: ingest publishes exactly
  the rows its guarded hash update accepted (newer by ``(ts_ns, seq, kafka_offset)``);
* a row read from Redis is kept only if the subscription was up, in the same
  generation, when the read started, and only if no fresh row arrived from the
  channel meanwhile: so no channel update can be lost or undone;
* an entry older than ``ttl_s`` without a channel update is read from Redis
  again, which bounds staleness if something changes Redis behind ingest's back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

MAX_SYMBOLS: Final = 200_000
"""Entries kept at most (a symbol costs about 2 KB)."""


@dataclass(slots=True)
class _Entry:
    row: dict[str, Any]
    stored_at: float
    body: bytes | None = None


def latest_item(symbol: str, row: dict[str, Any], source: str) -> dict[str, Any]:
    """One symbol's /latest answer (the one place it is shaped; ``/latest?symbols=``
    lists these)."""
    return {"symbol": symbol, "source": source, "tick": row}


def latest_body(symbol: str, row: dict[str, Any], source: str = "redis") -> bytes:
    """The /latest/{symbol} JSON body: what the FastAPI route and the raw-ASGI fast path
    (``api/fast_latest.py``, from this mirror) both send."""
    return orjson.dumps(latest_item(symbol, row, source), option=orjson.OPT_NON_STR_KEYS)


class LatestMirror:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.generation = 0
        self.live = False
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def go_live(self) -> None:
        """The channel subscription is up: start collecting from an empty copy."""
        self.generation += 1
        self._entries.clear()
        self.live = True

    def go_dark(self) -> None:
        """The subscription is down: forget everything until it is back."""
        self.generation += 1
        self._entries.clear()
        self.live = False

    def apply(self, rows: Iterable[dict[str, Any]]) -> None:
        """Rows from one channel message."""
        if not self.live:
            return
        now = time.monotonic()
        for row in rows:
            symbol = row.get("symbol")
            if isinstance(symbol, str) and (
                symbol in self._entries or len(self._entries) < MAX_SYMBOLS
            ):
                self._entries[symbol] = _Entry(row, now)

    def offer(self, symbol: str, row: dict[str, Any], generation: int) -> None:
        """A row read from Redis by a read that started in ``generation``.

        Dropped when the channel delivered a row for the symbol since (the
        entry is fresh again): the channel's row is at least as new.
        """
        if not self.live or generation != self.generation or self.get(symbol) is not None:
            return
        if symbol in self._entries or len(self._entries) < MAX_SYMBOLS:
            self._entries[symbol] = _Entry(row, time.monotonic())

    def get(self, symbol: str) -> dict[str, Any] | None:
        entry = self._entries.get(symbol)
        if entry is None or time.monotonic() - entry.stored_at > self.ttl_s:
            return None
        return entry.row

    def body(self, symbol: str) -> bytes | None:
        """The ready /latest JSON for ``symbol``, encoded once per update."""
        entry = self._entries.get(symbol)
        if entry is None or time.monotonic() - entry.stored_at > self.ttl_s:
            return None
        if entry.body is None:
            entry.body = latest_body(symbol, entry.row)
        return entry.body
