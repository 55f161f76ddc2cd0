"""Every operator/examples/NN-*/ applies cleanly and is reconciled to the replicas it promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client
from opkit import deployment, eventually, get_scaler, ready, replicas_of

from ticklake.core.topic_admin import TopicSpec, ensure_topics

EXAMPLES = Path(__file__).resolve().parents[2] / "operator" / "examples"
PARTITIONS = 12
# With 12 partitions and no lag, what each example should settle at.
EXPECTED = {
    "01-one-replica-per-partition": 12,
    "02-partitions-per-replica": 4,
    "03-lag": 2,
    "04-strimzi-kafkatopic": 6,
}


def test_every_example_has_an_expectation() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()) == sorted(EXPECTED)


async def _ensure_topic(bootstrap: str, topic: str) -> None:
    await ensure_topics(bootstrap, [TopicSpec(topic, PARTITIONS)])


async def _apply(api: client.ApiClient, namespace: str, doc: dict[str, Any]) -> None:
    group, _, version = doc["apiVersion"].rpartition("/")
    plural = {"IngestScaler": "ingestscalers", "KafkaTopic": "kafkatopics"}[doc["kind"]]
    await client.CustomObjectsApi(api).create_namespaced_custom_object(
        group, version, namespace, plural, doc
    )


@pytest.mark.parametrize("example", sorted(EXPECTED))
async def test_example(
    example: str, api: client.ApiClient, operator: Any, namespace: str, kafka_bootstrap: str
) -> None:
    docs = [
        d
        for f in sorted((EXAMPLES / example).glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())
    ]
    assert docs
    # Scalers before topics would be fine too; topics first reads naturally.
    docs.sort(key=lambda d: d["kind"] != "KafkaTopic")
    for d in docs:
        if d["kind"] == "IngestScaler":
            d["spec"]["kafka"]["bootstrapServers"] = kafka_bootstrap
            await _ensure_topic(kafka_bootstrap, d["spec"]["kafka"].get("topic", "market.ticks"))
            target = d["spec"]["targetRef"]["name"]
            await client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment(target))
        await _apply(api, namespace, d)

    scalers = [d for d in docs if d["kind"] == "IngestScaler"]
    for s in scalers:
        name, target = s["metadata"]["name"], s["spec"]["targetRef"]["name"]
        await eventually(
            lambda target=target: replicas_of(api, namespace, target),
            lambda r: r == EXPECTED[example],
            what=f"{example}: replicas",
        )
        obj = await eventually(
            lambda name=name: get_scaler(api, namespace, name),
            lambda o: (ready(o) or {}).get("status") == "True",
            what=f"{example}: Ready",
        )
        assert obj["status"]["partitions"] == PARTITIONS
