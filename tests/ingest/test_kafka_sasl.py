"""Kafka over SASL_SSL with SCRAM-SHA-512 and ACLs (a real broker from the Maven jars):
the producer, ingest and the operator each log in as their own user, with the ACLs the
chart's KafkaUsers grant, and may do only their part; a client without credentials, or
with another user's password, is refused by the broker."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from chartkit import helm_template
from ingest_kit import RunningIngest, lake_row_count, settings_for, wait_until

from ticklake.core.kafka_acls import client_acls
from ticklake.core.topic_admin import TopicSetupError, TopicSpec, ensure_topics
from ticklake.devstack.kafka import KafkaBroker
from ticklake.devstack.kubeapi import issue_cert, make_ca
from ticklake.ingest.settings import IngestSettings
from ticklake.operator.lag import read_topic_lag
from ticklake.operator.settings import OperatorSettings
from ticklake.producer.service import ProducerService, SimulateFeed
from ticklake.producer.settings import ProducerSettings

TOPIC, DLQ, GROUP = "secure.ticks", "secure.ticks.dlq", "secure-ingest"
PASSWORDS = {user: secrets.token_urlsafe(16) for user in ("producer", "ingest", "operator")}


def chart_acls(*sets: str) -> dict[str, list[dict[str, Any]]]:
    """The ACLs of the chart's KafkaUsers (kafka.strimzi.auth), rendered for this test's
    topics and group."""
    text = helm_template(sets=[f"topics.ticks={TOPIC}", f"topics.deadLetter={DLQ}",
                               f"ingest.consumerGroup={GROUP}", *sets],
                         show_only="templates/kafka/kafkausers.yaml")  # fmt: skip
    users = {}
    for doc in yaml.safe_load_all(text):
        if doc and doc["kind"] == "KafkaUser":
            role = doc["metadata"]["name"].rsplit("-", 2)[-2]  # <release>-ticklake-<role>-kafka
            users[role] = doc["spec"]["authorization"]["acls"]
    return users


@pytest.mark.parametrize("ordering", ["keyed", "sequence"])
def test_the_charts_kafka_users_grant_what_the_acl_owner_says(ordering: str) -> None:
    sequenced = "secure.ticks.by-symbol" if ordering == "sequence" else None
    sets = [f"ingest.ordering={ordering}", f"topics.sequenced={sequenced or 'unused'}"]
    assert chart_acls(*sets) == client_acls(TOPIC, DLQ, GROUP, sequenced_topic=sequenced), (
        "charts/ticklake/templates/kafka/kafkausers.yaml has drifted from "
        "ticklake.core.kafka_acls.client_acls: copy it again"
    )


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    # The ACLs the chart grants (the test above holds the two together).
    acls = client_acls(TOPIC, DLQ, GROUP)
    assert set(acls) == {"producer", "ingest", "operator"}
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka-sasl"), default_partitions=2,
                         sasl_users=PASSWORDS)  # fmt: skip
    with broker:
        # Nobody may create topics: they are made here, as Strimzi's KafkaTopics make
        # them in the chart.
        asyncio.run(ensure_topics(f"127.0.0.1:{broker.internal_port}",
                                  [TopicSpec(TOPIC, 2), TopicSpec(DLQ, 1)]))  # fmt: skip
        for user, rules in acls.items():
            broker.allow_acls(user, rules)
        yield broker


def _security(broker: KafkaBroker, user: str, password: str | None = None) -> dict[str, object]:
    return {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_username": user,
        "kafka_sasl_password": password or PASSWORDS[user],
        "kafka_tls_ca_file": broker.tls_ca,
    }


async def test_the_pipeline_runs_with_each_service_as_its_own_user(
    secure_kafka: KafkaBroker, tmp_path: Path, ingest_redis: str, redis_password: str
) -> None:
    producer_settings = ProducerSettings(
        kafka_bootstrap_servers=secure_kafka.bootstrap, ticks_topic=TOPIC, dead_letter_topic=DLQ,
        topic_partitions=2, feed_symbols="SASLA,SASLB", feed_rate=0, feed_count=600,
        **_security(secure_kafka, "producer"),
    )  # fmt: skip
    producer = ProducerService(producer_settings, show_progress=False)
    result = await producer.run(SimulateFeed(paced=False))
    assert (result.acked, result.failed) == (600, 0)
    # Payloads that are not ticks, sent as the producer: ingest (allowed to write the
    # dead-letter topic and nothing else) must still route them there.
    garbage = [b"not json", b'{"symbol": 7}', b"\xff\xfe", b"[]"]
    raw = AIOKafkaProducer(bootstrap_servers=secure_kafka.bootstrap,
                           **ProducerSettings(**_security(secure_kafka, "producer"))
                           .kafka_client_options())  # fmt: skip
    await raw.start()
    try:
        for payload in garbage:
            await raw.send_and_wait(TOPIC, payload, key=b"SASLA")
    finally:
        await raw.stop()
    base = settings_for(secure_kafka.bootstrap, TOPIC, tmp_path / "lake", ingest_redis,
                        redis_password)  # fmt: skip
    settings = IngestSettings(**(base.model_dump() | {
        "consumer_group": GROUP, "dead_letter_topic": DLQ,
        "redis_password": redis_password, **_security(secure_kafka, "ingest"),
    }))  # fmt: skip
    async with RunningIngest(settings):
        await wait_until(lambda: lake_row_count(tmp_path / "lake") >= 600, 90, "600 ticks")
    assert lake_row_count(tmp_path / "lake") == 600
    # The dead letters, read back as the broker's superuser (its loopback listener).
    dead = AIOKafkaConsumer(DLQ, bootstrap_servers=f"127.0.0.1:{secure_kafka.internal_port}",
                            auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await dead.start()
    try:
        letters: list[bytes] = []
        for _ in range(20):  # up to 20 s; getmany answers with what has arrived so far
            batches = await dead.getmany(timeout_ms=1_000, max_records=100)
            letters += [r.value for records in batches.values() for r in records]
            if len(letters) >= len(garbage):
                break
        letters.sort()
    finally:
        await dead.stop()
    assert letters == sorted(garbage)
    # The operator, allowed only to describe, reads the group's lag (0: all consumed).
    operator = OperatorSettings(**_security(secure_kafka, "operator"))
    observed = await read_topic_lag(secure_kafka.bootstrap, TOPIC, GROUP, timeout_s=30,
                                    client_options=operator.kafka_client_options())  # fmt: skip
    assert observed.partitions == 2 and sum(observed.per_partition.values()) == 0


async def test_what_a_user_may_not_do_the_broker_refuses(secure_kafka: KafkaBroker) -> None:
    def options(user: str, password: str | None = None) -> dict[str, object]:
        fields = IngestSettings(kafka_bootstrap_servers=secure_kafka.bootstrap,
                                **_security(secure_kafka, user, password))  # fmt: skip
        return fields.kafka_client_options()

    # ingest may not write the ticks topic
    producer = AIOKafkaProducer(bootstrap_servers=secure_kafka.bootstrap, **options("ingest"),
                                request_timeout_ms=10_000)  # fmt: skip
    await producer.start()
    try:
        with pytest.raises(KafkaError, match="TopicAuthorizationFailed"):
            await producer.send_and_wait(TOPIC, b"x")
    finally:
        await producer.stop()
    # the producer may not read it
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=secure_kafka.bootstrap, group_id=GROUP,
                                **options("producer"))  # fmt: skip
    with pytest.raises(KafkaError):
        await consumer.start()
        await consumer.getmany(timeout_ms=5_000)
    await consumer.stop()
    # the operator may describe, but not read the ticks
    reader = AIOKafkaConsumer(TOPIC, bootstrap_servers=secure_kafka.bootstrap, group_id=GROUP,
                              **options("operator"))  # fmt: skip
    with pytest.raises(KafkaError):
        await reader.start()
        await reader.getmany(timeout_ms=5_000)
    await reader.stop()
    # nobody may create a topic that does not exist
    with pytest.raises(TopicSetupError, match="TopicAuthorizationFailed"):
        await ensure_topics(secure_kafka.bootstrap, [TopicSpec("not.allowed", 1)],
                            client_options=options("producer"))  # fmt: skip
    # a wrong password, and no credentials at all, are refused at the door
    wrong = AIOKafkaProducer(bootstrap_servers=secure_kafka.bootstrap,
                             **options("ingest", PASSWORDS["producer"]))  # fmt: skip
    with pytest.raises(KafkaError):
        await wrong.start()
    await wrong.stop()
    anonymous = AIOKafkaProducer(bootstrap_servers=secure_kafka.bootstrap,
                                 request_timeout_ms=5_000)  # fmt: skip
    with pytest.raises(KafkaError):
        await anonymous.start()
    await anonymous.stop()


def test_incomplete_security_settings_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs TICKLAKE_KAFKA_SASL_USERNAME"):
        IngestSettings(kafka_security_protocol="SASL_SSL")
    with pytest.raises(ValueError, match="use SSL or SASL_SSL"):
        IngestSettings(kafka_tls_ca_file=tmp_path / "ca.crt")


@pytest.fixture(scope="module")
def mtls_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """The other way in (issue #16's option): TLS with client certificates, whose CN is the
    user the same ACLs name."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka-mtls"), default_partitions=2,
                         client_certificates=True)  # fmt: skip
    with broker:
        asyncio.run(ensure_topics(f"127.0.0.1:{broker.internal_port}",
                                  [TopicSpec(TOPIC, 2), TopicSpec(DLQ, 1)]))  # fmt: skip
        for user, rules in client_acls(TOPIC, DLQ, GROUP).items():
            broker.allow_acls(user, rules)
        yield broker


