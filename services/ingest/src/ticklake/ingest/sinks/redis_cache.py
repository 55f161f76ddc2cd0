"""The Redis hot cache: latest tick per symbol, a tail of recent ticks, live channel.

One Lua call per symbol per flush (all pipelined in one round trip) does:

* update ``sym:{SYMBOL}:latest`` only if the new tick is newer by
  (seq, kafka_offset), or by offset alone when a side has no seq (legacy
  feeds): a replay after a crash never moves it back;
* add the symbol to the symbols set;
* append the symbol's new ticks to its ``sym:{SYMBOL}:tail`` stream, skipping
  offsets at or below the stream's last entry (so a replay adds nothing), and
  trim it to about ``tail_max_len`` entries.

Then one ``PUBLISH`` carries the latest rows that actually changed. Encodings
are :mod:`ticklake.core.latest_hash`'s.

Writes happen in a background task woken by :meth:`RedisCache.add`, so the
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

from ticklake.core import latest_hash, redis_keys
from ticklake.ingest.metrics import IngestMetrics
from ticklake.ingest.partition import ProcessedBatch

log = logging.getLogger(__name__)

UPDATE_SCRIPT: Final = """
-- KEYS: latest hash, tail stream, symbols set
-- ARGV: symbol, tail max length, n, n field/value pairs of the latest hash,
--       then (kafka_offset, tick json) pairs for the tail, in offset order
local n = tonumber(ARGV[3])
local new_seq, new_off
for i = 4, 3 + 2 * n, 2 do
  if ARGV[i] == 'seq' then new_seq = tonumber(ARGV[i + 1])
  elseif ARGV[i] == 'kafka_offset' then new_off = tonumber(ARGV[i + 1]) end
end
local cur = redis.call('HMGET', KEYS[1], 'seq', 'kafka_offset')
local cur_seq, cur_off = tonumber(cur[1]), tonumber(cur[2])
local newer = true
if cur_off then
  if new_seq and cur_seq then
    newer = new_seq > cur_seq or (new_seq == cur_seq and new_off > cur_off)
  else
    newer = new_off > cur_off
  end
end
if newer then redis.call('HSET', KEYS[1], unpack(ARGV, 4, 3 + 2 * n)) end
redis.call('SADD', KEYS[3], ARGV[1])
local last_off = -1
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last > 0 then
  local f = last[1][2]
  for j = 1, #f, 2 do
    if f[j] == 'kafka_offset' then last_off = tonumber(f[j + 1]) end
  end
end
for i = 4 + 2 * n, #ARGV, 2 do
  local off = tonumber(ARGV[i])
  if off > last_off then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
               'kafka_offset', ARGV[i], 'tick', ARGV[i + 1])
    last_off = off
  end
end
if newer then return 1 end
return 0
"""


@dataclass(slots=True)
class _Latest:
    order: tuple[int, int]
    """(seq or -1, kafka_offset): the same order the Lua guard uses."""
    row: dict[str, Any]


def _newer(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Is ``a`` newer than ``b``? Mirrors the Lua guard."""
    if a[0] >= 0 and b[0] >= 0:
        return a > b
    return a[1] > b[1]


