"""The query operations: Redis first, the lake behind it, merged where needed.

This is the only module that knows both sources. Routes call it and shape
HTTP; it never sees a request. Lake reads run in worker threads, at most
``lake_query_concurrency`` at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, ParamSpec, TypeVar

import duckdb
import pyarrow as pa
from deltalake.exceptions import DeltaError

from ticklake.query.cursor import RowKey, encode_cursor
from ticklake.query.lake_reader import LakeReader
from ticklake.query.latest_mirror import LatestMirror
from ticklake.query.metrics import QueryMetrics
from ticklake.query.params import iso_from_ns
from ticklake.query.redis_reader import RedisReader, RedisUnavailable
from ticklake.query.settings import QuerySettings
from ticklake.query.tick_rows import identity, last_at_or_before, merge_page, newest, row_key

P = ParamSpec("P")
T = TypeVar("T")

Source = Literal["redis", "lake"]

_UNKNOWN_TTL_S: Final = 2.0
"""Seconds a symbol found nowhere is remembered as unknown: repeated requests for a
made-up symbol cost one lake scan per 2 s; a symbol's first tick may be a 404 that long."""
_UNKNOWN_MAX: Final = 10_000
_LAKE_LATEST_TTL_S: Final = 1.0
"""Seconds a newest-lake-row answer is reused: a storm of /latest requests during
a Redis outage costs one lake query per symbol per second, not one per request
(the lake only changes when ingest flushes, seconds apart, so little is lost)."""


class UnknownSymbol(LookupError):
    """Neither Redis nor the lake has ever seen the symbol (HTTP 404)."""

    def __init__(self, symbol: str) -> None:
        super().__init__(
            f"unknown symbol {symbol!r}: neither Redis nor the lake has any tick of it"
        )
        self.symbol = symbol


class LakeUnavailable(RuntimeError):
    """The lake could not be read (HTTP 503)."""


@dataclass(frozen=True, slots=True)
class TicksPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    from_tail: int


def with_timestamp(row: dict[str, Any]) -> dict[str, Any]:
    """Add the ISO ``timestamp`` the latest hash carries, for rows from the lake."""
    if row.get("timestamp") is None and row.get("ts_ns") is not None:
        row["timestamp"] = iso_from_ns(row["ts_ns"])
    return row


