"""kafka.strimzi.auth: one KafkaUser per client, each client wired to its user's Secret and
to the cluster CA; off, the plain listener and no users. (That these ACLs let the real
services work and refuse the rest is tests/ingest/test_kafka_sasl.py, on a real broker.)"""

from __future__ import annotations

from charts.chartkit import (
    component_name,
    helm_template_result,
    named,
    of_kind,
    parse,
    render,
)
from charts.chartkit import helm_template as template


def _pod(objects: tuple[dict, ...], component: str) -> dict:
    return named(objects, "Deployment", component_name(component))["spec"]["template"]["spec"]


def test_each_client_logs_in_as_its_own_kafka_user_and_verifies_the_cluster_ca() -> None:
    objects = render("defaults")
    kafka = of_kind(objects, "Kafka")[0]
    users = {u["metadata"]["name"]: u for u in of_kind(objects, "KafkaUser")}
    assert set(users) == {component_name(f"{r}-kafka") for r in ("producer", "ingest", "operator")}
    for user in users.values():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert user["spec"]["authentication"] == {"type": "scram-sha-512"}
    ca_secret = f"{kafka['metadata']['name']}-cluster-ca-cert"
    for component, prefix in (("producer", "TICKLAKE_"), ("ingest", "TICKLAKE_"),
                              ("operator", "TICKLAKE_OPERATOR_")):  # fmt: skip
        pod = _pod(objects, component)
        env = {e["name"]: e for e in pod["containers"][0].get("env", [])}
        user = env[f"{prefix}KAFKA_SASL_USERNAME"]["value"]
        assert user == component_name(f"{component}-kafka") and user in users
        ref = env[f"{prefix}KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": user, "key": "password"}  # the Secret Strimzi makes
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["kafka-ca"]["secret"]["secretName"] == ca_secret
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        assert mounts["kafka-ca"]["mountPath"] == "/etc/ticklake/kafka-ca"
    # Nobody may create topics (KafkaTopics do); the query API never talks to Kafka.
    operations = {op for u in users.values() for a in u["spec"]["authorization"]["acls"]
                  for op in a["operations"]}  # fmt: skip
    assert "Create" not in operations and "All" not in operations
    assert component_name("query-api-kafka") not in users


def test_sequence_ordering_grants_the_sequencers_topic_group_and_transactions() -> None:
    objects = parse(template(sets=["ingest.ordering=sequence"]))
    ingest = named(objects, "KafkaUser", component_name("ingest-kafka"))
    kinds = {a["resource"]["type"] for a in ingest["spec"]["authorization"]["acls"]}
    assert kinds == {"topic", "group", "transactionalId"}


def test_without_auth_the_plain_listener_and_no_users() -> None:
    objects = parse(template(sets=["kafka.strimzi.auth.enabled=false"]))
    (listener,) = of_kind(objects, "Kafka")[0]["spec"]["kafka"]["listeners"]
    assert (listener["name"], listener["tls"]) == ("plain", False)
    assert not of_kind(objects, "KafkaUser")
    env = _pod(objects, "ingest")["containers"][0].get("env", [])
    assert not [e for e in env if e["name"].startswith("TICKLAKE_KAFKA_SASL")]


EXTERNAL_SASL = [
    "kafka.strimzi.enabled=false",
    "kafka.external.bootstrapServers=kafka-0.data.svc:9093",
    "kafka.external.auth.securityProtocol=SASL_SSL",
    "kafka.external.auth.caSecret=corp-kafka-ca",
]


def test_external_kafka_takes_each_clients_credentials_from_its_secret() -> None:
    users = [f"kafka.external.auth.users.{r}={r}-creds" for r in ("producer", "ingest", "operator")]
    objects = parse(template(sets=[*EXTERNAL_SASL, *users]))
    assert not of_kind(objects, "KafkaUser")
    for component, prefix in (("producer", "TICKLAKE_"), ("ingest", "TICKLAKE_"),
                              ("operator", "TICKLAKE_OPERATOR_")):  # fmt: skip
        pod = _pod(objects, component)
        env = {e["name"]: e for e in pod["containers"][0].get("env", [])}
        for key in ("username", "password"):
            ref = env[f"{prefix}KAFKA_SASL_{key.upper()}"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": f"{component}-creds", "key": key}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["kafka-ca"]["secret"]["secretName"] == "corp-kafka-ca"


def test_external_sasl_without_a_clients_secret_is_refused_by_name() -> None:
    result = helm_template_result(sets=EXTERNAL_SASL)
    assert result.returncode != 0
    assert "kafka.external.auth.users.producer: a Secret with username and password" in (
        result.stderr
    )


def test_external_mutual_tls_mounts_each_clients_certificate_and_only_its_own() -> None:
    sets = [s.replace("SASL_SSL", "SSL") for s in EXTERNAL_SASL]
    users = [f"kafka.external.auth.users.{r}={r}-cert" for r in ("producer", "ingest", "operator")]
    objects = parse(template(sets=[*sets, *users]))
    for component, prefix in (("producer", "TICKLAKE_"), ("ingest", "TICKLAKE_"),
                              ("operator", "TICKLAKE_OPERATOR_")):  # fmt: skip
        pod = _pod(objects, component)
        container = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env[f"{prefix}KAFKA_TLS_CERT_FILE"] == "/etc/ticklake/kafka-client/tls.crt"
        assert env[f"{prefix}KAFKA_TLS_KEY_FILE"] == "/etc/ticklake/kafka-client/tls.key"
        assert f"{prefix}KAFKA_SASL_USERNAME" not in env
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["kafka-client-cert"] == "/etc/ticklake/kafka-client"
        volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
        assert volumes["kafka-client-cert"] == {
            "secretName": f"{component}-cert", "defaultMode": 0o440,
            "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}],
        }  # fmt: skip
    # TLS without client certificates: no mount, no certificate settings
    plain_tls = parse(template(sets=sets))
    env = {e["name"] for e in _pod(plain_tls, "ingest")["containers"][0].get("env", [])}
    assert "TICKLAKE_KAFKA_TLS_CERT_FILE" not in env
