"""The ingest service's HTTP face: health, readiness, metrics, the latest tick."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from ticklake.core import latest_hash, redis_keys

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

    @router.get("/latest/{symbol}")
    async def latest(symbol: str) -> dict[str, Any]:
        """The newest tick of ``symbol`` with its features, from the Redis hash."""
        client = service.redis_client
        if client is None:
            raise HTTPException(503, "the Redis cache is not configured")
        try:
            fields = await client.hgetall(redis_keys.latest_key(symbol.strip().upper()))
        except (RedisError, OSError) as e:
            raise HTTPException(503, f"Redis unreachable: {e}") from e
        if not fields:
            raise HTTPException(404, f"no tick seen for symbol {symbol.strip().upper()!r}")
        return latest_hash.decode_latest_hash(fields)

    app.include_router(router)
    return app
