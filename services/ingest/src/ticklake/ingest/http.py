"""The ingest service's HTTP face: health, readiness, metrics.

Users read ticks from the query API (``/latest``, ``/ticks``, ...), not from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from ticklake.ingest.service import IngestService


def create_app(service: IngestService) -> FastAPI:
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
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)
    return app
