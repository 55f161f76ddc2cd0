"""Fixtures of the query API tests: one lake, one Redis database, one running API.

Tests share them and keep out of each other's way by using fresh symbols
(:func:`tests.query.ingest_like.new_symbol`). The API runs with a short SSE
heartbeat so stream tests need not wait.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from query.ingest_like import IngestLike
from query.running_api import RunningApi
from ticklake.query.auth import api_keys
from ticklake.query.settings import QuerySettings

QUERY_DB = 9
"""Redis database of these tests (the ticklake:symbols set is per database)."""


@pytest.fixture(scope="session")
def query_redis_url(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + f"/{QUERY_DB}"


@pytest.fixture(scope="session")
def lake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("query-lake")


@pytest.fixture(scope="session")
def redis_sync(query_redis_url: str, redis_password: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(query_redis_url, password=redis_password)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def ingest(
    lake_root: Path, redis_sync: redis.Redis, query_redis_url: str, redis_password: str
) -> IngestLike:
    return IngestLike(lake_root, redis_sync, query_redis_url, redis_password)


def api_settings(**overrides: object) -> QuerySettings:
    # Authentication has its own tests (tests/query/test_auth*.py); here it is off.
    base: dict[str, object] = {
        "stream_heartbeat_s": 0.3, "redis_timeout_s": 0.5, "auth_enabled": False,
    }  # fmt: skip
    return QuerySettings(**(base | overrides))


@pytest.fixture(scope="session")
def api(query_redis_url: str, redis_password: str, lake_root: Path) -> Iterator[RunningApi]:
    settings = api_settings(
        redis_url=query_redis_url, redis_password=redis_password, lake_uri=str(lake_root)
    )
    with RunningApi(settings) as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as c:
        yield c


# An API with authentication on, and the keys it accepts (tests/query/test_auth*.py).


@dataclass(frozen=True)
class Keys:
    path: Path
    all: str  # every symbol
    ent: str  # ENT* only
    slow: str  # every symbol, 1 request/s, burst 2
    pool: dict[str, tuple[str, ...]]  # token -> patterns, for the property test


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    path = tmp_path_factory.mktemp("auth") / "keys.json"
    _, all_ = api_keys.create(path, "everything", ["*"])
    _, ent = api_keys.create(path, "ent desk", ["ENT*"])
    _, slow = api_keys.create(path, "slow", ["*"], rate_per_s=1, burst=2)
    pool = {}
    for patterns in (["ENT*"], ["DEN*"], ["ENTA*", "DENB*"], ["*"], ["ZZZ"], ["ENT?*", "DEN*"]):
        _, token = api_keys.create(path, "pool", patterns)
        pool[token] = tuple(patterns)
    return Keys(path, all_, ent, slow, pool)


@pytest.fixture(scope="session")
def secure_api(
    keys: Keys, query_redis_url: str, redis_password: str, lake_root: Path
) -> Iterator[RunningApi]:
    settings_ = api_settings(
        redis_url=query_redis_url, redis_password=redis_password, lake_uri=str(lake_root),
        auth_enabled=True, auth_keys_file=keys.path, auth_reload_s=0.05,
    )  # fmt: skip
    with RunningApi(settings_) as running:
        yield running
