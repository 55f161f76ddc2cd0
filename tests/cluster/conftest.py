"""The real one-node cluster (``ticklake.devstack.cluster``) as a session fixture.

Brought up once per test session, or reused if one is already running and
healthy (then left running). ``TICKLAKE_CLUSTER_KEEP=1`` keeps a cluster this
session started, for fast iteration; ``ticklake-stack cluster down`` stops it.
Needs root and the packages ``tools/bootstrap.sh --test`` installs; with
``CI=true`` a missing prerequisite fails the tests, elsewhere it skips them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
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
