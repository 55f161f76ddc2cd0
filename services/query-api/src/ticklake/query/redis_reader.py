"""Read the Redis hot cache ingest keeps: latest hashes, the symbol set, tails.

Redis is the fast path, never the only one: every method raises
:class:`RedisUnavailable` when Redis cannot answer, and callers fall back to the
lake. After a failure the cache stays "down" for a short cool-off, so a dead
Redis costs one timeout per cool-off rather than one per request.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ticklake.core.hot_cache import (
    SYMBOLS_KEY,
    decode_latest_hash,
    decode_tail_entry,
    latest_key,
    tail_key,
)
from ticklake.query.settings import QuerySettings
from ticklake.query.tick_rows import clean_row

COOL_OFF_S: Final = 1.0
"""Seconds Redis is skipped after a failed call (then it is tried again)."""


class RedisUnavailable(RuntimeError):
    """Redis did not answer (down, timed out, refused); the caller should fall back."""


def make_client(settings: QuerySettings, *, for_pubsub: bool = False) -> aioredis.Redis:
    """A client that fails fast: no retries, short timeouts (the lake is the fallback).

    The pub/sub client has no read timeout (a quiet channel is not an error)
    and pings every 10 s instead, so a dead connection is still noticed.
    """
    return aioredis.Redis.from_url(
        settings.redis_url,
        **settings.redis_client_options(),
        decode_responses=True,
        socket_timeout=None if for_pubsub else settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=10 if for_pubsub else 0,
        retry=Retry(NoBackoff(), 0),
    )


class RedisReader:
    """The query side of Redis: typed rows out, :class:`RedisUnavailable` on failure."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._down_until = 0.0

    @property
    def looks_down(self) -> bool:
        return time.monotonic() < self._down_until

    def _check(self) -> None:
        if self.looks_down:
            raise RedisUnavailable("Redis failed moments ago; cooling off")

    def _failed(self, error: Exception) -> RedisUnavailable:
        self._down_until = time.monotonic() + COOL_OFF_S
        return RedisUnavailable(f"Redis: {error}")

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def latest(self, symbol: str) -> dict[str, Any] | None:
        """The latest-tick hash of ``symbol`` as a typed row, ``None`` if absent."""
        self._check()
        try:
            fields = await self.client.hgetall(latest_key(symbol))
        except (RedisError, OSError) as e:
            raise self._failed(e) from e
        return clean_row(decode_latest_hash(fields)) if fields else None

    async def latest_many(self, symbols: Sequence[str]) -> list[dict[str, Any] | None]:
        self._check()
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for symbol in symbols:
                    pipe.hgetall(latest_key(symbol))
                results = await pipe.execute()
        except (RedisError, OSError) as e:
            raise self._failed(e) from e
        return [clean_row(decode_latest_hash(f)) if f else None for f in results]

    async def symbols(self) -> list[str]:
        self._check()
        try:
            members = await self.client.smembers(SYMBOLS_KEY)
        except (RedisError, OSError) as e:
            raise self._failed(e) from e
        return sorted(cast("set[str]", members))  # the client decodes responses

    async def is_known(self, symbol: str) -> bool:
        self._check()
        try:
            return bool(await self.client.sismember(SYMBOLS_KEY, symbol))
        except (RedisError, OSError) as e:
            raise self._failed(e) from e

    async def tail(
        self, symbol: str, max_entries: int, *, since_ms: int | None = None
    ) -> list[dict[str, Any]]:
        """The recent-ticks stream of ``symbol``, oldest first, at most ``max_entries``.

        ``since_ms`` skips entries added before that Unix time in milliseconds
        (stream ids are the time Redis added them).
        """
        if max_entries <= 0:
            return []
        self._check()
        low = f"{since_ms}-0" if since_ms is not None and since_ms > 0 else "-"
        try:
            entries = cast(
                "list[tuple[str, dict[str, str]]]",
                await self.client.xrevrange(tail_key(symbol), "+", low, count=max_entries),
            )
        except (RedisError, OSError) as e:
            raise self._failed(e) from e
        rows = []
        for _id, fields in reversed(entries):
            try:
                rows.append(clean_row(decode_tail_entry(fields)))
            except ValueError:
                continue  # not an entry ingest wrote; the lake has the truth anyway
        return rows
