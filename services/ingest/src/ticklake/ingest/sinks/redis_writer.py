"""The Redis hot cache: latest tick per symbol, a tail of recent ticks, live channel.

One Lua call per flush (one round trip; a long catch-up is cut into calls of
about ``CHUNK_TICKS`` ticks) does, for every symbol in it:

* update ``sym:{SYMBOL}:latest`` only if the new tick is newer by
  (ts_ns, seq, kafka_offset): a replay after a crash (the same ticks again)
  or a late straggler never moves it back, while a restarted source whose
  sequence numbers start again at 1 (with later event times) moves it on;
* add the symbol to the symbols set;
* append the symbol's new ticks to its ``sym:{SYMBOL}:tail`` stream, skipping
  offsets at or below the stream's last entry (so a replay adds nothing), and
  trim it to about ``tail_max_len`` entries.

and at the end one ``PUBLISH`` of the rows that actually changed. The format (keys,
fields, encodings, the script and its ordering guard) is :mod:`ticklake.core.hot_cache`'s,
which the query API reads with; this module batches, retries and catches up.

Writes happen in a background task woken by :meth:`RedisWriter.add`, so the
consume loop never waits on Redis. While Redis is down, the newest tick per
symbol and the last ``pending_tail_max`` ticks per symbol are kept and written
when it returns; the lake holds everything regardless.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.retry import Retry

from ticklake.core import hot_cache
from ticklake.ingest.metrics import IngestMetrics
from ticklake.ingest.partition import ProcessedBatch

log = logging.getLogger(__name__)

CHUNK_TICKS: Final = 20_000
"""Most tail entries sent in one script call."""


@dataclass(slots=True)
class _Latest:
    order: tuple[int, int, int]
    """:func:`ticklake.core.hot_cache.latest_order` of the row (what the script's guard uses)."""
    row: dict[str, Any]
    tick: bytes
    """The row as the tail's JSON ``tick`` field (reused for the channel message)."""


def _newer(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    """Is ``a`` newer than ``b``, both :func:`~ticklake.core.hot_cache.latest_order` keys?"""
    return a > b


class PendingWrites:
    """What waits to be written, merged across batches (no I/O, so tests drive it alone).

    Per symbol: its newest row (by :func:`~ticklake.core.hot_cache.latest_order`) and its
    last ``tail_max`` ticks in offset order; plus the event times to observe as latency.
    Bounded: at most ``symbols_max`` symbols and 5 M event times are kept while Redis is
    down (the lake holds everything regardless).
    """

    def __init__(self, tail_max: int, symbols_max: int) -> None:
        self.tail_max = tail_max
        self.symbols_max = symbols_max
        self.latest: dict[str, _Latest] = {}
        self.tail: dict[str, deque[tuple[int, bytes]]] = {}
        self.event_ts: list[np.ndarray] = []
        self._event_ts_count = 0

    def __len__(self) -> int:
        """Symbols with something to write."""
        return len(self.latest)

    def add(self, batch: ProcessedBatch) -> None:
        """Merge a batch's ticks in.

        The tail JSON of all rows is encoded in one msgspec call (rows as a
        Struct type, not dicts); only each symbol's newest row becomes a dict.
        """
        n = batch.num_rows
        if n == 0:
            return
        cols = batch.columns
        names = list(cols)
        lists = [cols[name].tolist() for name in names]
        seq = cols["seq"]
        seq_i = names.index("seq")
        if (seq < 0).any():
            lists[seq_i] = [None if s < 0 else s for s in lists[seq_i]]
        # The tail and the channel carry the lake's columns, flags included (a
        # reader of /ticks then sees `late` whichever store answered); the
        # latest hash is built from `row` below, without them.
        flags = batch.flags
        ticks = hot_cache.encode_tail_ticks(
            [*names, *flags], [*lists, *(flag.tolist() for flag in flags.values())]
        )
        offsets = lists[names.index("kafka_offset")]
        symbols = lists[names.index("symbol")]
        # newest row per symbol by (ts_ns, seq, offset): sort by code then those; take each last
        order = np.lexsort((cols["kafka_offset"], seq, cols["ts_ns"], batch.codes))
        sorted_codes = batch.codes[order]
        ends = np.flatnonzero(np.diff(sorted_codes, append=sorted_codes[-1] + 1))
        starts = np.concatenate(([0], ends[:-1] + 1))
        latest, tail, tail_max = self.latest, self.tail, self.tail_max
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            newest = int(order[end])
            symbol = symbols[newest]
            row = dict(zip(names, (column[newest] for column in lists), strict=True))
            rank = hot_cache.latest_order(row["ts_ns"], row["seq"], offsets[newest])
            current = latest.get(symbol)
            if current is None:
                if len(latest) >= self.symbols_max:
                    continue
                latest[symbol] = _Latest(rank, row, ticks[newest])
                queue = tail[symbol] = deque(maxlen=tail_max)
            else:
                if _newer(rank, current.order):
                    current.order, current.row, current.tick = rank, row, ticks[newest]
                queue = tail[symbol]
            # tail entries in offset order (the stream's order)
            members = np.sort(order[start : end + 1]).tolist()
            queue.extend([(offsets[i], ticks[i]) for i in members[-tail_max:]])
        if self._event_ts_count < 5_000_000:
            self.event_ts.append(cols["ts_ns"])
            self._event_ts_count += n

    def take(self) -> PendingWrites:
        """Everything pending, as its own object; this one is left empty."""
        taken = PendingWrites(self.tail_max, self.symbols_max)
        taken.latest, taken.tail, taken.event_ts = self.latest, self.tail, self.event_ts
        self.latest, self.tail, self.event_ts, self._event_ts_count = {}, {}, [], 0
        return taken

    def put_back(self, older: PendingWrites) -> None:
        """A failed write's updates, back under anything added meanwhile."""
        for symbol, old in older.latest.items():
            new = self.latest.get(symbol)
            if new is None:
                self.latest[symbol] = old
                self.tail[symbol] = older.tail.get(symbol, deque(maxlen=self.tail_max))
            else:
                if _newer(old.order, new.order):
                    new.order, new.row, new.tick = old.order, old.row, old.tick
                merged = older.tail.get(symbol, deque(maxlen=self.tail_max))
                merged.extend(self.tail.get(symbol, ()))
                self.tail[symbol] = merged
        self.event_ts = older.event_ts + self.event_ts
        self._event_ts_count = sum(len(t) for t in self.event_ts)


class RedisWriter:
    """Best-effort Redis writer with catch-up after outages."""

    def __init__(
        self,
        client: aioredis.Redis,
        metrics: IngestMetrics,
        tail_max_len: int = hot_cache.TAIL_MAX_LEN,
        pending_tail_max: int = 1_000,
        pending_symbols_max: int = 100_000,
        retry_max_seconds: float = 5.0,
        health_interval_seconds: float = 5.0,
        channel: str = hot_cache.TICKS_CHANNEL,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.tail_max_len = tail_max_len
        self.retry_max_seconds = retry_max_seconds
        self.health_interval_seconds = health_interval_seconds
        self.channel = channel
        """Where each write announces its changed rows (tests use another to write
        without announcing)."""
        self.healthy = False
        self.last_error: str | None = None
        self.writer_died: str | None = None
        """Set if the writer task ended with an error (readiness reports it)."""
        self._pending = PendingWrites(pending_tail_max, pending_symbols_max)
        self._sha: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        password: str | None,
        timeout_seconds: float,
        metrics: IngestMetrics,
        *,
        client_options: dict[str, Any] | None = None,
        **kw: Any,
    ) -> RedisWriter:
        """``client_options``: user, password and TLS (``RedisFields.redis_client_options``);
        they replace ``password`` when given."""
        options = client_options if client_options is not None else {"password": password}
        client = aioredis.Redis.from_url(
            url,
            **options,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            # Reconnects are ours (with backoff, in the writer task); a library retry
            # would hold a flush for several timeouts.
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        return cls(client, metrics, **kw)

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name="redis-cache-writer")
        self._task.add_done_callback(self._writer_done)
        self._wake.set()

    def _writer_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        self.writer_died = f"{type(error).__name__}: {error}"
        self.healthy = False
        self.metrics.redis_up.set(0)
        log.error("redis cache writer died", exc_info=error)

    async def stop(self, flush_timeout_s: float = 5.0) -> None:
        """Try a last flush (bounded by ``flush_timeout_s``), then close. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self.has_pending:
            try:
                await asyncio.wait_for(self.flush(), flush_timeout_s)
            except (TimeoutError, RedisError, OSError) as e:
                log.warning("redis cache not flushed at shutdown", extra={"error": str(e)})
        await self.client.aclose()

    # --- taking batches and writing them ------------------------------------------------

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def add(self, batch: ProcessedBatch) -> None:
        """Merge a batch's ticks into what waits to be written (no I/O) and wake the writer."""
        self._pending.add(batch)
        self._wake.set()

    async def flush(self) -> None:
        """Write everything pending (the script also publishes the rows that changed)."""
        if not self._pending:
            return
        taken = self._pending.take()
        try:
            await self._write(taken.latest, taken.tail)
        except BaseException:
            self._pending.put_back(taken)
            raise
        if taken.event_ts:
            now_ns = time.time_ns()
            ts = np.concatenate(taken.event_ts)
            self.metrics.e2e_latency.observe_many((now_ns - ts) / 1e9)

    async def _write(
        self, latest: dict[str, _Latest], tail: dict[str, deque[tuple[int, bytes]]]
    ) -> int:
        """All symbols' updates, one script call per ~``CHUNK_TICKS`` ticks (one huge
        call would hold a whole catch-up in memory twice over)."""
        changed = 0
        chunk: list[str] = []
        size = 0
        for symbol in latest:
            chunk.append(symbol)
            size += 1 + len(tail.get(symbol, ()))
            if size >= CHUNK_TICKS:
                changed += await self._write_chunk(chunk, latest, tail)
                chunk, size = [], 0
        if chunk:
            changed += await self._write_chunk(chunk, latest, tail)
        return changed

    async def _write_chunk(
        self,
        symbols: list[str],
        latest: dict[str, _Latest],
        tail: dict[str, deque[tuple[int, bytes]]],
    ) -> int:
        """One script call for ``symbols``; returns how many latest hashes changed."""
        keys, args = hot_cache.update_script_args(
            (
                (symbol, latest[symbol].row, latest[symbol].tick, tail.get(symbol, ()))
                for symbol in symbols
            ),
            tail_max_len=self.tail_max_len,
            channel=self.channel,
        )
        for attempt in (1, 2):
            if self._sha is None:
                self._sha = await self.client.script_load(hot_cache.UPDATE_SCRIPT)
            try:
                changed: int = await self.client.evalsha(self._sha, len(keys), *keys, *args)
                return changed
            except NoScriptError:
                # Redis restarted without our script: load it again and retry once
                self._sha = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # --- the writer task ------------------------------------------------------------------

    async def ping(self) -> bool:
        try:
            await self.client.ping()
        except (RedisError, OSError) as e:
            self._mark_down(e)
            return False
        self._mark_up()
        return True

    def _mark_up(self) -> None:
        if not self.healthy:
            log.info("redis reachable", extra={"pending_symbols": len(self._pending)})
        self.healthy = True
        self.last_error = None
        self.metrics.redis_up.set(1)

    def _mark_down(self, error: BaseException) -> None:
        if self.healthy or self.last_error is None:
            log.warning(
                "redis unreachable; the lake goes on, the cache catches up later",
                extra={"error": str(error)},
            )
        self.healthy = False
        self.last_error = str(error) or type(error).__name__
        self.metrics.redis_up.set(0)

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                # asyncio.timeout, not wait_for: no extra task, so the writer runs on the
                # very next loop turn after add() (the consumer yields once for it)
                async with asyncio.timeout(self.health_interval_seconds):
                    await self._wake.wait()
            except TimeoutError:
                if not self._pending:
                    await self.ping()
                    continue
            self._wake.clear()
            try:
                if not self.healthy and not await self.ping():
                    raise ConnectionError(self.last_error or "redis unreachable")
                await self.flush()
            except Exception as e:  # a bug must not silently stop the cache either
                if not isinstance(e, (RedisError, OSError)):
                    log.exception("redis cache write failed unexpectedly")
                self.metrics.redis_errors.inc()
                self._mark_down(e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max_seconds)
                self._wake.set()
                continue
            backoff = 0.1
            self._mark_up()
