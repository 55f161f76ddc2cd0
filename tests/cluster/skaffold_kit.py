"""What skaffold does with our skaffold.yaml, done on the one-node cluster.

No registry serves the skaffold binary, so the cluster tests follow the plan
``ticklake.devstack.skaffold`` reads from the file: build each artifact with
podman (context, Dockerfile, target, build args), tag it by the tag policy and
by its image ID (what skaffold deploys for an unpushed local build), load the
images into the node (skaffold's ``kind load``), run the helm deployer's
``helm upgrade --install`` with the rendered ``setValueTemplates``, wait for
every rollout, and open each ``portForward`` entry with ``kubectl
port-forward``. Images skaffold names without a registry
(``ticklake-producer:<id>``) are the node's ``docker.io/library/...``, so they
are tagged that way in podman before being saved.

The one-node cluster has no Strimzi operator image and no storage provisioner:
the release gets cluster-only values files after skaffold's own (external
Kafka in a pod, the lake on a hostPath volume, the cluster's address ranges),
as a kind user would add theirs with ``valuesFiles``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from chartrun import VALUES_FILE, create_topics, kafka_manifests, remove_namespace

from ticklake.devstack import images, skaffold
from ticklake.devstack.cluster.cluster import Cluster
from ticklake.devstack.skaffold import Artifact, HelmRelease, PortForward, Skaffold

ROOT = Path(__file__).resolve().parents[2]
SKAFFOLD_YAML = ROOT / "skaffold.yaml"
HELM_TIMEOUT = "10m"
"""skaffold passes no --timeout (helm's default is 5m); six jobs share two cores here."""


def read(profiles: Sequence[str]) -> Skaffold:
    return skaffold.apply_profiles(yaml.safe_load(SKAFFOLD_YAML.read_text()), profiles)


def node_name(reference: str) -> str:
    """The name the node's containerd gives an image reference (docker's normalisation)."""
    first = reference.split("/", 1)[0]
    if "/" not in reference or not ("." in first or ":" in first or first == "localhost"):
        return f"docker.io/{reference}" if "/" in reference else f"docker.io/library/{reference}"
    return reference


@dataclass(frozen=True)
class Built:
    artifact: Artifact
    tag: str  #: the tag policy's tag
    image_id: str
    deployed: str  #: what skaffold puts into the release: <image>:<image ID>
    seconds: float


def build(config: Skaffold, artifact: Artifact, root: Path = ROOT) -> Built:
    """Build one artifact as skaffold's local docker builder would, with podman."""
    started = time.monotonic()
    tag = skaffold.tag_for(config, artifact, root)
    context = root / artifact.context
    ref = node_name(f"{artifact.image}:{tag}")
    image_id = images.podman_build(
        context, context / artifact.dockerfile, ref,
        target=artifact.target, build_args=artifact.build_args,
    )  # fmt: skip
    deployed = skaffold.deployed_reference(artifact, image_id)
    images.podman("tag", ref, node_name(deployed))
    return Built(artifact, tag, image_id, deployed, time.monotonic() - started)


def load(cluster: Cluster, built: Sequence[Built], archive: Path) -> None:
    """skaffold's ``kind load``: the deployed references into the node's containerd."""
    refs = [node_name(b.deployed) for b in built]
    cluster.load_images([images.save_archive(refs, archive)])


def forget(cluster: Cluster, built: Sequence[Built]) -> None:
    """Remove the test's tags from podman and the node (the layers stay cached)."""
    for b in built:
        for ref in {node_name(b.deployed), node_name(f"{b.artifact.image}:{b.tag}")}:
            images.podman("rmi", ref, check=False)
        with contextlib.suppress(Exception):
            cluster.ctr("images", "rm", node_name(b.deployed))


def forget_policy_tags(built: Sequence[Built]) -> None:
    """Remove only the tag policy's tags from podman (the deployed references stay)."""
    for b in built:
        images.podman("rmi", node_name(f"{b.artifact.image}:{b.tag}"), check=False)


def helm(cluster: Cluster, *args: str, cwd: Path = ROOT, timeout: float = 900) -> str:
    proc = subprocess.run(
        [str(cluster.bin_dir / "helm"), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd,
        env={**os.environ, "HELM_CACHE_HOME": str(cluster.layout.run / "helm")},
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def deploy(
    cluster: Cluster,
    config: Skaffold,
    built: Sequence[Built],
    extra_values: Sequence[Path] = (),
) -> tuple[HelmRelease, list[str]]:
    """The helm deployer's release, as skaffold runs it (plus cluster-only values files)."""
    (release,) = config.releases
    values = skaffold.template_values(
        [b.artifact for b in built], {b.artifact.image: b.deployed for b in built}
    )
    args = skaffold.helm_args(release, values, [str(v) for v in extra_values])
    helm(cluster, *args, "--timeout", HELM_TIMEOUT)
    return release, args


def rollouts(cluster: Cluster, namespace: str) -> list[str]:
    """Wait for every Deployment and StatefulSet of the namespace (skaffold's status check)."""
    names = cluster.kubectl("-n", namespace, "get", "deployments,statefulsets", "-o", "name")
    workloads = names.split()
    for workload in workloads:
        cluster.kubectl("-n", namespace, "rollout", "status", workload, "--timeout=300s",
                        timeout=310)  # fmt: skip
    return workloads


def port_free(port: int, address: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def forward(cluster: Cluster, entry: PortForward, default_namespace: str) -> Iterator[int]:
    """``kubectl port-forward`` of one portForward entry; yields the local port.

    Like skaffold, a taken local port moves to the next free one (it says so).
    """
    local = entry.local_port
    while not port_free(local, entry.address):
        print(f"port {local} is taken, skaffold would pick the next: {local + 1}")
        local += 1
    proc = subprocess.Popen(
        [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}",
         "-n", entry.namespace or default_namespace, "port-forward",
         f"--address={entry.address}", f"{entry.resource_type}/{entry.resource_name}",
         f"{local}:{entry.port}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not re.search(rf"Forwarding from {re.escape(entry.address)}:{local}\b", line):
            proc.kill()
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"port-forward {entry} failed: {line}{err}")
        yield local
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()


def cluster_values(
    cluster: Cluster, namespace: str, redis_image: images.BuiltImage
) -> dict[str, Any]:
    """Values the one-node cluster needs beyond skaffold's: the real-node value set
    (external Kafka, lake on a hostPath volume) without its image settings, the
    Redis image, the Kafka address and the cluster's address ranges."""
    values: dict[str, Any] = yaml.safe_load(VALUES_FILE.read_text())
    values["redis"]["image"] = {
        "repository": redis_image.repository, "tag": redis_image.tag, "pullPolicy": "Never",
    }  # fmt: skip
    values["kafka"]["external"]["bootstrapServers"] = f"kafka.{namespace}.svc.cluster.local:9092"
    pods, services = str(cluster.plan.pods), str(cluster.plan.services)
    values["kafka"]["external"]["cidrs"] = [pods, services]
    policy = values.setdefault("networkPolicy", {})
    policy["apiServerCidrs"] = [f"{cluster.plan.host_ip}/32", services]
    policy["apiServerPorts"] = [cluster.plan.ports.apiserver, 443]
    # The real-node set turns monitoring off; the release keeps the chart's
    # default (on) unless a values file says otherwise.
    values.pop("monitoring", None)
    return values


def prepare_namespace(cluster: Cluster, namespace: str, archive_dir: Path) -> images.BuiltImage:
    """A fresh namespace with Kafka (topics created) and a lake volume; returns the Redis image."""
    remove_namespace(cluster, namespace)
    supporting = images.build(["kafka", "redis"])
    cluster.load_images([images.save_archive([b.ref for b in supporting],
                                             archive_dir / "support.tar")])  # fmt: skip
    cluster.kubectl("create", "namespace", namespace)
    kafka = next(b for b in supporting if b.name == "kafka")
    cluster.apply(kafka_manifests(namespace, kafka.ref))
    cluster.apply([cluster.host_path_volume(f"lake-{namespace}", capacity="2Gi")])
    cluster.kubectl("-n", namespace, "rollout", "status", "deployment/kafka", "--timeout=300s",
                    timeout=310)  # fmt: skip
    create_topics(cluster, namespace)
    return next(b for b in supporting if b.name == "redis")


def pods(cluster: Cluster, namespace: str, selector: str = "") -> list[dict[str, Any]]:
    args = ["-n", namespace, "get", "pods", "-o", "json"] + (["-l", selector] if selector else [])
    items: list[dict[str, Any]] = json.loads(cluster.kubectl(*args))["items"]
    return items
