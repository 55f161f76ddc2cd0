"""Settings of per-symbol ordering (part of :class:`~ticklake.ingest.settings.IngestSettings`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from ticklake.core import topics
from ticklake.core.kafka_acls import SEQUENCER_GROUP
from ticklake.core.settings import settings_config


class OrderingFields(BaseSettings):
    model_config = settings_config()

    ordering: Literal["keyed", "sequence"] = Field(
        "keyed",
        description="keyed: the producer keys every tick by its symbol (one hop, as today). "
        "sequence: the input may be unkeyed or keyed by anything; the sequencer merges its "
        "partitions in event-time order and re-keys by symbol into sequenced_topic, which "
        "ingest then reads (see docs/architecture.md).",
    )
    sequenced_topic: str = Field(
        topics.SEQUENCED_TOPIC,
        description="Internal topic of ordering=sequence: the input re-keyed by symbol.",
    )
    sequenced_partitions: int = Field(
        0,
        ge=0,
        description="Partitions of sequenced_topic when the sequencer creates it; 0 = as many "
        "as ticks_topic. An existing topic is used as it is.",
    )
    sequencer_group: str = Field(
        SEQUENCER_GROUP,
        description="Consumer group of the sequencer (all input partitions go to one member; "
        "the others stand by). Also its transactional id's stem.",
    )
    sequencer_allowed_lateness_ms: int = Field(
        500,
        ge=0,
        description="How long (ms) the merge waits for an input partition that is caught up "
        "and silent: a record passes such an idle partition once it has itself waited this "
        "long. Added latency when a partition is idle; a record reaching the log more than "
        "this after a newer one of another partition is late.",
    )
    sequencer_transaction_ms: int = Field(
        100,
        ge=1,
        description="Longest a sequencer transaction stays open (ms). Ingest reads only "
        "committed records, so this is latency added on top of the merge's wait.",
    )
    sequencer_max_buffered_records: int = Field(
        50_000,
        ge=1,
        description="Pause fetching an input partition while this many of its records wait "
        "in the merge (bounds memory when one partition runs ahead).",
    )
