"""A real ``redis-server`` (Debian's package) on loopback, with a password."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

from ticklake.devstack import ports, process


def redis_server_binary() -> str:
    """Path of ``redis-server``; installs Debian's package when missing and root."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "redis-server"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = shutil.which("redis-server")
        if found:
            return found
    raise RuntimeError("redis-server is not installed: run `sudo apt-get install redis-server`")


class RedisServer:
    """One Redis on 127.0.0.1 that requires ``password``. The port survives restarts."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        password: str | None = None,
        owned: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or ports.free_port()
        self.password = password if password is not None else secrets.token_urlsafe(12)
        self.owned = owned
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """URL without the password (pass :attr:`password` separately, as services do)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 20.0) -> None:
        """Start (idempotent) and wait until it answers PING."""
        if self._proc is not None and self._proc.poll() is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--requirepass", self.password,
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
            "--daemonize", "no",
        ]  # fmt: skip
        self._proc = process.spawn(argv, self.data_dir / "redis.log", owned=self.owned)
        ports.wait_until(self.ping, timeout, f"Redis on port {self.port}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                reply = b""
                while b"PONG" not in reply and len(reply) < 200:
                    chunk = sock.recv(100)
                    if not chunk:
                        break
                    reply += chunk
                return b"+PONG" in reply
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        process.stop(self._proc, timeout)

    def kill(self) -> None:
        process.kill(self._proc)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
