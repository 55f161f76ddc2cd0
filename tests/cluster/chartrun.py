"""The chart on the real node: images loaded, a Kafka pod, ``helm install``.

Kafka: no Strimzi operator image can be had here, so the release runs in the
chart's external-Kafka mode against a single-node KRaft Kafka pod made from
the local stack's Maven jars (the ``kafka`` image of
``ticklake.devstack.images``), with 6 partitions per auto-created topic.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
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


def build_and_load(
    cluster: Cluster, archive_dir: Path, names: list[str] | None = None, *, tag: str | None = None
) -> list[Any]:
    """Build (or find) the images (default: all), import those the node lacks.

    Returns ``images.build``'s ``BuiltImage`` list. Timings go to stdout.
    """
    assert images is not None
    started = time.monotonic()
    built = images.build(names, tag=tag)
    fresh = sum(not b.cached for b in built)
    print(f"images: {len(built)} ready ({fresh} built) in {time.monotonic() - started:.1f}s")
    load_into_node(cluster, built, archive_dir)
    return built


def load_into_node(cluster: Cluster, built: list[Any], archive_dir: Path) -> list[str]:
    """Import podman images into the node's containerd, skipping those it has.

    An image counts as present when its ref is in containerd and was imported
    from the same podman image id (recorded beside containerd's store; a tag
    such as ``kafka:4.3.1`` can be rebuilt with other content). Only the
    missing ones are saved (``podman save`` of all six takes ~20 s). Returns
    the refs imported now.
    """
    assert images is not None
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
    cluster.load_images([archive])
    archive.unlink(missing_ok=True)
    record.update({b.ref: b.image_id for b in missing})
    record_file.write_text(json.dumps(record, indent=2))
    print(
        f"images: {len(missing)} saved in {saved - started:.1f}s, "
        f"imported into the node in {time.monotonic() - saved:.1f}s"
    )
    return [b.ref for b in missing]


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
        raise AssertionError(f"namespace {namespace} is still there after 300 s")
    cluster.kubectl("delete", "pv", f"lake-{namespace}", "--ignore-not-found")
    shutil.rmtree(cluster.layout.volumes / f"lake-{namespace}", ignore_errors=True)


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


# ---------------------------------------------------------------- Kafka's view


def kafka_tool(release: Release, main_class: str, *args: str, timeout: float = 120) -> str:
    """Run one of Kafka's own command-line tools inside the Kafka pod."""
    return release.kubectl(
        "exec", "deploy/kafka", "--", "java", "-Xmx128m", "-cp", "/opt/kafka/libs/*",
        main_class, "--bootstrap-server", "localhost:9092", *args, timeout=timeout,
    )  # fmt: skip


def group_members(release: Release, group: str = "ticklake-ingest") -> dict[str, set[int]]:
    """Consumer id -> partitions of ``market.ticks``, from Kafka's group description."""
    out = kafka_tool(
        release, "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "--describe", "--group", group,
    )  # fmt: skip
    members: dict[str, set[int]] = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 7 and cols[1] == "market.ticks" and cols[2].isdigit():
            consumer = cols[6]
            if consumer != "-":
                members.setdefault(consumer, set()).add(int(cols[2]))
    return members


def splits_partitions(members: dict[str, set[int]], count: int) -> bool:
    """``count`` members holding disjoint sets that together are every partition."""
    owned = [p for parts in members.values() for p in parts]
    return (
        len(members) == count
        and all(members.values())
        and sorted(owned) == list(range(KAFKA_PARTITIONS))
    )


def end_offsets(release: Release, topic: str = "market.ticks") -> dict[int, int]:
    """Partition -> log end offset (the next offset to be written)."""
    out = kafka_tool(release, "org.apache.kafka.tools.GetOffsetShell",
                     "--topic", topic, "--time", "-1")  # fmt: skip
    ends = {}
    for line in out.splitlines():
        name, partition, offset = line.rsplit(":", 2)
        if name == topic:
            ends[int(partition)] = int(offset)
    if len(ends) != KAFKA_PARTITIONS:
        raise AssertionError(f"end offsets of {topic}: {out}")
    return ends


# ---------------------------------------------------------------- the lake's view


@dataclass(frozen=True)
class LakeCount:
    """Rows of the lake's ticks dataset for a window of Kafka offsets."""

    expected: int  #: offsets in the window
    rows: int  #: rows in the lake with an offset in the window
    distinct: int  #: distinct (partition, offset) among them
    duplicated_anywhere: int  #: rows minus distinct (partition, offset) in the whole lake

    @property
    def lost(self) -> int:
        return self.expected - self.distinct

    @property
    def duplicated(self) -> int:
        return self.rows - self.distinct


def lake_count(release: Release, start: dict[int, int], end: dict[int, int]) -> LakeCount:
    """Count the lake's ticks by (partition, offset) for offsets in [start, end).

    The lake is the release's hostPath volume, read on the host with DuckDB.
    """
    glob = (
        release.cluster.layout.volumes / f"lake-{release.namespace}" / "ticks" / "**" / "*.parquet"
    )
    window = " or ".join(
        f"(kafka_partition = {p} and kafka_offset >= {start[p]} and kafka_offset < {end[p]})"
        for p in sorted(end)
    )
    con = duckdb.connect()
    con.execute(
        f"create view ticks as select kafka_partition, kafka_offset from read_parquet('{glob}')"
    )
    counts = "select count(*), count(distinct (kafka_partition, kafka_offset)) from ticks"
    rows, distinct = con.execute(f"{counts} where {window}").fetchone() or (0, 0)
    everything, everything_distinct = con.execute(counts).fetchone() or (0, 0)
    return LakeCount(
        expected=sum(end[p] - start[p] for p in end),
        rows=rows,
        distinct=distinct,
        duplicated_anywhere=everything - everything_distinct,
    )
