"""/healthz, /readyz and /metrics of a running service (ticks are the query API's to serve)."""

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


async def test_the_http_endpoints_report_health_and_metrics(
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

        await wait_until(
            lambda: _contains(http, "ticklake_ingest_processed_total 50.0"), 60, "ticks processed"
        )
        assert (await http.get(f"/latest/{symbol}")).status_code == 404  # the query API's job
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


async def _contains(http: httpx.AsyncClient, text: str) -> bool:
    return text in (await http.get("/metrics")).text
