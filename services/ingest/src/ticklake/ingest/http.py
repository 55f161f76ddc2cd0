"""The ingest service's HTTP face: health, readiness, metrics.

Users read ticks from the query API (``/latest``, ``/ticks``, ...), not from here.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class Observable(Protocol):
    """What the endpoints read (the service provides it; this module never imports the
    service, so the two do not import each other)."""

    async def readiness(self) -> dict[str, Any]: ...

    @property
    def registry(self) -> CollectorRegistry: ...


def create_app(service: Observable) -> FastAPI:
    """The app for one service instance (tests build one per instance)."""
    app = FastAPI(title="ticklake ingest", docs_url=None, redoc_url=None)
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Alive: the process answers. Restarting would not help anything else."""
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready: in the consumer group, the lake writable, Redis reachable."""
        report = await service.readiness()
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(service.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)
    return app
