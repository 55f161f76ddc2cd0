"""The stream hub's fan-out: filtering, bounded queues, closing."""

from __future__ import annotations

import redis.asyncio as aioredis

from ticklake.query.stream_hub import CLOSED, StreamHub, filter_batch, parse_message


def test_filter_batch() -> None:
    batch = [{"symbol": "A"}, {"symbol": "B"}]
    assert filter_batch(batch, None) == batch
    assert filter_batch(batch, frozenset({"B", "C"})) == [{"symbol": "B"}]


def test_parse_message_reads_ingests_channel_format() -> None:
    rows = parse_message(b'[{"symbol":"A","price":1.5,"bid":null,"ts_ns":7}]')
    assert rows == [{"symbol": "A", "price": 1.5, "bid": None, "ts_ns": 7}]


async def test_a_slow_client_loses_the_oldest_batches_not_memory() -> None:
    hub = StreamHub(aioredis.Redis(), queue_max=3)
    hub._task = object()  # type: ignore[assignment]  # pretend started; no Redis needed
    sub = hub.subscribe(frozenset({"A"}))
    for i in range(5):
        hub.publish_local([{"symbol": "A", "i": i}, {"symbol": "Z"}])
    got = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert got == [[{"symbol": "A", "i": i}] for i in (2, 3, 4)]
    assert sub.dropped == 2
    hub.unsubscribe(sub)
    assert hub.client_count == 0


async def test_a_stopped_hub_closes_new_subscriptions_at_once() -> None:
    hub = StreamHub(aioredis.Redis(), queue_max=3)
    sub = hub.subscribe(None)
    assert sub.queue.get_nowait() is CLOSED
