"""charts/ticklake on the one-node cluster: images imported, a Kafka pod, ``helm install``.

What ``ticklake-stack cluster install`` does for a contributor and the
``release`` fixture of tests/cluster does for the tests, in one place:

* the images of :mod:`ticklake.devstack.images`, built with podman (cached)
  and imported into the node's containerd (only those it lacks);
* Kafka: no Strimzi operator image can be had here, so the release runs in
  the chart's external-Kafka mode against a single-node KRaft Kafka pod made
  from the local stack's Maven jars (the ``kafka`` image), its topics created
  first as the chart's NOTES ask (6 partitions for the ticks);
* the lake on a hostPath PersistentVolume (no provisioner here);
* ``helm install --wait`` with :data:`VALUES_FILE` plus the images, Kafka's
  address, the cluster's ranges for the NetworkPolicies and an API key file
  with one key for every symbol (:func:`api_key`), since the chart turns the
  query API's keys on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from ticklake.devstack import images, kafka, paths
from ticklake.devstack.cluster.cluster import Cluster, ClusterError
from ticklake.devstack.secure_stack import create_api_key

KAFKA_PARTITIONS = 6
VALUES_FILE = Path(__file__).with_name("node-values.yaml")
"""The value set for this cluster (commented); :func:`release_values` adds the rest."""

Log = Callable[[str], None]


def chart_dir() -> Path:
    return paths.repo_root() / "charts" / "ticklake"


def helm(cluster: Cluster, *args: str, timeout: float = 600) -> str:
    """Run the cached helm against the cluster; raise with its output if it fails."""
    proc = subprocess.run(
        [str(cluster.bin_dir / "helm"), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "HELM_CACHE_HOME": str(cluster.layout.run / "helm")},
    )
    if proc.returncode != 0:
        raise ClusterError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def load_into_node(
    cluster: Cluster, built: Sequence[images.BuiltImage], archive_dir: Path, *, log: Log = print
) -> list[str]:
    """Import podman images into the node's containerd, skipping those it has.

    An image counts as present when its ref is in containerd and was imported
    from the same podman image id (recorded beside containerd's store; a tag
    such as ``kafka:4.3.1`` can be rebuilt with other content). Only the
    missing ones are saved (``podman save`` of all six takes ~20 s). Returns
    the refs imported now.
    """
    record_file = cluster.layout.imported_images.with_name("imported-podman.json")
    record: dict[str, str] = json.loads(record_file.read_text()) if record_file.exists() else {}
    present = set(cluster.ctr("images", "ls", "-q").split())
    missing = [b for b in built if b.ref not in present or record.get(b.ref) != b.image_id]
    if not missing:
        return []
    started = time.monotonic()
    archive = images.save_archive(
        [b.ref for b in missing], archive_dir / f"images-{os.getpid()}-{len(record)}.tar"
    )
    saved = time.monotonic()
    try:
        cluster.load_images([archive])
    finally:
        archive.unlink(missing_ok=True)
    record.update({b.ref: b.image_id for b in missing})
    record_file.write_text(json.dumps(record, indent=2))
    log(
        f"images: {len(missing)} saved in {saved - started:.1f}s, "
        f"imported into the node in {time.monotonic() - saved:.1f}s"
    )
    return [b.ref for b in missing]


def build_and_load(
    cluster: Cluster,
    archive_dir: Path,
    names: Sequence[str] | None = None,
    *,
    tag: str | None = None,
    log: Log = print,
) -> list[images.BuiltImage]:
    """Build (or find) the images (default: all) and import those the node lacks."""
    started = time.monotonic()
    built = images.build(names, tag=tag)
    fresh = sum(not b.cached for b in built)
    log(f"images: {len(built)} ready ({fresh} built) in {time.monotonic() - started:.1f}s")
    load_into_node(cluster, built, archive_dir, log=log)
    return built


def remove_namespace(cluster: Cluster, namespace: str) -> None:
    """Delete a namespace with a release in it, and its lake volume.

    The operator's kopf finalizer would hold the namespace forever once the
    operator is gone: stop the operator first, then drop the finalizers.
    """
    cluster.kubectl("-n", namespace, "delete", "deployment", "-l",
                    "app.kubernetes.io/component=operator", "--wait=true", check=False)  # fmt: skip
    for scaler in cluster.kubectl("-n", namespace, "get", "ingestscalers", "-o", "name",
                                  check=False).split():  # fmt: skip
        cluster.kubectl("-n", namespace, "patch", scaler, "--type=merge",
                        "-p", '{"metadata":{"finalizers":[]}}', check=False)  # fmt: skip
    cluster.kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=false")
    # Nothing in it needs a graceful stop any more (ingest's would take 30 s).
    cluster.kubectl("-n", namespace, "delete", "pods", "--all", "--grace-period=0", "--force",
                    check=False)  # fmt: skip
    cluster.kubectl("wait", "--for=delete", f"namespace/{namespace}", "--timeout=300s",
                    check=False, timeout=310)  # fmt: skip
    if cluster.kubectl("get", "namespace", namespace, "--ignore-not-found").strip():
        raise ClusterError(f"namespace {namespace} is still there after 300 s")
    cluster.kubectl("delete", "pv", f"lake-{namespace}", "--ignore-not-found")
    shutil.rmtree(cluster.layout.volumes / f"lake-{namespace}", ignore_errors=True)


def kafka_bootstrap(namespace: str) -> str:
    return f"kafka.{namespace}.svc.cluster.local:9092"


def kafka_manifests(namespace: str, image: str) -> list[dict[str, Any]]:
    """Service and Deployment of a single-node KRaft Kafka (the ``kafka`` image)."""
    labels = {"app.kubernetes.io/name": "kafka"}
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
                                        "value": f"PLAINTEXT://{kafka_bootstrap(namespace)}",
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


def api_key(cluster: Cluster, namespace: str) -> tuple[Path, str]:
    """(key file, token) of the release in ``namespace``: one key for every symbol.

    Made once per namespace by the query API's own CLI (the owner of the key
    file's format) and kept in the cluster's state folder (mode 0600), so a
    ``helm upgrade`` gets the same file and clients the same token."""
    keys = cluster.layout.root / f"api-keys-{namespace}.json"
    token_file = keys.with_suffix(".token")
    if not (keys.exists() and token_file.exists()):
        keys.unlink(missing_ok=True)
        try:
            token = create_api_key([sys.executable, "-m", "ticklake.query.cli"], keys,
                                   f"cluster-{namespace}")  # fmt: skip
        except RuntimeError as e:
            raise ClusterError(str(e)) from e
        token_file.touch(mode=0o600)
        token_file.write_text(token)
    return keys, token_file.read_text().strip()


def release_values(
    namespace: str, built: Sequence[images.BuiltImage], cluster: Cluster
) -> dict[str, Any]:
    """:data:`VALUES_FILE` plus the images, the Kafka address, the cluster's ranges and
    the API key file."""
    values: dict[str, Any] = yaml.safe_load(VALUES_FILE.read_text())
    for key, val in images.chart_values(built).items():
        if isinstance(val, dict) and isinstance(values.get(key), dict):
            values[key] = _merge(values[key], val)
        else:
            values[key] = val
    values["kafka"]["external"]["bootstrapServers"] = kafka_bootstrap(namespace)
    pods, services = str(cluster.plan.pods), str(cluster.plan.services)
    values["kafka"]["external"]["cidrs"] = [pods, services]
    policy = values.setdefault("networkPolicy", {})
    policy["apiServerCidrs"] = [f"{cluster.plan.host_ip}/32", services]
    policy["apiServerPorts"] = [cluster.plan.ports.apiserver, 443]
    keys, _ = api_key(cluster, namespace)
    auth = values.setdefault("queryApi", {}).setdefault("auth", {})
    auth["keysFile"] = keys.read_text()
    return values


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def install(
    cluster: Cluster,
    namespace: str,
    name: str,
    built: Sequence[images.BuiltImage],
    workdir: Path,
    *,
    log: Log = print,
) -> str:
    """A fresh namespace with Kafka and the lake volume, then ``helm install --wait``.

    An earlier namespace of that name (and its lake) is deleted first. Returns the
    token of the API key the release accepts (:func:`api_key`).
    """
    remove_namespace(cluster, namespace)
    cluster.kubectl("create", "namespace", namespace)
    kafka_image = next(b.ref for b in built if b.name == "kafka")
    cluster.apply(kafka_manifests(namespace, kafka_image))
    cluster.apply([cluster.host_path_volume(f"lake-{namespace}", capacity="2Gi")])
    cluster.kubectl("-n", namespace, "rollout", "status", "deployment/kafka", "--timeout=300s",
                    timeout=310)  # fmt: skip
    create_topics(cluster, namespace)
    values = workdir / f"values-{namespace}.yaml"
    values.write_text(yaml.safe_dump(release_values(namespace, built, cluster)))
    started = time.monotonic()
    helm(cluster, "install", name, str(chart_dir()), "-n", namespace, "-f", str(values),
         "--wait", "--timeout", "10m", timeout=620)  # fmt: skip
    log(f"chart Running and Ready {time.monotonic() - started:.1f}s after helm install")
    return api_key(cluster, namespace)[1]
