"""The container images, built for real with podman and run.

The first test builds every image (``images.build()``, cached across runs by
a hash of each image's inputs); the others run the images the way the chart
does: non-root, read-only root filesystem, /tmp as the only writable place.
Kafka and Redis are reached from the host through a port published on
127.0.0.1 (slirp4netns: user-mode networking, nothing changed on the host).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ticklake.devstack import images, kafka, ports

# A cold build of all six images takes minutes on two cores.
pytestmark = pytest.mark.timeout(2400)

# Image name: (the program's package, packages that must not be in the image).
PACKAGES = {
    "producer": ("ticklake.producer", ["ticklake.ingest", "ticklake.query", "ticklake.operator"]),
    "ingest": ("ticklake.ingest", ["ticklake.producer", "ticklake.query", "ticklake.operator"]),
    "query-api": ("ticklake.query", ["ticklake.producer", "ticklake.ingest", "ticklake.operator"]),
    "operator": ("ticklake.operator", ["ticklake.producer", "ticklake.ingest", "ticklake.query"]),
}
# Like the chart: non-root, read-only root, an emptyDir on /tmp, no network.
LOCKED_DOWN = ["--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp", "--no-healthcheck",
               "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]  # fmt: skip


def require_tools() -> None:
    missing = [tool for tool in ("podman", "mmdebstrap", "runc") if shutil.which(tool) is None]
    if not missing:
        return
    message = (
        f"{', '.join(missing)} not installed: apt-get install podman runc mmdebstrap "
        "slirp4netns (tools/bootstrap.sh --test installs them)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def built() -> dict[str, images.BuiltImage]:
    require_tools()
    return {image.name: image for image in images.build()}


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return images.podman("run", *args, check=False, timeout=timeout)


def test_every_image_is_built_and_tagged(built: dict[str, images.BuiltImage]) -> None:
    assert sorted(built) == sorted(images.NAMES)
    for image in built.values():
        assert image.ref.startswith(images.REPOSITORY_PREFIX), image.ref
        assert images.inspect(image.ref) is not None
        assert image.size_bytes > 50_000_000, image


def test_a_second_build_is_cached(built: dict[str, images.BuiltImage]) -> None:
    again = images.build(["query-api", "redis"])
    assert all(image.cached for image in again)
    assert {i.ref: i.image_id for i in again} == {
        built[n].ref: built[n].image_id for n in ("query-api", "redis")
    }


@pytest.mark.parametrize("name", images.SERVICE_NAMES)
def test_program_starts_as_10001_on_a_read_only_root(
    built: dict[str, images.BuiltImage], name: str
) -> None:
    ref = built[name].ref
    result = run(*LOCKED_DOWN, ref, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
    script = (
        "id -u; id -g; stat -c %u:%g /var/lib/ticklake/lake; "
        "if touch /probe 2>/dev/null; then echo root-writable; fi; "
        "touch /tmp/probe && echo tmp-writable"
    )
    result = run(*LOCKED_DOWN, "--entrypoint", "sh", ref, "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["10001", "10001", "10001:10001", "tmp-writable"]


@pytest.mark.parametrize("name", images.SERVICE_NAMES)
def test_image_holds_its_program_only_no_build_tools_no_package_manager(
    built: dict[str, images.BuiltImage], name: str
) -> None:
    package, absent = PACKAGES[name]
    probe = (
        "import importlib, importlib.util, pkgutil, shutil, sys\n"
        f"root = importlib.import_module({package!r})\n"
        "names = [m.name for m in pkgutil.walk_packages(root.__path__, root.__name__ + '.')]\n"
        "for n in names: importlib.import_module(n)\n"
        f"present = [m for m in {absent!r} if importlib.util.find_spec(m) is not None]\n"
        "venv_bin = '/opt/ticklake/venv/bin'\n"
        "tools = [t for t in ('pip', 'uv') if shutil.which(t, path=venv_bin)]\n"
        "tools += [t for t in ('uv', 'gcc', 'cc', 'strip', 'apt-get', 'perl', 'bash')\n"
        "          if shutil.which(t)]\n"
        # The trimmed base's package list stays true: what was removed is not listed.
        "status = open('/var/lib/dpkg/status').read().split('\\n\\n')\n"
        "listed = [p for p in ('apt', 'perl-base', 'bash') if any(\n"
        "    s.startswith(f'Package: {p}\\n') for s in status)]\n"
        "print(len(names), present, tools + listed)\n"
    )
    result = run(*LOCKED_DOWN, "--entrypoint", "python", built[name].ref, "-c", probe)
    assert result.returncode == 0, result.stderr
    count, rest = result.stdout.split(" ", 1)
    assert int(count) > 3
    assert rest.strip() == "[] []"


async def _round_trip(bootstrap: str) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait("image-test", f"tick-{i}".encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        "image-test", bootstrap_servers=bootstrap, auto_offset_reset="earliest",
        group_id="image-test",
    )  # fmt: skip
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < 3:
            batch = await consumer.getmany(timeout_ms=1000)
            values += [m.value for records in batch.values() for m in records if m.value]
        return values
    finally:
        await consumer.stop()


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"ticklake-test-{uuid.uuid4().hex[:8]}"
    yield name
    images.podman("rm", "--force", "--volumes", "--time", "5", name, check=False)


def _published(port: int, container_port: int) -> list[str]:
    # User-mode networking: the port is forwarded by a process, no host rule.
    return ["--network", "slirp4netns", "--publish", f"127.0.0.1:{port}:{container_port}"]


def owned_dir(path: Path, uid: int) -> Path:
    """A host folder for a container's writable mount, owned by ``uid``.

    (podman 4.3 ignores the mode of a --tmpfs mount: it is root's 0755.)
    """
    path.mkdir(parents=True)
    os.chown(path, uid, uid)
    return path


def test_kafka_image_round_trip_from_the_host(
    built: dict[str, images.BuiltImage], container_name: str, tmp_path: Path
) -> None:
    data = owned_dir(tmp_path / "data", 10001)
    port = ports.free_port()
    result = run(
        "--detach", "--name", container_name, *_published(port, 9092),
        "--read-only", "--tmpfs", "/tmp", "--volume", f"{data}:/var/lib/kafka/data",
        "--env", f"KAFKA_CLUSTER_ID={kafka.cluster_id()}",
        "--env", f"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://127.0.0.1:{port}",
        built["kafka"].ref,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    def started() -> bool:
        logs = images.podman("logs", container_name, check=False)
        state = images.podman("inspect", "--format", "{{.State.Running}}", container_name)
        if state.stdout.strip() != "true":
            raise AssertionError(f"Kafka exited:\n{logs.stdout}{logs.stderr}")
        return "Kafka Server started" in logs.stdout + logs.stderr

    ports.wait_until(started, 120, "Kafka in its container")
    values = asyncio.run(asyncio.wait_for(_round_trip(f"127.0.0.1:{port}"), 90))
    assert values == [b"tick-0", b"tick-1", b"tick-2"]


def test_kafka_image_refuses_to_format_without_a_cluster_id(
    built: dict[str, images.BuiltImage], tmp_path: Path
) -> None:
    data = owned_dir(tmp_path / "data", 10001)
    result = run(*LOCKED_DOWN, "--volume", f"{data}:/var/lib/kafka/data", built["kafka"].ref)
    assert result.returncode == 2
    assert "KAFKA_CLUSTER_ID" in result.stderr


def test_redis_image_runs_the_charts_command_and_needs_the_password(
    built: dict[str, images.BuiltImage], container_name: str, tmp_path: Path
) -> None:
    password = uuid.uuid4().hex
    secret = tmp_path / "password"
    secret.write_text(password)
    secret.chmod(0o444)
    port = ports.free_port()
    # The chart's Redis container (templates/redis/statefulset.yaml): its UID,
    # its command, its volumes.
    script = (
        "umask 077\n"
        'printf \'requirepass "%s"\\n\' "$(cat /run/secrets/redis/password)" '
        "> /run/redis/redis.conf\n"
        "exec redis-server /run/redis/redis.conf --port 6379 --dir /data --appendonly no "
        "--save '' --protected-mode no\n"
    )
    result = run(
        "--detach", "--name", container_name, *_published(port, 6379),
        "--user", "10999:10999", "--read-only", "--no-healthcheck",
        "--tmpfs", "/tmp", "--volume", f"{owned_dir(tmp_path / 'data', 10999)}:/data",
        "--volume", f"{owned_dir(tmp_path / 'run', 10999)}:/run/redis",
        "--volume", f"{secret}:/run/secrets/redis/password:ro",
        "--entrypoint", "sh", built["redis"].ref, "-c", script,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ports.wait_until(lambda: ports.port_open(port), 30, "Redis in its container")
    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5)
    ports.wait_until(lambda: _pings(client), 30, "Redis PING")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port, socket_timeout=5).set("k", "v")
    # The chart's readiness probe, inside the container.
    probe = images.podman(
        "exec", container_name, "sh", "-c",
        'REDISCLI_AUTH="$(cat /run/secrets/redis/password)" redis-cli -p 6379 ping | grep -q PONG',
        check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_archive_holds_the_images(built: dict[str, images.BuiltImage], tmp_path: Path) -> None:
    refs = [built["redis"].ref, built["operator"].ref]
    archive = images.save_archive(refs, tmp_path / "images.tar")
    listing = subprocess.run(["tar", "-xOf", str(archive), "manifest.json"],
                             capture_output=True, text=True, check=True)  # fmt: skip
    for ref in refs:
        assert ref in listing.stdout


def test_chart_values_point_at_the_built_images(built: dict[str, images.BuiltImage]) -> None:
    values = images.chart_values(built.values())
    assert values["image"] == {"registry": "localhost", "pullPolicy": "Never"}
    assert values["queryApi"] == {"image": {"tag": built["query-api"].tag, "pullPolicy": "Never"}}
    assert values["redis"] == {
        "image": {"repository": "localhost/ticklake-redis", "tag": images.REDIS_TAG,
                  "pullPolicy": "Never"}
    }  # fmt: skip


# --------------------------------------------------------- pure functions


def test_target_inputs_follow_stages_and_copy_from() -> None:
    text = (
        "FROM python:3.11-slim AS workspace\nCOPY pyproject.toml uv.lock ./\n"
        "FROM workspace AS a-venv\nCOPY libs/core \\\n  libs/core\n"
        "FROM debian:bookworm-slim AS runtime\nRUN true\n"
        "FROM runtime AS a\nCOPY --from=a-venv /opt/v /opt/v\n"
        "FROM workspace AS b-venv\nCOPY services/b services/b\n"
    )
    stages = images.dockerfile_stages(text)
    assert images.target_inputs(stages, "a") == (
        {"pyproject.toml", "uv.lock", "libs/core"},
        {"python:3.11-slim", "debian:bookworm-slim"},
    )
    with pytest.raises(images.ImageError, match="no stage 'c'"):
        images.target_inputs(stages, "c")


def test_target_inputs_of_a_flattened_stage_name_no_scratch_base() -> None:
    text = (
        "FROM python:3.11-slim AS root\nCOPY tools/trim.sh /t\n"
        "FROM scratch AS runtime\nCOPY --from=root / /\n"
        "FROM runtime AS a\n"
    )
    assert images.target_inputs(images.dockerfile_stages(text), "a") == (
        {"tools/trim.sh"},
        {"python:3.11-slim"},
    )


def test_every_service_target_copies_its_own_sources() -> None:
    root = Path(__file__).resolve().parents[2]
    stages = images.dockerfile_stages((root / "Dockerfile").read_text())
    for name in images.SERVICE_NAMES:
        sources, bases = images.target_inputs(stages, name)
        assert bases == {"python:3.11-slim"}
        own = {n: f"services/{n}" for n in ("producer", "ingest", "query-api")}
        own["operator"] = "operator"
        assert own[name] in sources
        assert not {v for k, v in own.items() if k != name} & sources


def test_build_secrets_carry_the_hosts_index_but_no_host_paths(tmp_path: Path) -> None:
    settings = images.IndexSettings(
        ca_bundle=Path("/etc/ssl/certs/ca-certificates.crt"),
        index_url="https://mirror.example/simple",
        extra_index_urls=("https://extra.example/simple",),
        trusted_hosts=(),
    )
    pip_conf = images.pip_conf_text(settings)
    assert "index-url = https://mirror.example/simple" in pip_conf
    assert "cert = /etc/ssl/certs/ca-certificates.crt" in pip_conf
    assert 'index-url = "https://mirror.example/simple"' in images.uv_toml_text(settings)
    args = images.secret_args(settings, tmp_path)
    assert args.count("--secret") == 3
    bare = images.IndexSettings(None, None, (), ())
    assert images.uv_toml_text(bare) == "native-tls = true\n"
    assert images.secret_args(bare, tmp_path).count("--secret") == 2


def test_index_settings_come_from_the_environment_first() -> None:
    settings = images.host_index_settings(
        {"UV_INDEX_URL": "https://a.example/simple", "PIP_INDEX_URL": "https://b.example/simple"}
    )
    assert settings.index_url == "https://a.example/simple"


def test_podman_runs_with_this_machines_runtime_flags() -> None:
    require_tools()
    argv = images.podman_command("run", "--rm", "x")
    assert argv[1:6] == ["--runtime", "runc", "--cgroup-manager", "cgroupfs", "run"]
    assert argv[6:10] == ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
    assert "--ulimit" not in images.podman_command("images")
