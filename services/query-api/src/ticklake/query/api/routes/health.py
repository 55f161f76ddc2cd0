"""``/healthz`` (alive), ``/readyz`` (can serve) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
from importlib import metadata

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from ticklake.core.lake_layout import TICKS_DATASET
from ticklake.query.api.deps import Runtime
from ticklake.query.api.models import Health, Ready
from ticklake.query.api.responses import OrjsonResponse

router = APIRouter(tags=["health"])

VERSION = metadata.version("ticklake-query-api")
"""The installed distribution's version: which build a pod runs (the dev loop checks it)."""


@router.get("/healthz", response_model=Health)
async def healthz() -> Response:
    """The process is alive (no dependency is checked), and which version it is."""
    return OrjsonResponse({"status": "ok", "version": VERSION})


@router.get("/health", include_in_schema=False)
async def health() -> Response:
    """The prototype's liveness path, kept so its probes and scripts work unchanged."""
    return OrjsonResponse({"status": "ok", "version": VERSION})


@router.get(
    "/readyz",
    response_model=Ready,
    responses={
        503: {"model": Ready, "description": "The lake cannot be read, or the stream hub died."}
    },
)
async def readyz(runtime: Runtime) -> Response:
    """Ready while the lake can be listed and the stream hub runs; Redis down only makes
    it ``degraded`` (every read has a lake fallback), so pods are not pulled for a Redis
    blip. A stream hub whose task died never comes back by itself: unready, with why."""
    redis_ok = await runtime.cache.ping()
    try:
        await asyncio.to_thread(runtime.lake_reader.dates, TICKS_DATASET)
        lake_ok = True
    except OSError:
        lake_ok = False
    hub_died = runtime.hub.died
    ok = lake_ok and hub_died is None
    status = "unready" if not ok else ("ready" if redis_ok else "degraded")
    body: dict[str, object] = {
        "status": status,
        "redis": redis_ok,
        "lake": lake_ok,
        "stream": runtime.hub.connected.is_set(),
    }
    if hub_died is not None:
        body["stream_error"] = f"stream hub stopped: {hub_died}"
    return OrjsonResponse(body, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    response_class=Response,
)
async def metrics(request: Request) -> Response:
    """Prometheus text format: per-route request counts and latency, fallbacks, clients."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
