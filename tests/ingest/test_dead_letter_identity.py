"""Dead letters keep one identity however often a killed ingest replays them.

A real ``ticklake-ingest`` process is killed with SIGKILL three times while a
producer writes good ticks with bad payloads among them. At the end the
dead-letter topic holds every bad record (by ``tl-dlq-id`` =
topic/partition/offset, checked against where the producer's own send
acknowledgements say each bad payload landed); copies of one id are identical;
and a copy exists only for records the killed run had not yet made durable
(at or after the next run's resume offset for that partition, read from its
``partition ready`` log line).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from ingest_kit import (
    consume_all,
    create_topic,
    drain_and_stop,
    env_of,
    kill_9_repeatedly,
    settings_for,
    tick_messages,
    tick_stream,
    unique_prefix,
    unique_topic,
)

from ticklake.core import topics

GOOD = 6_000
BAD_EVERY = 20
KILLS = 3


@pytest.mark.slow
async def test_each_bad_record_is_in_the_dead_letter_topic_under_one_id_despite_kill_9(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 2)
    await create_topic(kafka_bootstrap, f"{topic}.dlq", 2)
    symbols = [f"{unique_prefix()}{i}" for i in range(4)]
    messages = tick_messages(tick_stream(symbols, GOOD, seed=31))
    lake = tmp_path / "lake"
    settings = settings_for(
        kafka_bootstrap,
        topic,
        lake,
        ingest_redis,
        redis_password,
        lake_roll_rows=300,
        lake_roll_seconds=0.3,
        max_batch_records=200,
    )
    env = env_of(settings)
    log = tmp_path / "ingest.log"
    rng = random.Random(77)
    bad_sent: list[tuple[int, int]] = []  # (partition, offset) from the broker's acks

    producing = asyncio.create_task(_produce(kafka_bootstrap, topic, messages, bad_sent))
    try:
        await kill_9_repeatedly(env, log, KILLS, rng, (0.3, 1.5))
        await producing
        await drain_and_stop(env, log, lake, GOOD)
    finally:
        producing.cancel()

    expected = {f"{topic}/{p}/{o}" for p, o in bad_sent}
    assert len(expected) == GOOD // BAD_EVERY
    letters = await consume_all(kafka_bootstrap, f"{topic}.dlq", len(expected), 60)
    copies: dict[str, list[tuple[bytes | None, bytes | None]]] = defaultdict(list)
    for record in letters:
        headers = dict(record.headers)
        copies[headers[topics.HEADER_DLQ_ID].decode()].append((record.key, record.value))
    assert set(copies) == expected  # each bad record present, nothing else

    for id_, versions in copies.items():
        assert len(set(versions)) == 1, f"copies of {id_} differ"

    # a copy only for a record at or after a restart's resume offset of its partition
    resumes: dict[int, list[int]] = defaultdict(list)
    for line in log.read_text().splitlines():
        if '"partition ready"' in line:
            doc = json.loads(line)
            resumes[doc["partition"]].append(doc["start_offset"])
    counts = Counter({id_: len(v) for id_, v in copies.items()})
    for id_, n in counts.items():
        if n > 1:
            partition, offset = (int(x) for x in id_.rsplit("/", 2)[1:])
            assert any(offset >= r for r in resumes[partition][1:]), id_
    duplicated = sum(n - 1 for n in counts.values())
    print(f"dead letters: {len(letters)} records, {len(expected)} ids, {duplicated} copies")


async def _produce(
    bootstrap: str, topic: str, messages: list, bad_sent: list[tuple[int, int]]
) -> None:
    """Good ticks keyed by symbol, a bad payload (same key) after every BAD_EVERY-th."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        chunk = 500
        for start in range(0, len(messages), chunk):
            bad = []
            for i, (key, value, headers) in enumerate(messages[start : start + chunk], start):
                await producer.send(topic, value=value, key=key, headers=headers)
                if i % BAD_EVERY == 0:
                    payload = b'{"symbol": "' + key + b'", "price": -1, "n": ' + str(i).encode()
                    bad.append(await producer.send(topic, value=payload + b"}", key=key))
            for meta in await asyncio.gather(*bad):
                bad_sent.append((meta.partition, meta.offset))
            await asyncio.sleep(0.4)
    finally:
        await producer.stop()
