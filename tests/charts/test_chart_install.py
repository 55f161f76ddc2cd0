"""helm install and upgrade against a real Kubernetes API server.

The API server (etcd + kube-apiserver from ``tools/k8s/build.sh``, no kubelet;
one per session, see ``conftest.py``) validates every object server-side
against the real CRDs: Strimzi 1.2.0, prometheus-operator v0.93.0 (both from
``../shared/k8s-crds``) and the chart's own. Pods never start (there is no
kubelet), so nothing waits for readiness; what is proven is that the API
server accepts each CI value set and that an upgrade keeps the generated Redis
password. That nothing is pruned is ``test_chart_matrix.py``'s job.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from chartkit import CHART, VALUE_SETS, parse, run, tool

NAMESPACE = "tl-install"
SETS = [
    "kafka.strimzi.enabled=false",
    "kafka.external.bootstrapServers=kafka.data.svc:9092",
]


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


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_ci_value_set_installs(kubeconfig: str, value_set: str) -> None:
    namespace = f"ci-{value_set}"
    files = [a for f in VALUE_SETS[value_set] for a in ("-f", str(CHART / f))]
    helm(kubeconfig, "install", "ticklake", str(CHART), "-n", namespace, "--create-namespace",
         *files)  # fmt: skip
    listed = yaml.safe_load(helm(kubeconfig, "list", "-n", namespace, "-o", "yaml"))
    assert [(r["name"], r["status"]) for r in listed] == [("ticklake", "deployed")]
