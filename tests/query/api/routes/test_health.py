"""/healthz, /readyz, /metrics, /symbols, /docs and the live page's files."""

from __future__ import annotations

import asyncio
import time
from importlib import metadata

import httpx

from query.ingest_like import NS, IngestLike, make_ticks, new_symbol
from query.running_api import RunningApi


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {
        "status": "ok",
        "version": metadata.version("ticklake-query-api"),
    }
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "redis": True, "lake": True, "stream": True}


async def test_the_prototypes_health_path_answers_like_healthz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == (await client.get("/healthz")).json()


async def test_a_dead_stream_hub_makes_readyz_unready_with_the_reason(
    tmp_path, query_redis_url: str, redis_password: str, ingest: IngestLike
) -> None:
    from query.conftest import api_settings

    settings = api_settings(
        redis_url=query_redis_url, redis_password=redis_password, lake_uri=str(tmp_path / "lake")
    )
    (tmp_path / "lake").mkdir()
    with RunningApi(settings) as running:
        async with httpx.AsyncClient(base_url=running.url) as c:
            assert (await c.get("/readyz")).status_code == 200
            hub = running.app.state.runtime.hub

            def broken(batch: object) -> None:
                raise RuntimeError("a bug in fan-out (injected)")

            hub.publish_local = broken  # the hub's task dies on the next message
            deadline = time.monotonic() + 10
            while hub.died is None and time.monotonic() < deadline:
                rows = ingest.process(make_ticks(new_symbol(), 1, start_ns=time.time_ns()))
                ingest.to_redis(rows)
                await asyncio.sleep(0.1)
            r = await c.get("/readyz")
            assert r.status_code == 503
            assert r.json()["status"] == "unready"
            assert "injected" in r.json()["stream_error"]
            assert (await c.get("/healthz")).status_code == 200


async def test_metrics_count_requests_per_route_template(
    api: RunningApi, client: httpx.AsyncClient, ingest: IngestLike
) -> None:
    symbol = new_symbol()
    ingest.ingest(make_ticks(symbol, 2, start_ns=time.time_ns() - 5 * NS))
    for _ in range(3):
        assert (await client.get(f"/latest/{symbol}")).status_code == 200
    await client.get(f"/latest/{new_symbol('NOPE')}")
    text = (await client.get("/metrics")).text
    assert (
        'ticklake_query_requests_total{method="GET",route="/latest/{symbol:path}",status="200"}'
        in text
    )
    assert (
        'ticklake_query_requests_total{method="GET",route="/latest/{symbol:path}",status="404"}'
        in text
    )
    assert "ticklake_query_request_duration_seconds_bucket" in text
    assert "ticklake_query_latest_fallback_total" in text
    assert "ticklake_query_stream_clients" in text
    assert symbol not in text  # raw paths never become labels


async def test_symbols_lists_what_ingest_saw(client: httpx.AsyncClient, ingest: IngestLike) -> None:
    a, b = new_symbol(), new_symbol()
    ingest.ingest(
        make_ticks(a, 1, start_ns=time.time_ns()) + make_ticks(b, 1, start_ns=time.time_ns())
    )
    body = (await client.get("/symbols")).json()
    assert body["source"] == "redis"
    assert {a, b} <= set(body["symbols"])
    assert body["symbols"] == sorted(body["symbols"])


async def test_docs_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths) == {
        "/latest/{symbol}", "/latest", "/symbols", "/ticks/{symbol}", "/bars/{symbol}",
        "/asof/{symbol}", "/asof", "/stream", "/healthz", "/readyz", "/metrics",
    }  # fmt: skip


async def test_live_page_is_served_from_the_package(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset in ("/static/board.js", "/static/board.css"):
        assert asset in page.text
        assert (await client.get(asset)).status_code == 200
    # nothing is fetched from elsewhere (no CDN): no absolute URLs in the page or script
    assert "://" not in page.text
    assert "://" not in (await client.get("/static/board.js")).text


async def test_a_corrupt_lake_file_is_a_503_naming_the_problem(
    tmp_path, query_redis_url: str, redis_password: str
) -> None:
    from query.conftest import api_settings
    from ticklake.core.lake_layout import LakeFile

    bad = tmp_path / "lake" / LakeFile("ticks", "2025-01-02", 0, 0, 9).relative_path()
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"PAR1 this is not parquet PAR1")
    settings = api_settings(
        redis_url=query_redis_url, redis_password=redis_password, lake_uri=str(tmp_path / "lake")
    )
    with RunningApi(settings) as running:
        async with httpx.AsyncClient(base_url=running.url) as c:
            r = await c.get(f"/latest/{new_symbol()}")
            assert r.status_code == 503
            assert "lake" in r.json()["detail"]
            assert (await c.get("/healthz")).status_code == 200
