"""A real S3-compatible server (moto in server mode, from PyPI) on loopback, for lake tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ticklake.devstack import ports, process


class S3Server:
    """``moto_server`` on 127.0.0.1; any access key is accepted. Stops with its owner."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or ports.free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        """Start (idempotent) and wait until it accepts connections."""
        if self._proc is not None and self._proc.poll() is None:
            return
        binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        argv = [binary, "-H", "127.0.0.1", "-p", str(self.port)]
        self._proc = process.spawn(argv, self.data_dir / "moto.log")

        def up() -> bool:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"moto_server exited; see {self.data_dir / 'moto.log'}")
            return ports.port_open(self.port)

        ports.wait_until(up, timeout, f"moto_server on port {self.port}")

    def stop(self) -> None:
        process.stop(self._proc, timeout=10)

    def __enter__(self) -> S3Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
