"""The door: an ASGI layer that decides who is calling before any route runs.

Every HTTP request and WebSocket outside :data:`OPEN_PATHS` needs
``Authorization: Bearer <token>``, an API key (``tlk_...``) or, where a JWKS is
configured, an OIDC/JWT access token: none or an unknown, revoked, expired or
forged one is a 401 (a JWKS that cannot be fetched a 503), a caller over its
rate a 429 with ``Retry-After``. The caller (its key and
entitlements) is put in the ASGI scope for the routes, which refuse symbols
the caller may not read (403, :mod:`ticklake.query.api.deps`). With
authentication off every request is the anonymous caller entitled to all.

The decision itself is :class:`Admission`, which the ``/latest`` fast path
(``api/fast_latest.py``, in front of this layer) calls too, so that path is
gated by the same rules and rate buckets. Tokens are never logged or echoed;
only key ids are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from ticklake.query.auth.api_keys import TOKEN_PREFIX, Caller, KeyRing
from ticklake.query.auth.entitlements import EVERYTHING
from ticklake.query.auth.jwt_tokens import JwtVerifier, ProviderUnavailable, TokenRejected
from ticklake.query.auth.rate_limit import TokenBuckets

CALLER_KEY: Final = "ticklake.caller"
"""Where the gate leaves the :class:`Caller` in the ASGI scope."""

ANONYMOUS: Final = Caller(
    key_id="-", name="anonymous (authentication off)", entitlements=EVERYTHING
)

OPEN_PATHS: Final = frozenset(
    {"/healthz", "/health", "/readyz", "/metrics", "/", "/docs", "/openapi.json", "/redoc"}
)
"""Paths that carry no market data: probes, metrics, the live page's shell, the API docs."""
OPEN_PREFIXES: Final = ("/static/",)

DeniedHook = Callable[[str], None]


def caller_of(scope: Scope) -> Caller:
    """The caller the gate admitted. Missing means the gate is not installed: fail closed."""
    caller = scope.get(CALLER_KEY)
    if not isinstance(caller, Caller):
        raise RuntimeError("request reached a route without passing the auth gate")
    return caller


def bearer_token(scope: Scope) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer instead of the route: 401, 429 or 503, with its headers."""

    status: int
    detail: str
    headers: list[tuple[bytes, bytes]]


class Admission:
    """Who is calling, and may they call now: the one decision behind :class:`AuthGate`
    and the ``/latest`` fast path (``api/fast_latest.py``), which share one instance so
    that a key has one rate bucket whichever of the two admits its request."""

    def __init__(
        self,
        *,
        keys: KeyRing | None,
        jwt: JwtVerifier | None = None,
        default_rate_per_s: float,
        default_burst: int,
        on_denied: DeniedHook | None = None,
        buckets: TokenBuckets | None = None,
    ) -> None:
        self.keys = keys
        self.jwt = jwt
        self.enabled = keys is not None or jwt is not None
        self.default_rate_per_s = default_rate_per_s
        self.default_burst = default_burst
        self.buckets = buckets or TokenBuckets()
        self.on_denied = on_denied or (lambda reason: None)

    async def admit(self, scope: Scope) -> Caller | Refusal:
        """The caller of a request to a data path (one token of its rate spent), or why not.

        Refusals other than a 503 are counted through ``on_denied``.
        """
        if not self.enabled:
            return ANONYMOUS
        token = bearer_token(scope)
        caller: Caller | None = None
        why = "missing bearer token: send 'Authorization: Bearer <API key>'"
        if token is not None and token.startswith(TOKEN_PREFIX):
            caller = self.keys.caller(token) if self.keys is not None else None
            why = "unknown or revoked API key"
        elif token is not None and self.jwt is not None:
            try:
                caller = await self.jwt.caller(token)
            except TokenRejected as e:
                why = str(e)
            except ProviderUnavailable as e:
                return Refusal(503, str(e), [(b"retry-after", b"5")])
        elif token is not None:
            why = "unknown or revoked API key"
        if caller is None:
            self.on_denied("unauthenticated")
            return Refusal(401, why, [(b"www-authenticate", b'Bearer realm="ticklake"')])
        rate = caller.rate_per_s or self.default_rate_per_s
        burst = caller.burst or self.default_burst
        wait_s = self.buckets.take(caller.key_id, rate, burst)
        if wait_s > 0:
            self.on_denied("rate_limited")
            retry = max(1, math.ceil(wait_s))
            why = f"key {caller.key_id} is over its rate ({rate:g} requests/s, burst {burst})"
            return Refusal(429, why, [(b"retry-after", str(retry).encode())])
        return caller


class AuthGate:
    def __init__(self, app: ASGIApp, *, admission: Admission) -> None:
        self.app = app
        self.admission = admission

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self.admission.enabled:
            scope[CALLER_KEY] = ANONYMOUS
            await self.app(scope, receive, send)
            return
        if CALLER_KEY in scope:
            # Admitted already by the fast path in front (api/fast_latest.py), which
            # passed the request on: admitting it again would spend a second token.
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            # No caller in the scope: a data route reached this way fails closed.
            await self.app(scope, receive, send)
            return
        outcome = await self.admission.admit(scope)
        if isinstance(outcome, Refusal):
            await refuse(scope, send, outcome)
            return
        scope[CALLER_KEY] = outcome
        await self.app(scope, receive, send)


async def refuse(scope: Scope, send: Send, refusal: Refusal) -> None:
    """Send ``refusal`` as a JSON ``{"detail": ...}`` answer (for a WebSocket, in place of
    the handshake where the server allows, else as a close)."""
    status, detail = refusal.status, refusal.detail
    body = orjson.dumps({"detail": detail})
    prefix = "http"
    if scope["type"] == "websocket":
        if "websocket.http.response" not in scope.get("extensions", {}):
            # A server without the denial-response extension can only close the
            # handshake (clients see a bare 403); 1008 = policy violation.
            reason = f"{status}: {detail}"[:120]
            await send({"type": "websocket.close", "code": 1008, "reason": reason})
            return
        prefix = "websocket.http"  # the same HTTP answer, in place of the handshake
    await send(
        {
            "type": f"{prefix}.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *refusal.headers,
            ],
        }
    )
    await send({"type": f"{prefix}.response.body", "body": body})
