"""The chart on the real node: images loaded, a Kafka pod, ``helm install``.

Kafka: no Strimzi operator image can be had here, so the release runs in the
chart's external-Kafka mode against a single-node KRaft Kafka pod made from
the local stack's Maven jars (the ``kafka`` image of
``ticklake.devstack.images``), with 6 partitions per auto-created topic.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from nodekit import require

from ticklake.devstack import kafka
from ticklake.devstack.cluster.cluster import Cluster

try:
    from ticklake.devstack import images
except ImportError:  # the images module lands separately (issue 12's image part)
    images = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ticklake"
NAMESPACE = "tl-e2e"
RELEASE = "tl"
KAFKA_PARTITIONS = 6
VALUES_FILE = Path(__file__).parent / "values" / "real-node-values.yaml"


@dataclass(frozen=True)
class Release:
    cluster: Cluster
    namespace: str
    name: str
    kafka_bootstrap: str

    def svc(self, component: str) -> str:
        return f"svc/{self.name}-ticklake-{component}"

    def kubectl(self, *args: str, **kw: Any) -> str:
        return self.cluster.kubectl("-n", self.namespace, *args, **kw)

    def pods(self, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", "pods", "-o", "json"] + (["-l", selector] if selector else [])
        items: list[dict[str, Any]] = json.loads(self.kubectl(*args))["items"]
        return items


def require_images() -> None:
    if images is None:
        require(["ticklake.devstack.images (the podman image builder) in this checkout"])


def build_and_load(cluster: Cluster, archive_dir: Path) -> list[Any]:
    """Build (or find) every image, save them into one archive, import it into the node."""
    assert images is not None
    built = images.build()
    archive = images.save_archive([b.ref for b in built], archive_dir / "ticklake-images.tar")
    cluster.load_images([archive])
    return built


def helm(cluster: Cluster, *args: str, timeout: float = 600) -> str:
    helm_bin = cluster.bin_dir / "helm"
    proc = subprocess.run(
        [str(helm_bin), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "HELM_CACHE_HOME": str(cluster.layout.run / "helm")},
    )
    if proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def kafka_manifests(namespace: str, image: str) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "kafka"}
    bootstrap = f"kafka.{namespace}.svc.cluster.local:9092"
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kafka", "namespace": namespace, "labels": labels},
            "spec": {"selector": labels, "ports": [{"name": "kafka", "port": 9092}]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "kafka", "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 10001,
                            "runAsGroup": 10001,
                            "fsGroup": 10001,
                        },
                        "containers": [
                            {
                                "name": "kafka",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "env": [
                                    {"name": "KAFKA_CLUSTER_ID", "value": kafka.cluster_id()},
                                    {
                                        "name": "KAFKA_ADVERTISED_LISTENERS",
                                        "value": f"PLAINTEXT://{bootstrap}",
                                    },
                                    {
                                        "name": "KAFKA_NUM_PARTITIONS",
                                        "value": str(KAFKA_PARTITIONS),
                                    },
                                    {"name": "KAFKA_HEAP", "value": "384m"},
                                ],
                                "ports": [{"name": "kafka", "containerPort": 9092}],
                                "readinessProbe": {
                                    "tcpSocket": {"port": 9092},
                                    "periodSeconds": 2,
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [
                                    {"name": "data", "mountPath": "/var/lib/kafka/data"},
                                    {"name": "tmp", "mountPath": "/tmp"},
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "data", "emptyDir": {}},
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
            },
        },
    ]


def create_topics(cluster: Cluster, namespace: str) -> None:
    """Create the chart's topics in the Kafka pod, as the chart's NOTES ask for external
    Kafka (ingest started before its topic exists is assigned no partitions until
    its consumer's next metadata refresh, minutes later)."""
    for topic, partitions in (("market.ticks", KAFKA_PARTITIONS), ("market.ticks.dlq", 1)):
        cluster.kubectl(
            "-n", namespace, "exec", "deploy/kafka", "--", "java", "-Xmx128m",
            "-cp", "/opt/kafka/libs/*", "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server", "localhost:9092", "--create", "--if-not-exists",
            "--topic", topic, "--partitions", str(partitions),
        )  # fmt: skip


def release_values(namespace: str, built: list[Any], cluster: Cluster) -> dict[str, Any]:
    """The test's values: this file's value set plus the images and Kafka address."""
    assert images is not None
    values: dict[str, Any] = yaml.safe_load(VALUES_FILE.read_text())
    for key, val in images.chart_values(built).items():
        if isinstance(val, dict) and isinstance(values.get(key), dict):
            values[key] = _merge(values[key], val)
        else:
            values[key] = val
    values["kafka"]["external"]["bootstrapServers"] = f"kafka.{namespace}.svc.cluster.local:9092"
    pods, services = str(cluster.plan.pods), str(cluster.plan.services)
    values["kafka"]["external"]["cidrs"] = [pods, services]
    policy = values.setdefault("networkPolicy", {})
    policy["apiServerCidrs"] = [f"{cluster.plan.host_ip}/32", services]
    policy["apiServerPorts"] = [cluster.plan.ports.apiserver, 443]
    return values


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
