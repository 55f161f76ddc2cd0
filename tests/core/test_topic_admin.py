"""Topic creation: missing topics are created, existing ones are left alone, refusals are clear."""

from __future__ import annotations

import pytest
from producer_kit import partitions_of, unique_topic

from ticklake.core.topic_admin import TopicSetupError, TopicSpec, ensure_topics


async def test_topics_are_created_once_and_existing_ones_are_left_alone(
    kafka_bootstrap: str,
) -> None:
    topic = unique_topic()
    specs = [TopicSpec(topic, 3, 1), TopicSpec(f"{topic}.dlq", 1, 1)]
    await ensure_topics(kafka_bootstrap, specs, 10_000)
    # A second producer (or ingest) racing to create them is fine, and changes nothing.
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 7, 1)], 10_000)
    described = {t: len(await partitions_of(kafka_bootstrap, t)) for t in (topic, f"{topic}.dlq")}
    assert described == {topic: 3, f"{topic}.dlq": 1}


async def test_impossible_topic_is_a_clear_error(kafka_bootstrap: str) -> None:
    with pytest.raises(TopicSetupError, match=r"could not create topic.*InvalidReplicationFactor"):
        await ensure_topics(kafka_bootstrap, [TopicSpec(unique_topic(), 1, 3)], 10_000)
