"""The chart's Redis users: the rules are hot_cache's, each service gets its own user, and
the chart's Redis command, run as rendered by Debian's redis-server, enforces them."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import redis
from charts.chartkit import component_name, container_env, named, parse, render
from charts.chartkit import helm_template as template
from redis.exceptions import NoPermissionError

from ticklake.core.hot_cache import TICKS_CHANNEL, acl_rules, latest_key
from ticklake.devstack import ports
from ticklake.devstack.redis import redis_server_binary

PASSWORDS = {"password": "main-pw", "ingest-password": "ingest-pw", "query-password": "query-pw"}


def _redis_script(objects: tuple[dict, ...]) -> str:
    sts = named(objects, "StatefulSet", component_name("redis"))
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["sh", "-c"]
    script: str = container["args"][0]
    return script


@pytest.mark.parametrize("role", ["writer", "reader"])
def test_the_rules_are_the_layout_owners(role: str) -> None:
    script = _redis_script(render("defaults"))
    user = {"writer": "ingest", "reader": "query"}[role]
    match = re.search(rf"user {user} reset on >%s %s\\n'.*?\\\n\s*'([^']*)'", script, re.S)
    assert match, script
    assert match.group(1) == acl_rules(role), (
        f"charts/ticklake/templates/_helpers.tpl ticklake.redisAclRules {role!r} has drifted "
        "from ticklake.core.hot_cache.acl_rules: copy it again"
    )


def test_each_service_uses_its_own_user_and_password() -> None:
    objects = render("defaults")
    for component, user in (("ingest", "ingest"), ("query-api", "query")):
        deployment = named(objects, "Deployment", component_name(component))
        env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        by_name = {e["name"]: e for e in env}
        assert by_name["TICKLAKE_REDIS_USERNAME"]["value"] == user
        ref = by_name["TICKLAKE_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref["key"] == f"{user}-password"
    secret = named(objects, "Secret", component_name("redis"))
    assert set(secret["data"]) == {"redis-password", "ingest-password", "query-password"}
    assert len(set(secret["data"].values())) == 3  # three different passwords


def test_without_acl_both_services_use_the_main_password() -> None:
    objects = parse(template(sets=["redis.acl.enabled=false"]))
    for component in ("ingest", "query-api"):
        env = container_env(objects, named(objects, "Deployment", component_name(component)))
        assert "TICKLAKE_REDIS_USERNAME" not in env
    assert "user ingest" not in _redis_script(objects)


def test_the_rendered_redis_command_enforces_the_users(tmp_path: Path) -> None:
    script = _redis_script(render("defaults"))
    secrets, run, data = tmp_path / "secrets", tmp_path / "run", tmp_path / "data"
    for d in (secrets, run, data):
        d.mkdir()
    for name, value in PASSWORDS.items():
        (secrets / name).write_text(value)
    port = ports.free_port()
    # The container's paths and port, on this machine.
    local = (
        script.replace("/run/secrets/redis", str(secrets))
        .replace("/run/redis", str(run))
        .replace("--dir /data", f"--dir {data}")
        .replace("--port 6379", f"--port {port} --bind 127.0.0.1")
        .replace("exec redis-server", f"exec {redis_server_binary()}")
    )
    proc = subprocess.Popen(["sh", "-c", local], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ports.wait_until(lambda: ports.port_open(port) or proc.poll() is not None, 20,
                         "the chart's Redis command")  # fmt: skip
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        ingest = redis.Redis(port=port, username="ingest", password="ingest-pw")
        query = redis.Redis(port=port, username="query", password="query-pw")
        admin = redis.Redis(port=port, password="main-pw")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _pings(admin):
            time.sleep(0.1)
        ingest.hset(latest_key("CHART"), "price", "1")
        ingest.publish(TICKS_CHANNEL, "[]")
        assert query.hget(latest_key("CHART"), "price") == b"1"
        with pytest.raises(NoPermissionError):
            query.hset(latest_key("CHART"), "price", "2")
        with pytest.raises(NoPermissionError):
            ingest.flushall()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, username="query", password="ingest-pw").ping()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
