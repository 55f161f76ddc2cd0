"""Redis with TLS only and one ACL user per service (real redis-server): ingest writes as
``ingest``, the query API reads as ``query``, and each is refused what its role does not
need. The ACL rules come from the Redis layout's owner, ``ticklake.core.hot_cache``."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError

from query.conftest import api_settings
from query.ingest_like import IngestLike, make_ticks, new_symbol
from query.running_api import RunningApi
from ticklake.core.hot_cache import TICKS_CHANNEL, acl_rules, latest_key
from ticklake.devstack.redis import RedisServer
from ticklake.ingest.settings import IngestSettings

WRITER_PW, READER_PW = secrets.token_urlsafe(16), secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def secure_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(
        tmp_path_factory.mktemp("redis-tls"),
        tls=True,
        users={
            "ingest": (WRITER_PW, acl_rules("writer")),
            "query": (READER_PW, acl_rules("reader")),
        },
    )
    with server:
        yield server


def _client(server: RedisServer, user: str, password: str) -> redis.Redis:
    return redis.Redis.from_url(
        server.url, username=user, password=password,
        ssl_ca_certs=str(server.tls_ca), ssl_cert_reqs="required",
    )  # fmt: skip


def test_ingest_writes_and_the_api_reads_each_as_its_own_user_over_tls(
    secure_redis: RedisServer, ingest: IngestLike, lake_root: Path
) -> None:
    ingest_settings = IngestSettings(
        redis_url=secure_redis.url, redis_username="ingest", redis_password=WRITER_PW,
        redis_tls_ca_file=secure_redis.tls_ca,
    )  # fmt: skip
    symbol = new_symbol()
    rows = ingest.process(make_ticks(symbol, 3, start_ns=time.time_ns()))
    ingest.to_redis(rows, redis_url=secure_redis.url,
                    redis_options=ingest_settings.redis_client_options())  # fmt: skip
    settings = api_settings(
        redis_url=secure_redis.url, redis_username="query", redis_password=READER_PW,
        redis_tls_ca_file=secure_redis.tls_ca, lake_uri=str(lake_root),
    )  # fmt: skip
    with RunningApi(settings) as api:
        ready = httpx.get(api.url + "/readyz", timeout=10).json()
        assert ready["redis"] is True and ready["status"] == "ready", ready
        body = httpx.get(api.url + f"/latest/{symbol}", timeout=10).json()
        assert body["source"] == "redis"
        assert body["tick"]["price"] == rows[-1]["price"]
        assert symbol in httpx.get(api.url + "/symbols", timeout=10).json()["symbols"]


def test_the_reader_may_not_write_and_neither_may_leave_the_layout(
    secure_redis: RedisServer,
) -> None:
    reader = _client(secure_redis, "query", READER_PW)
    writer = _client(secure_redis, "ingest", WRITER_PW)
    try:
        assert reader.ping() and writer.ping()
        writer.hset(latest_key("ACLTEST"), "price", "1")
        assert reader.hget(latest_key("ACLTEST"), "price") == b"1"
        for refused in (
            lambda: reader.hset(latest_key("ACLTEST"), "price", "2"),  # a write
            lambda: reader.publish(TICKS_CHANNEL, "[]"),
            lambda: reader.get("other:key"),  # outside the layout
            lambda: writer.get("other:key"),
            lambda: writer.publish("other-channel", "x"),
            lambda: writer.flushall(),  # dangerous
            lambda: writer.keys("*"),
            lambda: reader.config_get("*"),
        ):
            with pytest.raises(NoPermissionError):
                refused()
        assert reader.hget(latest_key("ACLTEST"), "price") == b"1"
    finally:
        reader.close()
        writer.close()


def test_plain_tcp_unknown_users_and_unverified_servers_are_refused(
    secure_redis: RedisServer,
) -> None:
    plain = redis.Redis(host="127.0.0.1", port=secure_redis.port, username="query",
                        password=READER_PW, socket_timeout=2)  # fmt: skip
    with pytest.raises(RedisConnectionError):
        plain.ping()
    # Without our CA the server's certificate does not verify.
    unverified = redis.Redis.from_url(secure_redis.url, username="query", password=READER_PW,
                                      ssl_cert_reqs="required", socket_timeout=2)  # fmt: skip
    with pytest.raises(RedisConnectionError, match="certificate verify failed"):
        unverified.ping()
    with pytest.raises(redis.AuthenticationError):
        _client(secure_redis, "query", WRITER_PW).ping()  # another user's password


def test_tls_files_without_rediss_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not rediss://"):
        IngestSettings(redis_url="redis://127.0.0.1:6379/0", redis_tls_ca_file=tmp_path / "ca")
    with pytest.raises(ValueError, match="go together"):
        IngestSettings(redis_url="rediss://h:6380/0", redis_tls_cert_file=tmp_path / "c")


def test_unknown_roles_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown Redis role 'admin'"):
        acl_rules("admin")