class Lookups:
    def __init__(
        self,
        settings: QuerySettings,
        cache: RedisReader,
        lake: LakeReader,
        metrics: QueryMetrics,
        mirror: LatestMirror | None = None,
    ) -> None:
        self.settings = settings
        self.mirror = mirror if mirror is not None else LatestMirror(ttl_s=0.0)
        self.cache = cache
        self.lake = lake
        self.metrics = metrics
        self._lake_slots = asyncio.Semaphore(settings.lake_query_concurrency)
        self._known: set[str] = set()
        self._lake_latest: dict[str, tuple[float, dict[str, Any]]] = {}
        self._unknown_until: dict[str, float] = {}

    async def in_lake(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a blocking lake read in a worker thread, within the concurrency cap.

        An I/O error is retried once: ingest's recovery may delete the files of an
        interrupted flush between our listing and our read, and the retry lists
        again. A file that cannot be read twice is a 503 naming the error.
        """
        async with self._lake_slots:
            for attempt in (1, 2):
                try:
                    return await asyncio.to_thread(fn, *args, **kwargs)
                except (duckdb.IOException, FileNotFoundError):
                    if attempt == 2:
                        raise LakeUnavailable("a lake file vanished while being read") from None
                except (duckdb.Error, OSError, pa.ArrowException, DeltaError) as e:
                    raise LakeUnavailable(f"reading the lake failed: {e}") from e
        raise AssertionError("unreachable")

    # -- symbols -----------------------------------------------------------

    async def symbols(self) -> tuple[list[str], Source]:
        try:
            found = await self.cache.symbols()
            if found:
                return found, "redis"
        except RedisUnavailable:
            pass
        days = max(1, self.settings.asof_lookback_days)
        return await self.in_lake(self.lake.symbols, days), "lake"

    async def require_known(self, symbol: str) -> None:
        """Raise :class:`UnknownSymbol` unless Redis or the lake knows ``symbol``."""
        if symbol in self._known:
            return
        now = time.monotonic()
        if self._unknown_until.get(symbol, 0.0) > now:
            raise UnknownSymbol(symbol)
        try:
            known = await self.cache.is_known(symbol)
        except RedisUnavailable:
            known = False
        if not known:
            known = await self.in_lake(self.lake.has_symbol, symbol)
        if known:
            self._known.add(symbol)
            self._unknown_until.pop(symbol, None)
            return
        if len(self._unknown_until) >= _UNKNOWN_MAX:
            self._unknown_until.clear()
        self._unknown_until[symbol] = now + _UNKNOWN_TTL_S
        raise UnknownSymbol(symbol)

    # -- latest --------------------------------------------------------------

    async def latest(self, symbol: str) -> tuple[dict[str, Any], Source]:
        """The newest tick of ``symbol``: the Redis hash, else the newest lake row."""
        mirrored = self.mirror.get(symbol)
        if mirrored is not None:
            return mirrored, "redis"
        generation = self.mirror.generation
        try:
            row = await self.cache.latest(symbol)
            if row is not None:
                self.mirror.offer(symbol, row, generation)
                return row, "redis"
            reason = "missing"
        except RedisUnavailable:
            reason = "redis_down"
        self.metrics.fallbacks.labels(reason).inc()
        found = (await self._newest_in_lake([symbol])).get(symbol)
        if found is None:
            raise UnknownSymbol(symbol)
        self._known.add(symbol)
        return found, "lake"

    async def _newest_in_lake(self, symbols: list[str]) -> dict[str, dict[str, Any]]:
        """Newest lake rows (with ``timestamp``), reusing answers younger than 1 s."""
        now = time.monotonic()
        found: dict[str, dict[str, Any]] = {}
        for symbol in symbols:
            hit = self._lake_latest.get(symbol)
            if hit is not None and hit[0] > now:
                found[symbol] = hit[1]
        ask = [s for s in symbols if s not in found]
        if ask:
            fresh = await self.in_lake(self.lake.newest_ticks, ask)
            if len(self._lake_latest) > _UNKNOWN_MAX:
                self._lake_latest.clear()
            for symbol, row in fresh.items():
                found[symbol] = with_timestamp(row)
                self._lake_latest[symbol] = (now + _LAKE_LATEST_TTL_S, found[symbol])
        return found

    async def latest_many(
        self, symbols: list[str]
    ) -> tuple[list[tuple[str, dict[str, Any], Source]], list[str]]:
        """Latest ticks of several symbols, and the symbols found nowhere."""
        cached: list[dict[str, Any] | None] = [self.mirror.get(s) for s in symbols]
        ask = [s for s, row in zip(symbols, cached, strict=True) if row is None]
        reason = "missing"
        if ask:
            generation = self.mirror.generation
            try:
                fetched = dict(zip(ask, await self.cache.latest_many(ask), strict=True))
            except RedisUnavailable:
                fetched, reason = {}, "redis_down"
            for symbol, row in fetched.items():
                if row is not None:
                    self.mirror.offer(symbol, row, generation)
            cached = [
                row if row is not None else fetched.get(s)
                for s, row in zip(symbols, cached, strict=True)
            ]
        absent = [s for s, row in zip(symbols, cached, strict=True) if row is None]
        if absent:
            self.metrics.fallbacks.labels(reason).inc(len(absent))
        from_lake = await self._newest_in_lake(absent) if absent else {}
        found: list[tuple[str, dict[str, Any], Source]] = []
        missing: list[str] = []
        for symbol, row in zip(symbols, cached, strict=True):
            if row is not None:
                found.append((symbol, row, "redis"))
            elif symbol in from_lake:
                found.append((symbol, from_lake[symbol], "lake"))
            else:
                missing.append(symbol)
        return found, missing

    # -- history -------------------------------------------------------------

    async def _tail(self, symbol: str, start_ns: int | None = None) -> list[dict[str, Any]]:
        """The symbol's Redis tail; with ``start_ns``, only entries that can be at or
        after it: one added to the stream more than ``tail_clock_skew_s`` before
        ``start_ns`` holds a tick from before it (ticks are not from the future)."""
        since_ms = None
        if start_ns is not None:
            since_ms = start_ns // 1_000_000 - int(self.settings.tail_clock_skew_s * 1000)
        try:
            return await self.cache.tail(symbol, self.settings.tail_read_max, since_ms=since_ms)
        except RedisUnavailable:
            return []

    async def ticks(
        self, symbol: str, start_ns: int, end_ns: int, after: RowKey | None, limit: int
    ) -> TicksPage:
        """One page of history: lake rows merged with the Redis tail, de-duplicated."""
        await self.require_known(symbol)
        lake_rows, tail_rows = await asyncio.gather(
            self.in_lake(self.lake.ticks_page, symbol, start_ns, end_ns, after, limit + 1),
            self._tail(symbol, start_ns),
        )
        rows, more = merge_page(
            lake_rows, tail_rows, start_ns=start_ns, end_ns=end_ns, after=after, limit=limit
        )
        lake_ids = {identity(r) for r in lake_rows}
        from_tail = sum(1 for r in rows if identity(r) not in lake_ids)
        if from_tail:
            self.metrics.tail_merged.inc(from_tail)
        next_cursor = encode_cursor(row_key(rows[-1])) if more and rows else None
        return TicksPage(rows, next_cursor, from_tail)

    async def asof(
        self, symbol: str, ts_ns: int, version: int | None = None
    ) -> tuple[dict[str, Any] | None, Source | None]:
        """The last tick of ``symbol`` at or before ``ts_ns`` (lake, tail and latest hash);
        with a ticks table ``version``, from the lake as it was then only (time travel)."""
        if version is not None:
            row = await self.in_lake(
                self.lake.tick_at_or_before,
                symbol,
                ts_ns,
                self.settings.asof_lookback_days,
                version,
            )
            return (with_timestamp(row), "lake") if row is not None else (None, None)
        await self.require_known(symbol)
        lake_row, tail_rows = await asyncio.gather(
            self.in_lake(
                self.lake.tick_at_or_before, symbol, ts_ns, self.settings.asof_lookback_days
            ),
            self._tail(symbol),
        )
        try:
            latest = await self.cache.latest(symbol)
        except RedisUnavailable:
            latest = None
        redis_row = last_at_or_before([*tail_rows, *([latest] if latest else [])], ts_ns)
        best = newest([lake_row, redis_row])
        if best is None:
            return None, None
        source: Source = "lake" if best is lake_row else "redis"
        return with_timestamp(best), source

    async def bars(
        self, symbol: str, width_ns: int, start_ns: int, end_ns: int
    ) -> tuple[list[dict[str, Any]], str]:
        """OHLCV bars with VWAP; the second value names the dataset they came from."""
        await self.require_known(symbol)
        rows, dataset = await self.in_lake(self.lake.bars, symbol, width_ns, start_ns, end_ns)
        for bar in rows:
            volume = bar["volume"]
            bar["vwap"] = bar["notional"] / volume if volume else None
            bar["start"] = iso_from_ns(bar["start_ns"])
        return rows, dataset
