"""The hot path: ``GET /latest/{symbol}`` answered in front of all of FastAPI.

When the symbol's latest tick is in the in-process mirror
(:mod:`ticklake.query.latest_mirror`), this pure ASGI layer sends the
ready-encoded answer itself. It is the outermost layer of the app
(:class:`ticklake.query.api.app.QueryApp`), in front of FastAPI's own per-request
work (a telemetry check that reads the environment, its error, body-limit and
exception layers), our metrics and auth layers, routing, dependency injection
and validation: a profile under load put those at more than half of a request,
against a few percent for the answer itself (``docs/query-api.md``). What
those layers do for this path it does inline:

* authentication, entitlements and rate limits through the gate's own
  :class:`~ticklake.query.auth.gate.Admission` (the same instance, so one rate
  bucket per key); a refusal is sent as the gate sends it and counted as the
  metrics layer counts it (route ``unmatched``); a symbol the caller may not
  read goes on to the route, which answers the 403, with the caller admitted
  here left in the scope so the gate does not spend a second token;
* the request counter and latency histogram, under the route's template, with
  the labelled children looked up once.

It answers byte for byte what the FastAPI route
(:mod:`ticklake.query.api.routes.latest`) would, and passes everything else
through: other paths, query strings, malformed or unmirrored symbols.
"""

from __future__ import annotations

import time
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from ticklake.query.auth.gate import CALLER_KEY, Admission, Refusal, refuse
from ticklake.query.latest_mirror import LatestMirror
from ticklake.query.metrics import UNMATCHED, QueryMetrics, RequestRecorder
from ticklake.query.params import SYMBOL_ANY_CASE

PREFIX: Final = "/latest/"
ROUTE: Final = "/latest/{symbol:path}"
"""The route template, as the metrics label it (the same as FastAPI's route)."""
_CONTENT_TYPE: Final = (b"content-type", b"application/json")


class FastLatest:
    def __init__(self, app: ASGIApp, *, admission: Admission, metrics: QueryMetrics) -> None:
        self.app = app
        self.admission = admission
        self.metrics = metrics
        self.mirror: LatestMirror | None = None
        """Set by the app's lifespan while the runtime is open; None passes everything on."""
        self._record_ok = RequestRecorder(metrics, ROUTE, "GET", 200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        mirror = self.mirror
        if (
            mirror is not None
            and scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope["query_string"]
            and scope["path"].startswith(PREFIX)
        ):
            raw = scope["path"][len(PREFIX) :]
            symbol = raw.upper()
            body = mirror.body(symbol) if SYMBOL_ANY_CASE.fullmatch(raw) else None
            if body is not None:
                if self.admission.enabled:
                    outcome = await self.admission.admit(scope)
                    if isinstance(outcome, Refusal):
                        try:
                            await refuse(scope, send, outcome)
                        finally:
                            seconds = time.perf_counter() - started
                            self.metrics.record(UNMATCHED, "GET", outcome.status, seconds)
                        return
                    if not outcome.entitlements.allows(symbol):
                        scope[CALLER_KEY] = outcome
                        await self.app(scope, receive, send)
                        return
                try:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [_CONTENT_TYPE, (b"content-length", b"%d" % len(body))],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                finally:
                    self._record_ok(time.perf_counter() - started)
                return
        await self.app(scope, receive, send)
