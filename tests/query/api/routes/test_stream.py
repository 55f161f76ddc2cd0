"""/stream (SSE) and /ws: live batches from the Redis channel, filtered, with heartbeats."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
import websockets

from query.conftest import api_settings
from query.ingest_like import NS, IngestLike, make_ticks, new_symbol
from query.running_api import RunningApi


async def _events(lines, want: int, within_s: float = 10.0) -> list[tuple[str, str]]:
    """Read SSE frames (event name, data) and comments (':', text) until ``want`` were seen."""
    out: list[tuple[str, str]] = []
    event = "message"

    async def read() -> None:
        nonlocal event
        async for line in lines:
            if line.startswith(":"):
                out.append((":", line[1:].strip()))
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                out.append((event, line[5:].strip()))
                event = "message"
            if len(out) >= want:
                return

    await asyncio.wait_for(read(), within_s)
    return out


async def _until(lines, name: str, within_s: float = 10.0) -> list[tuple[str, str]]:
    """Frames up to and including the first one called ``name``."""
    frames: list[tuple[str, str]] = []
    deadline = time.monotonic() + within_s
    while not frames or frames[-1][0] != name:
        frames += await _events(lines, 1, within_s=max(0.1, deadline - time.monotonic()))
    return frames


async def _gauge(api: RunningApi, value: float, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if api.metrics.registry.get_sample_value("ticklake_query_stream_clients") == value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"stream clients gauge is "
        f"{api.metrics.registry.get_sample_value('ticklake_query_stream_clients')}, want {value}"
    )


async def test_sse_delivers_batches_for_the_asked_symbols_with_heartbeats(
    api: RunningApi, client: httpx.AsyncClient, ingest: IngestLike
) -> None:
    mine, other = new_symbol(), new_symbol()
    async with client.stream("GET", "/stream", params={"symbols": mine}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.aiter_lines()
        hello = await _events(lines, 1)
        assert hello[0][0] == "hello" and json.loads(hello[0][1]) == {"symbols": [mine]}
        await _gauge(api, 1)

        rows = ingest.process(
            make_ticks(mine, 3, start_ns=time.time_ns(), step_ns=NS)
            + make_ticks(other, 3, start_ns=time.time_ns(), step_ns=NS)
        )
        ingest.to_redis(rows)
        frames = await _until(lines, "ticks")
        ticks = [json.loads(data) for name, data in frames if name == "ticks"]
        assert len(ticks) == 1
        assert [t["symbol"] for t in ticks[0]] == [mine]
        assert ticks[0][0]["price"] == [r for r in rows if r["symbol"] == mine][-1]["price"]
        assert ticks[0][0]["timestamp"].endswith("Z")
        # quiet channel: heartbeat comments keep coming (every 0.3 s in these tests)
        assert (await _events(lines, 1))[0] == (":", "heartbeat")
    await _gauge(api, 0)  # the client left: unsubscribed


async def test_sse_without_symbols_gets_everything(
    client: httpx.AsyncClient, ingest: IngestLike
) -> None:
    a, b = new_symbol(), new_symbol()
    async with client.stream("GET", "/stream") as r:
        lines = r.aiter_lines()
        await _events(lines, 1)
        rows = ingest.process(
            make_ticks(a, 1, start_ns=time.time_ns()) + make_ticks(b, 1, start_ns=time.time_ns())
        )
        ingest.to_redis(rows)
        seen: set[str] = set()
        while {a, b} - seen:
            frames = await _until(lines, "ticks")
            seen |= {t["symbol"] for t in json.loads(frames[-1][1])}


async def test_bad_symbols_on_stream_are_422(client: httpx.AsyncClient) -> None:
    r = await client.get("/stream", params={"symbols": "not a symbol"})
    assert r.status_code == 422


async def test_websocket_delivers_batches(api: RunningApi, ingest: IngestLike) -> None:
    symbol = new_symbol()
    url = api.url.replace("http://", "ws://") + f"/ws?symbols={symbol}"
    async with websockets.connect(url) as ws:
        await _gauge(api, 1)
        rows = ingest.process(make_ticks(symbol, 2, start_ns=time.time_ns()))
        ingest.to_redis(rows)
        batch = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert [t["kafka_offset"] for t in batch] == [rows[-1]["kafka_offset"]]
    await _gauge(api, 0)


async def test_streams_end_cleanly_when_the_server_stops(
    query_redis_url: str, redis_password: str, lake_root: Path
) -> None:
    settings = api_settings(
        redis_url=query_redis_url, redis_password=redis_password, lake_uri=str(lake_root)
    )
    running = RunningApi(settings).start()
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=10) as c:
            async with c.stream("GET", "/stream") as r:
                lines = r.aiter_lines()
                await _events(lines, 1)
                stopper = asyncio.get_running_loop().run_in_executor(None, running.stop)
                frames = await _until(lines, "bye")
                assert frames[-1] == ("bye", '{"reason":"server shutting down"}')
                await stopper
    finally:
        if running._thread.is_alive():
            running.stop()


async def test_websocket_with_bad_symbols_is_refused(api: RunningApi) -> None:
    url = api.url.replace("http://", "ws://") + "/ws?symbols=not%20a%20symbol"
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(url):
            pass