def _mtls(broker: KafkaBroker, user: str, certs: Path) -> dict[str, object]:
    cert, key = broker.client_certificate(user, certs)
    return {"kafka_security_protocol": "SSL", "kafka_tls_ca_file": broker.tls_ca,
            "kafka_tls_cert_file": cert, "kafka_tls_key_file": key}  # fmt: skip


async def test_with_client_certificates_each_service_is_its_certificates_user(
    mtls_kafka: KafkaBroker, tmp_path: Path, ingest_redis: str, redis_password: str
) -> None:
    producer = ProducerService(ProducerSettings(
        kafka_bootstrap_servers=mtls_kafka.bootstrap, ticks_topic=TOPIC, dead_letter_topic=DLQ,
        topic_partitions=2, feed_symbols="MTLSA,MTLSB", feed_rate=0, feed_count=300,
        **_mtls(mtls_kafka, "producer", tmp_path / "certs"),
    ), show_progress=False)  # fmt: skip
    result = await producer.run(SimulateFeed(paced=False))
    assert (result.acked, result.failed) == (300, 0)
    base = settings_for(mtls_kafka.bootstrap, TOPIC, tmp_path / "lake", ingest_redis,
                        redis_password)  # fmt: skip
    settings = IngestSettings(**(base.model_dump() | {
        "consumer_group": GROUP, "dead_letter_topic": DLQ, "redis_password": redis_password,
        **_mtls(mtls_kafka, "ingest", tmp_path / "certs"),
    }))  # fmt: skip
    async with RunningIngest(settings):
        await wait_until(lambda: lake_row_count(tmp_path / "lake") >= 300, 90, "300 ticks")
    assert lake_row_count(tmp_path / "lake") == 300
    # The certificate names the user: the producer's may not read the ticks.
    as_producer = IngestSettings(kafka_bootstrap_servers=mtls_kafka.bootstrap,
                                 **_mtls(mtls_kafka, "producer", tmp_path / "certs"))  # fmt: skip
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=mtls_kafka.bootstrap, group_id=GROUP,
                                **as_producer.kafka_client_options())  # fmt: skip
    with pytest.raises(KafkaError):
        await consumer.start()
        await consumer.getmany(timeout_ms=5_000)
    await consumer.stop()


async def test_without_a_certificate_of_its_ca_the_broker_refuses(
    mtls_kafka: KafkaBroker, tmp_path: Path
) -> None:
    no_cert = IngestSettings(kafka_bootstrap_servers=mtls_kafka.bootstrap,
                             kafka_security_protocol="SSL",
                             kafka_tls_ca_file=mtls_kafka.tls_ca)  # fmt: skip
    # a certificate for "ingest" from a CA the broker does not trust
    cert, key = issue_cert(make_ca(), "ingest", server=False).write(tmp_path, "ingest")
    foreign = IngestSettings(kafka_bootstrap_servers=mtls_kafka.bootstrap,
                             kafka_security_protocol="SSL", kafka_tls_ca_file=mtls_kafka.tls_ca,
                             kafka_tls_cert_file=cert, kafka_tls_key_file=key)  # fmt: skip
    for fields in (no_cert, foreign):
        producer = AIOKafkaProducer(bootstrap_servers=mtls_kafka.bootstrap,
                                    request_timeout_ms=5_000,
                                    **fields.kafka_client_options())  # fmt: skip
        with pytest.raises(KafkaError):
            await producer.start()
        await producer.stop()
