"""helm upgrade from the previous chart version on the real API server.

The previous version is the chart as of the commit before the last version
bump (versionkit.py), unpacked with ``git archive``. It is installed with
persistence on (so the Redis StatefulSet has volumeClaimTemplates and the node
pool persistent claims), then upgraded to the working tree's chart with the
same values. The API server itself refuses a change to an immutable field
(selectors, a StatefulSet's serviceName or volumeClaimTemplates), so the
upgrade succeeding is the first check; the manifests of both revisions are
compared too, as are the names whose change would delete data (the Kafka
cluster and its node pool: Strimzi deletes a renamed pool's brokers).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartkit import CHART, Manifest, parse
from clusterkit import ChartCluster
from test_chart_install import helm
from versionkit import (
    CHART_PATH,
    extract_chart,
    git,
    previous_release_commit,
    version_at,
    working_version,
)

NAMESPACE = "up-from-previous"
RELEASE = "ticklake"
VALUES = {
    "redis": {"persistence": {"enabled": True, "size": "1Gi"}},
    "kafka": {"strimzi": {"nodePool": {"persistence": {"enabled": True, "size": "5Gi"}}}},
}
KEPT_NAMES = ("Kafka", "KafkaNodePool", "KafkaTopic", "StatefulSet", "PersistentVolumeClaim",
              "Secret", "Service")  # fmt: skip
"""Kinds whose objects must keep their names: a rename deletes the old one."""


def manifest(kubeconfig: str, revision: int) -> dict[tuple[str, str], Manifest]:
    text = helm(kubeconfig, "get", "manifest", RELEASE, "-n", NAMESPACE, "--revision",
                str(revision))  # fmt: skip
    return {(o["kind"], o["metadata"]["name"]): o for o in parse(text)}


def immutable(o: Manifest) -> dict[str, Any]:
    spec = o.get("spec") or {}
    if o["kind"] == "Deployment":
        return {"selector": spec["selector"]}
    if o["kind"] == "StatefulSet":
        return {k: spec.get(k) for k in ("selector", "serviceName", "volumeClaimTemplates")}
    if o["kind"] == "PersistentVolumeClaim":
        return {k: spec.get(k) for k in ("accessModes", "storageClassName")}
    return {}


@pytest.fixture(scope="module")
def upgraded(
    chart_cluster: ChartCluster, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[tuple[str, str], Manifest], dict[tuple[str, str], Manifest]]:
    chart_cluster.use_strimzi("strimzi-1.2.0")
    kubeconfig = chart_cluster.kubeconfig
    commit = previous_release_commit()
    previous = extract_chart(commit, tmp_path_factory.mktemp("previous"))
    values = tmp_path_factory.mktemp("values") / "values.yaml"
    values.write_text(yaml.safe_dump(VALUES))
    helm(kubeconfig, "install", RELEASE, str(previous), "-n", NAMESPACE, "--create-namespace",
         "-f", str(values))  # fmt: skip
    helm(kubeconfig, "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(values))
    return manifest(kubeconfig, 1), manifest(kubeconfig, 2)


def test_the_upgrade_is_from_an_older_version(upgraded: Any) -> None:
    before, _ = upgraded
    charts = {o["metadata"]["labels"].get("helm.sh/chart")
              for o in before.values() if "labels" in o["metadata"]}  # fmt: skip
    previous = version_at(previous_release_commit())
    assert previous != working_version()
    assert f"ticklake-{previous}" in charts, charts


def test_nothing_immutable_changes(upgraded: Any) -> None:
    before, after = upgraded
    checked = 0
    for key, old in before.items():
        if key in after and immutable(old):
            assert immutable(after[key]) == immutable(old), key
            checked += 1
    assert checked >= 4  # four Deployments and the Redis StatefulSet at least


def test_objects_holding_data_keep_their_names(upgraded: Any) -> None:
    before, after = upgraded
    kept = {k for k in before if k[0] in KEPT_NAMES}
    assert kept, "nothing to compare"
    assert kept <= set(after), sorted(kept - set(after))


def test_the_redis_password_survives(upgraded: Any, chart_cluster: ChartCluster) -> None:
    before, after = upgraded
    name = next(n for (kind, n) in before if kind == "StatefulSet")
    old = before[("Secret", name)]["data"]["redis-password"]
    new = after[("Secret", name)]["data"]["redis-password"]
    assert old == new
    stored = chart_cluster.client.request("GET", f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}")
    assert stored["data"]["redis-password"] == old
    assert len(base64.b64decode(old)) == 32


def last_commit_with_version(prefix: str) -> str:
    for commit in git("log", "--format=%H", "--", f"{CHART_PATH}/Chart.yaml").split():
        version = version_at(commit)
        if version and version.startswith(prefix):
            return commit
    raise AssertionError(f"no chart version {prefix}* in the history")


def test_an_upgrade_from_0_1_keeps_the_node_pool_it_made(
    chart_cluster: ChartCluster, tmp_path: Path
) -> None:
    """Chart 0.1.x named the KafkaNodePool nodePool.name alone; 0.2 prefixes
    it with the release. Renaming a pool makes Strimzi delete its brokers, so
    an upgrade keeps the old name (the template finds it with lookup), while a
    fresh install gets the prefixed one."""
    chart_cluster.use_strimzi("strimzi-1.2.0")
    kubeconfig, ns = chart_cluster.kubeconfig, "up-from-0-1"
    old = extract_chart(last_commit_with_version("0.1."), tmp_path)
    helm(kubeconfig, "install", RELEASE, str(old), "-n", ns, "--create-namespace")
    helm(kubeconfig, "upgrade", RELEASE, str(CHART), "-n", ns)
    text = helm(kubeconfig, "get", "manifest", RELEASE, "-n", ns)
    pools = [o["metadata"]["name"] for o in parse(text) if o["kind"] == "KafkaNodePool"]
    assert pools == ["dual-role"]
    stored = chart_cluster.client.request(
        "GET", f"/apis/kafka.strimzi.io/v1/namespaces/{ns}/kafkanodepools/dual-role"
    )
    assert stored["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
