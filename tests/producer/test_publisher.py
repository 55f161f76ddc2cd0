"""Publishing to a real broker: key = symbol, one partition per symbol, order and headers kept."""

from __future__ import annotations

from collections import defaultdict

import pytest
from aiokafka.partitioner import murmur2
from producer_kit import consume_all, producer_settings, unique_topic

from ticklake.core.tick import decode_tick
from ticklake.core.topic_admin import TopicSpec, ensure_topics
from ticklake.producer.publisher import PublisherConfig, TickPublisher
from ticklake.producer.service import ProducerService, SimulateFeed

SYMBOLS = "AAPL,MSFT,AMZN,GOOGL,META,NVDA,TSLA,JPM,BRK.B,BTC-USD"


def kafka_partition(symbol: str, partitions: int) -> int:
    """Where Kafka's Java client puts a key: murmur2, positive, modulo the partition count."""
    return (murmur2(symbol.encode()) & 0x7FFFFFFF) % partitions


async def test_every_symbol_stays_ordered_in_its_own_partition_without_gaps(
    kafka_bootstrap: str,
) -> None:
    topic = unique_topic()
    settings = producer_settings(
        kafka_bootstrap,
        topic,
        topic_partitions=4,
        feed_symbols=SYMBOLS,
        feed_rate=0,
        feed_count=30_000,
        feed_seed=5,
        # Small batches so each partition gets many batches in flight one after another.
        max_batch_bytes=16_384,
    )
    service = ProducerService(settings, show_progress=False)
    result = await service.run(SimulateFeed(paced=False))
    assert (result.acked, result.failed, result.unconfirmed) == (30_000, 0, 0)
    assert service.publisher.stats.batches > 30_000 / 100

    records = await consume_all(kafka_bootstrap, topic)
    assert len(records) == 30_000
    seqs: dict[str, list[int]] = defaultdict(list)
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for record in records:
        tick = decode_tick(record.value)
        assert record.key == tick.symbol.encode()
        assert dict(record.headers)["tl-schema"] == b"tick/1"
        seqs[tick.symbol].append(tick.seq)
        partitions_of[tick.symbol].add(record.partition)
    assert set(seqs) == set(SYMBOLS.split(","))
    for symbol, seen in seqs.items():
        assert partitions_of[symbol] == {kafka_partition(symbol, 4)}, symbol
        # In offset order, each symbol's seq is 1, 2, 3 ...: ordered and gap-free.
        assert seen == list(range(1, len(seen) + 1)), symbol


async def test_publisher_partition_matches_the_java_client(kafka_bootstrap: str) -> None:
    topic = unique_topic()
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 5, 1)], 10_000)
    async with TickPublisher(PublisherConfig(kafka_bootstrap, topic)) as publisher:
        assert publisher.partitions == [0, 1, 2, 3, 4]
        for symbol in ["AAPL", "MSFT", "EUR/USD", "^SPX", "X"]:
            assert publisher.partition_for(symbol) == kafka_partition(symbol, 5)


async def test_publish_before_start_is_refused(kafka_bootstrap: str) -> None:
    publisher = TickPublisher(PublisherConfig(kafka_bootstrap, unique_topic()))
    with pytest.raises(RuntimeError, match="not started"):
        await publisher.publish(["AAPL"], [b"{}"])
