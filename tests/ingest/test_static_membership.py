"""Static group membership: a replica restarted under the same id gets its partitions back.

With ``group_instance_id`` set the consumer is a static member (KIP-345): a
new process with the same id takes the killed one's place without waiting for
its session to expire. Run without the id, this test fails: the new member
waits for the dead session (45 s) before anything is assigned. In
``ordering=sequence`` the sequencer joins its own group the same way (as
``{id}.sequencer``); without that the second test fails the same way.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka import AIOKafkaProducer
from ingest_kit import (
    create_topic,
    env_of,
    lake_row_count,
    produce,
    settings_for,
    start_ingest,
    tick_messages,
    tick_stream,
    unique_prefix,
    unique_topic,
    wait_assigned,
    wait_until,
)

from ticklake.core.tick import Tick, encode_tick
from ticklake.ingest.settings import IngestSettings


async def test_a_static_member_killed_and_restarted_under_its_id_resumes_before_its_session_expires(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 2)
    ticks = tick_stream([f"{unique_prefix()}{i}" for i in range(4)], 400, seed=41)
    lake = tmp_path / "lake"
    settings = settings_for(
        kafka_bootstrap,
        topic,
        lake,
        ingest_redis,
        redis_password,
        group_instance_id="ingest-0",
        session_timeout_ms=45_000,
    )

    async def feed(part: list[Tick]) -> None:
        await produce(kafka_bootstrap, topic, tick_messages(part))

    # a dynamic member would wait for the dead session (45 s) before any assignment
    await _kill_and_restart_resumes_in_time(settings, ticks, feed, lake, tmp_path, 60)


async def _produce_spread(bootstrap: str, topic: str, ticks: list[Tick]) -> None:
    """No key; tick i to partition i % 2, so each symbol is spread over both."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=encode_tick(t), partition=i % 2)
            for i, t in enumerate(ticks)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def test_a_sequencer_restarted_under_its_id_resumes_before_its_session_expires(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 2)
    ticks = tick_stream([f"{unique_prefix()}{i}" for i in range(4)], 400, seed=43)
    lake = tmp_path / "lake"
    settings = settings_for(
        kafka_bootstrap,
        topic,
        lake,
        ingest_redis,
        redis_password,
        ordering="sequence",
        sequenced_topic=f"{topic}.by-symbol",
        sequencer_group=f"s-{topic}",
        group_instance_id="ingest-0",
        session_timeout_ms=45_000,
    )

    async def feed(part: list[Tick]) -> None:
        await _produce_spread(kafka_bootstrap, topic, part)

    # a dynamic sequencer would wait for its dead session (45 s) before taking the input
    await _kill_and_restart_resumes_in_time(settings, ticks, feed, lake, tmp_path, 90)


async def _kill_and_restart_resumes_in_time(
    settings: IngestSettings,
    ticks: list[Tick],
    feed: Callable[[list[Tick]], Awaitable[None]],
    lake: Path,
    tmp_path: Path,
    assign_timeout_s: float,
) -> None:
    """Half the ticks, SIGKILL (no LeaveGroup: the sessions stay for 45 s), restart under
    the same id, the other half: all of them must be in the lake, once, within 30 s."""
    env = env_of(settings)
    log = tmp_path / "ingest.log"
    half = len(ticks) // 2
    proc, port = start_ingest(env, log)
    try:
        await wait_assigned(port, timeout_s=assign_timeout_s)
        await feed(ticks[:half])
        await wait_until(lambda: lake_row_count(lake) >= half, 60, "first run")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        killed = time.monotonic()
        proc, port = start_ingest(env, log)
        await feed(ticks[half:])
        await wait_until(lambda: lake_row_count(lake) >= len(ticks), 30, "resumed under its id")
        assert time.monotonic() - killed < 30
        assert lake_row_count(lake) == len(ticks)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
