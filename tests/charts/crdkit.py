"""The real upstream CRD schemas, and the operators' own admission rules.

The schemas are those of ``../shared/k8s-crds`` (beside the repository, in
every checkout and in CI; never copied into it): one JSON record per CRD
version with the upstream project, tag, commit and file it came from. The
chart is checked against every bundle here.

Some rules no schema carries: the operators refuse those objects when they
reconcile them, after the API server accepted them. :func:`admission_problems`
repeats them, each with the upstream file and function that enforces it; the
chart refuses the same values when it renders (``ticklake.validate`` in
``templates/_helpers.tpl``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chartkit import Manifest

from ticklake.devstack import paths

STRIMZI_BUNDLES = ("strimzi-1.2.0", "strimzi-0.51.0")
"""Strimzi releases whose ``kafka.strimzi.io/v1`` schemas the chart is tested
against (0.49.0 is the first that serves v1; 1.x serves only v1)."""
PROMETHEUS_OPERATOR_BUNDLE = "prometheus-operator-v0.93.0"


def shared_dir() -> Path:
    """The folder that holds ``k8s-crds`` (``ticklake.devstack.paths.shared_dir``)."""
    return paths.shared_dir()


@dataclass(frozen=True)
class UpstreamCrd:
    """One served version of one upstream CRD."""

    bundle: str
    group: str
    kind: str
    plural: str
    scope: str
    version: str
    schema: Mapping[str, Any]
    source: Mapping[str, str]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def crd_object(self) -> dict[str, Any]:
        """A CustomResourceDefinition serving (and storing) this one version."""
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {
                "name": f"{self.plural}.{self.group}",
                "annotations": {
                    "ticklake.dev/source": (
                        f"{self.source['project']}@{self.source['release']} "
                        f"{self.source['file']} ({self.source['commit'][:12]})"
                    )
                },
            },
            "spec": {
                "group": self.group,
                "names": {
                    "kind": self.kind,
                    "plural": self.plural,
                    "singular": self.kind.lower(),
                    "listKind": f"{self.kind}List",
                },
                "scope": self.scope,
                "versions": [
                    {
                        "name": self.version,
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": self.schema},
                    }
                ],
            },
        }


@functools.cache
def bundle(name: str) -> tuple[UpstreamCrd, ...]:
    folder = shared_dir() / "k8s-crds" / name
    records = []
    for path in sorted(folder.glob("*.*.json")):
        record = json.loads(path.read_text())
        if "openAPIV3Schema" not in record:
            continue  # kafka-versions.json
        records.append(
            UpstreamCrd(
                bundle=name,
                group=record["group"],
                kind=record["kind"],
                plural=record["plural"],
                scope=record["scope"],
                version=record["version"],
                schema=record["openAPIV3Schema"],
                source=record["source"],
            )
        )
    if not records:
        raise FileNotFoundError(f"no CRD records in {folder}")
    return tuple(records)


def release_of(name: str) -> str:
    """The upstream release tag of a bundle, from its records."""
    return bundle(name)[0].source["release"]


def schemas(strimzi: str) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema for one Strimzi bundle plus the
    prometheus-operator one."""
    return {
        (c.api_version, c.kind): c.schema
        for c in (*bundle(strimzi), *bundle(PROMETHEUS_OPERATOR_BUNDLE))
    }


# ------------------------------------------------------------ admission rules

STRIMZI_FORBIDDEN_PORTS = (9404, 9999)
STRIMZI_LOWEST_PORT = 9092
ADMISSION_RULES: Mapping[str, str] = {
    "strimzi-listener-ports": (
        "strimzi-kafka-operator cluster-operator/src/main/java/io/strimzi/operator/cluster/"
        "model/ListenersValidator.java, validatePortNumbers(): FORBIDDEN_PORTS 9404 and "
        "9999, LOWEST_ALLOWED_PORT_NUMBER 9092 (tags 0.51.0 and 1.2.0)"
    ),
    "strimzi-kraft-roles": (
        "strimzi-kafka-operator cluster-operator/src/main/java/io/strimzi/operator/cluster/"
        "model/nodepools/NodePoolUtils.java, validateKRaftProcessRoles(): a pool with the "
        "broker role and one with the controller role, each with replicas (tag 1.2.0)"
    ),
    "strimzi-topic-replicas": (
        "Kafka's CreateTopics refuses a replication factor above the broker count "
        "(INVALID_REPLICATION_FACTOR); Strimzi's topic operator reports it in the "
        "KafkaTopic's status and creates nothing"
    ),
    "prometheus-operator-scrape-timeout": (
        "prometheus-operator pkg/prometheus/resource_selector.go "
        "validateScrapeIntervalAndTimeout() -> pkg/prometheus/promcfg.go "
        "CompareScrapeTimeoutToScrapeInterval(): scrapeTimeout greater than the "
        "interval rejects the ServiceMonitor (v0.93.0)"
    ),
}
"""Rule -> where upstream enforces it (file and function)."""

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")


def duration_ms(text: str) -> int:
    """A Prometheus duration (``1h30m``, ``15s``, ``500ms``) in milliseconds."""
    match = _DURATION.match(text)
    if not text or not match:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    h, m, s, ms = (int(g or 0) for g in match.groups())
    return ((h * 60 + m) * 60 + s) * 1000 + ms


def admission_problems(objects: Iterable[Manifest]) -> list[str]:
    """What the Strimzi and Prometheus operators would refuse in ``objects``
    (each problem names its rule; :data:`ADMISSION_RULES` says where upstream
    enforces it)."""
    objects = list(objects)
    problems: list[str] = []
    pools_by_cluster: dict[str, list[Manifest]] = {}
    for o in objects:
        if o["kind"] == "KafkaNodePool":
            cluster = o["metadata"].get("labels", {}).get("strimzi.io/cluster", "")
            pools_by_cluster.setdefault(cluster, []).append(o)
    for o in objects:
        name = f"{o['kind']}/{o['metadata']['name']}"
        if o["kind"] == "Kafka":
            for listener in o["spec"]["kafka"].get("listeners", []):
                port = listener["port"]
                if port in STRIMZI_FORBIDDEN_PORTS or port < STRIMZI_LOWEST_PORT:
                    problems.append(f"strimzi-listener-ports: {name} listener port {port}")
            pools = pools_by_cluster.get(o["metadata"]["name"], [])
            for role in ("broker", "controller"):
                if not any(role in p["spec"]["roles"] and p["spec"]["replicas"] > 0 for p in pools):
                    problems.append(f"strimzi-kraft-roles: {name} has no pool with the {role} role")
        elif o["kind"] == "KafkaTopic":
            cluster = o["metadata"].get("labels", {}).get("strimzi.io/cluster", "")
            brokers = sum(
                p["spec"]["replicas"]
                for p in pools_by_cluster.get(cluster, [])
                if "broker" in p["spec"]["roles"]
            )
            replicas = o["spec"].get("replicas")
            if replicas is not None and replicas > brokers:
                problems.append(
                    f"strimzi-topic-replicas: {name} replicas {replicas} > {brokers} broker(s)"
                )
        elif o["kind"] in ("ServiceMonitor", "PodMonitor"):
            key = "endpoints" if o["kind"] == "ServiceMonitor" else "podMetricsEndpoints"
            for endpoint in o["spec"].get(key, []):
                timeout, interval = endpoint.get("scrapeTimeout"), endpoint.get("interval")
                if timeout and interval and duration_ms(timeout) > duration_ms(interval):
                    problems.append(
                        f"prometheus-operator-scrape-timeout: {name} scrapeTimeout {timeout} "
                        f"> interval {interval}"
                    )
    return problems
