"""helm install and upgrade against a real Kubernetes API server.

The API server (etcd + kube-apiserver from ``tools/k8s/build.sh``, no kubelet)
validates every object server-side, including the IngestScaler against the
chart's CRD and the ServiceMonitors/PrometheusRule against the Prometheus
Operator's CRDs (installed first from the prometheus-operator Go module). No
registry serves the Strimzi CRDs, so the Strimzi kinds are registered with
CRDs built from the hand-written schemas in ``schemas/`` (made structural, as
the API server requires); the real check of those objects is
``test_chart_schemas.py``. Pods never start (there is no kubelet), so nothing
waits for readiness; what is proven is that the API server accepts each CI
value set and that an upgrade keeps the generated Redis password.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartkit import CHART, ROOT, VALUE_SETS, parse, prometheus_operator_crds, run, tool

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
        for path in sorted(Path(__file__).parent.joinpath("schemas").glob("strimzi-*.v1.json")):
            crd = strimzi_crd(json.loads(path.read_text()))
            (crd_chart / "crds" / f"{crd['metadata']['name']}.yaml").write_text(yaml.safe_dump(crd))
        helm(config, "install", "third-party-crds", str(crd_chart), "--namespace", "default")
        yield config


def structural(schema: Any) -> Any:
    """A JSON schema made into a structural OpenAPI v3 schema: one type per
    node, ``enum`` for ``const``, free-form where JSON Schema says "any of"."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        # uniqueItems: the API server refuses it (quadratic); JSON Schema checks it.
        if key in ("$schema", "title", "additionalProperties", "allOf", "oneOf", "anyOf",
                   "uniqueItems"):  # fmt: skip
            continue
        if key == "properties":
            out[key] = {k: structural(v) for k, v in value.items()}
        elif key == "items":
            out[key] = structural(value)
        elif key == "const":
            out["enum"] = [value]
        elif key == "type" and isinstance(value, list):
            out["x-kubernetes-int-or-string"] = True
        else:
            out[key] = value
    if "oneOf" in schema or isinstance(schema.get("additionalProperties"), dict):
        out = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if out.get("x-kubernetes-int-or-string"):
        out.pop("pattern", None)
    if "enum" in out and "type" not in out:
        kinds = {type(v) for v in out["enum"]}
        out["type"] = {str: "string", int: "integer", bool: "boolean"}[kinds.pop()]
    if out.get("type") == "array" and "items" not in out:
        out["items"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return out


def strimzi_crd(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema["properties"]["kind"]["const"]
    plural = kind.lower() + "s"
    openapi = structural(schema)
    openapi["properties"]["metadata"] = {"type": "object"}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kafka.strimzi.io"},
        "spec": {
            "group": "kafka.strimzi.io",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "scope": "Namespaced",
            "versions": [{"name": "v1", "served": True, "storage": True,
                          "schema": {"openAPIV3Schema": openapi}}],
        },
    }  # fmt: skip


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
