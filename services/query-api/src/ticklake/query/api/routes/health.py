"""``/healthz`` (alive), ``/readyz`` (can serve) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from ticklake.core.lake_layout import TICKS_DATASET
from ticklake.query.api.deps import Runtime
from ticklake.query.api.models import Health, Ready
from ticklake.query.api.responses import OrjsonResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Response:
    """The process is alive (no dependency is checked)."""
    return OrjsonResponse({"status": "ok"})


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "The lake cannot be read."}},
)
async def readyz(runtime: Runtime) -> Response:
    """Ready while the lake can be listed; Redis down only makes it ``degraded``
    (every read has a lake fallback), so pods are not pulled for a Redis blip."""
    redis_ok = await runtime.cache.ping()
    try:
        await asyncio.to_thread(runtime.lake_reader.dates, TICKS_DATASET)
        lake_ok = True
    except OSError:
        lake_ok = False
    status = "unready" if not lake_ok else ("ready" if redis_ok else "degraded")
    return OrjsonResponse(
        {
            "status": status,
            "redis": redis_ok,
            "lake": lake_ok,
            "stream": runtime.hub.connected.is_set(),
        },
        status_code=200 if lake_ok else 503,
    )


@router.get(
    "/metrics",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    response_class=Response,
)
async def metrics(request: Request) -> Response:
    """Prometheus text format: per-route request counts and latency, fallbacks, clients."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
