"""The query API reading what ingest's own Redis sink writes (hash, tail, channel)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis

from query.ingest_like import NS, IngestLike, make_ticks, new_symbol
from ticklake.ingest.metrics import IngestMetrics
from ticklake.ingest.sinks.redis_writer import RedisWriter


@pytest.fixture
async def ingest_sink(query_redis_url: str, redis_password: str) -> AsyncIterator[RedisWriter]:
    client = aioredis.Redis.from_url(query_redis_url, password=redis_password)
    sink = RedisWriter(client, IngestMetrics())
    yield sink
    await sink.stop()


async def test_latest_ticks_and_stream_follow_ingests_redis_sink(
    client: httpx.AsyncClient, ingest: IngestLike, ingest_sink: RedisWriter
) -> None:
    symbol = new_symbol()
    now = time.time_ns()
    first = ingest.process(make_ticks(symbol, 6, start_ns=now - 30 * NS, step_ns=NS))
    ingest.to_lake(first[:3])  # the lake is behind Redis
    ingest_sink.add(ingest.last_batch)
    await ingest_sink.flush()

    latest = (await client.get(f"/latest/{symbol}")).json()
    assert latest["source"] == "redis"
    assert latest["tick"]["kafka_offset"] == first[-1]["kafka_offset"]
    assert latest["tick"]["ema_fast"] == pytest.approx(first[-1]["ema_fast"])
    history = (await client.get(f"/ticks/{symbol}", params={"start": now - 60 * NS})).json()
    assert [t["kafka_offset"] for t in history["ticks"]] == [r["kafka_offset"] for r in first]

    async with client.stream("GET", "/stream", params={"symbols": symbol}) as stream:
        lines = stream.aiter_lines()
        assert (await anext(lines)).startswith("retry:")
        second = ingest.process(make_ticks(symbol, 2, start_ns=now - 5 * NS, step_ns=NS))
        ingest_sink.add(ingest.last_batch)
        await ingest_sink.flush()

        async def next_batch() -> list[dict]:
            async for line in lines:
                if line.startswith("data:") and "kafka_offset" in line:
                    return json.loads(line[5:])
            raise AssertionError("stream ended")

        batch = await asyncio.wait_for(next_batch(), 10)
    assert [t["kafka_offset"] for t in batch] == [second[-1]["kafka_offset"]]
    # the in-process copy took the channel's row: /latest has it at once
    latest = (await client.get(f"/latest/{symbol}")).json()
    assert latest["tick"]["kafka_offset"] == second[-1]["kafka_offset"]


async def test_a_late_tick_is_flagged_when_the_redis_tail_answers(
    client: httpx.AsyncClient, ingest: IngestLike, ingest_sink: RedisWriter
) -> None:
    """The tail carries the lake's flags: /ticks from Redis says which tick was late,
    as the lake's `late` column does."""
    symbol = new_symbol()
    now = time.time_ns()
    on_time = ingest.process(make_ticks(symbol, 3, start_ns=now - 20 * NS, step_ns=NS))
    ingest_sink.add(ingest.last_batch)
    (late,) = ingest.process(make_ticks(symbol, 1, start_ns=now - 40 * NS, step_ns=NS))
    ingest_sink.add(ingest.last_batch)
    await ingest_sink.flush()
    assert late["late"] is True and not any(r["late"] for r in on_time)

    history = (await client.get(f"/ticks/{symbol}", params={"start": now - 60 * NS})).json()
    flags = {t["kafka_offset"]: t.get("late") for t in history["ticks"]}
    assert flags == {r["kafka_offset"]: r["late"] for r in [*on_time, late]}, history
    # the latest hash never takes the late tick
    latest = (await client.get(f"/latest/{symbol}")).json()
    assert latest["tick"]["kafka_offset"] == on_time[-1]["kafka_offset"]
