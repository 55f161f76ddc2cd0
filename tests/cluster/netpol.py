"""A small, pure evaluator of Kubernetes NetworkPolicies (networking.k8s.io/v1).

The test cluster's bridge CNI accepts NetworkPolicies and enforces none, so the
tests ask this evaluator instead whether the policies the chart rendered allow
every connection the release makes, and deny those it must not make.

The rules it implements (the Kubernetes documentation's "Network Policies"):

* A pod is isolated for egress (ingress) when a policy in its namespace selects
  it and lists Egress (Ingress) in ``policyTypes`` (default: Ingress, plus
  Egress when the policy has an ``egress`` section). An isolated pod's traffic
  in that direction is allowed only if some rule of a policy selecting it
  allows it; policies add up, none takes anything away.
* A connection needs both: the source's egress and the destination's ingress.
  An endpoint that is not a pod (the host, an outside address) has no policies.
* Peers: ``podSelector`` (pods of the policy's namespace), ``namespaceSelector``
  (with a ``podSelector``: both must match), ``ipBlock`` (``cidr`` minus
  ``except``). A rule without ``to``/``from`` matches every peer, without
  ``ports`` every port; ``egress: []`` allows nothing.
* Ports: a number or the name of the destination pod's container port;
  ``endPort`` for ranges; protocol TCP unless given.
* Destinations are the pods behind a Service (after kube-proxy's DNAT), and
  ``ipBlock`` is matched against their IP, as Calico and Cilium do.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Policy = Mapping[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (``namespace`` set) or a bare address."""

    ip: str
    name: str = ""
    namespace: str | None = None
    # Not part of the identity (ip, name, namespace): mappings cannot be hashed.
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    namespace_labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    named_ports: Mapping[str, int] = field(default_factory=dict, compare=False)
    """Container port names of the pod (``ports[].name`` -> ``containerPort``)."""

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.is_pod else self.name or self.ip


@dataclass(frozen=True)
class Connection:
    src: Endpoint
    dst: Endpoint
    port: int
    protocol: str = "TCP"
    why: str = ""

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst}:{self.port}/{self.protocol} ({self.why})"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Does a LabelSelector match ``labels``? An empty selector matches everything."""
    if not selector:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown selector operator {op!r}")
    return True


def policy_types(policy: Policy) -> set[str]:
    spec = policy["spec"]
    if spec.get("policyTypes"):
        return set(spec["policyTypes"])
    return {"Ingress"} | ({"Egress"} if "egress" in spec else set())


def _selecting(policies: Sequence[Policy], pod: Endpoint, direction: str) -> list[Policy]:
    return [
        p
        for p in policies
        if p["metadata"].get("namespace") == pod.namespace
        and direction in policy_types(p)
        and selects(p["spec"].get("podSelector"), pod.labels)
    ]


def _peer_matches(peer: Mapping[str, Any], policy_ns: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        ip = ipaddress.ip_address(other.ip)
        if ip not in ipaddress.ip_network(block["cidr"], strict=False):
            return False
        return not any(ip in ipaddress.ip_network(e, strict=False) for e in block.get("except", []))
    if not other.is_pod:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], other.namespace_labels):
            return False
    elif other.namespace != policy_ns:
        return False
    return selects(peer.get("podSelector"), other.labels)


def _port_matches(spec: Mapping[str, Any], conn: Connection) -> bool:
    if spec.get("protocol", "TCP") != conn.protocol:
        return False
    if "port" not in spec:
        return True
    port = spec["port"]
    if isinstance(port, str) and not port.isdigit():
        named = conn.dst.named_ports.get(port)
        return named is not None and named == conn.port
    first = int(port)
    return first <= conn.port <= int(spec.get("endPort", first))


def _rule_allows(
    rule: Mapping[str, Any], peers_key: str, policy_ns: str, other: Endpoint, conn: Connection
) -> bool:
    peers = rule.get(peers_key)
    if peers is not None and not any(_peer_matches(p, policy_ns, other) for p in peers):
        return False
    ports = rule.get("ports")
    return ports is None or any(_port_matches(p, conn) for p in ports)


def _side(policies: Sequence[Policy], conn: Connection, direction: str) -> Verdict:
    pod, other = (conn.src, conn.dst) if direction == "Egress" else (conn.dst, conn.src)
    if not pod.is_pod:
        return Verdict(True, f"{pod} is not a pod")
    selecting = _selecting(policies, pod, direction)
    if not selecting:
        return Verdict(True, f"no {direction} policy selects {pod}")
    rules_key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    for policy in selecting:
        ns = policy["metadata"]["namespace"]
        for rule in policy["spec"].get(rules_key) or []:
            if _rule_allows(rule, peers_key, ns, other, conn):
                return Verdict(True, f"{direction} allowed by {policy['metadata']['name']}")
    names = ", ".join(p["metadata"]["name"] for p in selecting)
    return Verdict(False, f"{direction} of {pod} denied (policies selecting it: {names})")


def verdict(policies: Sequence[Policy], conn: Connection) -> Verdict:
    """Whether ``policies`` allow ``conn`` (the source's egress and the destination's ingress)."""
    for direction in ("Egress", "Ingress"):
        side = _side(policies, conn, direction)
        if not side.allowed:
            return side
    return Verdict(True, "allowed")
