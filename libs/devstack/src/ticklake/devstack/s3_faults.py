"""moto's S3 server with a switch that makes it answer errors (the fault suite's S3 outage).

    python -m ticklake.devstack.s3_faults --port 9000

Serves moto's own WSGI application (the one ``moto_server`` serves) behind a
small middleware. ``POST /_ticklake/faults?on=1`` makes every S3 request fail
until ``POST /_ticklake/faults?on=0``: requests alternate between ``503
SlowDown`` and ``500 InternalError`` with S3's XML error body, which is what a
throttling or failing S3 endpoint returns and what clients retry. Data already
stored stays stored. Used through :class:`ticklake.devstack.s3.S3Server`
(``faults=True``); loopback only.
"""

from __future__ import annotations

import argparse
import itertools
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

from ticklake.devstack.s3 import FAULTS_CONTROL_PATH

_ERRORS = (
    ("503 Service Unavailable", "SlowDown", "Please reduce your request rate."),
    ("500 Internal Server Error", "InternalError", "We encountered an internal error."),
)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class FailingS3:
    """WSGI middleware: the control endpoint, and errors instead of answers while on."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.failing = False
        self.failed = 0
        self._turn = itertools.cycle(_ERRORS)
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") == FAULTS_CONTROL_PATH:
            query = environ.get("QUERY_STRING", "")
            if environ.get("REQUEST_METHOD") == "POST":
                self.failing = "on=1" in query.split("&")
            state = f'{{"failing": {str(self.failing).lower()}, "failed": {self.failed}}}'
            start_response("200 OK", [("Content-Type", "application/json")])
            return [state.encode()]
        if self.failing:
            with self._lock:
                status, code, message = next(self._turn)
                self.failed += 1
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                f"<Error><Code>{code}</Code><Message>{message}</Message>"
                "<RequestId>ticklake-fault</RequestId></Error>"
            ).encode()
            start_response(
                status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
            )
            return [body]
        return self.app(environ, start_response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = FailingS3(DomainDispatcherApplication(create_backend_app))
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
