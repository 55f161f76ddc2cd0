"""helm install and upgrade against a real Kubernetes API server.

The API server (etcd + kube-apiserver from ``tools/k8s/build.sh``, no kubelet)
validates every object server-side, including the IngestScaler against the
chart's CRD and the ServiceMonitors/PrometheusRule against the Prometheus
Operator's CRDs (installed first from the prometheus-operator Go module). The
Strimzi CRDs are not available from any registry, so this release uses an
external Kafka. Pods never start (there is no kubelet), so nothing waits for
readiness; what is proven is that the API server accepts the release and that
an upgrade keeps the generated Redis password.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from chartkit import CHART, ROOT, parse, prometheus_operator_crds, run, tool

from ticklake.devstack import kubeapi

NAMESPACE = "tl-install"
SETS = [
    "kafka.strimzi.enabled=false",
    "kafka.external.bootstrapServers=kafka.data.svc:9092",
]


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    kubeapi.ensure_binaries(ROOT / "tools" / "k8s" / "build.sh")
    with kubeapi.KubeAPIServer() as server:
        config = str(server.kubeconfig)
        # The Prometheus Operator's CRDs, installed the way helm installs any
        # chart's crds/ folder.
        crd_chart = tmp_path_factory.mktemp("prometheus-operator-crds")
        (crd_chart / "Chart.yaml").write_text("apiVersion: v2\nname: po-crds\nversion: 0.0.1\n")
        (crd_chart / "crds").mkdir()
        for name in ("servicemonitors", "prometheusrules"):
            source = prometheus_operator_crds() / f"monitoring.coreos.com_{name}.yaml"
            shutil.copy(source, crd_chart / "crds" / source.name)
        helm(config, "install", "po-crds", str(crd_chart), "--namespace", "default")
        yield config


def helm(kubeconfig: str, *args: str) -> str:
    result = run([tool("helm"), "--kubeconfig", kubeconfig, *args], timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def redis_password(kubeconfig: str, revision: int) -> str:
    manifest = helm(kubeconfig, "get", "manifest", "ticklake", "-n", NAMESPACE,
                    "--revision", str(revision))  # fmt: skip
    secrets = [o for o in parse(manifest) if o["kind"] == "Secret"]
    (secret,) = [o for o in secrets if o["metadata"]["name"] == "ticklake-redis"]
    return base64.b64decode(secret["data"]["redis-password"]).decode()


def test_the_api_server_accepts_the_release_and_upgrades_keep_the_password(
    kubeconfig: str,
) -> None:
    sets = [a for s in SETS for a in ("--set", s)]
    helm(kubeconfig, "install", "ticklake", str(CHART), "-n", NAMESPACE, "--create-namespace",
         *sets)  # fmt: skip
    listed = yaml.safe_load(helm(kubeconfig, "list", "-n", NAMESPACE, "-o", "yaml"))
    assert [(r["name"], r["status"]) for r in listed] == [("ticklake", "deployed")]
    manifest = parse(helm(kubeconfig, "get", "manifest", "ticklake", "-n", NAMESPACE))
    kinds = {o["kind"] for o in manifest}
    assert {"IngestScaler", "ServiceMonitor", "PrometheusRule", "NetworkPolicy",
            "StatefulSet", "PodDisruptionBudget"} <= kinds  # fmt: skip
    first = redis_password(kubeconfig, 1)
    assert len(first) == 32

    # An upgrade that changes settings re-renders the Secret: lookup finds the
    # stored password, so Redis and the services keep agreeing.
    helm(kubeconfig, "upgrade", "ticklake", str(CHART), "-n", NAMESPACE, *sets,
         "--set", "logLevel=DEBUG", "--set", "redis.auth.password=ignored-on-upgrade")  # fmt: skip
    assert redis_password(kubeconfig, 2) == first


def test_the_api_server_refuses_a_bad_ingestscaler(kubeconfig: str, tmp_path: Path) -> None:
    """The chart's CRD is really enforced (so the acceptance above means something)."""
    scaler = {
        "apiVersion": "ticklake.dev/v1alpha1",
        "kind": "IngestScaler",
        "metadata": {"name": "bad", "namespace": "default"},
        "spec": {
            "targetRef": {"kind": "Pod", "name": "x"},
            "kafka": {"bootstrapServers": "k:9092"},
        },
    }
    chart = tmp_path / "bad"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: bad\nversion: 0.0.1\n")
    (chart / "templates" / "scaler.yaml").write_text(yaml.safe_dump(scaler))
    result = run([tool("helm"), "--kubeconfig", kubeconfig, "install", "bad", str(chart)])
    assert result.returncode != 0
    assert "targetRef.kind" in result.stderr, result.stderr
