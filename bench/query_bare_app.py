"""The reference for /latest's throughput: a bare ASGI app under the same uvicorn.

    uv run python bench/query_bare_app.py PORT

Returns a constant JSON body of about the size of a /latest answer, with the
same uvicorn options the query API runs with (uvloop, httptools, no access
log), so the difference to /latest is the cost of the API itself.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.types import Receive, Scope, Send

BODY = b'{"symbol":"AAPL","source":"redis","tick":{"price":189.1}}' + b" " * 700
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
        access_log=False, log_level="warning",
    )  # fmt: skip
