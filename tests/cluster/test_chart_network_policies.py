"""The chart's NetworkPolicies, checked against the traffic of the running release.

The test cluster's bridge CNI does not enforce NetworkPolicies (nor does
kind's default kindnet), so a policy that blocks Kafka would pass every other
test here. Instead, this test takes the policies as helm installed them and
asks a small evaluator (``netpol.py``) about two sets of connections:

* **observed**: the TCP connections the release's pods really have open, read
  from each pod's network namespace (``/proc/<pid>/net/tcp`` of its container,
  found through containerd), with Service addresses resolved to the pods (or
  addresses) behind them, as kube-proxy does;
* **declared**: what the release's configuration says it needs (its
  ConfigMaps' Kafka and Redis addresses, the IngestScaler's Kafka, the
  operator's API server, DNS for every pod, a Prometheus pod scraping every
  Service's metrics port, clients of the query API).

Every observed connection must be declared and every declared one allowed;
connections ticklake never makes (the query API to Kafka, Redis calling out,
any pod to an address outside the cluster) must be denied.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from chartrun import Release
from netpol import Connection, Endpoint, verdict
from nodekit import eventually

COMPONENTS = ("producer", "ingest", "query-api", "operator", "redis")
OUTSIDE = Endpoint("192.0.2.10", "an address outside the cluster (TEST-NET-1)")


@dataclass
class World:
    """The cluster's objects the evaluator needs, read once."""

    pods: list[Endpoint]
    raw_pods: list[dict[str, Any]]
    services: list[dict[str, Any]]
    slices: list[dict[str, Any]]
    policies: list[dict[str, Any]]

    def pod_by_ip(self, ip: str) -> Endpoint | None:
        return next((p for p in self.pods if p.ip == ip), None)

    def component(self, ep: Endpoint) -> str:
        return ep.labels.get("app.kubernetes.io/component") or ep.labels.get(
            "app.kubernetes.io/name", ep.name
        )

    def pods_of(self, component: str, namespace: str) -> list[Endpoint]:
        return [p for p in self.pods if p.namespace == namespace and self.component(p) == component]

    def service(self, name: str, namespace: str) -> dict[str, Any]:
        for svc in self.services:
            if (svc["metadata"]["name"], svc["metadata"]["namespace"]) == (name, namespace):
                return svc
        raise AssertionError(f"no Service {namespace}/{name}")

    def backends(self, svc: dict[str, Any], port: int) -> list[tuple[Endpoint, int]]:
        """(pod or address, port) behind a Service port: what kube-proxy DNATs to."""
        (svc_port,) = [p for p in svc["spec"]["ports"] if p["port"] == port]
        name, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
        found = []
        for es in self.slices:
            labels = es["metadata"].get("labels", {})
            if (
                es["metadata"]["namespace"] != ns
                or labels.get("kubernetes.io/service-name") != name
            ):
                continue
            ports = [
                p for p in es.get("ports") or [] if p.get("name", "") == svc_port.get("name", "")
            ]
            for endpoint in es.get("endpoints") or []:
                for address in endpoint["addresses"]:
                    ep = self.pod_by_ip(address) or Endpoint(address, f"{name} backend {address}")
                    found += [(ep, p["port"]) for p in ports]
        assert found, f"Service {ns}/{name}:{port} has no endpoints"
        return found

    def resolve(self, ip: str, port: int) -> list[tuple[Endpoint, int]]:
        for svc in self.services:
            if svc["spec"].get("clusterIP") == ip:
                return self.backends(svc, port)
        pod = self.pod_by_ip(ip)
        return [(pod or Endpoint(ip, ip), port)]


def _endpoint(pod: dict[str, Any], namespaces: dict[str, dict[str, str]]) -> Endpoint:
    meta = pod["metadata"]
    ports = {
        p["name"]: p["containerPort"]
        for c in pod["spec"]["containers"]
        for p in c.get("ports") or []
        if p.get("name")
    }
    return Endpoint(
        pod["status"]["podIP"],
        meta["name"],
        meta["namespace"],
        meta.get("labels") or {},
        namespaces[meta["namespace"]],
        ports,
    )


def read_world(release: Release) -> World:
    k = release.cluster.kubectl
    namespaces = {
        n["metadata"]["name"]: n["metadata"].get("labels") or {}
        for n in json.loads(k("get", "namespaces", "-o", "json"))["items"]
    }
    raw = [
        p
        for p in json.loads(k("get", "pods", "-A", "-o", "json"))["items"]
        if p["status"].get("phase") == "Running" and p["status"].get("podIP")
    ]
    return World(
        pods=[_endpoint(p, namespaces) for p in raw],
        raw_pods=raw,
        services=json.loads(k("get", "services", "-A", "-o", "json"))["items"],
        slices=json.loads(k("get", "endpointslices", "-A", "-o", "json"))["items"],
        policies=json.loads(release.kubectl("get", "networkpolicies", "-o", "json"))["items"],
    )


