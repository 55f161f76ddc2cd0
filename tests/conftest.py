"""Session-wide real servers for the whole test suite.

One Kafka broker (KRaft) and one Redis are started on free loopback ports for
the session, never the developer's running stack. Set
``TICKLAKE_TEST_KAFKA_BOOTSTRAP`` to test against an existing broker instead.
Tests that break a server on purpose start a private one (see
``ticklake.devstack.kafka.KafkaBroker`` / ``ticklake.devstack.redis.RedisServer``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from ticklake.devstack.kafka import KafkaBroker
from ticklake.devstack.redis import RedisServer


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a real Kafka broker for the whole session."""
    external = os.environ.get("TICKLAKE_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"), default_partitions=1)
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """URL of the session's real Redis (it requires :func:`redis_password`)."""
    return redis_server.url


@pytest.fixture(scope="session")
def redis_password(redis_server: RedisServer) -> str:
    return redis_server.password


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """``test-artifacts/`` at the repository root (screenshots, rendered manifests)."""
    path = Path(__file__).resolve().parents[1] / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


CI_MAY_SKIP: Final[tuple[str, ...]] = ()
"""Node-id prefixes of tests allowed to skip under ``CI=true``: only what CI cannot have,
each listed with its reason in docs/testing.md ("Skips"). Empty: CI skips nothing."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under ``CI=true`` a skipped test is a failure: a skip there means a prerequisite the
    project's scripts should have installed is missing (the reason says which)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if (
        report.skipped
        and os.environ.get("CI", "").lower() == "true"
        and not hasattr(report, "wasxfail")
        and not item.nodeid.startswith(CI_MAY_SKIP)
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI=true, which makes a skip a failure: {reason}\n"
            "Install what is missing (tools/bootstrap.sh --test installs every prerequisite), "
            "or, if CI cannot have it, add the test to CI_MAY_SKIP in tests/conftest.py "
            "and to docs/testing.md."
        )
