"""/healthz and /metrics, on a stand-in state and on a running service."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from producer_kit import eventually, producer_settings, unique_topic

from ticklake.devstack.ports import free_port
from ticklake.producer.http_api import create_app
from ticklake.producer.metrics import ProducerMetrics
from ticklake.producer.service import ProducerService, SimulateFeed


class StandIn:
    def __init__(self, healthy: bool) -> None:
        self.metrics = ProducerMetrics()
        self.healthy = healthy

    def health(self) -> tuple[bool, dict[str, Any]]:
        return self.healthy, {"status": "running" if self.healthy else "starting"}


def _client(source: StandIn) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(source))
    return httpx.AsyncClient(transport=transport, base_url="http://producer")


async def test_healthz_reflects_the_producer_state() -> None:
    async with _client(StandIn(True)) as client:
        assert (await client.get("/healthz")).status_code == 200
    async with _client(StandIn(False)) as client:
        response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "starting"}


async def test_metrics_are_prometheus_text() -> None:
    source = StandIn(True)
    source.metrics.ticks_sent.inc(5)
    source.metrics.send_errors.labels(error="KafkaTimeoutError").inc(2)
    async with _client(source) as client:
        response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    assert "ticklake_producer_ticks_sent_total 5.0" in body
    assert 'ticklake_producer_send_errors_total{error="KafkaTimeoutError"} 2.0' in body
    for name in ("batch_size_ticks_bucket", "send_latency_seconds_bucket"):
        assert f"ticklake_producer_{name}" in body


async def test_running_service_serves_health_and_metrics_until_stopped(
    kafka_bootstrap: str,
) -> None:
    port = free_port()
    settings = producer_settings(
        kafka_bootstrap, unique_topic(), feed_rate=2000, http_port=port, http_host="127.0.0.1"
    )
    service = ProducerService(settings, serve_http=True, show_progress=False)
    run = asyncio.create_task(service.run(SimulateFeed()))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        await eventually(lambda: service.publisher.stats.acked > 500, timeout_s=30)
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert health.json()["status"] == "running"
        metrics = (await client.get("/metrics")).text
        assert "ticklake_producer_ticks_sent_total" in metrics
        assert "ticklake_producer_send_latency_seconds_count" in metrics
        service.request_stop()
        result = await asyncio.wait_for(run, 30)
    assert result.stopped_by_signal
    assert (result.failed, result.unconfirmed, result.not_sent) == (0, 0, 0)
    async with httpx.AsyncClient() as client:
        try:
            await client.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            raise AssertionError("HTTP server still up after stop")
        except httpx.ConnectError:
            pass


def test_send_errors_are_exported_at_zero_before_any_error() -> None:
    """The dashboard's send-errors panel and increase() need the series before the first error."""
    body = ProducerMetrics().exposition().decode()
    assert 'ticklake_producer_send_errors_total{error="KafkaTimeoutError"} 0.0' in body
    assert 'ticklake_producer_send_errors_total{error="CancelledError"} 0.0' in body
