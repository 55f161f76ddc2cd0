"""A real S3-compatible server (moto in server mode, from PyPI) on loopback, for lake tests.

With ``faults=True`` it runs moto's application behind :mod:`ticklake.devstack.s3_faults`,
whose switch (:meth:`S3Server.fail_requests`) makes it answer S3 errors.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from ticklake.devstack import ports, process

FAULTS_CONTROL_PATH = "/_ticklake/faults"
"""The switch of :mod:`ticklake.devstack.s3_faults` (never an S3 key: it starts with ``_``)."""


class S3Server:
    """``moto_server`` on 127.0.0.1; any access key is accepted. Stops with its owner."""

    def __init__(self, data_dir: Path, port: int | None = None, faults: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or ports.free_port()
        self.faults = faults
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start (idempotent) and wait until it accepts connections."""
        if self._proc is not None and self._proc.poll() is None:
            return
        if self.faults:
            argv = [sys.executable, "-m", "ticklake.devstack.s3_faults", "--port", str(self.port)]
        else:
            # The workspace's own moto (the locked version) before any on PATH: an older
            # moto elsewhere (a pyenv shim, say) answers CompleteMultipartUpload in a form
            # the AWS SDK in pyarrow refuses.
            beside = Path(sys.executable).parent / "moto_server"
            binary = str(beside) if beside.exists() else shutil.which("moto_server")
            if binary is None:
                raise RuntimeError(
                    "moto_server not found: run `uv sync` (moto is a dev dependency)"
                )
            argv = [binary, "-H", "127.0.0.1", "-p", str(self.port)]
        self._proc = process.spawn(argv, self.data_dir / "moto.log")

        def up() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"moto_server exited; see {self.data_dir / 'moto.log'}")
            return ports.port_open(self.port)

        ports.wait_until(up, timeout, f"moto_server on port {self.port}")

    def fail_requests(self, on: bool) -> int:
        """Make every S3 request fail (503/500) or answer again; returns how many failed."""
        if not self.faults:
            raise RuntimeError("S3Server(faults=True) is needed to inject S3 errors")
        url = f"{self.endpoint}{FAULTS_CONTROL_PATH}?on={int(on)}"
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as r:
            return int(json.loads(r.read())["failed"])

    def stop(self) -> None:
        process.stop(self._proc, timeout=10)

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
