"""/healthz, /readyz, /metrics and /latest/{symbol} of a running service."""

from __future__ import annotations

from pathlib import Path

import httpx
from ingest_kit import (
    RunningIngest,
    create_topic,
    produce,
    settings_for,
    tick_messages,
    tick_stream,
    unique_prefix,
    unique_topic,
    wait_until,
)

from ticklake.devstack.ports import free_port


async def test_the_http_endpoints_report_health_metrics_and_the_latest_tick(
    kafka_bootstrap: str, ingest_redis: str, redis_password: str, tmp_path: Path
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 1)
    symbol = unique_prefix()
    ticks = tick_stream([symbol], 50, seed=1)
    port = free_port()
    settings = settings_for(
        kafka_bootstrap, topic, tmp_path / "lake", ingest_redis, redis_password, http_port=port
    )
    base = f"http://127.0.0.1:{port}"
    async with RunningIngest(settings, http=True), httpx.AsyncClient(base_url=base) as http:
        await produce(kafka_bootstrap, topic, tick_messages(ticks))

        async def latest_seq() -> int | None:
            response = await http.get(f"/latest/{symbol.lower()}")
            return response.json()["seq"] if response.status_code == 200 else None

        await wait_until(lambda: _is(latest_seq(), 50), 60, "latest tick served")
        body = (await http.get(f"/latest/{symbol}")).json()
        assert body["symbol"] == symbol and body["price"] == ticks[-1].price
        assert {"ema_fast", "vwap_day", "kafka_offset", "ingest_ns", "timestamp"} <= set(body)

        assert (await http.get("/latest/NOSUCHSYMBOL1")).status_code == 404
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["assigned_partitions"] == [0]
        for name in [
            "ticklake_ingest_consumed_total 50.0",
            "ticklake_ingest_processed_total 50.0",
            "ticklake_ingest_e2e_latency_seconds_bucket",
            "ticklake_ingest_batch_seconds_bucket",
            "ticklake_ingest_committed_lag",
            'ticklake_ingest_lake_rows_total{dataset="ticks"}',
        ]:
            await wait_until(lambda n=name: _contains(http, n), 30, name)


async def _is(awaitable, expected) -> bool:  # type: ignore[no-untyped-def]
    return (await awaitable) == expected


async def _contains(http: httpx.AsyncClient, text: str) -> bool:
    return text in (await http.get("/metrics")).text
