"""Prometheus metrics of the query API and the ASGI middleware that records them.

Each app gets its own registry (tests build many apps in one process). Routes
are labelled by their template (``/latest/{symbol}``), never the raw path, so
the number of series stays bounded whatever clients ask for.
"""

from __future__ import annotations

import time
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS_S: Final = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Request latency buckets, seconds: fine below 10 ms where /latest lives."""


class QueryMetrics:
    """All metrics of one app, registered on their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ticklake_query_requests_total",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ticklake_query_request_duration_seconds",
            "HTTP request latency by route template, seconds (streams: until headers sent).",
            ["route", "method"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "ticklake_query_latest_fallback_total",
            "Latest-tick lookups answered from the lake instead of Redis, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.stream_clients = Gauge(
            "ticklake_query_stream_clients",
            "Live clients connected to /stream or /ws.",
            registry=self.registry,
        )
        self.auth_denied = Counter(
            "ticklake_query_auth_denied_total",
            "Requests refused by authentication (unauthenticated), entitlements (forbidden) "
            "or per-key rate limits (rate_limited).",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("unauthenticated", "forbidden", "rate_limited"):
            self.auth_denied.labels(reason)  # exported at 0 from the start, for rate()
        self.tail_merged = Counter(
            "ticklake_query_tail_rows_total",
            "Rows /ticks took from the Redis tail that the lake did not have yet.",
            registry=self.registry,
        )

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        """One finished (or, for a stream, started) request."""
        self.latency.labels(route, method).observe(seconds)
        self.requests.labels(route, method, str(status)).inc()


class RequestRecorder:
    """:meth:`QueryMetrics.record` for one fixed ``(route, method, status)``, with the
    labelled children looked up once: ``labels()`` (label checks, a lock, a dict) costs
    more than the two updates, which matters on a path answered in tens of microseconds
    (``api/fast_latest.py``)."""

    __slots__ = ("_latency", "_requests")

    def __init__(self, metrics: QueryMetrics, route: str, method: str, status: int) -> None:
        self._latency = metrics.latency.labels(route, method)
        self._requests = metrics.requests.labels(route, method, str(status))

    def __call__(self, seconds: float) -> None:
        self._latency.observe(seconds)
        self._requests.inc()


UNMATCHED: Final = "unmatched"
"""The route label of a request no route took (refused by the gate, or no such path)."""


def route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task, unlike ``BaseHTTPMiddleware``)."""

    def __init__(self, app: ASGIApp, metrics: QueryMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        observed = False

        def observe() -> None:
            nonlocal observed
            if observed:
                return
            observed = True
            seconds = time.perf_counter() - started
            self.metrics.record(route_template(scope), scope["method"], status, seconds)

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Streams never finish on their own: count them when they start.
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(b"text/event-stream"):
                    observe()
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            observe()
