"""Time from SIGKILL of one of two ingest replicas to processing resumed on its partitions.

    uv run python bench/bench_recovery.py [--runs 5] [--partitions 4]
        [--modes static,dynamic] [--json bench/results/recovery.json]

Starts a private Kafka broker and Redis, a producer writing ~1,000 ticks/s
(16 symbols keyed by symbol, event time = send time) and two
``ticklake-ingest`` replicas A and B in one group. Each run waits until both
own partitions and the feed is flowing, SIGKILLs A and, as the kubelet does
for a crashed container, starts it again at once with the same settings.

"Processing resumed" is seen from outside, the way a user sees it: an
observer polls every symbol's ``sym:{SYMBOL}:latest`` hash in Redis and
notes, for each partition A owned, the first time a tick produced after the
kill is there. The run's figure is the slowest of A's partitions.

Modes: ``static`` gives each replica a ``TICKLAKE_GROUP_INSTANCE_ID``
(KIP-345 static membership: the restarted A is handed its partitions back
without a rebalance); ``dynamic`` gives none (the group waits for A's
session to expire, then rebalances). Both use the chart's default session
timeout (10 s) and heartbeat (2 s). Prints and writes medians, and the phases of
each restart read from the restarted process's own log (imports done, connected,
partitions assigned), in seconds after the kill.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import provenance
import redis
from aiokafka import AIOKafkaProducer
from bench_ingest import create_topic, ingest_env, private_stack, start_ingest

from ticklake.core.hot_cache import latest_key
from ticklake.core.tick import Tick, encode_tick
from ticklake.devstack.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
SYMBOLS = [f"RCV{i:02d}" for i in range(16)]
TARGET_S = 5.0


async def produce_forever(bootstrap: str, topic: str, stop: asyncio.Event) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=2)
    await producer.start()
    seq = dict.fromkeys(SYMBOLS, 0)
    try:
        while not stop.is_set():
            now = time.time_ns()
            for s in SYMBOLS:
                seq[s] += 1
                tick = Tick(symbol=s, ts_ns=now, price=100.0, size=1.0, exchange="XNAS", seq=seq[s])
                await producer.send(topic, encode_tick(tick), key=s.encode())
            await asyncio.sleep(0.015)  # ~1,000 ticks/s
    finally:
        await producer.stop()


def assigned(port: int) -> list[int]:
    try:
        body = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1.0).json()
    except (httpx.HTTPError, ValueError):
        return []
    return list(body.get("assigned_partitions") or [])


def newest(client: redis.Redis) -> dict[int, int]:
    """Per partition, the newest event time (ns) among the symbols' latest hashes."""
    pipe = client.pipeline(transaction=False)
    for s in SYMBOLS:
        pipe.hmget(latest_key(s), "kafka_partition", "ts_ns")
    out: dict[int, int] = {}
    for partition, ts in pipe.execute():
        if partition is None or ts is None:
            continue
        p, t = int(partition), int(ts)
        out[p] = max(out.get(p, 0), t)
    return out


PHASES = {
    "starting": "imports done, settings read (the process's first log line)",
    "consuming": "connected to Kafka, subscribed",
    "partitions assigned": "group joined, partitions recovered from the lake",
}


def phases_of(log: Path, offset: int, killed_ns: int) -> dict[str, float]:
    """Seconds from the kill to each milestone of the restarted process, from its log."""
    out: dict[str, float] = {}
    with log.open("rb") as f:
        f.seek(offset)
        for raw in f:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            msg = line.get("msg")
            if msg in PHASES and msg not in out:
                ts = datetime.fromisoformat(line["ts"]).timestamp()
                out[msg] = round(ts - killed_ns / 1e9, 2)
    return out


