"""A real ``redis-server`` (Debian's package) on loopback, with a password.

Optionally with TLS only (``tls=True``: a CA and a server certificate made at
start, the plain port closed, clients verify the CA in :attr:`RedisServer.tls_ca`)
and with ACL users (``users``: name -> (password, rules), e.g. the rules of
:func:`ticklake.core.hot_cache.acl_rules`), as docs/security.md describes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import ssl
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
        tls: bool = False,
        users: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or ports.free_port()
        self.password = password if password is not None else secrets.token_urlsafe(12)
        self.owned = owned
        self.tls = tls
        self.users = dict(users or {})
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """URL without the password (pass :attr:`password` separately, as services do)."""
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def tls_ca(self) -> Path:
        """The CA file clients verify the server with (``TICKLAKE_REDIS_TLS_CA_FILE``)."""
        return self.tls_dir / "ca.crt"

    def _tls_args(self) -> list[str]:
        from ticklake.devstack.kubeapi import issue_cert, make_ca

        self.tls_dir.mkdir(parents=True, exist_ok=True)
        ca = make_ca()
        ca.write(self.tls_dir, "ca")
        crt, key = issue_cert(ca, "redis", server=True, san_ips=("127.0.0.1",)).write(
            self.tls_dir, "server"
        )
        return [
            "--tls-port", str(self.port),
            "--tls-cert-file", str(crt),
            "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(self.tls_ca),
            # Client certificates are checked when sent, not required (mTLS optional).
            "--tls-auth-clients", "optional",
        ]  # fmt: skip

    def _user_args(self) -> list[str]:
        # One "user" directive each: ACL rules from the command line, so nothing
        # with a password is written to disk.
        args: list[str] = []
        for name, (password, rules) in self.users.items():
            args += ["--user", name, "reset", "on", f">{password}", *rules.split()]
        return args

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
            # With TLS, the plain port is closed and self.port is the TLS port.
            "--port", "0" if self.tls else str(self.port),
            "--requirepass", self.password,
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
            "--daemonize", "no",
        ]  # fmt: skip
        if self.tls:
            argv += self._tls_args()
        argv += self._user_args()
        self._proc = process.spawn(argv, self.data_dir / "redis.log", owned=self.owned)
        ports.wait_until(self.ping, timeout, f"Redis on port {self.port}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                sock = raw
                if self.tls:
                    context = ssl.create_default_context(cafile=str(self.tls_ca))
                    sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
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