# ------------------------------------------------------------ observed traffic


def _proc_addr(text: str) -> tuple[str, int]:
    """An address of /proc/net/tcp{,6} (hex, host byte order) as (ip, port)."""
    addr, port = text.split(":")
    raw = bytes.fromhex(addr)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, struct.pack("<I", struct.unpack(">I", raw)[0]))
    else:
        words = struct.unpack(">4I", raw)
        ip6 = ipaddress.IPv6Address(struct.pack("<4I", *words))
        ip = str(ip6.ipv4_mapped or ip6)
    return ip, int(port, 16)


def outbound_connections(pid: int) -> set[tuple[str, int]]:
    """(remote ip, remote port) of the established connections a network
    namespace opened (its local port is not one it listens on)."""
    rows = []
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if path.exists():
            rows += [line.split() for line in path.read_text().splitlines()[1:]]
    listening = {_proc_addr(r[1])[1] for r in rows if r[3] == "0A"}
    out = set()
    for r in rows:
        # ESTABLISHED, and the states a client's socket passes through after
        # it closes (FIN_WAIT1/2, TIME_WAIT for 60 s): the operator opens its
        # Kafka connections for one reconcile only, and a sample that falls
        # between two reconciles still sees the last one.
        if r[3] in ("01", "04", "05", "06"):
            (_, lport), remote = _proc_addr(r[1]), _proc_addr(r[2])
            if lport not in listening and not remote[0].startswith("127."):
                out.add(remote)
    return out


def container_pids(release: Release) -> dict[str, int]:
    """containerd task id -> host pid of the node's running containers."""
    pids = {}
    for line in release.cluster.ctr("tasks", "ls").splitlines()[1:]:
        task, pid, status = line.split()[:3]
        if status == "RUNNING":
            pids[task] = int(pid)
    return pids


def observed(release: Release, world: World) -> set[Connection]:
    pids = container_pids(release)
    found: set[Connection] = set()
    for raw in world.raw_pods:
        if raw["metadata"]["namespace"] != release.namespace:
            continue
        src = world.pod_by_ip(raw["status"]["podIP"])
        assert src is not None
        for status in raw["status"].get("containerStatuses") or []:
            task = status.get("containerID", "").removeprefix("containerd://")
            if task not in pids:
                continue
            for ip, port in outbound_connections(pids[task]):
                for dst, dst_port in world.resolve(ip, port):
                    found.add(Connection(src, dst, dst_port, why="observed"))
    return found


# ------------------------------------------------------------ declared needs


def _service_address(host: str, namespace: str) -> tuple[str, str]:
    """(service, namespace) of a Service DNS name as a pod would resolve it."""
    parts = host.split(".")
    return parts[0], parts[1] if len(parts) > 1 and parts[1] != "svc" else namespace


def _to_service(world: World, src: Endpoint, address: str, why: str) -> list[Connection]:
    host, _, port = address.rpartition(":")
    name, ns = _service_address(host, src.namespace or "")
    svc = world.service(name, ns)
    return [Connection(src, dst, p, why=why) for dst, p in world.backends(svc, int(port))]


