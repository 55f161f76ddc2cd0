"""The Redis hot cache: latest tick per symbol, a tail of recent ticks, live channel.

A flush is one pipelined round trip (a long catch-up: a few) of Lua calls
(:func:`plan_calls`: the quietest symbols' small call first, then calls of at most
``CHUNK_TICKS`` ticks); each call does, for every symbol in it:

* update ``sym:{SYMBOL}:latest`` only if the new tick is newer by
  (ts_ns, seq, kafka_offset): a replay after a crash (the same ticks again)
  or a late straggler never moves it back, while a restarted source whose
  sequence numbers start again at 1 (with later event times) moves it on;
* add the symbol to the symbols set;
* append the symbol's new ticks to its ``sym:{SYMBOL}:tail`` stream, skipping
  offsets at or below the stream's last entry (so a replay adds nothing), and
  trim it to about ``tail_max_len`` entries.

and at its end one ``PUBLISH`` of the rows that actually changed. The format (keys,
fields, encodings, the script and its ordering guard) is :mod:`ticklake.core.hot_cache`'s,
which the query API reads with; this module batches, retries and catches up.

Writes happen in a background task woken by :meth:`RedisWriter.add`, so the
consume loop never waits on Redis. While Redis is down, the newest tick per
symbol and the last ``pending_tail_max`` ticks per symbol are kept and written
when it returns; the lake holds everything regardless.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, cast

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

FIRST_CALL_TICKS: Final = 500
"""Most tail entries in a flush's first script call, the one of its quietest symbols."""

ROUND_TICKS: Final = 2 * CHUNK_TICKS
"""Most tail entries pipelined in one round trip (bounds the arguments held at once)."""


def plan_calls(pending: dict[str, int]) -> list[list[str]]:
    """Group symbols (by their pending tick count) into script calls, quietest first.

    A script call is atomic: nothing it publishes is seen before all of it has run. So
    the symbols with the fewest ticks pending (those keeping up with a live feed) go in
    a first call of at most ``FIRST_CALL_TICKS`` ticks, and those catching up on a
    backlog follow in calls of at most ``CHUNK_TICKS`` (a symbol with more goes alone):
    a new tick of an idle symbol waits for a few hundred others, not for a backlog's
    thousands. Every symbol is in exactly one call; empty when nothing is pending.
    """
    calls: list[list[str]] = []
    call: list[str] = []
    size = 0
    limit = FIRST_CALL_TICKS
    for symbol in sorted(pending, key=pending.__getitem__):
        count = 1 + pending[symbol]
        if call and size + count > limit:
            calls.append(call)
            call, size, limit = [], 0, CHUNK_TICKS
        call.append(symbol)
        size += count
    if call:
        calls.append(call)
    return calls


class _Rows:
    """One batch's tail columns; a row's JSON is made only if it is still wanted when
    the write is taken (:meth:`PendingWrites.take`).

    Encoding every row of every batch was the single largest cost of a backlog drain
    (``bench/bench_profile.py``), and most of those rows never reach Redis: while a
    write is in flight later batches push them out of the bounded tail.
    """

    __slots__ = ("columns", "names", "seq_index")

    def __init__(self, names: list[str], columns: list[np.ndarray]) -> None:
        self.names = names
        self.columns = columns
        self.seq_index = names.index("seq")

    def encode(self, indices: np.ndarray) -> list[bytes]:
        """The tail ``tick`` JSON of these rows (one msgspec call), in their order."""
        lists = [column[indices].tolist() for column in self.columns]
        lists[self.seq_index] = [None if s < 0 else s for s in lists[self.seq_index]]
        return hot_cache.encode_tail_ticks(self.names, lists)


_Tick = bytes | tuple[_Rows, int]
"""A row's tail JSON, or where to make it from (its batch's columns and its index)."""


