"""Create Kafka topics that are missing: the one place ticklake creates topics.

The producer creates the ticks and dead-letter topics, ingest's sequencer its
internal topic, the dev stack, tests and benchmarks theirs, all through
:func:`ensure_topics`. Needs ``aiokafka`` (the ``kafka`` extra of ticklake-core;
the query API, which never talks to Kafka, does not install it).

Several producers (and ingest) may race to create the same topic at start;
``TOPIC_ALREADY_EXISTS`` is therefore success, not an error. A busy controller
can answer with a retriable error (``REQUEST_TIMED_OUT`` ...) although it goes
on to create the topic; those topics are asked for again, and on the next
round usually come back as already existing.

Where Kafka enforces ACLs and topics are managed by someone else (Strimzi's
KafkaTopics), a service may not create topics: ``TOPIC_AUTHORIZATION_FAILED``
for a topic that exists is then success too (checked with a describe, which
the service may do); for a topic that does not exist it stays an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, for_code

log = logging.getLogger(__name__)

_NO_ERROR = 0
_TOPIC_ALREADY_EXISTS = 36
_TOPIC_AUTHORIZATION_FAILED = 29
_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    configs: Mapping[str, str] = field(default_factory=dict)
    """Topic-level settings (``max.message.bytes`` ...), applied at creation only."""


class TopicSetupError(RuntimeError):
    """The broker refused to create a topic (bad replication factor, authorisation ...)."""


async def ensure_topics(
    bootstrap_servers: str,
    specs: Sequence[TopicSpec],
    timeout_ms: int = 30_000,
    client_options: Mapping[str, Any] | None = None,
) -> None:
    """Create every topic in ``specs`` that does not exist yet; existing ones stay as they are.

    ``client_options``: security settings (``KafkaFields.kafka_client_options``)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=timeout_ms,
        **dict(client_options or {}),
    )  # fmt: skip
    await admin.start()
    try:
        pending = {s.name: s for s in specs}
        for attempt in range(1, _ATTEMPTS + 1):
            response = await admin.create_topics(
                [
                    NewTopic(
                        s.name, s.partitions, s.replication_factor, topic_configs=dict(s.configs)
                    )
                    for s in pending.values()
                ],
                timeout_ms=timeout_ms,
            )
            retry: dict[str, TopicSpec] = {}
            for entry in response.topic_errors:
                name, code = entry[0], entry[1]
                message = entry[2] if len(entry) > 2 else None
                if code == _NO_ERROR:
                    log.info("created topic %s", name)
                    continue
                if code == _TOPIC_ALREADY_EXISTS:
                    log.debug("topic %s already exists", name)
                    continue
                if code == _TOPIC_AUTHORIZATION_FAILED and await _exists(admin, name):
                    log.info("topic %s exists; not allowed to create topics, none needed", name)
                    continue
                error: type[KafkaError] = for_code(code)
                if error.retriable and attempt < _ATTEMPTS:
                    log.warning("creating topic %s: %s, retrying", name, error.__name__)
                    retry[name] = pending[name]
                    continue
                raise TopicSetupError(
                    f"could not create topic {name!r}: {error.__name__} ({message or 'no detail'})"
                )
            if not retry:
                return
            pending = retry
            await asyncio.sleep(0.5 * attempt)
    finally:
        await admin.close()


async def _exists(admin: AIOKafkaAdminClient, name: str) -> bool:
    described = await admin.describe_topics([name])
    return bool(described) and described[0].get("error_code") == _NO_ERROR
