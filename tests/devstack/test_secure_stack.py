"""The secure local stack's credentials: made once per folder, private, reused."""

from __future__ import annotations

import json
from pathlib import Path

from ticklake.core import topics
from ticklake.core.hot_cache import acl_rules
from ticklake.core.kafka_acls import client_acls
from ticklake.devstack import secure_stack


def test_credentials_are_made_once_kept_private_and_reused(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    first = secure_stack.Credentials.load_or_create(folder)
    again = secure_stack.Credentials.load_or_create(folder)
    # Kafka keeps its users' SCRAM credentials from its first start: a restart must
    # bring the same passwords.
    assert (first.kafka, first.redis, first.redis_admin) == (
        again.kafka, again.redis, again.redis_admin)  # fmt: skip
    passwords = [*first.kafka.values(), *first.redis.values(), first.redis_admin]
    assert len(set(passwords)) == len(passwords) == 5
    assert all(len(p) >= 32 for p in passwords)
    assert folder.stat().st_mode & 0o777 == 0o700
    stored = folder / "credentials.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert json.loads(stored.read_text())["kafka"] == first.kafka
    other = secure_stack.Credentials.load_or_create(tmp_path / "elsewhere")
    assert other.kafka["ingest"] != first.kafka["ingest"]


def test_each_service_gets_the_rights_the_chart_gives_it(tmp_path: Path) -> None:
    creds = secure_stack.Credentials.load_or_create(tmp_path)
    users = creds.redis_users()
    assert users["ingest"] == (creds.redis["ingest"], acl_rules("writer"))
    assert users["query"] == (creds.redis["query"], acl_rules("reader"))
    expected = client_acls(topics.TICKS_TOPIC, topics.DEAD_LETTER_TOPIC, topics.CONSUMER_GROUP)
    del expected["operator"]  # the local stack runs no operator
    assert secure_stack.kafka_acls() == expected
    env = secure_stack.kafka_client_env("producer", "pw", tmp_path / "ca.crt")
    assert env["TICKLAKE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["TICKLAKE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