def wait_for(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def one_mode(mode: str, runs: int, partitions: int, base: Path) -> dict[str, object]:
    with private_stack(base / mode) as (bootstrap, redis_server):
        topic = asyncio.run(create_topic(bootstrap, partitions))
        client = redis.Redis.from_url(redis_server.url, password=redis_server.password)
        client.flushdb()
        ports = {"a": free_port(), "b": free_port()}
        group = f"recovery-{mode}"
        envs = {}
        for name, port in ports.items():
            extra = {
                "TICKLAKE_CONSUMER_GROUP": group,
                "TICKLAKE_CLIENT_ID": f"ingest-{name}",
                "TICKLAKE_LOG_LEVEL": "INFO",  # the milestones of phases_of()
            }
            if mode == "static":
                extra["TICKLAKE_GROUP_INSTANCE_ID"] = f"ingest-{name}"
            envs[name] = ingest_env(
                bootstrap, topic, redis_server, base / mode / "lake", port, **extra
            )
        logs = {n: base / mode / f"ingest-{n}.log" for n in ports}
        procs = {n: start_ingest(envs[n], logs[n]) for n in ports}

        stop = asyncio.Event()
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=lambda: loop.run_until_complete(produce_forever(bootstrap, topic, stop)),
            daemon=True,
        )
        thread.start()
        results: list[float] = []
        phases: list[dict[str, float]] = []
        try:
            for _ in range(runs):
                wait_for(
                    lambda: assigned(ports["a"]) and assigned(ports["b"]),
                    120,
                    "both replicas assigned",
                )
                victim = sorted(assigned(ports["a"]))
                # the feed is flowing on the victim's partitions
                wait_for(
                    lambda v=victim: all(
                        time.time_ns() - newest(client).get(p, 0) < 1e9 for p in v
                    ),
                    60,
                    "live ticks on the victim's partitions",
                )
                killed_ns = time.time_ns()
                killed = time.monotonic()
                log_offset = logs["a"].stat().st_size
                procs["a"].kill()
                procs["a"].wait()
                procs["a"] = start_ingest(envs["a"], logs["a"])
                resumed: dict[int, float] = {}
                deadline = killed + 120
                while len(resumed) < len(victim) and time.monotonic() < deadline:
                    seen = newest(client)
                    now = time.monotonic()
                    for p in victim:
                        if p not in resumed and seen.get(p, 0) > killed_ns:
                            resumed[p] = now - killed
                    time.sleep(0.02)
                if len(resumed) < len(victim):
                    raise TimeoutError(f"partitions {victim} did not resume within 120 s")
                results.append(max(resumed.values()))
                phases.append(phases_of(logs["a"], log_offset, killed_ns))
                print(
                    f"{mode}: resumed after {results[-1]:.2f} s (partitions {victim}); "
                    f"restarted process: {phases[-1]}"
                )
                time.sleep(2)
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(10)
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            client.close()
    return {
        "median_s": round(statistics.median(results), 2),
        "min_s": round(min(results), 2),
        "max_s": round(max(results), 2),
        "runs_s": [round(r, 2) for r in results],
        "phases_median_s": {
            k: round(statistics.median(p[k] for p in phases if k in p), 2)
            for k in PHASES
            if any(k in p for p in phases)
        },
        "phases_s": phases,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--modes", default="static,dynamic")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "recovery.json")
    provenance.add_argument(parser)
    args = parser.parse_args()
    stamp = provenance.stamp(args.allow_dirty)
    report: dict[str, object] = {
        "what": "SIGKILL of one of two ingest replicas (restarted at once, as the kubelet "
        "does) to a tick produced after the kill visible in Redis on every partition "
        "the killed replica owned",
        "command": "uv run python bench/bench_recovery.py " + " ".join(sys.argv[1:]),
        "target_s": TARGET_S,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_avg_at_start": os.getloadavg()[0],
        **stamp,
    }
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        for mode in args.modes.split(","):
            report[mode] = one_mode(mode, args.runs, args.partitions, Path(tmp))
    print(json.dumps(report, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
