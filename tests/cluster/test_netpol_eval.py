"""The NetworkPolicy evaluator of the real-node tests (``netpol.py``), on
hand-made policies: each rule of the Kubernetes semantics it claims."""

from __future__ import annotations

from typing import Any

import pytest
from netpol import Connection, Endpoint, selects, verdict

APP = {"kubernetes.io/metadata.name": "app"}
MON = {"kubernetes.io/metadata.name": "mon"}
WEB = Endpoint("10.0.0.1", "web", "app", {"role": "web"}, APP, {"http": 8080})
DB = Endpoint("10.0.0.2", "db", "app", {"role": "db"}, APP, {"sql": 5432})
PROM = Endpoint("10.0.1.1", "prom", "mon", {"app": "prometheus"}, MON)
OTHER = Endpoint("10.0.1.2", "other", "mon", {"app": "other"}, MON)
OUTSIDE = Endpoint("192.0.2.7", "outside")


def policy(name: str, selector: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "app"},
        "spec": {"podSelector": selector, **spec},
    }


DENY_ALL = policy("deny", {}, policyTypes=["Ingress", "Egress"])
WEB_OUT = policy(
    "web",
    {"matchLabels": {"role": "web"}},
    policyTypes=["Ingress", "Egress"],
    egress=[
        {"to": [{"podSelector": {"matchLabels": {"role": "db"}}}], "ports": [{"port": "sql"}]},
        {
            "to": [{"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"]}}],
            "ports": [{"port": 400, "endPort": 430}],
        },
    ],
    ingress=[
        {
            "from": [
                {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "prometheus"}}}
            ],
            "ports": [{"port": "http"}],
        },
    ],
)
DB_IN = policy(
    "db",
    {"matchLabels": {"role": "db"}},
    policyTypes=["Ingress", "Egress"],
    ingress=[
        {"from": [{"podSelector": {"matchLabels": {"role": "web"}}}], "ports": [{"port": 5432}]}
    ],
    egress=[],
)
ALL = [DENY_ALL, WEB_OUT, DB_IN]


@pytest.mark.parametrize(
    ("conn", "allowed"),
    [
        (Connection(WEB, DB, 5432), True),  # named egress port, numbered ingress port
        (Connection(WEB, DB, 5433), False),
        (Connection(WEB, DB, 5432, "UDP"), False),  # protocol defaults to TCP
        (Connection(DB, WEB, 8080), False),  # egress: [] allows nothing
        (Connection(PROM, WEB, 8080), True),  # namespaceSelector {} + podSelector
        (Connection(OTHER, WEB, 8080), False),
        (Connection(WEB, OUTSIDE, 443), False),
        (Connection(WEB, OUTSIDE, 420), True),  # endPort range
        (Connection(WEB, Endpoint("192.0.2.200", "excepted"), 420), False),  # except
        (Connection(OUTSIDE, DB, 5432), False),  # an address is no pod of a podSelector
        (Connection(PROM, OTHER, 1), True),  # nothing selects either pod
    ],
    ids=str,
)
def test_verdicts(conn: Connection, allowed: bool) -> None:
    assert verdict(ALL, conn).allowed is allowed, verdict(ALL, conn).reason


def test_a_pod_selector_peer_stays_in_the_policys_namespace() -> None:
    db_elsewhere = Endpoint("10.0.1.3", "db", "mon", {"role": "db"}, MON, {"sql": 5432})
    assert not verdict(ALL, Connection(WEB, db_elsewhere, 5432)).allowed


def test_policy_types_default_to_ingress_plus_egress_when_egress_is_given() -> None:
    ingress_only = policy("in", {}, ingress=[])
    assert verdict([ingress_only], Connection(WEB, OUTSIDE, 443)).allowed
    assert not verdict([ingress_only], Connection(PROM, WEB, 8080)).allowed
    with_egress = policy("out", {}, egress=[])
    assert not verdict([with_egress], Connection(WEB, OUTSIDE, 443)).allowed


def test_policies_add_up() -> None:
    extra = policy("extra", {"matchLabels": {"role": "web"}}, policyTypes=["Egress"],
                   egress=[{"ports": [{"port": 443}]}])  # fmt: skip
    assert verdict([*ALL, extra], Connection(WEB, OUTSIDE, 443)).allowed


def test_match_expressions() -> None:
    sel = {"matchExpressions": [{"key": "role", "operator": "In", "values": ["web", "db"]},
                                {"key": "tier", "operator": "DoesNotExist"}]}  # fmt: skip
    assert selects(sel, {"role": "db"})
    assert not selects(sel, {"role": "db", "tier": "x"})
    assert not selects(sel, {"role": "cache"})
    with pytest.raises(ValueError, match="operator"):
        selects({"matchExpressions": [{"key": "a", "operator": "Near"}]}, {})
