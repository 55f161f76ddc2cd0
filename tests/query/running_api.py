"""Run the real API under uvicorn in a background thread, on a free loopback port.

A thread (not the test's event loop) so that blocking clients (schemathesis,
the CLI, playwright) and async ones can all talk to it.
"""

from __future__ import annotations

import threading
import time

from ticklake.devstack.ports import free_port
from ticklake.query.server import build_server
from ticklake.query.settings import QuerySettings


class RunningApi:
    def __init__(self, settings: QuerySettings) -> None:
        port = free_port()
        self.settings = settings.model_copy(update={"http_port": port, "http_host": "127.0.0.1"})
        self.server = build_server(self.settings, log_level="warning", timeout_graceful_shutdown=2)
        self.app = self.server.query_app
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self.server.run, name=f"api-{port}", daemon=True)

    def start(self, timeout: float = 20.0) -> RunningApi:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"query API on {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "query API did not stop"

    @property
    def metrics(self):
        return self.app.state.metrics

    def __enter__(self) -> RunningApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
