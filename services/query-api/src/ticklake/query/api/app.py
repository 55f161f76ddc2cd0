"""The app factory: ``create_app(settings)`` builds a FastAPI app whose lifespan
owns the Redis clients, the DuckDB connection and the stream hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ticklake.query.api.errors import install_error_handlers
from ticklake.query.api.fast_latest import FastLatest
from ticklake.query.api.responses import OrjsonResponse
from ticklake.query.api.routes import asof, bars, board, health, latest, stream, symbols, ticks
from ticklake.query.metrics import MetricsMiddleware, QueryMetrics
from ticklake.query.runtime import QueryRuntime
from ticklake.query.settings import QuerySettings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def create_app(settings: QuerySettings | None = None) -> FastAPI:
    """A new app; nothing connects until the lifespan starts."""
    settings = settings or QuerySettings()
    metrics = QueryMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await QueryRuntime.open(settings, metrics)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="ticklake query API",
        version="0.1.0",
        summary="Latest ticks, history, bars, as-of and a live stream over Redis and the lake.",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
    )
    app.state.metrics = metrics
    # Outermost last: metrics see every request, the fast path included.
    app.add_middleware(FastLatest)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    install_error_handlers(app)
    for module in (latest, symbols, ticks, bars, asof, stream, health, board):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
