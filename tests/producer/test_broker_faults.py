"""Faults on a private broker: a late broker, and a broker killed in the middle of a run.

Idempotence (``enable_idempotence=True``, ``acks="all"``) is what makes the
restart safe: batches that were written but not acknowledged before the crash
are retried with the same producer id and sequence numbers, and the broker
drops the copies. The consumer must see every (symbol, seq) exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator

import pytest
from producer_kit import consume_all, eventually, producer_settings, unique_topic

from ticklake.core.tick import decode_tick
from ticklake.devstack.kafka import KafkaBroker
from ticklake.producer.service import ProducerService, SimulateFeed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A broker of our own, not started yet (a test starts it, another kills it)."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka-faults"))
    try:
        yield broker
    finally:
        broker.kill()


async def test_producer_waits_for_a_broker_that_is_not_up_yet(
    private_broker: KafkaBroker, caplog: pytest.LogCaptureFixture
) -> None:
    topic = unique_topic()
    settings = producer_settings(
        private_broker.bootstrap, topic, feed_rate=0, feed_count=2000, connect_retry_max_s=120
    )
    service = ProducerService(settings, show_progress=False)
    caplog.set_level(logging.WARNING, logger="ticklake.producer")
    run = asyncio.create_task(service.run(SimulateFeed(paced=False)))
    await eventually(lambda: ": failed (attempt" in caplog.text, timeout_s=20)
    assert not run.done()
    await asyncio.to_thread(private_broker.start)
    result = await asyncio.wait_for(run, 120)
    assert (result.acked, result.failed) == (2000, 0)
    assert f"Kafka at {private_broker.bootstrap}: failed (attempt 1" in caplog.text


@pytest.mark.parametrize("restart", ["kill", "stop"])
async def test_every_tick_arrives_exactly_once_across_a_broker_restart(
    private_broker: KafkaBroker, restart: str
) -> None:
    """``kill`` is a crash (SIGKILL, the broker recovers its log); ``stop`` a graceful restart."""
    await asyncio.to_thread(private_broker.start)
    topic = unique_topic()
    total = 40_000
    settings = producer_settings(
        private_broker.bootstrap,
        topic,
        feed_rate=4000,
        feed_count=total,
        feed_symbols="AAPL,MSFT,AMZN,GOOGL,META,NVDA,TSLA,JPM",
        request_timeout_ms=120_000,
        max_batch_bytes=32_768,
    )
    service = ProducerService(settings, show_progress=False)
    run = asyncio.create_task(service.run(SimulateFeed()))
    await eventually(lambda: service.publisher.stats.acked >= 8000, timeout_s=60)
    acked_before_crash = service.publisher.stats.acked
    if restart == "kill":
        private_broker.kill()
    else:
        await asyncio.to_thread(private_broker.stop)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(private_broker.start)
    result = await asyncio.wait_for(run, 180)

    assert acked_before_crash < total  # the crash really happened mid-run
    assert (result.acked, result.failed, result.unconfirmed, result.not_sent) == (total, 0, 0, 0)
    records = await consume_all(private_broker.bootstrap, topic)
    seen = Counter((t.symbol, t.seq) for t in (decode_tick(r.value) for r in records))
    duplicates = {k: n for k, n in seen.items() if n > 1}
    assert duplicates == {}
    assert len(records) == total
    per_symbol: dict[str, list[int]] = {}
    for symbol, seq in sorted(seen):
        per_symbol.setdefault(symbol, []).append(seq)
    for symbol, seqs in per_symbol.items():
        assert seqs == list(range(1, len(seqs) + 1)), f"{symbol} has gaps"
