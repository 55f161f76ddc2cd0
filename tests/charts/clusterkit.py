"""The session's real API server for the chart tests, with the real CRDs.

etcd + kube-apiserver (``tools/k8s/build.sh``, no kubelet) start once, on
first use, and get the upstream CRDs from ``../shared/k8s-crds``: Strimzi
1.2.0 and prometheus-operator v0.93.0, plus the chart's own IngestScaler CRD.
:meth:`ChartCluster.use_strimzi` swaps the Strimzi CRDs for another bundle
(0.51.0); objects already stored stay. Tests that need pods
(``test_chart_install_workloads.py``) start their own server with the
controllers and kwok.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from applykit import KubeClient
from chartkit import CHART
from crdkit import PROMETHEUS_OPERATOR_BUNDLE, STRIMZI_BUNDLES, bundle

from ticklake.devstack import kubeapi


@dataclass
class ChartCluster:
    server: kubeapi.KubeAPIServer
    client: KubeClient
    strimzi: str = ""

    @property
    def kubeconfig(self) -> str:
        return str(self.server.kubeconfig)

    def use_strimzi(self, name: str) -> None:
        """Serve the Strimzi CRDs of bundle ``name`` (replacing the others)."""
        if self.strimzi != name:
            self.client.install_crds(c.crd_object() for c in bundle(name))
            self.strimzi = name


def upstream_crd_objects(strimzi: str = STRIMZI_BUNDLES[0]) -> list[dict[str, object]]:
    """Every CRD a full install of the chart needs: Strimzi's, prometheus-operator's
    and the chart's own."""
    crds: list[dict[str, object]] = [
        c.crd_object() for c in (*bundle(strimzi), *bundle(PROMETHEUS_OPERATOR_BUNDLE))
    ]
    for path in sorted((CHART / "crds").glob("*.yaml")):
        crds += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return crds


def install_upstream_crds(server: kubeapi.KubeAPIServer, strimzi: str = STRIMZI_BUNDLES[0]) -> None:
    KubeClient(server.url, server.ssl_context()).install_crds(upstream_crd_objects(strimzi))
