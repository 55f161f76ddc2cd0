"""``/stream`` (Server-Sent Events) and ``/ws`` (WebSocket): live ticks from Redis.

Both send the batches ingest publishes on the Redis channel, filtered to the
requested symbols. SSE sends a comment line every ``stream_heartbeat_s`` so
idle proxies keep the connection open; a client going away cancels its
generator, which unsubscribes it (the ``ticklake_query_stream_clients`` gauge
shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from starlette.responses import StreamingResponse

from ticklake.query.api.deps import OptionalSymbolList, Runtime, entitled
from ticklake.query.api.models import AUTH, FORBIDDEN
from ticklake.query.api.responses import OrjsonResponse
from ticklake.query.auth.api_keys import Caller
from ticklake.query.auth.entitlements import NotEntitled
from ticklake.query.auth.gate import caller_of
from ticklake.query.params import InvalidParameter, parse_symbol_list
from ticklake.query.stream_hub import CLOSED, StreamHub

router = APIRouter(tags=["stream"], responses={**AUTH, **FORBIDDEN})


def sse_event(event: str, data: Any) -> bytes:
    """One SSE frame. orjson never emits a raw newline, so ``data`` is one line."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


Allowed = Callable[[str], bool] | None


def _symbol_filter(caller: Caller, symbols: str | None) -> tuple[frozenset[str] | None, Allowed]:
    """(symbols asked for, None = all; the caller's entitlement check, None = all).

    Symbols asked for by name must all be entitled (else 403 naming them); a
    stream of every symbol carries only the entitled ones."""
    wanted = frozenset(entitled(caller, parse_symbol_list(symbols))) if symbols else None
    rights = caller.entitlements
    return wanted, (None if rights.everything else rights.allows)


async def _sse(
    hub: StreamHub, wanted: frozenset[str] | None, allowed: Allowed, heartbeat_s: float
) -> AsyncIterator[bytes]:
    sub = hub.subscribe(wanted, allowed)
    try:
        # retry: tells EventSource to reconnect after 2 s if the stream ends.
        yield b"retry: 2000\n" + sse_event("hello", {"symbols": sorted(wanted or [])})
        while True:
            try:
                batch = await asyncio.wait_for(sub.queue.get(), timeout=heartbeat_s)
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            if batch is CLOSED:
                yield sse_event("bye", {"reason": "server shutting down"})
                return
            yield sse_event("ticks", batch)
    finally:
        hub.unsubscribe(sub)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Events: hello, ticks (JSON array of latest-tick objects), bye.",
        }
    },
)
async def stream(
    request: Request, runtime: Runtime, symbols: OptionalSymbolList = None
) -> StreamingResponse:
    """Live ticks as Server-Sent Events (``event: ticks``), with heartbeat comments."""
    wanted, allowed = _symbol_filter(caller_of(request.scope), symbols)
    return StreamingResponse(
        _sse(runtime.hub, wanted, allowed, runtime.settings.stream_heartbeat_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.websocket("/ws")
async def websocket_stream(websocket: WebSocket, symbols: str | None = None) -> None:
    """Live ticks over a WebSocket: one JSON array per text message."""
    runtime = websocket.app.state.runtime
    try:
        wanted, allowed = _symbol_filter(caller_of(websocket.scope), symbols)
    except NotEntitled as e:
        websocket.app.state.metrics.auth_denied.labels("forbidden").inc()
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            # The same 403 as /stream's, in place of the handshake.
            await websocket.send_denial_response(
                OrjsonResponse({"detail": str(e), "symbols": e.symbols}, status_code=403)
            )
        else:
            await websocket.close(code=1008, reason=str(e)[:120])
        return
    except InvalidParameter as e:
        await websocket.close(code=1008, reason=str(e)[:120])
        return
    await websocket.accept()
    sub = runtime.hub.subscribe(wanted, allowed)

    async def drain_client() -> None:
        # Reading is how a WebSocket server notices that the client left.
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.receive_text()

    reader = asyncio.create_task(drain_client())
    try:
        while not reader.done():
            getter = asyncio.ensure_future(sub.queue.get())
            await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                break
            batch = getter.result()
            if batch is CLOSED:
                await websocket.close(code=1001)
                break
            await websocket.send_text(orjson.dumps(batch).decode())
    except WebSocketDisconnect:
        pass
    finally:
        runtime.hub.unsubscribe(sub)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await reader