class RedisCache:
    """Best-effort Redis writer with catch-up after outages."""

    def __init__(
        self,
        client: aioredis.Redis,
        metrics: IngestMetrics,
        tail_max_len: int = redis_keys.TAIL_MAX_LEN,
        pending_tail_max: int = 1_000,
        pending_symbols_max: int = 100_000,
        retry_max_seconds: float = 5.0,
        health_interval_seconds: float = 5.0,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.tail_max_len = tail_max_len
        self.pending_tail_max = pending_tail_max
        self.pending_symbols_max = pending_symbols_max
        self.retry_max_seconds = retry_max_seconds
        self.health_interval_seconds = health_interval_seconds
        self.healthy = False
        self.last_error: str | None = None
        self._latest: dict[str, _Latest] = {}
        self._tail: dict[str, deque[tuple[bytes, bytes]]] = {}
        self._event_ts: list[np.ndarray] = []
        self._event_ts_count = 0
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
        **kw: Any,
    ) -> RedisCache:
        client = aioredis.Redis.from_url(
            url,
            password=password,
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
        self._task.add_done_callback(_log_task_failure)
        self._wake.set()

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

    # --- the Sink contract --------------------------------------------------------------

    @property
    def has_pending(self) -> bool:
        return bool(self._latest)

    def add(self, batch: ProcessedBatch) -> None:
        """Merge a batch's ticks into what waits to be written (no I/O)."""
        n = batch.rows.num_rows
        if n == 0:
            return
        cols = batch.columns
        names = list(cols)
        lists = [cols[name].tolist() for name in names]
        seq_i = names.index("seq")
        if (cols["seq"] < 0).any():
            lists[seq_i] = [None if s < 0 else s for s in lists[seq_i]]
        sym_i = names.index("symbol")
        off_i = names.index("kafka_offset")
        encode = latest_hash.encode_tail_tick
        latest = self._latest
        tail = self._tail
        tail_max = self.pending_tail_max
        for values in zip(*lists, strict=True):
            row = dict(zip(names, values, strict=True))
            symbol = values[sym_i]
            offset = values[off_i]
            seq = values[seq_i]
            order = (-1 if seq is None else seq, offset)
            current = latest.get(symbol)
            if current is None:
                if len(latest) >= self.pending_symbols_max:
                    continue
                latest[symbol] = _Latest(order, row)
                queue = tail[symbol] = deque(maxlen=tail_max)
            else:
                if _newer(order, current.order):
                    current.order = order
                    current.row = row
                queue = tail[symbol]
            queue.append((str(offset).encode(), encode(row)))
        if self._event_ts_count < 5_000_000:
            self._event_ts.append(cols["ts_ns"])
            self._event_ts_count += n
        self._wake.set()

    async def flush(self) -> None:
        """Write everything pending in one pipelined round trip, then publish."""
        if not self._latest:
            return
        latest, tail, event_ts = self._latest, self._tail, self._event_ts
        self._latest, self._tail, self._event_ts, self._event_ts_count = {}, {}, [], 0
        try:
            applied = await self._write(latest, tail)
        except BaseException:
            self._restore(latest, tail, event_ts)
            raise
        if applied:
            try:
                await self.client.publish(
                    redis_keys.TICKS_CHANNEL, latest_hash.encode_channel_message(applied)
                )
            except (RedisError, OSError) as e:
                # The hashes are written; a lost live message is not worth a replay.
                log.warning("publish failed", extra={"error": str(e)})
        if event_ts:
            now_ns = time.time_ns()
            ts = np.concatenate(event_ts)
            self.metrics.e2e_latency.observe_many((now_ns - ts) / 1e9)

    async def _write(
        self, latest: dict[str, _Latest], tail: dict[str, deque[tuple[bytes, bytes]]]
    ) -> list[dict[str, Any]]:
        if self._sha is None:
            self._sha = await self.client.script_load(UPDATE_SCRIPT)
        symbols = list(latest)
        pipe = self.client.pipeline(transaction=False)
        for symbol in symbols:
            fields = latest_hash.encode_latest_hash(latest[symbol].row)
            args: list[Any] = [symbol, self.tail_max_len, len(fields)]
            for name, value in fields.items():
                args.append(name)
                args.append(value)
            for offset, tick in tail.get(symbol, ()):
                args.append(offset)
                args.append(tick)
            pipe.evalsha(
                self._sha,
                3,
                redis_keys.latest_key(symbol),
                redis_keys.tail_key(symbol),
                redis_keys.SYMBOLS_KEY,
                *args,
            )
        try:
            results = await pipe.execute()
        except NoScriptError:
            self._sha = None  # Redis restarted without our script: load it and retry once
            return await self._write(latest, tail)
        return [latest[s].row for s, r in zip(symbols, results, strict=True) if r == 1]

    def _restore(
        self,
        latest: dict[str, _Latest],
        tail: dict[str, deque[tuple[bytes, bytes]]],
        event_ts: list[np.ndarray],
    ) -> None:
        """Put a failed flush back under anything added meanwhile."""
        for symbol, older in latest.items():
            newer = self._latest.get(symbol)
            if newer is None:
                self._latest[symbol] = older
                self._tail[symbol] = tail.get(symbol, deque(maxlen=self.pending_tail_max))
            else:
                if _newer(older.order, newer.order):
                    newer.order, newer.row = older.order, older.row
                merged = tail.get(symbol, deque(maxlen=self.pending_tail_max))
                merged.extend(self._tail.get(symbol, ()))
                self._tail[symbol] = merged
        self._event_ts = event_ts + self._event_ts
        self._event_ts_count = sum(len(t) for t in self._event_ts)

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
            log.info("redis reachable", extra={"pending_symbols": len(self._latest)})
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
                await asyncio.wait_for(self._wake.wait(), self.health_interval_seconds)
            except TimeoutError:
                if not self._latest:
                    await self.ping()
                    continue
            self._wake.clear()
            try:
                if not self.healthy and not await self.ping():
                    raise ConnectionError(self.last_error or "redis unreachable")
                await self.flush()
            except (RedisError, OSError) as e:
                self.metrics.redis_errors.inc()
                self._mark_down(e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.retry_max_seconds)
                self._wake.set()
                continue
            backoff = 0.1
            self._mark_up()


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("redis cache writer died", exc_info=task.exception())
