"""Template logic, asserted on ``helm template`` output (the project's stand-in
for helm-unittest: same idea, pytest instead of YAML suites).

What the templates derive instead of asking for: NetworkPolicy ports from the
endpoints, release-scoped and length-safe names, quoted user maps, broker
resources where Strimzi v1 reads them.
"""

from __future__ import annotations

import json

from chartkit import Manifest, helm_template, named, parse


def objects(*sets: str) -> tuple[Manifest, ...]:
    return parse(helm_template(sets=sets))


def egress_ports(policy: Manifest) -> set[int]:
    return {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}


def test_network_policy_ports_come_from_the_endpoints() -> None:
    rendered = objects(
        "kafka.strimzi.enabled=false",
        "kafka.external.bootstrapServers=k0.data:19092\\,k1.data:19093\\,k2.data:19093",
        "redis.enabled=false",
        "redis.external.url=rediss://:pw@cache.data:6380/1",
        "lake.mode=s3",
        "lake.s3.uri=s3://bucket/lake",
        "lake.s3.endpointUrl=https://minio.storage:9443",
    )
    ingest = named(rendered, "NetworkPolicy", "ticklake-ingest")
    assert egress_ports(ingest) == {53, 19092, 19093, 6380, 9443}
    producer = named(rendered, "NetworkPolicy", "ticklake-producer")
    assert egress_ports(producer) == {53, 19092, 19093}


def test_default_ports_when_the_endpoints_name_none() -> None:
    rendered = objects(
        "redis.enabled=false",
        "redis.external.url=redis://cache.data/0",
        "lake.mode=s3",
        "lake.s3.uri=s3://bucket/lake",
        "kafka.strimzi.listenerPort=9094",
    )
    ingest = named(rendered, "NetworkPolicy", "ticklake-ingest")
    assert egress_ports(ingest) == {53, 9094, 6379, 443}  # AWS S3: 443
    http = objects("lake.mode=s3", "lake.s3.uri=s3://bkt/l", "lake.s3.endpointUrl=http://minio")
    assert 80 in egress_ports(named(http, "NetworkPolicy", "ticklake-ingest"))


def test_lake_encryption_reaches_ingest_only() -> None:
    """Only ingest writes the lake; the query API's image has no obstore and needs none."""
    rendered = objects("lake.mode=s3", "lake.s3.uri=s3://bucket/lake", "lake.s3.sse=aws:kms",
                       "lake.s3.sseKmsKeyId=alias/lake")  # fmt: skip
    ingest = named(rendered, "ConfigMap", "ticklake-ingest")["data"]
    assert (ingest["TICKLAKE_S3_SSE"], ingest["TICKLAKE_S3_SSE_KMS_KEY_ID"]) == (
        "aws:kms", "alias/lake")  # fmt: skip
    query = named(rendered, "ConfigMap", "ticklake-query-api")["data"]
    assert not {k for k in query if k.startswith("TICKLAKE_S3_SSE")}
    default = named(objects("lake.mode=s3", "lake.s3.uri=s3://bucket/lake"), "ConfigMap",
                    "ticklake-ingest")["data"]  # fmt: skip
    assert "TICKLAKE_S3_SSE" not in default


def test_kafka_resources_go_to_the_node_pool() -> None:
    """Strimzi v1's Kafka has no spec.kafka.resources (the API server would
    prune it): the chart puts them on the KafkaNodePool."""
    rendered = objects("kafka.strimzi.kafkaResources.requests.cpu=2")
    (kafka,) = [o for o in rendered if o["kind"] == "Kafka"]
    (pool,) = [o for o in rendered if o["kind"] == "KafkaNodePool"]
    assert "resources" not in kafka["spec"]["kafka"]
    assert pool["spec"]["resources"] == {"requests": {"cpu": 2}}
    override = objects(
        "kafka.strimzi.kafkaResources.requests.cpu=2",
        "kafka.strimzi.nodePool.resources.requests.cpu=4",
    )
    (pool,) = [o for o in override if o["kind"] == "KafkaNodePool"]
    assert pool["spec"]["resources"] == {"requests": {"cpu": 4}}


def test_user_kafka_config_overrides_the_charts_without_a_duplicate_key() -> None:
    text = helm_template(sets=["kafka.strimzi.config.min\\.insync\\.replicas=2"])
    (kafka,) = [o for o in parse(text) if o["kind"] == "Kafka"]
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] == 2
    assert text.count("min.insync.replicas:") == 1


def test_node_pool_volume_size_is_a_string() -> None:
    rendered = objects(
        "kafka.strimzi.nodePool.persistence.enabled=true",
        "kafka.strimzi.nodePool.persistence.size=20Gi",
    )
    (pool,) = [o for o in rendered if o["kind"] == "KafkaNodePool"]
    assert pool["spec"]["storage"]["volumes"][0]["size"] == "20Gi"


def test_user_maps_are_quoted() -> None:
    rendered = objects(
        "producer.podLabels.tier=2",
        "producer.podLabels.canary=false",
        "producer.podAnnotations.example\\.com/ratio=0.5",
        "producer.service.annotations.example\\.com/on=true",
    )
    deployment = named(rendered, "Deployment", "ticklake-producer")
    meta = deployment["spec"]["template"]["metadata"]
    assert meta["labels"]["tier"] == "2" and meta["labels"]["canary"] == "false"
    assert meta["annotations"]["example.com/ratio"] == "0.5"
    service = named(rendered, "Service", "ticklake-producer")
    assert service["metadata"]["annotations"] == {"example.com/on": "true"}


def test_names_are_release_scoped() -> None:
    rendered = parse(helm_template())
    (pool,) = [o for o in rendered if o["kind"] == "KafkaNodePool"]
    assert pool["metadata"]["name"] == "ticklake-dual-role"
    watch_all = objects("operator.watchAllNamespaces=true")
    cluster_scoped = sorted(
        o["metadata"]["name"]
        for o in watch_all
        if o["kind"] in ("ClusterRole", "ClusterRoleBinding")
    )
    assert cluster_scoped == [
        "ticklake-operator-ticklake", "ticklake-operator-ticklake",
        "ticklake-operator-ticklake-crds", "ticklake-operator-ticklake-crds",
    ]  # fmt: skip


def test_the_operator_watches_only_its_release() -> None:
    rendered = parse(helm_template())
    scaler = named(rendered, "IngestScaler", "ticklake-ingest")
    operator = named(rendered, "Deployment", "ticklake-operator")
    env = {e["name"]: e.get("value") for e in
           operator["spec"]["template"]["spec"]["containers"][0]["env"]}  # fmt: skip
    selector = json.loads(env["TICKLAKE_OPERATOR_SCALER_LABELS"])
    assert selector == {"ticklake.dev/operator": "ticklake.ticklake"}
    assert scaler["metadata"]["labels"]["ticklake.dev/operator"] == "ticklake.ticklake"


def test_the_redis_statefulset_name_leaves_room_for_the_revision_label() -> None:
    rendered = objects("fullnameOverride=" + "f" * 63)
    (sts,) = [o for o in rendered if o["kind"] == "StatefulSet"]
    assert len(sts["metadata"]["name"]) == 52
    assert sts["metadata"]["name"].endswith("-redis")
    service = named(rendered, "Service", sts["metadata"]["name"])
    assert service["spec"]["ports"][0]["name"] == "redis"
