"""The smoke test of the foundation: real Kafka and Redis, the shared codec end to end."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ticklake.core import topics
from ticklake.core.tick import Tick, decode_tick, encode_tick
from ticklake.devstack.kafka import KafkaBroker
from ticklake.devstack.redis import RedisServer

BASE_TS = 1_735_828_200_000_000_000


def _ticks(n: int) -> list[Tick]:
    symbols = ["AAPL", "MSFT", "NVDA", "AMZN"]
    return [
        Tick(
            symbol=symbols[i % len(symbols)],
            ts_ns=BASE_TS + i * 1_000_000,
            price=100.0 + i * 0.01,
            size=float(1 + i % 7),
            exchange="XNAS",
            seq=i // len(symbols),
            bid=99.99 + i * 0.01,
            ask=100.01 + i * 0.01,
            bid_size=100.0,
            ask_size=200.0,
        )
        for i in range(n)
    ]


async def test_ticks_round_trip_through_real_kafka(kafka_bootstrap: str) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    sent = _ticks(500)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for tick in sent:
            await producer.send(
                topic,
                encode_tick(tick),
                key=topics.tick_key(tick.symbol),
                headers=[(topics.HEADER_SCHEMA, b"tick/1")],
            )
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    received: list[Tick] = []
    try:
        while len(received) < len(sent):
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, f"no messages after {len(received)} of {len(sent)}"
            for messages in batch.values():
                for message in messages:
                    assert message.key is not None
                    tick = decode_tick(message.value)
                    assert message.key.decode() == tick.symbol
                    received.append(tick)
    finally:
        await consumer.stop()
    assert received == sent


async def test_redis_requires_its_password(redis_url: str, redis_password: str) -> None:
    client = aioredis.from_url(redis_url, password=redis_password)
    try:
        assert await client.ping()
        await client.set("smoke", "1")
        assert await client.get("smoke") == b"1"
    finally:
        await client.aclose()
    anonymous = aioredis.from_url(redis_url)
    try:
        with pytest.raises(Exception, match=r"(?i)auth"):
            await anonymous.get("smoke")
    finally:
        await anonymous.aclose()


def test_broker_keeps_its_data_and_port_across_restart(tmp_path: Path) -> None:
    import asyncio

    broker = KafkaBroker(tmp_path / "kafka")
    broker.start()
    try:
        topic = "restart-check"

        async def produce() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
            await producer.start()
            try:
                await producer.send_and_wait(topic, b"before-restart")
            finally:
                await producer.stop()

        async def consume() -> list[bytes]:
            consumer = AIOKafkaConsumer(
                topic, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest"
            )
            await consumer.start()
            try:
                batch = await consumer.getmany(timeout_ms=10_000)
                return [m.value for ms in batch.values() for m in ms if m.value is not None]
            finally:
                await consumer.stop()

        asyncio.run(produce())
        port = broker.port
        broker.kill()
        broker.start()
        assert broker.port == port
        assert asyncio.run(consume()) == [b"before-restart"]
    finally:
        broker.stop()


def test_redis_server_stops_cleanly(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    assert server.ping()
    server.stop()
    assert not server.ping()
    server.stop()  # idempotent


def test_cluster_ids_never_look_like_options() -> None:
    from ticklake.devstack.kafka import cluster_id

    ids = [cluster_id() for _ in range(2000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)
