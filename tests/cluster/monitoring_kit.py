"""The Prometheus Operator and skaffold's release on the one-node cluster (session fixtures).

``monitoring``: the Prometheus Operator v0.93.0 with every CRD of its module
(the three the chart uses checked byte for byte against the upstream files
recorded in ``../shared/k8s-crds``), running as a pod under the identity and
RBAC of ``tests/cluster/monitoring/operator.yaml``, and the ``Prometheus`` of
``tests/cluster/monitoring/prometheus.yaml``. The operator, its config
reloader and Prometheus 3.13.1 are the binaries ``tools/k8s/build-monitoring.sh``
builds, each packed ``FROM scratch`` into an image loaded into the node.

``skaffold_dev``: what ``skaffold dev`` deploys (profile ``dev``), built and
deployed by ``skaffold_kit`` into skaffold.yaml's namespace ``ticklake``, with
the monitoring test values (short scrape interval and ``for:``). It needs the
CRDs, as a kind user's cluster has them from kube-prometheus-stack.

Both are removed after the last test of tests/cluster (``add_session_cleanup``):
namespaces, CRDs, image tags.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import skaffold_kit
import yaml
from chartrun import remove_namespace
from nodekit import add_session_cleanup, eventually, port_forward, require

from ticklake.devstack import kubeapi, paths
from ticklake.devstack.cluster import scratch_image
from ticklake.devstack.cluster.cluster import Cluster
from ticklake.devstack.skaffold import HelmRelease, Skaffold

ROOT = Path(__file__).resolve().parents[2]
MONITORING = Path(__file__).resolve().parent / "monitoring"
BUILD_SCRIPT = ROOT / "tools" / "k8s" / "build-monitoring.sh"
OPERATOR_VERSION = "v0.93.0"
PROMETHEUS_VERSION = "v3.13.1"
CRD_BUNDLE = f"prometheus-operator-{OPERATOR_VERSION}"
MONITORING_NAMESPACE = "monitoring"
PROMETHEUS_NAME = "ticklake-test"
TEST_VALUES = MONITORING / "ticklake-values.yaml"

# (binary in the tool cache, image reference of the manifests, path in the image)
IMAGES = (
    ("prometheus-operator", f"ticklake.test/prometheus-operator:{OPERATOR_VERSION}",
     "/bin/operator"),
    ("prometheus-config-reloader",
     f"ticklake.test/prometheus-config-reloader:{OPERATOR_VERSION}",
     "/bin/prometheus-config-reloader"),
    ("prometheus-kubernetes", f"ticklake.test/prometheus:{PROMETHEUS_VERSION}", "/bin/prometheus"),
)  # fmt: skip


def monitoring_binaries() -> Path:
    """The tool cache with the three binaries; built on first use by the project's script."""
    bin_dir = kubeapi.cache_bin_dir()
    wanted = [name for name, _, _ in IMAGES] + [f"{CRD_BUNDLE}-crds.path"]
    if any(not (bin_dir / w).exists() for w in wanted):
        subprocess.run(["bash", str(BUILD_SCRIPT)], check=False)
    missing = [w for w in wanted if not (bin_dir / w).exists()]
    if missing:
        require([f"{', '.join(missing)} in {bin_dir}: run `bash {BUILD_SCRIPT.relative_to(ROOT)}`"
                 " (or `make install-test`)"])  # fmt: skip
    return bin_dir


def operator_crd_dir(bin_dir: Path) -> Path:
    return Path((bin_dir / f"{CRD_BUNDLE}-crds.path").read_text().strip())


def crds_match_shared_records(crd_dir: Path) -> dict[str, str]:
    """Each upstream file recorded in ../shared/k8s-crds has the same sha256 in the module's CRDs.

    Returns {file: sha256}; raises AssertionError naming a file that differs.
    """
    checked = {}
    for record_file in sorted((paths.shared_dir() / "k8s-crds" / CRD_BUNDLE).glob("*.json")):
        source = json.loads(record_file.read_text())["source"]
        assert source["release"] == OPERATOR_VERSION, record_file
        path = crd_dir / Path(source["file"]).name
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == source["sha256"], f"{path} is not the upstream file {record_file} records"
        checked[path.name] = digest
    assert checked, f"no records under {paths.shared_dir() / 'k8s-crds' / CRD_BUNDLE}"
    return checked


# ---------------------------------------------------------------- Prometheus API


@dataclass
class PrometheusAPI:
    port: int

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        url = f"http://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")
        with urllib.request.urlopen(url, timeout=15) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single value of a one-series query, None when it has no series."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def alerts(self, namespace: str) -> dict[str, str]:
        """{alertname: state} of the namespace's pending and firing alerts."""
        return {
            a["labels"]["alertname"]: a["state"]
            for a in self.get("/api/v1/alerts")["alerts"]
            if a["labels"].get("namespace") == namespace
        }


@dataclass
class Monitoring:
    cluster: Cluster
    crd_dir: Path
    crd_digests: dict[str, str]
    prometheus: PrometheusAPI | None = None