def declared(release: Release, world: World) -> set[Connection]:
    ns = release.namespace
    configs = {
        cm["metadata"].get("labels", {}).get("app.kubernetes.io/component"): cm.get("data") or {}
        for cm in json.loads(release.kubectl("get", "configmaps", "-o", "json"))["items"]
    }
    scaler = json.loads(release.kubectl("get", "ingestscalers", "-o", "json"))["items"][0]
    needs: set[Connection] = set()
    dns = [p for p in world.pods if p.labels.get("k8s-app") == "kube-dns"]
    assert dns, "no CoreDNS pod"
    for component in COMPONENTS:
        for src in world.pods_of(component, ns):
            if component != "redis":  # Redis resolves no names
                for server in dns:
                    needs |= {Connection(src, server, 53, proto, "DNS") for proto in ("UDP", "TCP")}
            config = configs.get(component, {})
            if "TICKLAKE_KAFKA_BOOTSTRAP_SERVERS" in config:
                for address in config["TICKLAKE_KAFKA_BOOTSTRAP_SERVERS"].split(","):
                    needs |= set(_to_service(world, src, address, "Kafka (config)"))
            if "TICKLAKE_REDIS_URL" in config:
                url = urlsplit(config["TICKLAKE_REDIS_URL"])
                address = f"{url.hostname}:{url.port or 6379}"
                needs |= set(_to_service(world, src, address, "Redis (config)"))
    # The test's broker connects to its own advertised listener (its Service)
    # for its admin and controller requests.
    for src in world.pods_of("kafka", ns):
        needs |= set(_to_service(world, src, release.kafka_bootstrap, "Kafka to itself"))
    for src in world.pods_of("operator", ns):
        for address in scaler["spec"]["kafka"]["bootstrapServers"].split(","):
            needs |= set(_to_service(world, src, address, "Kafka (IngestScaler)"))
        kubernetes = world.service("kubernetes", "default")
        needs |= {
            Connection(src, dst, port, why="API server")
            for dst, port in world.backends(kubernetes, 443)
        }
    # Prometheus (the chart's default metricsFrom) scrapes each Service's
    # metrics port; clients in the namespace call the query API.
    prometheus = Endpoint(
        "10.250.64.250", "prometheus", "monitoring",
        {"app.kubernetes.io/name": "prometheus"}, {"kubernetes.io/metadata.name": "monitoring"},
    )  # fmt: skip
    client = Endpoint("10.250.64.251", "client", ns, {}, {"kubernetes.io/metadata.name": ns})
    for svc in world.services:
        component = (svc["metadata"].get("labels") or {}).get("app.kubernetes.io/component")
        if svc["metadata"]["namespace"] != ns or component not in COMPONENTS:
            continue
        for port in svc["spec"]["ports"]:
            for dst, p in world.backends(svc, port["port"]):
                if port.get("name") in ("metrics", "http"):
                    needs.add(Connection(prometheus, dst, p, why="metrics scrape"))
                if component == "query-api" and port.get("name") == "http":
                    needs.add(Connection(client, dst, p, why="API client"))
    return needs


def _key(c: Connection) -> tuple[str, str, int, str]:
    return (c.src.name, c.dst.ip, c.port, c.protocol)


@pytest.fixture(scope="module")
def world(release: Release) -> World:
    return read_world(release)


def test_every_connection_the_release_makes_is_declared_and_allowed(
    release: Release, world: World
) -> None:
    needs = declared(release, world)
    seen: set[Connection] = set()

    def snapshot() -> set[tuple[str, str]]:
        seen.update(observed(release, world))
        return {(world.component(c.src), world.component(c.dst)) for c in seen}

    # The operator's Kafka connections last one reconcile (every 5 s): look a
    # few times until every long-lived flow has been seen.
    flows = eventually(
        snapshot,
        lambda f: (
            {
                ("producer", "kafka"),
                ("ingest", "kafka"),
                ("ingest", "redis"),
                ("query-api", "redis"),
                ("operator", "kafka"),
            }
            <= f
        ),
        what="the release's Kafka and Redis connections",
        timeout_s=60,
    )
    assert any(world.component(c.src) == "operator" and not c.dst.is_pod for c in seen), (
        "the operator's API server connection",
        flows,
    )
    declared_keys = {_key(c) for c in needs}
    undeclared = [str(c) for c in seen if _key(c) not in declared_keys]
    assert not undeclared, undeclared
    denied = [f"{c}: {verdict(world.policies, c).reason}" for c in seen | needs
              if not verdict(world.policies, c).allowed]  # fmt: skip
    assert not denied, denied


def test_connections_ticklake_never_makes_are_denied(release: Release, world: World) -> None:
    ns = release.namespace

    def one(component: str, namespace: str = ns) -> Endpoint:
        pods = world.pods_of(component, namespace)
        assert pods, f"no {component} pod"
        return pods[0]

    kafka, redis = one("kafka"), one("redis")
    stranger = Endpoint(
        "10.250.64.252", "stranger", "elsewhere", {"app.kubernetes.io/name": "curl"},
        {"kubernetes.io/metadata.name": "elsewhere"},
    )  # fmt: skip
    forbidden = [
        Connection(one("query-api"), kafka, 9092, why="the query API reads no Kafka"),
        Connection(one("producer"), redis, 6379, why="the producer writes no Redis"),
        Connection(one("operator"), redis, 6379, why="the operator reads no Redis"),
        Connection(redis, kafka, 9092, why="Redis calls nobody"),
        Connection(kafka, redis, 6379, why="only ingest and the query API reach Redis"),
        Connection(
            stranger,
            one("ingest"),
            one("ingest").named_ports["http"],
            why="only Prometheus scrapes",
        ),
    ]
    for component in ("producer", "ingest", "query-api", "operator", "redis"):
        src = one(component)
        forbidden += [
            Connection(src, OUTSIDE, 443, why="nothing leaves the cluster"),
            Connection(src, OUTSIDE, 53, "UDP", why="no DNS server outside the cluster"),
        ]
    allowed = [str(c) for c in forbidden if verdict(world.policies, c).allowed]
    assert not allowed, allowed
