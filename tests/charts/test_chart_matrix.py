"""A table of value sets, each rendered, checked and applied to a real API server.

Every row of :data:`MATRIX` is one release: a release name, a namespace, the
values and the Strimzi release whose CRDs are served. Each is rendered with
the real Helm and then:

* its names fit (DNS labels, the Redis StatefulSet's 52 characters, broker pod
  hostnames, label values);
* the operators would accept it (:func:`crdkit.admission_problems`: Strimzi's
  listener ports and KRaft roles, topic replicas against brokers,
  prometheus-operator's scrapeTimeout rule);
* every object is applied with server-side apply to the session's API server,
  which serves the real upstream CRDs, and read back: a custom resource field
  the server pruned, or a built-in field it refused, fails the row.

All rows share the one API server (as releases share a cluster), so the table
also proves that two releases in one namespace, and one release name in two
namespaces, do not produce one object twice, and that each operator selects
only its own release's IngestScalers.
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from applykit import apply_and_compare, lost_fields
from chartkit import CHART, Manifest, parse, run, tool
from clusterkit import ChartCluster
from crdkit import STRIMZI_BUNDLES, admission_problems

LONGEST_RELEASE = "r" + "x" * 51 + "z"  # Helm's limit: 53 characters
LONGEST_NAMESPACE = "n" + "y" * 61 + "z"  # a DNS label: 63
LONGEST_FULLNAME = "f" + "w" * 61 + "z"  # values schema: 63
LONGEST_CLUSTER = "c" + "v" * 30 + "z"  # values schema: 32
LONGEST_POOL = "p" + "u" * 10 + "z"  # values schema: 12
EXTERNAL_KAFKA = "kafka-0.kafka.data.svc:19092,kafka-1.kafka.data.svc:19093"


@dataclass(frozen=True)
class Row:
    name: str
    values: Mapping[str, Any] = field(default_factory=dict)
    release: str = "ticklake"
    namespace: str = ""
    strimzi: str = STRIMZI_BUNDLES[0]

    @property
    def ns(self) -> str:
        return self.namespace or f"m-{self.name}"


MATRIX: tuple[Row, ...] = (
    Row("defaults"),
    Row("defaults-strimzi-0-51", strimzi="strimzi-0.51.0"),
    Row(
        "replicated-persistent",
        {
            "kafka": {"strimzi": {
                "version": "4.3.1", "metadataVersion": "4.3-IV0", "listenerPort": 9093,
                "config": {"min.insync.replicas": 1, "num.partitions": 3},
                "kafkaResources": {"requests": {"cpu": "500m", "memory": "2Gi"}},
                "nodePool": {"replicas": 3, "persistence": {
                    "enabled": True, "size": "20Gi", "storageClass": "fast", "deleteClaim": True,
                }},
                "topics": {"ticks": {"replicas": 3, "partitions": 12}},
            }},
            "redis": {"persistence": {"enabled": True, "size": "2Gi", "storageClass": "fast"},
                      "maxmemory": "512mb"},
        },
    ),
    Row(
        "replicated-persistent-strimzi-0-51",
        {"kafka": {"strimzi": {"nodePool": {
            "replicas": 3, "resources": {"limits": {"memory": "4Gi"}},
            "persistence": {"enabled": True, "size": "1.5Ti"},
        }}}},
        strimzi="strimzi-0.51.0",
    ),
    Row(
        "external-kafka-redis-s3",
        {
            "kafka": {"strimzi": {"enabled": False},
                      "external": {"bootstrapServers": EXTERNAL_KAFKA, "cidrs": ["10.1.0.0/16"]}},
            "redis": {"enabled": False,
                      "external": {"url": "rediss://cache.data.svc:6380/2"},
                      "auth": {"existingSecret": "cache-auth", "existingSecretPasswordKey": "pw"}},
            "lake": {"mode": "s3", "s3": {"uri": "s3://lake-bucket/ticks",
                                          "endpointUrl": "http://minio.storage.svc:9000",
                                          "accessKeyId": "id", "secretAccessKey": "secret"}},
        },
    ),
    Row(
        "s3-aws-existing-secret",
        {"lake": {"mode": "s3", "s3": {"uri": "s3://lake-bucket", "existingSecret": "aws-keys",
                                       "region": "eu-west-1"}}},
    ),
    Row("monitoring-off", {"monitoring": {"enabled": False}}),
    Row(
        "monitoring-parts-off",
        {"monitoring": {"prometheusRule": {"enabled": False}, "dashboard": {"enabled": False},
                        "serviceMonitor": {"interval": "30s", "scrapeTimeout": "30s"}}},
    ),
    Row("networkpolicy-off", {"networkPolicy": {"enabled": False}}),
    Row(
        "auth-jwt-existing-keys-secret",
        {"queryApi": {"auth": {
            "existingSecret": "desk-keys", "rateLimitPerSecond": 5.5, "burst": 10,
            "jwt": {"jwksUrl": "https://idp.corp:8443/realms/desk/certs", "issuer": "https://idp.corp",
                    "audience": "ticklake", "cidrs": ["10.20.0.0/16"]}}}},
    ),
    Row("auth-off", {"queryApi": {"auth": {"enabled": False}},
                     "kafka": {"strimzi": {"auth": {"enabled": False}}},
                     "redis": {"acl": {"enabled": False}}}),
    Row(
        "external-kafka-sasl",
        {"kafka": {"strimzi": {"enabled": False},
                   "external": {"bootstrapServers": "kafka-0.kafka.data.svc:9093",
                                "auth": {"securityProtocol": "SASL_SSL", "caSecret": "kafka-ca",
                                         "users": {"producer": "p", "ingest": "i",
                                                   "operator": "o"}}}}},
    ),
    Row("operator-off", {"operator": {"enabled": False}}),
    Row("scaler-off", {"operator": {"ingestScaler": {"create": False}}}),
    Row(
        "scaler-lag-mode",
        {"operator": {"ingestScaler": {"mode": "lag", "minReplicas": 2, "maxReplicas": 2,
                                       "evenDistribution": True}}},
    ),
    Row("topics-off", {"kafka": {"strimzi": {"topics": {"create": False}}}}),
    Row(
        "ordering-sequence",
        {"ingest": {"ordering": "sequence"},
         "kafka": {"strimzi": {"nodePool": {"replicas": 3},
                               "topics": {"sequenced": {"replicas": 3, "partitions": 12}}}}},
    ),
    Row(
        "components-off",
        {"producer": {"enabled": False}, "queryApi": {"enabled": False},
         "tests": {"enabled": False}},
    ),
    Row("ingest-off", {"ingest": {"enabled": False}}),
    Row(
        "services-and-pods",
        {
            "image": {"registry": "localhost:5001", "tag": "dev",
                      "pullSecrets": [{"name": "regcred"}]},
            "producer": {
                "service": {"type": "NodePort", "nodePort": 30080,
                            "annotations": {"example.com/weight": 10, "example.com/on": True}},
                "podLabels": {"team": "markets", "tier": 2, "canary": False},
                "podAnnotations": {"example.com/scrape": True, "example.com/ratio": 0.5},
                "extraSettings": {"TICKLAKE_FEED_RATE": 5000, "TICKLAKE_FEED_SYMBOLS": "A,B"},
                "pdb": {"enabled": False}, "topologySpread": {"enabled": False},
            },
            "queryApi": {
                "image": {"digest": "sha256:" + "a" * 64},
                "service": {"type": "LoadBalancer", "annotations": {"lb.example.com/idle": 60}},
                "resources": {"requests": {"cpu": "0.25", "memory": "1024Mi"}},
                "extraEnv": [{"name": "EXTRA", "value": "1"}],
                "nodeSelector": {"disk": "ssd"},
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            },
            "lake": {"pvc": {"existingClaim": "shared-lake"}},
        },
    ),
    # Two releases in one namespace.
    Row("pair-alpha", release="alpha", namespace="m-pair"),
    Row("pair-beta", release="beta", namespace="m-pair"),
    # One release name in two namespaces, each operator watching them all.
    Row("shared-a", {"operator": {"watchAllNamespaces": True}}, release="shared",
        namespace="m-shared-a"),
    Row("shared-b", {"operator": {"watchAllNamespaces": True}}, release="shared",
        namespace="m-shared-b"),
    # The longest names the values schema (and Helm) allow.
    Row("longest-release", release=LONGEST_RELEASE, namespace=LONGEST_NAMESPACE),
    Row(
        "longest-names",
        {"fullnameOverride": LONGEST_FULLNAME, "nameOverride": LONGEST_FULLNAME,
         "kafka": {"strimzi": {"clusterName": LONGEST_CLUSTER,
                               "nodePool": {"name": LONGEST_POOL}}},
         "operator": {"watchAllNamespaces": True}},
        release=LONGEST_RELEASE[:-1] + "q",
        namespace=LONGEST_NAMESPACE[:-1] + "q",
    ),
    Row(
        "longest-names-strimzi-0-51",
        {"fullnameOverride": LONGEST_FULLNAME[:-1] + "b",
         "kafka": {"strimzi": {"nodePool": {"name": LONGEST_POOL}}}},
        release=LONGEST_RELEASE[:-1] + "b",
        strimzi="strimzi-0.51.0",
    ),
)  # fmt: skip
ROWS = {row.name: row for row in MATRIX}


@functools.cache
def rendered(name: str) -> tuple[Manifest, ...]:
    row = ROWS[name]
    with tempfile.TemporaryDirectory() as tmp:
        values = Path(tmp) / "values.yaml"
        values.write_text(yaml.safe_dump(dict(row.values)))
        args = [tool("helm"), "template", row.release, str(CHART), "-n", row.ns, "-f", str(values)]
        result = run(args)
    assert result.returncode == 0, f"{name}: {result.stderr}"
    return parse(result.stdout)


def key(o: Manifest) -> tuple[str, str, str]:
    return (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])


# ------------------------------------------------------------------- names

DNS_LABEL_KINDS = {"Service", "StatefulSet", "Deployment", "Namespace", "Pod"}
"""Kinds whose names must be DNS labels (63) rather than DNS subdomains."""


def name_problems(objects: tuple[Manifest, ...]) -> list[str]:
    problems = []
    for o in objects:
        name = o["metadata"]["name"]
        limit = 63 if o["kind"] in DNS_LABEL_KINDS else 253
        if o["kind"] == "StatefulSet":
            # controller-revision-hash: <name>-<10 characters> is a label value.
            limit = 52
        if len(name) > limit:
            problems.append(f"{o['kind']}/{name}: {len(name)} > {limit} characters")
        labels = dict(o["metadata"].get("labels") or {})
        template = (o.get("spec") or {}).get("template")
        if isinstance(template, dict):
            labels |= template.get("metadata", {}).get("labels") or {}
        for label, value in labels.items():
            if not isinstance(value, str) or len(value) > 63:
                problems.append(f"{o['kind']}/{name}: label {label}={value!r}")
    pools = [o for o in objects if o["kind"] == "KafkaNodePool"]
    for kafka in (o for o in objects if o["kind"] == "Kafka"):
        cluster = kafka["metadata"]["name"]
        for service in ("kafka-bootstrap", "kafka-brokers"):
            if len(f"{cluster}-{service}") > 63:
                problems.append(f"Service {cluster}-{service} > 63 characters")
        for pool in pools:
            # Strimzi names broker pods <cluster>-<pool>-<node id>; a pod's name
            # is its hostname. Node ids of up to 5 digits.
            pod = f"{cluster}-{pool['metadata']['name']}-99999"
            if len(pod) > 63:
                problems.append(f"broker pod {pod}: {len(pod)} > 63 characters")
    return problems


@pytest.mark.parametrize("name", sorted(ROWS))
def test_names_fit(name: str) -> None:
    assert name_problems(rendered(name)) == []


def test_the_name_check_can_fail() -> None:
    long_sts = {"kind": "StatefulSet", "metadata": {"name": "s" * 53}, "spec": {}}
    kafka = {"kind": "Kafka", "metadata": {"name": "k" * 40}, "spec": {}}
    pool = {"kind": "KafkaNodePool", "metadata": {"name": "p" * 20}, "spec": {}}
    problems = name_problems((long_sts, kafka, pool))
    assert len(problems) == 2, problems


def test_longest_names_are_cut_and_still_distinct() -> None:
    objects = rendered("longest-names")
    (sts,) = [o for o in objects if o["kind"] == "StatefulSet"]
    assert len(sts["metadata"]["name"]) == 52
    (pool,) = [o for o in objects if o["kind"] == "KafkaNodePool"]
    assert pool["metadata"]["name"].endswith(f"-{LONGEST_POOL}")
    assert len(f"{LONGEST_CLUSTER}-{pool['metadata']['name']}-99999") == 63
    keys = [key(o) for o in objects]
    assert len(keys) == len(set(keys))


# ------------------------------------------------------- operators' own rules


@pytest.mark.parametrize("name", sorted(ROWS))
def test_the_operators_would_accept_it(name: str) -> None:
    assert admission_problems(rendered(name)) == []


# ---------------------------------------------------- the shared cluster view


def test_no_two_rows_render_the_same_object() -> None:
    """All rows go to one API server: a name two releases share would be one
    object, silently overwritten (server-side apply in the test would merge
    identical fields without a conflict)."""
    owners: dict[tuple[str, str, str], str] = {}
    for row in MATRIX:
        for o in rendered(row.name):
            k = key(o)
            assert k not in owners, f"{k} rendered by {owners[k]} and {row.name}"
            owners[k] = row.name


def test_each_operator_selects_only_its_own_ingestscalers() -> None:
    scalers = [
        (row.name, o) for row in MATRIX for o in rendered(row.name) if o["kind"] == "IngestScaler"
    ]
    checked = 0
    for row in MATRIX:
        deployments = [
            o for o in rendered(row.name)
            if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-operator")
        ]  # fmt: skip
        if not deployments:
            continue
        env = {e["name"]: e.get("value") for e in
               deployments[0]["spec"]["template"]["spec"]["containers"][0]["env"]}  # fmt: skip
        selector = json.loads(env["TICKLAKE_OPERATOR_SCALER_LABELS"])
        namespaces = json.loads(env["TICKLAKE_OPERATOR_NAMESPACES"])
        assert selector, f"{row.name}: the operator watches every IngestScaler"
        seen = [
            owner for owner, s in scalers
            if (not namespaces or s["metadata"]["namespace"] in namespaces)
            and all(s["metadata"]["labels"].get(k) == v for k, v in selector.items())
        ]  # fmt: skip
        own = [owner for owner, _ in scalers if owner == row.name]
        assert seen == own, f"{row.name}'s operator selects {seen}"
        checked += 1
    assert checked >= 10


# ------------------------------------------------------- the real API server


@pytest.fixture(scope="module")
def applied(chart_cluster: ChartCluster) -> dict[str, list[str]]:
    """Row -> what the API server refused or did not keep (all rows, applied
    once; rows of one Strimzi release together, since the CRDs are swapped)."""
    results: dict[str, list[str]] = {}
    for strimzi in STRIMZI_BUNDLES:
        rows = [row for row in MATRIX if row.strimzi == strimzi]
        chart_cluster.use_strimzi(strimzi)
        for row in rows:
            chart_cluster.client.ensure_namespace(row.ns)
            problems: list[str] = []
            for o in rendered(row.name):
                problems += apply_and_compare(
                    chart_cluster.client, o, f"matrix-{row.ns}-{row.release}"
                )
            results[row.name] = problems
    return results


@pytest.mark.parametrize("name", sorted(ROWS))
def test_the_api_server_keeps_every_field(applied: dict[str, list[str]], name: str) -> None:
    assert applied[name] == []


def test_every_custom_resource_was_applied(chart_cluster: ChartCluster) -> None:
    """The comparison above covered real custom resources of every kind the
    chart makes (not an empty list)."""
    kinds = {o["kind"] for row in MATRIX for o in rendered(row.name)}
    assert {"Kafka", "KafkaNodePool", "KafkaTopic", "ServiceMonitor", "PrometheusRule",
            "IngestScaler"} <= kinds  # fmt: skip


def strimzi_kafka(ns: str, name: str, **kafka: Any) -> Manifest:
    spec = {"listeners": [{"name": "plain", "port": 9092, "type": "internal", "tls": False}]}
    return {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "Kafka",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"kafka": spec | kafka},
    }


@pytest.mark.parametrize("strimzi", STRIMZI_BUNDLES)
def test_helm_would_be_pruned_in_silence_and_the_comparison_sees_it(
    chart_cluster: ChartCluster, strimzi: str
) -> None:
    """What chart 0.1.0 rendered for kafkaResources: a create (Helm's way)
    is accepted and the field dropped; server-side apply refuses it."""
    chart_cluster.use_strimzi(strimzi)
    ns = "m-probes"
    chart_cluster.client.ensure_namespace(ns)
    kafka = strimzi_kafka(ns, f"resources-{strimzi.replace('.', '-')}",
                          resources={"requests": {"cpu": "1"}})  # fmt: skip
    problems = apply_and_compare(chart_cluster.client, kafka, "probe")
    assert problems[0] == f"Kafka/{kafka['metadata']['name']}.spec.kafka.resources (pruned)"
    assert "apply refused" in problems[1] and ".spec.kafka.resources" in problems[1]
    assert len(problems) == 2, problems


@pytest.mark.parametrize(
    ("name", "mutate", "complaint"),
    [
        ("low-port", lambda k: k["spec"]["kafka"]["listeners"][0].update(port=9000), "9092"),
        ("zookeeper", lambda k: k["spec"].update(zookeeper={"replicas": 3}), "zookeeper"),
    ],
)
def test_the_api_server_refuses_what_the_crd_forbids(
    chart_cluster: ChartCluster, name: str, mutate: Any, complaint: str
) -> None:
    chart_cluster.use_strimzi(STRIMZI_BUNDLES[0])
    ns = "m-probes"
    chart_cluster.client.ensure_namespace(ns)
    kafka = strimzi_kafka(ns, name)
    mutate(kafka)
    problems = apply_and_compare(chart_cluster.client, kafka, "probe")
    assert problems and all(complaint in p for p in problems), problems


def test_an_integer_volume_size_is_refused(chart_cluster: ChartCluster) -> None:
    """What an integer nodePool.persistence.size rendered before: the CRD wants a string."""
    chart_cluster.use_strimzi(STRIMZI_BUNDLES[0])
    ns = "m-probes"
    chart_cluster.client.ensure_namespace(ns)
    pool = {
        "apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaNodePool",
        "metadata": {"name": "int-size", "namespace": ns, "labels": {"strimzi.io/cluster": "k"}},
        "spec": {"replicas": 1, "roles": ["broker", "controller"],
                 "storage": {"type": "jbod", "volumes": [
                     {"id": 0, "type": "persistent-claim", "size": 10}]}},
    }  # fmt: skip
    problems = apply_and_compare(chart_cluster.client, pool, "probe")
    assert len(problems) == 2 and all("refused" in p and "size" in p for p in problems), problems


def test_lost_fields_allows_canonical_quantities_only_for_builtins() -> None:
    assert lost_fields({"cpu": "0.5", "m": "1024Mi"}, {"cpu": "500m", "m": "1Gi"},
                       quantities=True) == []  # fmt: skip
    assert lost_fields({"cpu": "0.5"}, {"cpu": "500m"}) == [".cpu (sent '0.5', stored '500m')"]
    assert lost_fields({"a": [1, 2]}, {"a": [1]}) == [".a (sent 2 items, stored [1])"]
