"""The chart's Redis users: the rules are hot_cache's, each service gets its own user, and
the chart's Redis command, run as rendered by Debian's redis-server, enforces them."""

from __future__ import annotations

import base64
import re
import subprocess
import time
from pathlib import Path

import pytest
import redis
from charts.chartkit import NAMESPACE, component_name, container_env, named, parse, render
from charts.chartkit import helm_template as template
from cryptography import x509
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


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
def test_the_rendered_redis_command_enforces_the_users(tmp_path: Path, tls: bool) -> None:
    objects = render("defaults") if tls else parse(template(sets=["redis.tls.enabled=false"]))
    script = _redis_script(objects)
    secrets, tls_dir = tmp_path / "secrets", tmp_path / "tls"
    run, data = tmp_path / "run", tmp_path / "data"
    for d in (secrets, tls_dir, run, data):
        d.mkdir()
    for name, value in PASSWORDS.items():
        (secrets / name).write_text(value)
    if tls:
        # The chart's generated CA and certificate, as the pod mounts them.
        generated = named(objects, "Secret", component_name("redis") + "-tls")["data"]
        for key, value in generated.items():
            (tls_dir / key).write_bytes(base64.b64decode(value))
    port = ports.free_port()
    # The container's paths and port, on this machine.
    local = (
        script.replace("/run/secrets/redis-tls", str(tls_dir))
        .replace("/run/secrets/redis", str(secrets))
        .replace("/run/redis", str(run))
        .replace("--dir /data", f"--dir {data}")
        .replace("--port 6379", f"--port {port} --bind 127.0.0.1")
        .replace("--tls-port 6379", f"--tls-port {port} --bind 127.0.0.1")
        .replace("exec redis-server", f"exec {redis_server_binary()}")
    )
    assert ("--tls-port" in local) == tls
    proc = subprocess.Popen(["sh", "-c", local], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def client(**kwargs: str) -> redis.Redis:
        if not tls:
            return redis.Redis(port=port, **kwargs)
        # As the services connect: the CA the chart mounts, the certificate verified
        # (127.0.0.1 is among its names, for the probes).
        return redis.Redis(port=port, ssl=True, ssl_ca_certs=str(tls_dir / "ca.crt"),
                           ssl_cert_reqs="required", ssl_check_hostname=True, **kwargs)  # fmt: skip

    try:
        ports.wait_until(lambda: ports.port_open(port) or proc.poll() is not None, 20,
                         "the chart's Redis command")  # fmt: skip
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        ingest = client(username="ingest", password="ingest-pw")
        query = client(username="query", password="query-pw")
        admin = client(password="main-pw")
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
            client(username="query", password="ingest-pw").ping()
        if tls:
            # the plain protocol on the TLS port gets nowhere
            with pytest.raises(redis.ConnectionError):
                redis.Redis(port=port, password="main-pw", socket_timeout=3).ping()
            # nor does TLS against another CA
            with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
                redis.Redis(port=port, password="main-pw", ssl=True, ssl_cert_reqs="required",
                            socket_timeout=3).ping()  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_generated_certificate_names_the_service_and_is_kept_apart_from_clients() -> None:
    objects = render("defaults")
    secret = named(objects, "Secret", component_name("redis") + "-tls")
    assert secret["type"] == "kubernetes.io/tls"
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    service = component_name("redis")
    assert {service, f"{service}.{NAMESPACE}.svc"} <= set(names.get_values_for_type(x509.DNSName))
    for component in ("ingest", "query-api"):
        deployment = named(objects, "Deployment", component_name(component))
        env = container_env(objects, deployment)
        assert env["TICKLAKE_REDIS_URL"] == f"rediss://{service}:6379/0"
        assert env["TICKLAKE_REDIS_TLS_CA_FILE"] == "/etc/ticklake/redis-ca/ca.crt"
        (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"]
                     if v["name"] == "redis-ca"]  # fmt: skip
        # only the CA reaches the services, never Redis's key
        assert volume["secret"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
