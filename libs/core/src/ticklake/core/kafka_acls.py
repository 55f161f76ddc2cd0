"""Which Kafka operations each client may perform, defined once (docs/security.md).

The chart's KafkaUsers (``templates/kafka/kafkausers.yaml``) grant exactly these, in
Strimzi's ``spec.authorization.acls`` shape, which is also the shape returned here;
the local stack's secure mode (``ticklake-stack run --secure``) applies them to its
broker. ``tests/ingest/test_kafka_sasl.py`` fails when the chart's copy drifts.

No client may create topics: the chart's KafkaTopics, or the local stack, make them.
"""

from __future__ import annotations

from typing import Any, Final

SEQUENCER_GROUP: Final = "ticklake-sequencer"
"""Consumer group of ingest's sequencer (``ordering=sequence``); its transactional ids
are ``<group>.<input topic>``."""


def _acl(kind: str, name: str, operations: list[str], *, prefix: bool = False) -> dict[str, Any]:
    pattern = "prefix" if prefix else "literal"
    return {
        "resource": {"type": kind, "name": name, "patternType": pattern},
        "operations": operations,
    }


def client_acls(
    ticks_topic: str,
    dead_letter_topic: str,
    consumer_group: str,
    *,
    sequenced_topic: str | None = None,
    operator: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    """Client name (producer, ingest, operator) -> its ACLs. ``sequenced_topic``: ingest
    runs ``ordering=sequence`` and its sequencer needs that topic, its group and its
    transactional ids."""
    acls = {
        "producer": [
            _acl("topic", ticks_topic, ["Write", "Describe"]),
            _acl("topic", dead_letter_topic, ["Describe"]),
        ],
        "ingest": [
            _acl("topic", ticks_topic, ["Read", "Describe"]),
            _acl("topic", dead_letter_topic, ["Write", "Describe"]),
            _acl("group", consumer_group, ["Read"]),
        ],
    }
    if sequenced_topic is not None:
        acls["ingest"] += [
            _acl("topic", sequenced_topic, ["Read", "Write", "Describe"]),
            _acl("group", SEQUENCER_GROUP, ["Read"]),
            _acl("transactionalId", f"{SEQUENCER_GROUP}.", ["Write", "Describe"], prefix=True),
        ]
    if operator:
        acls["operator"] = [
            _acl("topic", ticks_topic, ["Describe"]),
            _acl("group", consumer_group, ["Describe"]),
        ]
    return acls
