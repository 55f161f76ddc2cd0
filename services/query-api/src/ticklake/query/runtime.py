"""What one running query API owns: Redis clients, the DuckDB connection, the hub.

:meth:`QueryRuntime.open` builds it and :meth:`QueryRuntime.close` releases it
(idempotent); the app's lifespan calls both, so tests get a fresh runtime per
app with their own settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import duckdb
import redis.asyncio as aioredis

from ticklake.core.lake_fs import Lake, open_lake
from ticklake.query.lake_reader import LakeReader
from ticklake.query.latest_mirror import LatestMirror
from ticklake.query.lookups import Lookups
from ticklake.query.metrics import QueryMetrics
from ticklake.query.redis_reader import RedisReader, make_client
from ticklake.query.settings import QuerySettings
from ticklake.query.stream_hub import StreamHub

log = logging.getLogger(__name__)


def open_duckdb(settings: QuerySettings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB; the lake files are read per query, never imported."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": settings.duckdb_memory_limit
    }
    if settings.duckdb_threads:
        config["threads"] = settings.duckdb_threads
    return duckdb.connect(":memory:", config=config)


class QueryRuntime:
    def __init__(self, settings: QuerySettings, metrics: QueryMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.lake: Lake = open_lake(settings)
        self.duckdb = open_duckdb(settings)
        self.redis: aioredis.Redis = make_client(settings)
        self._pubsub_redis: aioredis.Redis = make_client(settings, for_pubsub=True)
        self.mirror = LatestMirror(settings.latest_mirror_ttl_s)
        self.cache = RedisReader(self.redis)
        self.lake_reader = LakeReader(self.lake, self.duckdb)
        self.lookups = Lookups(settings, self.cache, self.lake_reader, metrics, self.mirror)
        self.hub = StreamHub(
            self._pubsub_redis,
            queue_max=settings.stream_queue_max,
            on_clients_changed=metrics.stream_clients.set,
            mirror=self.mirror if settings.latest_mirror_ttl_s > 0 else None,
        )
        self._closed = False

    @classmethod
    async def open(cls, settings: QuerySettings, metrics: QueryMetrics) -> QueryRuntime:
        runtime = cls(settings, metrics)
        await runtime.hub.start()
        if not await runtime.cache.ping():
            log.warning("Redis at %s does not answer; serving from the lake", settings.redis_url)
        return runtime

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.hub.stop()
        for client in (self.redis, self._pubsub_redis):
            with contextlib.suppress(Exception):
                await client.aclose()
        # Lake reads still running in threads finish on their own cursors first.
        await asyncio.to_thread(self.duckdb.close)
