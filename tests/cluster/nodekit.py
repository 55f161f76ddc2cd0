"""Helpers for the tests on the real one-node cluster (tests/cluster)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from ticklake.devstack.cluster.cluster import Cluster

T = TypeVar("T")

# What the session put on the cluster (releases, namespaces), undone newest
# first after the last test of tests/cluster, before the cluster stops.
_session_cleanups: list[Callable[[], None]] = []


def add_session_cleanup(undo: Callable[[], None]) -> None:
    """Run ``undo`` after the last test of tests/cluster, before the cluster
    stops (or at session end if that test never ran). Any fixture that installs
    something on the shared cluster registers its removal here."""
    _session_cleanups.append(undo)


def run_session_cleanups() -> None:
    """Run the registered cleanups, newest first; each runs once. One failing
    does not stop the others; the first failure is raised after them all."""
    failures: list[BaseException] = []
    while _session_cleanups:
        try:
            _session_cleanups.pop()()
        except Exception as e:
            failures.append(e)
    if failures:
        raise failures[0]


def require(problems: list[str]) -> None:
    """Fail (CI) or skip (elsewhere) with how to install what is missing."""
    if not problems:
        return
    message = "the cluster tests need:\n  " + "\n  ".join(problems)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def port_forward(
    cluster: Cluster, target: str, port: int | str, *, namespace: str = "default"
) -> Iterator[int]:
    """``kubectl port-forward <target> :<port>``; yields the local (loopback) port."""
    proc = subprocess.Popen(
        [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}",
         "-n", namespace, "port-forward", "--address=127.0.0.1", target, f":{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
        if not match:
            proc.kill()
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"port-forward {target} :{port} failed: {line}{err}")
        yield int(match.group(1))
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()


def eventually(
    probe: Callable[[], T], ok: Callable[[T], bool], *, what: str, timeout_s: float = 120
) -> T:
    """Call ``probe`` until ``ok(result)``; fail with the last result after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            result = probe()
            if ok(result):
                return result
            last = result
        except Exception as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout_s}s; last: {last!r}"[:4000])
        time.sleep(1)


def dns_a_over_tcp(port: int, name: str) -> list[str]:
    """The A records for ``name`` from a DNS server at 127.0.0.1:``port`` (TCP, RFC 1035)."""
    query = struct.pack(">HHHHHH", 0x7A11, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    query += struct.pack(">HH", 1, 1)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack(">H", len(query)) + query)
        (length,) = struct.unpack(">H", _recv(s, 2))
        reply = _recv(s, length)
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", reply[:12])
    if flags & 0xF:
        raise LookupError(f"{name}: DNS rcode {flags & 0xF}")
    pos = 12
    for _ in range(qd):
        pos = _skip_name(reply, pos) + 4
    found = []
    for _ in range(an):
        pos = _skip_name(reply, pos)
        rtype, _, _, rdlen = struct.unpack(">HHIH", reply[pos : pos + 10])
        pos += 10
        if rtype == 1:
            found.append(socket.inet_ntoa(reply[pos : pos + rdlen]))
        pos += rdlen
    return found


def _recv(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("DNS server closed the connection")
        data += chunk
    return data


def _skip_name(msg: bytes, pos: int) -> int:
    while msg[pos]:
        if msg[pos] & 0xC0 == 0xC0:
            return pos + 2
        pos += msg[pos] + 1
    return pos + 1