class _Segment:
    """Consecutive tail entries of one symbol from one batch: their offsets, and
    either their rows in the batch (``rows``, ``members``) or, once taken, their JSON."""

    __slots__ = ("members", "offsets", "rows", "ticks")

    def __init__(
        self,
        offsets: np.ndarray,
        rows: _Rows | None,
        members: np.ndarray | None,
        ticks: np.ndarray | None,
    ) -> None:
        self.offsets = offsets
        self.rows = rows
        self.members = members
        self.ticks = ticks
        """Object array of bytes, once encoded."""

    def __len__(self) -> int:
        return len(self.offsets)

    def without_first(self, count: int) -> _Segment:
        return _Segment(
            self.offsets[count:],
            self.rows,
            None if self.members is None else self.members[count:],
            None if self.ticks is None else self.ticks[count:],
        )

    def entries(self) -> Iterator[tuple[int, _Tick]]:
        offsets = self.offsets.tolist()
        if self.ticks is not None:
            return zip(offsets, self.ticks.tolist(), strict=True)
        assert self.rows is not None and self.members is not None
        rows = self.rows
        return zip(offsets, ((rows, i) for i in self.members.tolist()), strict=True)


class _Tail:
    """A symbol's newest tail entries, at most ``limit``, in arrival order: whole
    segments, so that adding a batch costs per symbol, not per tick."""

    __slots__ = ("count", "limit", "segments")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.segments: deque[_Segment] = deque()
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[int, _Tick]]:
        """(kafka_offset, tick) pairs, oldest first."""
        return itertools.chain.from_iterable(seg.entries() for seg in self.segments)

    def append(self, segment: _Segment) -> None:
        self.segments.append(segment)
        self.count += len(segment)
        # drop whole segments from the front, then cut the first one
        while self.count - len(self.segments[0]) >= self.limit:
            self.count -= len(self.segments.popleft())
        excess = self.count - self.limit
        if excess > 0:
            self.segments[0] = self.segments[0].without_first(excess)
            self.count -= excess

    def offsets(self) -> list[int]:
        if not self.segments:
            return []
        offsets: list[int] = np.concatenate([seg.offsets for seg in self.segments]).tolist()
        return offsets

    def ticks(self) -> list[bytes]:
        """The entries' JSON (only after :meth:`PendingWrites.take`)."""
        out: list[bytes] = []
        for seg in self.segments:
            assert seg.ticks is not None, "tail taken before it was encoded"
            out.extend(seg.ticks.tolist())
        return out


@dataclass(slots=True)
class _Latest:
    order: tuple[int, int, int]
    """:func:`ticklake.core.hot_cache.latest_order` of the row (what the script's guard uses)."""
    row: dict[str, Any]
    tick: _Tick


