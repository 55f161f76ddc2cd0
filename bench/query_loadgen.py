"""A small HTTP/1.1 load generator for the query benchmark (keep-alive, GET only).

Two modes, both on uvloop over raw sockets so the client costs little:

* :func:`fixed_rate`: open loop. Requests are *scheduled* every 1/rate s,
  spread over a few connections; latency runs from the scheduled time to the
  last byte of the answer, so a stalled server is charged for the requests
  that queued behind it (no coordinated omission).
* :func:`max_rate`: closed loop. Each connection sends its next request as
  soon as the previous answer is in; the count per second is the throughput.
  Used when ``wrk`` is not installed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    lock: asyncio.Lock


async def _connect(host: str, port: int) -> Conn:
    reader, writer = await asyncio.open_connection(host, port)
    return Conn(reader, writer, asyncio.Lock())


def _request(host: str, port: int, path: str, headers: dict[str, str] | None = None) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n{extra}\r\n".encode()


async def _one(conn: Conn, request: bytes) -> int:
    conn.writer.write(request)
    head = await conn.reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await conn.reader.readexactly(length)
    return status


async def fixed_rate(
    host: str,
    port: int,
    path: str,
    rate: float,
    seconds: float,
    connections: int = 16,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    conns = [await _connect(host, port) for _ in range(connections)]
    request = _request(host, port, path, headers)
    latencies: list[float] = []
    errors = 0
    # time.perf_counter, not loop.time(): uvloop's clock has millisecond steps.
    clock = time.perf_counter
    start = clock() + 0.05
    total = int(rate * seconds)
    tasks = []

    async def send(i: int) -> None:
        nonlocal errors
        scheduled = start + i / rate
        conn = conns[i % connections]
        async with conn.lock:  # one request in flight per connection (HTTP/1.1)
            status = await _one(conn, request)
        latencies.append(clock() - scheduled)
        if status != 200:
            errors += 1

    for i in range(total):
        delay = start + i / rate - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i)))
    await asyncio.gather(*tasks)
    elapsed = clock() - start
    for conn in conns:
        conn.writer.close()
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "achieved_rps": len(latencies) / elapsed,
        "errors": errors,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1000,
    }


async def max_rate(
    host: str,
    port: int,
    path: str,
    seconds: float,
    connections: int = 32,
    headers: dict[str, str] | None = None,
) -> float:
    """Requests a second, closed loop; raises when any answer is not a 200 (a rate of
    401s or 429s is no figure)."""
    conns = [await _connect(host, port) for _ in range(connections)]
    request = _request(host, port, path, headers)
    done = 0
    failed: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    async def worker(conn: Conn) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            status = await _one(conn, request)
            if status != 200:
                failed[status] = failed.get(status, 0) + 1
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.monotonic() - started
    for conn in conns:
        conn.writer.close()
    if failed:
        raise RuntimeError(f"{path}: answers other than 200 under load: {failed}")
    return done / elapsed
