"""The real one-node cluster (``ticklake.devstack.cluster``) as a session fixture.

Brought up once per test session, or reused if one is already running and
healthy (then left running). ``TICKLAKE_CLUSTER_KEEP=1`` keeps a cluster this
session started, for fast iteration; ``ticklake-stack cluster down`` stops it.
Needs root and the packages ``tools/bootstrap.sh --test`` installs; with
``CI=true`` a missing prerequisite fails the tests, elsewhere it skips them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from chartrun import (
    CHART,
    NAMESPACE,
    RELEASE,
    Release,
    build_and_load,
    create_topics,
    helm,
    kafka_manifests,
    release_values,
    require_images,
)
from nodekit import require

from ticklake.devstack.cluster.cluster import BUILT_BINARIES, Cluster, missing_prerequisites

ROOT = Path(__file__).resolve().parents[2]
_HERE = Path(__file__).resolve().parent
_last_item: list[str] = []
_to_stop: list[Cluster] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = [i.nodeid for i in items if Path(i.path).resolve().is_relative_to(_HERE)]
    _last_item[:] = here[-1:]


def pytest_runtest_teardown(item: pytest.Item) -> None:
    # The cluster takes a minute to start, so it is session-scoped; but it must
    # not load the 2-core machine while the rest of the suite runs: stop it
    # after the last test of this folder.
    if _last_item and item.nodeid == _last_item[0]:
        for cluster in _to_stop:
            cluster.down(log=lambda _: None)
        _to_stop.clear()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The machine's one-node cluster, Ready, with CoreDNS running."""
    c = Cluster()
    if os.geteuid() != 0:
        require(["root (network namespace, mounts, cgroups)"])
    if any(not os.access(c.bin_dir / b, os.X_OK) for b in BUILT_BINARIES):
        # Built on first use, like the API server's binaries (minutes, cached).
        subprocess.run(["bash", str(ROOT / "tools" / "k8s" / "build.sh")], check=False)
    require(missing_prerequisites(c.bin_dir))
    started = c.up(log=print)
    if started and not os.environ.get("TICKLAKE_CLUSTER_KEEP"):
        _to_stop.append(c)
    yield c
    for leftover in _to_stop:
        leftover.down(log=lambda _: None)
    _to_stop.clear()


@pytest.fixture(scope="session")
def release(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    require_images()
    tmp = tmp_path_factory.mktemp("chart")
    built = build_and_load(cluster, tmp)
    # A fresh namespace, lake and Kafka per session. The operator's kopf
    # finalizer would hold the namespace forever once the operator is gone:
    # stop the operator first, then drop the finalizers.
    cluster.kubectl("-n", NAMESPACE, "delete", "deployment", "-l",
                    "app.kubernetes.io/component=operator", "--wait=true", check=False)  # fmt: skip
    for scaler in cluster.kubectl("-n", NAMESPACE, "get", "ingestscalers", "-o", "name",
                                  check=False).split():  # fmt: skip
        cluster.kubectl("-n", NAMESPACE, "patch", scaler, "--type=merge",
                        "-p", '{"metadata":{"finalizers":[]}}', check=False)  # fmt: skip
    cluster.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true",
                    timeout=300)  # fmt: skip
    cluster.kubectl("delete", "pv", f"lake-{NAMESPACE}", "--ignore-not-found")
    shutil.rmtree(cluster.layout.volumes / f"lake-{NAMESPACE}", ignore_errors=True)
    cluster.kubectl("create", "namespace", NAMESPACE)
    kafka_image = next(b.ref for b in built if b.name == "kafka")
    cluster.apply(kafka_manifests(NAMESPACE, kafka_image))
    pv = cluster.host_path_volume(f"lake-{NAMESPACE}", capacity="2Gi")
    cluster.apply([pv])
    cluster.kubectl("-n", NAMESPACE, "rollout", "status", "deployment/kafka", "--timeout=300s",
                    timeout=310)  # fmt: skip
    create_topics(cluster, NAMESPACE)
    values = tmp / "values.yaml"
    values.write_text(yaml.safe_dump(release_values(NAMESPACE, built, cluster)))
    started = time.monotonic()
    helm(cluster, "install", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(values),
         "--wait", "--timeout", "10m", timeout=620)  # fmt: skip
    print(f"chart Running and Ready {time.monotonic() - started:.1f}s after helm install")
    yield Release(cluster, NAMESPACE, RELEASE, f"kafka.{NAMESPACE}.svc.cluster.local:9092")