def _newer(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    """Is ``a`` newer than ``b``, both :func:`~ticklake.core.hot_cache.latest_order` keys?"""
    return a > b


class PendingWrites:
    """What waits to be written, merged across batches (no I/O, so tests drive it alone).

    Per symbol: its newest row (by :func:`~ticklake.core.hot_cache.latest_order`) and its
    last ``tail_max`` ticks in offset order; plus the event times to observe as latency.
    Bounded: at most ``symbols_max`` symbols and 5 M event times are kept while Redis is
    down (the lake holds everything regardless). Rows are JSON-encoded by :meth:`take`,
    only those still in a tail or newest then.
    """

    def __init__(self, tail_max: int, symbols_max: int) -> None:
        self.tail_max = tail_max
        self.symbols_max = symbols_max
        self.latest: dict[str, _Latest] = {}
        self.tail: dict[str, _Tail] = {}
        self.event_ts: list[np.ndarray] = []
        self._event_ts_count = 0

    def __len__(self) -> int:
        """Symbols with something to write."""
        return len(self.latest)

    def add(self, batch: ProcessedBatch) -> None:
        """Merge a batch's ticks in (no encoding: see :class:`_Rows`).

        Only each symbol's newest row becomes a dict (the latest hash's fields).
        """
        n = batch.num_rows
        if n == 0:
            return
        cols = batch.columns
        names = list(cols)
        # The tail and the channel carry the lake's columns, flags included (a
        # reader of /ticks then sees `late` whichever store answered); the
        # latest hash is built from `row` below, without them.
        rows = _Rows([*names, *batch.flags], [*cols.values(), *batch.flags.values()])
        seq = cols["seq"]
        offsets = cols["kafka_offset"]
        # newest row per symbol by (ts_ns, seq, offset): sort by code then those; take each last
        order = np.lexsort((offsets, seq, cols["ts_ns"], batch.codes))
        sorted_codes = batch.codes[order]
        ends = np.flatnonzero(np.diff(sorted_codes, append=sorted_codes[-1] + 1))
        starts = np.concatenate(([0], ends[:-1] + 1))
        newest_rows = order[ends]
        newest_values = [cols[name][newest_rows].tolist() for name in names]
        seq_i = names.index("seq")
        newest_values[seq_i] = [None if s < 0 else s for s in newest_values[seq_i]]
        # each symbol's rows in offset order (the stream's order): rows are in offset
        # order within the batch, so a stable sort by code keeps it
        by_symbol = np.argsort(batch.codes, kind="stable")
        latest, tail, tail_max = self.latest, self.tail, self.tail_max
        for start, end, newest, values in zip(
            starts.tolist(),
            ends.tolist(),
            newest_rows.tolist(),
            zip(*newest_values, strict=True),
            strict=True,
        ):
            row = dict(zip(names, values, strict=True))
            symbol = row["symbol"]
            rank = hot_cache.latest_order(row["ts_ns"], row["seq"], row["kafka_offset"])
            current = latest.get(symbol)
            if current is None:
                if len(latest) >= self.symbols_max:
                    continue
                latest[symbol] = _Latest(rank, row, (rows, newest))
                queue = tail[symbol] = _Tail(tail_max)
            else:
                if _newer(rank, current.order):
                    current.order, current.row, current.tick = rank, row, (rows, newest)
                queue = tail[symbol]
            # only the last tail_max can stay in the queue
            members = by_symbol[max(start, end + 1 - tail_max) : end + 1]
            queue.append(_Segment(offsets[members], rows, members, None))
        if self._event_ts_count < 5_000_000:
            self.event_ts.append(cols["ts_ns"])
            self._event_ts_count += n

    def take(self) -> PendingWrites:
        """Everything pending, encoded, as its own object; this one is left empty."""
        taken = PendingWrites(self.tail_max, self.symbols_max)
        taken.latest, taken.tail, taken.event_ts = self.latest, self.tail, self.event_ts
        self.latest, self.tail, self.event_ts, self._event_ts_count = {}, {}, [], 0
        taken._encode()
        return taken

    def _encode(self) -> None:
        """Give every wanted row its JSON: one encoding call per batch."""
        wanted: dict[int, tuple[_Rows, list[np.ndarray | list[int]]]] = {}
        for entry in self.latest.values():
            if not isinstance(entry.tick, bytes):
                rows, index = entry.tick
                wanted.setdefault(id(rows), (rows, []))[1].append([index])
        for queue in self.tail.values():
            for seg in queue.segments:
                if seg.ticks is None:
                    assert seg.rows is not None and seg.members is not None
                    wanted.setdefault(id(seg.rows), (seg.rows, []))[1].append(seg.members)
        # Per batch: encode its wanted rows once, then hand each part its slice of
        # one gather (one numpy call per batch, not per symbol: steps of a quiet feed
        # hold a tick or two per symbol).
        resolved: dict[int, Iterator[np.ndarray]] = {}
        for key, (rows, parts) in wanted.items():
            members = np.concatenate(parts)
            indices = np.unique(members)
            ticks = np.empty(len(indices), dtype=object)
            ticks[:] = rows.encode(indices)
            gathered = ticks[np.searchsorted(indices, members)]
            bounds = np.cumsum([len(part) for part in parts]).tolist()
            resolved[key] = iter(
                [gathered[a:b] for a, b in zip([0, *bounds[:-1]], bounds, strict=True)]
            )
        # the same walk as above, so each part takes its own slice, in order
        for entry in self.latest.values():
            if not isinstance(entry.tick, bytes):
                rows, _ = entry.tick
                entry.tick = next(resolved[id(rows)])[0]
        for queue in self.tail.values():
            for seg in queue.segments:
                if seg.ticks is None:
                    assert seg.rows is not None
                    seg.ticks = next(resolved[id(seg.rows)])
                    seg.rows = seg.members = None

    def put_back(self, older: PendingWrites) -> None:
        """A failed write's updates, back under anything added meanwhile."""
        for symbol, old in older.latest.items():
            new = self.latest.get(symbol)
            merged = older.tail.get(symbol) or _Tail(self.tail_max)
            if new is None:
                self.latest[symbol] = old
            else:
                if _newer(old.order, new.order):
                    new.order, new.row, new.tick = old.order, old.row, old.tick
                for seg in self.tail.get(symbol, _Tail(self.tail_max)).segments:
                    merged.append(seg)
            self.tail[symbol] = merged
        self.event_ts = older.event_ts + self.event_ts
        self._event_ts_count = sum(len(t) for t in self.event_ts)


def _entries(tail: _Tail | None) -> tuple[list[int], list[bytes]]:
    """A taken tail's offsets and ticks (:func:`~ticklake.core.hot_cache.update_script_args`)."""
    if tail is None:
        return [], []
    return tail.offsets(), tail.ticks()


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

    async def _write(self, latest: dict[str, _Latest], tail: dict[str, _Tail]) -> int:
        """All symbols' updates: the calls of :func:`plan_calls`, pipelined a round of
        up to ``ROUND_TICKS`` ticks at a time (one round trip per round, so the quiet
        symbols' small call is not held back a turn of the event loop behind a busy
        consumer step); returns how many latest hashes changed."""
        changed = 0
        pending = {symbol: len(tail.get(symbol, ())) for symbol in latest}
        round_: list[list[str]] = []
        size = 0
        for symbols in plan_calls(pending):
            round_.append(symbols)
            size += sum(1 + pending[symbol] for symbol in symbols)
            if size >= ROUND_TICKS:
                changed += await self._write_round(round_, latest, tail)
                round_, size = [], 0
        if round_:
            changed += await self._write_round(round_, latest, tail)
        return changed

    async def _write_round(
        self,
        calls: list[list[str]],
        latest: dict[str, _Latest],
        tail: dict[str, _Tail],
    ) -> int:
        """One script call per element of ``calls``, sent in one pipeline."""
        arguments = [
            hot_cache.update_script_args(
                (
                    # taken (PendingWrites.take): every tick is encoded by now
                    (
                        symbol,
                        latest[symbol].row,
                        cast(bytes, latest[symbol].tick),
                        *_entries(tail.get(symbol)),
                    )
                    for symbol in symbols
                ),
                tail_max_len=self.tail_max_len,
                channel=self.channel,
            )
            for symbols in calls
        ]
        for attempt in (1, 2):
            if self._sha is None:
                self._sha = await self.client.script_load(hot_cache.UPDATE_SCRIPT)
            async with self.client.pipeline(transaction=False) as pipe:
                for keys, args in arguments:
                    pipe.evalsha(self._sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
            errors = [r for r in results if isinstance(r, BaseException)]
            if not errors:
                return sum(int(r) for r in results)
            if not all(isinstance(e, NoScriptError) for e in errors) or attempt == 2:
                raise next(e for e in errors if not isinstance(e, NoScriptError) or attempt == 2)
            # Redis restarted without our script: load it and send the round again (the
            # script skips tail offsets it already has and never moves latest back)
            self._sha = None
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
