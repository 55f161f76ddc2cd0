"""``/healthz`` and ``/metrics`` for the producer, and an embedded uvicorn server to run them.

The app reads the running service's state through :class:`HealthSource`; it
owns no clients, so tests build it around any state they like.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from ticklake.producer.metrics import ProducerMetrics

log = logging.getLogger(__name__)


class HealthSource(Protocol):
    metrics: ProducerMetrics

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details) of the running producer."""
        ...


def create_app(source: HealthSource) -> FastAPI:
    app = FastAPI(title="ticklake producer", docs_url=None, redoc_url=None)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        healthy, details = source.health()
        return JSONResponse(details, status_code=200 if healthy else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(source.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the producer owns SIGTERM (flush first)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """Runs :func:`create_app` on ``host:port`` inside the current event loop."""

    def __init__(self, source: HealthSource, host: str, port: int) -> None:
        config = uvicorn.Config(
            create_app(source), host=host, port=port, log_level="warning", lifespan="off"
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None
        self.host, self.port = host, port

    async def start(self) -> None:
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._server.serve(), name="producer-http")
        self._task.add_done_callback(_log_crash)
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the bind error
                raise RuntimeError(f"HTTP server on {self.host}:{self.port} exited at start")
            await asyncio.sleep(0.02)
        log.info("serving /healthz and /metrics on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("HTTP server stopped: %r", task.exception())
