"""The local stack's secure mode (``ticklake-stack run --secure``, ``make run-secure``).

The same pipeline as ``make run``, with every hop protected the way the chart protects
it (docs/security.md):

* Kafka listens with SASL_SSL and SCRAM-SHA-512 only (a CA made at its first start);
  the producer and ingest log in as their own users and may do exactly what
  :func:`ticklake.core.kafka_acls.client_acls` grants, as the chart's KafkaUsers do.
* Redis speaks TLS only; ingest and the query API are its ``ingest`` and ``query`` users
  with the rules of :func:`ticklake.core.hot_cache.acl_rules`.
* The query API wants an API key: one key for every symbol is made with the API's own
  CLI, and its token kept in a file beside the key file.

Credentials are made once per data folder and kept in ``<data_dir>/secrets`` (mode
0700, files 0600): Kafka stores its users' SCRAM credentials when it formats its
storage, so a restart must bring the same passwords. ``--fresh`` starts over.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ticklake.core import topics
from ticklake.core.hot_cache import acl_rules
from ticklake.core.kafka_acls import client_acls

KAFKA_USERS = ("producer", "ingest")
"""The local stack runs no operator, so it has no operator user."""

REDIS_USERS = {"ingest": "writer", "query": "reader"}


@dataclass(frozen=True)
class Credentials:
    """Every secret of one secure stack, kept in :attr:`folder`."""

    folder: Path
    kafka: dict[str, str]
    redis_admin: str
    redis: dict[str, str]

    @property
    def keys_file(self) -> Path:
        return self.folder / "api-keys.json"

    @property
    def token_file(self) -> Path:
        return self.folder / "api-token"

    @classmethod
    def load_or_create(cls, folder: Path) -> Credentials:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        stored = folder / "credentials.json"
        if stored.exists():
            data = json.loads(stored.read_text())
        else:
            data = {
                "kafka": {user: secrets.token_urlsafe(24) for user in KAFKA_USERS},
                "redis_admin": secrets.token_urlsafe(24),
                "redis": {user: secrets.token_urlsafe(24) for user in REDIS_USERS},
            }
            _write_private(stored, json.dumps(data, indent=2))
        return cls(folder, data["kafka"], data["redis_admin"], data["redis"])

    def redis_users(self) -> dict[str, tuple[str, str]]:
        """``RedisServer(users=...)``: name -> (password, ACL rules)."""
        return {user: (self.redis[user], acl_rules(role)) for user, role in REDIS_USERS.items()}

    def ensure_api_key(self, query_cli: str) -> str:
        """The token of the stack's API key, made on first use by the query API's CLI."""
        if self.keys_file.exists() and self.token_file.exists():
            return self.token_file.read_text().strip()
        self.keys_file.unlink(missing_ok=True)
        token = create_api_key([query_cli], self.keys_file, "local-stack")
        _write_private(self.token_file, token + "\n")
        return token


def create_api_key(
    query_cli: list[str], keys_file: Path, name: str, *options: str, symbols: str = "*"
) -> str:
    """A new key in ``keys_file``, made by the query API's own CLI (the owner of the key
    file's format), and its token. ``query_cli``: how to run ``ticklake-query``."""
    made = subprocess.run(
        [*query_cli, "keys", "--file", str(keys_file), "create", "--name", name,
         "--symbols", symbols, *options, "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        raise RuntimeError(f"cannot create API key {name!r}: {made.stderr.strip()}")
    return str(json.loads(made.stdout)["token"])


def kafka_acls() -> dict[str, list[dict[str, object]]]:
    """The ACLs of the local stack's Kafka users (the chart's, without the operator)."""
    return client_acls(
        topics.TICKS_TOPIC, topics.DEAD_LETTER_TOPIC, topics.CONSUMER_GROUP, operator=False
    )


def kafka_client_env(user: str, password: str, ca_file: Path) -> dict[str, str]:
    """``TICKLAKE_KAFKA_*`` of a service that logs in as ``user``."""
    return {
        "TICKLAKE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TICKLAKE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "TICKLAKE_KAFKA_SASL_USERNAME": user,
        "TICKLAKE_KAFKA_SASL_PASSWORD": password,
        "TICKLAKE_KAFKA_TLS_CA_FILE": str(ca_file),
    }


def redis_client_env(user: str, password: str, ca_file: Path) -> dict[str, str]:
    """``TICKLAKE_REDIS_*`` of a service that is Redis user ``user`` over TLS."""
    return {
        "TICKLAKE_REDIS_USERNAME": user,
        "TICKLAKE_REDIS_PASSWORD": password,
        "TICKLAKE_REDIS_TLS_CA_FILE": str(ca_file),
    }


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
