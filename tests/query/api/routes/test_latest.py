"""/latest: Redis first, the newest lake row when Redis lacks the symbol or is down."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from query.conftest import api_settings
from query.ingest_like import NS, IngestLike, make_ticks, new_symbol
from query.running_api import RunningApi
from ticklake.devstack.redis import RedisServer


async def test_latest_comes_from_redis_with_typed_fields(
    client: httpx.AsyncClient, ingest: IngestLike
) -> None:
    symbol = new_symbol()
    rows = ingest.ingest(make_ticks(symbol, 5, start_ns=time.time_ns() - 10 * NS))
    r = await client.get(f"/latest/{symbol}")
    assert r.status_code == 200
    body = r.json()
    assert body["source"] == "redis"
    assert body["symbol"] == symbol
    tick = body["tick"]
    assert tick["price"] == rows[-1]["price"]
    assert tick["ts_ns"] == rows[-1]["ts_ns"]
    assert tick["kafka_offset"] == rows[-1]["kafka_offset"]
    assert isinstance(tick["timestamp"], str) and tick["timestamp"].endswith("Z")
    assert "ema_fast" in tick  # ingest's feature columns come along


async def test_lowercase_symbol_is_normalised(
    client: httpx.AsyncClient, ingest: IngestLike
) -> None:
    symbol = new_symbol()
    ingest.ingest(make_ticks(symbol, 2, start_ns=time.time_ns() - 10 * NS))
    r = await client.get(f"/latest/{symbol.lower()}")
    assert r.status_code == 200
    assert r.json()["symbol"] == symbol


async def test_symbol_only_in_the_lake_falls_back_to_its_newest_row(
    api: RunningApi, client: httpx.AsyncClient, ingest: IngestLike
) -> None:
    symbol = new_symbol()
    day = 86_400 * NS
    start = 1_735_800_000 * NS  # 2025-01-02
    # Two days of data; the newest row is in the older-named file of the newer day.
    old = ingest.process(make_ticks(symbol, 4, start_ns=start))
    ingest.to_lake(old)
    new = ingest.process(make_ticks(symbol, 4, start_ns=start + day))
    ingest.to_lake(new)
    # another symbol written later must not be mistaken for it
    ingest.ingest(make_ticks(new_symbol(), 3, start_ns=start + day + 3600 * NS), redis_=False)
    before = _fallbacks(api, "missing")
    r = await client.get(f"/latest/{symbol}")
    assert r.status_code == 200
    body = r.json()
    assert body["source"] == "lake"
    assert body["tick"]["ts_ns"] == max(row["ts_ns"] for row in new)
    assert body["tick"]["timestamp"].startswith("2025-01-03T")
    assert _fallbacks(api, "missing") == before + 1


async def test_unknown_symbol_is_404_with_a_message(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/latest/{new_symbol('NOPE')}")
    assert r.status_code == 404
    assert "unknown symbol" in r.json()["detail"]


@pytest.mark.parametrize("bad", ["-AAPL", "A" * 21, "AA PL", "ÄPFEL"])
async def test_malformed_symbol_is_422_naming_it(client: httpx.AsyncClient, bad: str) -> None:
    r = await client.get(f"/latest/{bad}")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["path", "symbol"]


async def test_symbol_with_a_slash(client: httpx.AsyncClient, ingest: IngestLike) -> None:
    symbol = f"{new_symbol('FX')[:6]}/USD"
    ingest.ingest(make_ticks(symbol, 2, start_ns=time.time_ns() - 10 * NS))
    r = await client.get(f"/latest/{symbol}")
    assert r.status_code == 200, r.text
    assert r.json()["symbol"] == symbol


async def test_latest_for_several_symbols_lists_the_missing(
    client: httpx.AsyncClient, ingest: IngestLike
) -> None:
    a, b, lake_only, unknown = new_symbol(), new_symbol(), new_symbol(), new_symbol("NOPE")
    ingest.ingest(make_ticks(a, 2, start_ns=time.time_ns() - 10 * NS))
    ingest.ingest(make_ticks(b, 2, start_ns=time.time_ns() - 10 * NS))
    ingest.ingest(make_ticks(lake_only, 2, start_ns=time.time_ns() - 10 * NS), redis_=False)
    r = await client.get(
        "/latest", params={"symbols": f"{a},{b.lower()},{lake_only},{unknown},{a}"}
    )
    assert r.status_code == 200
    body = r.json()
    assert [(t["symbol"], t["source"]) for t in body["ticks"]] == [
        (a, "redis"),
        (b, "redis"),
        (lake_only, "lake"),
    ]
    assert body["missing"] == [unknown]


@pytest.mark.parametrize("symbols", ["", ",,", "AAPL,bad symbol", ",".join(["A"] * 201)])
async def test_bad_symbol_lists_are_422(client: httpx.AsyncClient, symbols: str) -> None:
    r = await client.get("/latest", params={"symbols": symbols})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "symbols"]


def _fallbacks(api: RunningApi, reason: str) -> float:
    value = api.metrics.registry.get_sample_value(
        "ticklake_query_latest_fallback_total", {"reason": reason}
    )
    return value or 0.0


async def test_redis_down_falls_back_to_the_lake(tmp_path, ingest: IngestLike) -> None:
    """A private Redis, stopped mid-test: answers keep coming, from the lake."""
    private = RedisServer(tmp_path / "redis")
    private.start()
    try:
        symbol = new_symbol()
        rows = ingest.process(make_ticks(symbol, 6, start_ns=time.time_ns() - 60 * NS))
        ingest.to_lake(rows[:4])  # the lake is behind Redis
        ingest.to_redis(rows[-1:], redis_url=private.url, redis_password=private.password)
        settings = api_settings(
            redis_url=private.url,
            redis_password=private.password,
            lake_uri=str(ingest.lake.base),
            redis_timeout_s=0.3,
        )
        with RunningApi(settings) as running:
            async with httpx.AsyncClient(base_url=running.url, timeout=10) as c:
                up = (await c.get(f"/latest/{symbol}")).json()
                assert up["source"] == "redis"
                assert up["tick"]["kafka_offset"] == rows[-1]["kafka_offset"]

                private.stop()
                # the stream hub notices and stops trusting its in-process copy
                for _ in range(100):
                    if not (await c.get("/readyz")).json()["stream"]:
                        break
                    await asyncio.sleep(0.05)

                down = await c.get(f"/latest/{symbol}")
                assert down.status_code == 200
                assert down.json()["source"] == "lake"
                assert down.json()["tick"]["kafka_offset"] == rows[3]["kafka_offset"]
                assert _fallbacks(running, "redis_down") >= 1
                many = (await c.get("/latest", params={"symbols": symbol})).json()
                assert many["ticks"][0]["source"] == "lake"
                syms = (await c.get("/symbols")).json()
                assert syms["source"] == "lake" and symbol in syms["symbols"]
                ticks = await c.get(f"/ticks/{symbol}", params={"start": rows[0]["ts_ns"]})
                assert ticks.status_code == 200
                assert ticks.json()["count"] == 4
                ready = await c.get("/readyz")
                assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    finally:
        private.stop()


async def test_a_published_update_is_served_at_once_and_the_fast_path_matches_the_route(
    api: RunningApi, client: httpx.AsyncClient, ingest: IngestLike
) -> None:
    symbol = new_symbol()
    rows = ingest.process(make_ticks(symbol, 3, start_ns=time.time_ns() - 10 * NS))
    ingest.to_redis(rows[:1], announce=False)  # not announced: only Redis has it
    mirror = api.app.state.runtime.mirror
    assert mirror.get(symbol) is None
    via_route = await client.get(f"/latest/{symbol}")  # miss: FastAPI route, HGETALL
    assert mirror.get(symbol) is not None  # kept: the channel subscription is up
    via_fast = await client.get(f"/latest/{symbol}")  # now mirrored: the fast path
    assert via_route.content == via_fast.content
    assert via_route.headers["content-type"] == via_fast.headers["content-type"]
    assert via_fast.json()["tick"]["kafka_offset"] == rows[0]["kafka_offset"]

    ingest.to_redis(rows[1:])  # announced on the channel, as ingest does
    for _ in range(100):
        body = (await client.get(f"/latest/{symbol}")).json()
        if body["tick"]["kafka_offset"] == rows[-1]["kafka_offset"]:
            break
        await asyncio.sleep(0.02)
    assert body["tick"]["kafka_offset"] == rows[-1]["kafka_offset"]
    assert body["tick"]["price"] == rows[-1]["price"]
    count = api.metrics.registry.get_sample_value(
        "ticklake_query_requests_total",
        {"route": "/latest/{symbol:path}", "method": "GET", "status": "200"},
    )
    assert count and count >= 3
