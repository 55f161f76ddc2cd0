"""The app factory: ``create_app(settings)`` builds a FastAPI app whose lifespan
owns the Redis clients, the DuckDB connection and the stream hub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from ticklake.query.api.errors import install_error_handlers
from ticklake.query.api.fast_latest import FastLatest
from ticklake.query.api.responses import OrjsonResponse
from ticklake.query.api.routes import asof, bars, board, health, latest, stream, symbols, ticks
from ticklake.query.auth.api_keys import KeyRing
from ticklake.query.auth.gate import OPEN_PATHS, Admission, AuthGate
from ticklake.query.auth.jwt_tokens import JwtVerifier
from ticklake.query.metrics import MetricsMiddleware, QueryMetrics
from ticklake.query.runtime import QueryRuntime
from ticklake.query.settings import QuerySettings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


class QueryApp(FastAPI):
    """FastAPI with the ``/latest`` fast path (:class:`FastLatest`) in front of all of it.

    In front of FastAPI's own ``__call__`` too, not only of its middleware: per request
    that checks whether telemetry is on (reading the environment), which alone cost
    about as much as the fast path's answer.
    """

    def __init__(self, *, admission: Admission, metrics: QueryMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fast_latest = FastLatest(super().__call__, admission=admission, metrics=metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.fast_latest(scope, receive, send)


def create_app(settings: QuerySettings | None = None) -> QueryApp:
    """A new app; nothing connects until the lifespan starts."""
    settings = settings or QuerySettings()
    metrics = QueryMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await QueryRuntime.open(settings, metrics)
        app.state.runtime = runtime
        fast_latest.mirror = runtime.mirror
        try:
            yield
        finally:
            fast_latest.mirror = None
            await runtime.close()

    # A missing or malformed key file stops the start here, with the file's name.
    keys = (
        KeyRing(settings.auth_keys_file, reload_s=settings.auth_reload_s)
        if settings.auth_enabled and settings.auth_keys_file is not None
        else None
    )
    tokens = (
        JwtVerifier(
            settings.auth_jwks_url,
            algorithms=settings.auth_jwt_algorithms,
            issuer=settings.auth_jwt_issuer,
            audience=settings.auth_jwt_audience,
            symbols_claim=settings.auth_jwt_symbols_claim,
            leeway_s=settings.auth_jwt_leeway_s,
        )
        if settings.auth_enabled and settings.auth_jwks_url is not None
        else None
    )
    # One admission for the gate and the fast path: one rate bucket per key.
    admission = Admission(
        keys=keys,
        jwt=tokens,
        default_rate_per_s=settings.auth_rate_per_s,
        default_burst=settings.auth_burst,
        on_denied=lambda reason: metrics.auth_denied.labels(reason).inc(),
    )
    app = QueryApp(
        admission=admission,
        metrics=metrics,
        title="ticklake query API",
        version="0.1.0",
        summary="Latest ticks, history, bars, as-of and a live stream over Redis and the lake.",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
    )
    app.state.metrics = metrics
    fast_latest = app.fast_latest
    # Outermost last: metrics see every request that reaches them, the refused included
    # (the fast path in front counts its own).
    app.add_middleware(AuthGate, admission=admission)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    install_error_handlers(app)
    for module in (latest, symbols, ticks, bars, asof, stream, health, board):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if keys is not None or tokens is not None:
        _document_bearer_auth(app)
    return app


def _document_bearer_auth(app: FastAPI) -> None:
    """Say in the OpenAPI document that data routes take a bearer token (the gate,
    not FastAPI, checks it, so FastAPI cannot infer this)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            components = schema.setdefault("components", {})
            components.setdefault("securitySchemes", {})["apiKey"] = {
                "type": "http",
                "scheme": "bearer",
                "description": (
                    "An API key (`ticklake-query keys create` prints its token) or, where "
                    "configured, an OIDC/JWT access token."
                ),
            }
            for path, operations in schema["paths"].items():
                if path in OPEN_PATHS:
                    continue
                for operation in operations.values():
                    operation["security"] = [{"apiKey": []}]
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]