@dataclass
class SkaffoldRun:
    cluster: Cluster
    config: Skaffold
    release: HelmRelease
    helm_args: list[str]
    built: list[skaffold_kit.Built]
    extra_values: list[Path]
    workloads: list[str]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        assert self.release.namespace
        return self.release.namespace

    def kubectl(self, *args: str, **kw: Any) -> str:
        return self.cluster.kubectl("-n", self.namespace, *args, **kw)


def _delete_manifests(cluster: Cluster, path: Path) -> None:
    cluster.kubectl("delete", "-f", str(path), "--ignore-not-found", "--wait=true",
                    check=False, timeout=300)  # fmt: skip


def _remove_monitoring(cluster: Cluster, crd_dir: Path) -> None:
    print(cluster.kubectl("-n", MONITORING_NAMESPACE, "logs", "deployment/prometheus-operator",
                          "--tail=5", check=False))  # fmt: skip
    _delete_manifests(cluster, MONITORING / "prometheus.yaml")
    _delete_manifests(cluster, MONITORING / "operator.yaml")
    cluster.kubectl("delete", "-f", str(crd_dir), "--ignore-not-found", check=False,
                    timeout=300)  # fmt: skip


@pytest.fixture(scope="session")
def monitoring(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Monitoring:
    """The operator and its Prometheus; removed after the last test of tests/cluster."""
    bin_dir = monitoring_binaries()
    crd_dir = operator_crd_dir(bin_dir)
    digests = crds_match_shared_records(crd_dir)
    work = tmp_path_factory.mktemp("monitoring")
    archives = []
    for binary, ref, inside in IMAGES:
        archive = work / f"{binary}.tar"
        scratch_image.write_scratch_archive(archive, ref, bin_dir / binary,
                                            path_in_image=inside, user="65534:65534")  # fmt: skip
        archives.append(archive)
    cluster.load_images(archives)
    add_session_cleanup(lambda: _remove_monitoring(cluster, crd_dir))
    # The Prometheus CRD is larger than client-side apply's annotation allows.
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd_dir))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(crd_dir))
    cluster.kubectl("apply", "-f", str(MONITORING / "operator.yaml"))
    operator = "deployment/prometheus-operator"
    cluster.kubectl("-n", MONITORING_NAMESPACE, "rollout", "status", operator,
                    "--timeout=180s", timeout=190)  # fmt: skip
    cluster.kubectl("apply", "-f", str(MONITORING / "prometheus.yaml"))
    statefulset = f"statefulset/prometheus-{PROMETHEUS_NAME}"
    eventually(
        lambda: cluster.kubectl("-n", MONITORING_NAMESPACE, "get", statefulset, "-o", "name"),
        bool, what=f"the operator's {statefulset}", timeout_s=120,
    )  # fmt: skip
    cluster.kubectl("-n", MONITORING_NAMESPACE, "rollout", "status", statefulset,
                    "--timeout=180s", timeout=190)  # fmt: skip
    return Monitoring(cluster, crd_dir, digests)


@pytest.fixture(scope="session")
def skaffold_dev(
    cluster: Cluster, monitoring: Monitoring, tmp_path_factory: pytest.TempPathFactory
) -> SkaffoldRun:
    """skaffold.yaml's release as ``skaffold dev`` deploys it (profile dev), monitoring on;
    removed (namespace, volume, image tags) after the last test of tests/cluster."""
    work = tmp_path_factory.mktemp("skaffold")
    config = skaffold_kit.read(["dev"])
    (release,) = config.releases
    assert release.namespace
    namespace = release.namespace
    timings: dict[str, float] = {}
    started = time.monotonic()
    built = [skaffold_kit.build(config, a) for a in config.artifacts]
    timings["build"] = time.monotonic() - started

    def remove() -> None:
        try:
            remove_namespace(cluster, namespace)
        finally:
            skaffold_kit.forget(cluster, built)  # the list the edit loop updates

    add_session_cleanup(remove)
    redis = skaffold_kit.prepare_namespace(cluster, namespace, work)
    cluster_values = work / "cluster-values.yaml"
    cluster_values.write_text(
        yaml.safe_dump(skaffold_kit.cluster_values(cluster, namespace, redis))
    )
    extra = [cluster_values, TEST_VALUES]
    t0 = time.monotonic()
    skaffold_kit.load(cluster, built, work / "artifacts.tar")
    timings["load"] = time.monotonic() - t0
    t0 = time.monotonic()
    release, args = skaffold_kit.deploy(cluster, config, built, extra)
    timings["deploy"] = time.monotonic() - t0
    workloads = skaffold_kit.rollouts(cluster, namespace)
    print(f"skaffold dev plan: built {[round(b.seconds, 1) for b in built]}s, " +
          ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))  # fmt: skip
    return SkaffoldRun(cluster, config, release, args, built, extra, workloads, timings)


@pytest.fixture(scope="session")
def prometheus(monitoring: Monitoring) -> Iterator[PrometheusAPI]:
    """Prometheus's HTTP API through ``kubectl port-forward`` to the operator's Service."""
    with port_forward(monitoring.cluster, "svc/prometheus-operated", "web",
                      namespace=MONITORING_NAMESPACE) as port:  # fmt: skip
        api = PrometheusAPI(port)
        eventually(lambda: api.get("/api/v1/status/buildinfo"), bool,
                   what="Prometheus's API", timeout_s=60)  # fmt: skip
        monitoring.prometheus = api
        yield api
