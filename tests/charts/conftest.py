"""Fixtures of the chart tests: one real API server per session (clusterkit.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from applykit import KubeClient
from chartkit import ROOT
from clusterkit import ChartCluster, upstream_crd_objects
from crdkit import STRIMZI_BUNDLES

from ticklake.devstack import kubeapi


@pytest.fixture(scope="session")
def chart_cluster() -> Iterator[ChartCluster]:
    try:
        kubeapi.ensure_binaries(ROOT / "tools" / "k8s" / "build.sh")
    except kubeapi.KubeAPIError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{e}: run tools/k8s/build.sh (make install-test)")
        raise
    with kubeapi.KubeAPIServer() as server:
        client = KubeClient(server.url, server.ssl_context())
        client.install_crds(upstream_crd_objects())
        yield ChartCluster(server, client, STRIMZI_BUNDLES[0])


@pytest.fixture
def kubeconfig(chart_cluster: ChartCluster) -> str:
    """The admin kubeconfig of the session's API server (Strimzi 1.2.0 CRDs)."""
    chart_cluster.use_strimzi(STRIMZI_BUNDLES[0])
    return chart_cluster.kubeconfig
