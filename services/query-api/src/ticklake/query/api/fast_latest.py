"""The hot path: ``GET /latest/{symbol}`` answered before FastAPI's router.

When the symbol's latest tick is in the in-process mirror
(:mod:`ticklake.query.latest_mirror`), this pure ASGI layer sends the
ready-encoded answer itself, skipping routing, dependency injection and
validation, which cost more than the rest of the request (see
``docs/query-api.md``). It answers byte for byte what the FastAPI route
(:mod:`ticklake.query.api.routes.latest`) would, and passes everything else
through: other paths, query strings, malformed or unmirrored symbols.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from ticklake.query.auth.api_keys import Caller
from ticklake.query.auth.gate import CALLER_KEY
from ticklake.query.metrics import ROUTE_LABEL_KEY
from ticklake.query.params import SYMBOL_ANY_CASE

PREFIX: Final = "/latest/"
ROUTE: Final = "/latest/{symbol:path}"
"""The route template, as the metrics label it (the same as FastAPI's route)."""


class FastLatest:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(PREFIX)
            and not scope["query_string"]
        ):
            raw = scope["path"][len(PREFIX) :]
            runtime = getattr(scope["app"].state, "runtime", None)
            caller = scope.get(CALLER_KEY)
            symbol = raw.upper()
            # A symbol the caller may not read goes to the route, which answers 403.
            if (
                runtime is not None
                and SYMBOL_ANY_CASE.fullmatch(raw)
                and isinstance(caller, Caller)
                and caller.entitlements.allows(symbol)
            ):
                body = runtime.mirror.body(symbol)
                if body is not None:
                    scope[ROUTE_LABEL_KEY] = ROUTE
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [
                                (b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)
