"""helm install --wait, helm test and helm uninstall with (fake) running Pods.

The API server here runs with kube-controller-manager, kube-scheduler and kwok
(``KubeAPIServer(workloads=True)``): Deployments and StatefulSets get
ReplicaSets and Pods, the scheduler binds them to a kwok Node, and kwok plays
the kubelet: a Pod becomes Running and Ready at once, a run-once Pod
(``restartPolicy: Never``, like the chart's ``helm test`` Pod) Succeeded with
exit code 0. No container runs, so what is proven is the chart's side of a
rollout: every object is accepted, every workload reaches its ready count, the
lake claim binds, Pods fit the Node (nothing unschedulable), ``helm test``
finds its hook Pod and sees it succeed, and uninstall leaves nothing behind
but what the chart tells Helm to keep (the lake claim, the Redis password).
Whether the images start, pass their
probes or reach Kafka is not (see docs/chart.md).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from chartkit import CHART, ROOT, parse, run, tool
from clusterkit import upstream_crd_objects
from test_chart_install import helm

from ticklake.devstack import kubeapi

NAMESPACE = "tl-workloads"
RELEASE = "ticklake"
INSTANCE = f"app.kubernetes.io/instance={RELEASE}"
# External Kafka: there is no broker, and none is needed since no container runs.
SETS = [
    "kafka.strimzi.enabled=false",
    "kafka.external.bootstrapServers=kafka.data.svc:9092",
]
LAKE_CLAIM = f"{RELEASE}-lake"

T = TypeVar("T")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kubeapi.KubeAPIServer]:
    """One API server with fake Pods for the module (it takes seconds to start)."""
    kubeapi.ensure_binaries(ROOT / "tools" / "k8s" / "build.sh", workloads=True)
    with kubeapi.KubeAPIServer(workloads=True) as server:
        prerequisites = prerequisites_chart(tmp_path_factory.mktemp("prerequisites"))
        helm(str(server.kubeconfig), "install", "prerequisites", str(prerequisites),
             "--namespace", "default", "--wait", "--timeout", "1m")  # fmt: skip
        yield server


def prerequisites_chart(directory: Path) -> Path:
    """A chart with what a cluster would already have: the Prometheus Operator
    and Strimzi CRDs (the real ones, from ../shared/k8s-crds; the chart's own
    CRD is left to the chart) and a PersistentVolume for
    the lake claim (no provisioner runs here, so the volume is static and
    pre-bound to the claim the chart creates)."""
    (directory / "Chart.yaml").write_text("apiVersion: v2\nname: prerequisites\nversion: 0.0.1\n")
    crds, templates = directory / "crds", directory / "templates"
    crds.mkdir()
    templates.mkdir()
    for crd in upstream_crd_objects():
        name = str(crd["metadata"]["name"])  # type: ignore[index]
        if not name.endswith(".ticklake.dev"):
            (crds / f"{name}.yaml").write_text(yaml.safe_dump(crd))
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "lake"},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": "/var/lib/ticklake-lake"},
            "claimRef": {"namespace": NAMESPACE, "name": LAKE_CLAIM},
        },
    }
    (templates / "lake-volume.yaml").write_text(yaml.safe_dump(volume))
    return directory


def api_get(server: kubeapi.KubeAPIServer, path: str, **query: str) -> dict[str, Any]:
    url = f"{server.url}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    for attempt in range(40):
        try:
            with urllib.request.urlopen(url, timeout=10, context=server.ssl_context()) as response:
                result: dict[str, Any] = json.load(response)
                return result
        except urllib.error.HTTPError as e:
            # 429: the watch cache of a resource is still filling; retry as asked.
            if e.code != 429 or attempt == 39:
                raise
            time.sleep(float(e.headers.get("Retry-After", "1")) / 4)
    raise AssertionError("unreachable")


def listable_resources(server: kubeapi.KubeAPIServer) -> list[tuple[str, str]]:
    """(API path, kind) of every resource the server can list (core, built-in
    groups and CRDs), from discovery: "removes everything" should not depend
    on a hand-kept list of kinds."""
    versions = ["/api/v1"]
    for group in api_get(server, "/apis")["groups"]:
        versions.append(f"/apis/{group['preferredVersion']['groupVersion']}")
    paths = []
    for version in versions:
        for resource in api_get(server, version)["resources"]:
            # "pods/log" and the like are subresources; Events carry no labels of ours.
            if "/" in resource["name"] or "list" not in resource["verbs"]:
                continue
            if resource["name"] == "events":
                continue
            paths.append((f"{version}/{resource['name']}", resource["kind"]))
    return paths


def release_objects(server: kubeapi.KubeAPIServer) -> set[tuple[str, str]]:
    """(kind, name) of every object in the cluster labelled with the release."""
    found = set()
    for path, kind in listable_resources(server):
        for item in api_get(server, path, labelSelector=INSTANCE)["items"]:
            found.add((kind, item["metadata"]["name"]))
    return found


def kept_by_helm(manifest: dict[str, Any]) -> bool:
    annotations = manifest["metadata"].get("annotations") or {}
    return bool(annotations.get("helm.sh/resource-policy") == "keep")


def eventually(probe: Callable[[], T], done: Callable[[T], bool], *, timeout_s: float) -> T:
    deadline = time.monotonic() + timeout_s
    value = probe()
    while not done(value):
        assert time.monotonic() < deadline, f"still {value!r} after {timeout_s} s"
        time.sleep(0.5)
        value = probe()
    return value


def test_install_wait_readies_every_workload_and_helm_test_succeeds(
    cluster: kubeapi.KubeAPIServer,
) -> None:
    config = str(cluster.kubeconfig)
    sets = [a for s in SETS for a in ("--set", s)]
    helm(config, "install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace",
         *sets, "--wait", "--timeout", "3m")  # fmt: skip

    manifest = parse(helm(config, "get", "manifest", RELEASE, "-n", NAMESPACE))
    workloads = {(o["kind"], o["metadata"]["name"]) for o in manifest
                 if o["kind"] in ("Deployment", "StatefulSet")}  # fmt: skip
    assert workloads == {
        ("Deployment", f"{RELEASE}-producer"),
        ("Deployment", f"{RELEASE}-ingest"),
        ("Deployment", f"{RELEASE}-query-api"),
        ("Deployment", f"{RELEASE}-operator"),
        ("StatefulSet", f"{RELEASE}-redis"),
    }
    ready = {}
    for kind, name in workloads:
        plural = kind.lower() + "s"
        live = api_get(cluster, f"/apis/apps/v1/namespaces/{NAMESPACE}/{plural}/{name}")
        ready[name] = (live["status"].get("readyReplicas", 0), live["spec"]["replicas"])
    assert all(have == want >= 1 for have, want in ready.values()), ready
    claim = api_get(cluster, f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/{LAKE_CLAIM}")
    assert claim["status"]["phase"] == "Bound"

    # helm test creates the hook Pod, waits for it to finish and reports its phase.
    result = run([tool("helm"), "--kubeconfig", config, "test", RELEASE, "-n", NAMESPACE,
                  "--timeout", "1m"])  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(rf"TEST SUITE:\s+{RELEASE}-test\b", result.stdout), result.stdout
    assert re.search(r"Phase:\s+Succeeded\b", result.stdout), result.stdout

    # Uninstall: everything labelled with the release goes, Pods and
    # ReplicaSets too (the garbage collector follows the owner references),
    # except what the chart keeps on purpose: the lake claim and the Redis
    # password (helm.sh/resource-policy: keep).
    kept = {(o["kind"], o["metadata"]["name"]) for o in manifest if kept_by_helm(o)}
    assert kept == {("PersistentVolumeClaim", LAKE_CLAIM), ("Secret", f"{RELEASE}-redis")}
    before = release_objects(cluster)
    assert {"Pod", "ReplicaSet", "ControllerRevision", "EndpointSlice", "Service",
            "IngestScaler", "ServiceMonitor"} <= {k for k, _ in before}  # fmt: skip
    helm(config, "uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout", "1m")
    left = eventually(lambda: release_objects(cluster), lambda v: v <= kept, timeout_s=60)
    assert left == kept


def test_install_wait_fails_when_a_pod_cannot_be_scheduled(
    cluster: kubeapi.KubeAPIServer,
) -> None:
    """--wait really waits: a query API pinned to a Node that does not exist
    never gets ready, and the install fails instead of reporting success."""
    sets = [a for s in SETS for a in ("--set", s)]
    # lake.mode=s3: the one static volume is pre-bound to the other release's claim.
    result = run([tool("helm"), "--kubeconfig", str(cluster.kubeconfig), "install", "stuck",
                  str(CHART), "-n", "tl-stuck", "--create-namespace", *sets,
                  "--set", "lake.mode=s3", "--set", "lake.s3.uri=s3://lake/stuck",
                  "--set-string", "queryApi.nodeSelector.ticklake\\.dev/no-such-node=true",
                  "--wait", "--timeout", "15s"])  # fmt: skip
    assert result.returncode != 0
    assert "context deadline exceeded" in result.stderr, result.stderr
    pods = api_get(cluster, "/api/v1/namespaces/tl-stuck/pods")["items"]
    phases = {p["metadata"]["labels"]["app.kubernetes.io/component"]: p["status"]["phase"]
              for p in pods}  # fmt: skip
    assert phases["query-api"] == "Pending"
    assert phases["producer"] == "Running"
