"""Where the one-node cluster lives: its network plan, ports and directories (pure).

One cluster per machine: the network namespace, the veth pair and the ports are
machine-wide names, so every checkout (and every test session) shares the same
cluster, and ``up`` reuses a healthy one.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from ticklake.devstack import paths

IPv4Network = ipaddress.IPv4Network
IPv4Address = ipaddress.IPv4Address

NODE_NAME = "ticklake-node"
CNI_NETWORK = "ticklake"
CLUSTER_DOMAIN = "cluster.local"
LINK = IPv4Network("10.250.0.0/30")
PODS = IPv4Network("10.250.64.0/24")
SERVICES = IPv4Network("10.250.96.0/24")


@dataclass(frozen=True)
class Ports:
    """Control-plane ports on the host, away from every default (2379, 6443, 10257, 10259)."""

    etcd: int = 12379
    etcd_peer: int = 12380
    apiserver: int = 16443
    controller_manager: int = 20257
    scheduler: int = 20259

    def host_ports(self) -> tuple[int, ...]:
        return (self.etcd, self.etcd_peer, self.apiserver, self.controller_manager, self.scheduler)


@dataclass(frozen=True)
class NetworkPlan:
    """Names and address ranges of the node's network.

    The ranges sit inside 10.250.0.0/16, which nothing on these machines uses
    (cloud VPCs favour 10.0-10.20 and 172.16/12, container tools 10.88,
    10.89, 10.244, 172.17-31); ``up`` still refuses to start if any overlaps
    a host address or route.
    """

    netns: str = NODE_NAME
    host_veth: str = "tl-host0"
    node_veth: str = "tl-node0"
    bridge: str = "tl-cni0"
    link: IPv4Network = LINK
    """The veth pair: host side .1, node side .2."""
    pods: IPv4Network = PODS
    services: IPv4Network = SERVICES
    ports: Ports = field(default_factory=Ports)

    @property
    def host_ip(self) -> IPv4Address:
        return self.link.network_address + 1

    @property
    def node_ip(self) -> IPv4Address:
        return self.link.network_address + 2

    @property
    def bridge_ip(self) -> IPv4Address:
        return self.pods.network_address + 1

    @property
    def kubernetes_service_ip(self) -> IPv4Address:
        """The API server's ClusterIP: the first of the service range."""
        return self.services.network_address + 1

    @property
    def dns_ip(self) -> IPv4Address:
        return self.services.network_address + 10

    @property
    def ranges(self) -> tuple[IPv4Network, ...]:
        return (self.link, self.pods, self.services)

    @property
    def apiserver_url(self) -> str:
        return f"https://{self.host_ip}:{self.ports.apiserver}"

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns


def find_clashes(
    plan: NetworkPlan,
    *,
    addresses: list[tuple[str, IPv4Network]],
    routes: list[IPv4Network],
    links: list[str],
    netns: list[str],
    ports_in_use: list[int],
) -> list[str]:
    """What on the host already uses one of ``plan``'s names, ranges or ports.

    ``addresses`` are (interface, network) pairs of the host's IPv4 addresses;
    ``routes`` the destinations of its IPv4 routes (a default route overlaps
    everything and is not counted). Empty means it is safe to start.
    """
    clashes = []
    for rng in plan.ranges:
        for ifname, net in addresses:
            if net.overlaps(rng):
                clashes.append(f"address {net} on {ifname} overlaps {rng}")
        for dst in routes:
            if dst.prefixlen > 0 and dst.overlaps(rng):
                clashes.append(f"route to {dst} overlaps {rng}")
    for name in (plan.host_veth, plan.node_veth, plan.bridge):
        if name in links:
            clashes.append(f"network interface {name} exists")
    if plan.netns in netns:
        clashes.append(f"network namespace {plan.netns} exists")
    for port in ports_in_use:
        clashes.append(f"port {port} is in use")
    return clashes


@dataclass(frozen=True)
class ClusterLayout:
    """The cluster's directories, under one root outside the repository.

    ``run`` holds what a ``down`` deletes (pid files, logs, certificates,
    configs, the state file); ``containerd/root`` (the image store) survives
    ``down`` so the next ``up`` need not import the images again.
    """

    root: Path

    @classmethod
    def default(cls) -> ClusterLayout:
        """``$TICKLAKE_CLUSTER_DIR`` or ``<cache>/cluster`` (~/.cache/ticklake/cluster)."""
        env = os.environ.get("TICKLAKE_CLUSTER_DIR")
        return cls(Path(env) if env else paths.cache_dir() / "cluster")

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def state_file(self) -> Path:
        return self.run / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.root / "cluster.lock"

    @property
    def pids(self) -> Path:
        return self.run / "pids"

    @property
    def logs(self) -> Path:
        return self.run / "logs"

    @property
    def pki(self) -> Path:
        return self.run / "pki"

    @property
    def config(self) -> Path:
        return self.run / "config"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (``system:masters``)."""
        return self.run / "kubeconfig"

    @property
    def etcd_data(self) -> Path:
        return self.run / "etcd"

    @property
    def containerd_root(self) -> Path:
        return self.root / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.run / "containerd"

    @property
    def containerd_socket(self) -> Path:
        return self.containerd_state / "containerd.sock"

    @property
    def imported_images(self) -> Path:
        """Which archive (by config digest) is in the image store already."""
        return self.root / "containerd" / "imported.json"

    @property
    def kubelet_root(self) -> Path:
        return self.run / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.run / "pod-logs"

    @property
    def cni_conf_dir(self) -> Path:
        return self.run / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.run / "cni" / "ipam"

    @property
    def images(self) -> Path:
        """Archives of the cluster's own images (pause, CoreDNS)."""
        return self.root / "images"

    @property
    def volumes(self) -> Path:
        """hostPath PersistentVolumes' directories (kept until ``down --purge``)."""
        return self.root / "volumes"
