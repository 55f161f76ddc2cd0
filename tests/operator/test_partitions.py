"""Symbol -> partition -> consumer mapping, checked against Kafka's own partitioner."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticklake.core.topic_admin import TopicSpec, ensure_topics
from ticklake.operator import cli, partitions

# Kafka's UtilsTest vectors (Java ints, here as unsigned 32-bit).
JAVA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("data", "java"), JAVA_VECTORS.items(), ids=lambda v: str(v)[:12])
def test_murmur2_matches_kafka_java(data: bytes, java: int) -> None:
    assert partitions.murmur2(data) == java & 0xFFFFFFFF


@given(st.binary(max_size=64), st.integers(1, 1000))
def test_partition_in_range(key: bytes, n: int) -> None:
    assert 0 <= partitions.partition_for_key(key, n) < n


@given(st.integers(1, 200), st.integers(1, 200))
def test_range_assignor_gives_every_consumer_a_contiguous_even_share(n: int, replicas: int) -> None:
    owners = [partitions.owner_replica(p, n, replicas) for p in range(n)]
    assert owners == sorted(owners)
    counts = [owners.count(r) for r in range(min(n, replicas))]
    assert max(counts) - min(counts) <= 1
    assert sum(counts) == n


def test_cli_which_partition(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        cli.main(["which-partition", "AAPL", "--partitions", "12", "--partitions-per-replica", "3"])
        == 0
    )
    out = capsys.readouterr().out
    p = partitions.partition_for_symbol("AAPL", 12)
    assert f"partition={p} of 12" in out
    assert f"consumer={p // 3} of 4" in out


SYMBOLS = [
    "AAPL",
    "MSFT",
    "GOOG",
    "BTC-USD",
    "ETH-USD",
    "EURUSD",
    "ÄÖÜ",
    "X",
    "",
    "SPY.US",
    "7203.T",
]


async def test_kafka_puts_each_symbol_where_we_say(kafka_bootstrap: str) -> None:
    """Produce keyed messages to a real broker; the partition it reports must match."""
    from aiokafka import AIOKafkaProducer

    topic, n = f"test.partitions.{uuid.uuid4().hex[:8]}", 7
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, n)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        # Retried: metadata of a brand-new topic may lag its creation briefly.
        for _ in range(50):
            if len(await producer.partitions_for(topic)) == n:
                break
            await asyncio.sleep(0.1)
        for sym in SYMBOLS:
            meta = await producer.send_and_wait(topic, key=sym.encode(), value=b"x")
            assert meta.partition == partitions.partition_for_symbol(sym, n), sym
    finally:
        await producer.stop()
