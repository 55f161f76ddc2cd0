"""Fixtures of the ingest tests: the Redis database they use, a client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from ingest_kit import ingest_redis_url


@pytest.fixture(scope="session")
def ingest_redis(redis_url: str) -> str:
    """URL of the Redis database the ingest tests write to (the session's Redis)."""
    return ingest_redis_url(redis_url)


@pytest.fixture
async def redis_client(ingest_redis: str, redis_password: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(ingest_redis, password=redis_password)
    yield client
    await client.aclose()
