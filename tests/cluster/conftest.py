"""The real one-node cluster (``ticklake.devstack.cluster``) as a session fixture.

Brought up once per test session, or reused if one is already running and
healthy (then left running). ``TICKLAKE_CLUSTER_KEEP=1`` keeps a cluster this
session started, for fast iteration; ``ticklake-stack cluster down`` stops it.
Needs root and the packages ``tools/bootstrap.sh --test`` installs; with
``CI=true`` a missing prerequisite fails the tests, elsewhere it skips them.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from chartrun import (
    NAMESPACE,
    RELEASE,
    Release,
    build_and_load,
    remove_namespace,
    require_images,
)
from monitoring_kit import monitoring, prometheus, skaffold_dev  # noqa: F401  (session fixtures)
from nodekit import add_session_cleanup, require, run_session_cleanups

from ticklake.devstack.cluster.cluster import BUILT_BINARIES, Cluster, missing_prerequisites
from ticklake.devstack.cluster.release import install, kafka_bootstrap

if TYPE_CHECKING:
    from ticklake.devstack.images import BuiltImage

ROOT = Path(__file__).resolve().parents[2]
_HERE = Path(__file__).resolve().parent
_last_item: list[str] = []
_to_stop: list[Cluster] = []
_session = contextlib.ExitStack()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = [i.nodeid for i in items if Path(i.path).resolve().is_relative_to(_HERE)]
    _last_item[:] = here[-1:]


def pytest_runtest_teardown(item: pytest.Item) -> None:
    # The cluster takes a minute to start, so it is session-scoped; but it must
    # not load the 2-core machine while the rest of the suite runs: remove what
    # the tests installed and stop the cluster after the last test of this folder.
    if _last_item and item.nodeid == _last_item[0]:
        _finish()


def _finish() -> None:
    """Remove what the session installed, stop a cluster it started, let others in."""
    try:
        run_session_cleanups()
    finally:
        for cluster in _to_stop:
            cluster.down(log=lambda _: None)
        _to_stop.clear()
        _session.close()


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
    # One test session at a time on the machine's cluster (released after the
    # last test of this folder, so the rest of the suite does not hold it).
    _session.enter_context(c.exclusive_use())
    started = time.monotonic()
    if c.up(log=print):
        print(f"cluster up in {time.monotonic() - started:.1f}s")
        if not os.environ.get("TICKLAKE_CLUSTER_KEEP"):
            _to_stop.append(c)
    yield c
    _finish()


@pytest.fixture(scope="session")
def node_images(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> list[BuiltImage]:
    """All of ``ticklake.devstack.images`` (four services, Kafka, Redis), built with
    podman (cached by their inputs) and imported into the node's containerd."""
    require_images()
    return build_and_load(cluster, tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def release(
    cluster: Cluster, node_images: list[BuiltImage], tmp_path_factory: pytest.TempPathFactory
) -> Release:
    """charts/ticklake installed by ``helm install --wait`` in a fresh namespace
    (external-Kafka mode against a Kafka pod, the lake on a hostPath volume);
    the namespace is deleted after the last test of the folder."""
    # A fresh namespace, lake and Kafka per session (a crashed session may
    # have left one); removed again after the last test of the folder.
    add_session_cleanup(lambda: remove_namespace(cluster, NAMESPACE))
    token = install(cluster, NAMESPACE, RELEASE, node_images, tmp_path_factory.mktemp("chart"))
    return Release(cluster, NAMESPACE, RELEASE, kafka_bootstrap(NAMESPACE), api_token=token)
