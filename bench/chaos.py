"""Fault suite: keyed feed, two ingest replicas, one fault per scenario, an independent checker.

    uv run python bench/chaos.py [--ticks 60000] [--rate 3000]
        [--scenarios kill9,broker_restart,redis_stop,lake_full] [--kills 20]
        [--redis-down-s 30] [--json bench/results/chaos.json]

Per scenario: a fresh topic (4 partitions), consumer group and lake; two
``ticklake-ingest`` processes (static members ``chaos-a``/``chaos-b``) kept
alive by a supervisor that restarts any that exits after 1 s, as the kubelet
would; a producer writing ``--ticks`` ticks keyed by symbol at ``--rate``/s
with per-symbol sequence numbers; and one fault:

* ``kill9``: SIGKILL a random replica at ``--kills`` random moments
  (many land mid-flush: flushes roll every 0.5 s);
* ``broker_restart``: the Kafka broker stopped and started mid-feed;
* ``redis_stop``: Redis stopped for ``--redis-down-s`` seconds mid-feed;
* ``lake_full``: the lake on a 512 KiB tmpfs that fills, then grown to
  256 MiB after 15 s (``mount -o remount``); unmounted at the end, also on
  failure (needs root).

The checker does not use ticklake's code: DuckDB reads the lake's Parquet
files; lost = produced (symbol, seq) not in the lake; duplicated = rows
beyond one per (symbol, seq); features = rows whose ``ema_fast``/``ema_slow``
differ (rtol 1e-9) from pandas' ``ewm(adjust=False)`` over each symbol's
produced prices in sequence order, which is what a clean single-replica run
computes; Redis = symbols whose ``sym:{S}:latest`` hash is not the last
produced seq. "Recovered" is the time from the fault's end until every
produced tick is in the lake. What a user saw: the ``/readyz`` reasons
observed (polled every 0.5 s) and the count of error/critical log lines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import httpx
import numpy as np
import pandas as pd
import redis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ticklake.devstack.kafka import KafkaBroker
from ticklake.devstack.ports import free_port
from ticklake.devstack.redis import RedisServer

ROOT = Path(__file__).resolve().parents[1]
T0_NS = 1_735_828_200_000_000_000
SYMBOLS = [f"CH{i:02d}" for i in range(24)]
EMA_FAST, EMA_SLOW = 12, 48
LEVEL = re.compile(r'"level":\s*"(\w+)"')


def make_feed(count: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sym = rng.integers(0, len(SYMBOLS), count)
    steps = rng.normal(0, 0.001, count)
    price = np.empty(count)
    level = np.full(len(SYMBOLS), 100.0)
    seq = np.zeros(count, dtype=np.int64)
    counters = np.zeros(len(SYMBOLS), dtype=np.int64)
    for i in range(count):
        s = sym[i]
        level[s] *= 1 + steps[i]
        price[i] = round(level[s], 4)
        counters[s] += 1
        seq[i] = counters[s]
    return pd.DataFrame(
        {
            "symbol": [SYMBOLS[s] for s in sym],
            "seq": seq,
            "ts_ns": T0_NS + np.arange(count, dtype=np.int64) * 1_000_000,
            "price": price,
            "size": rng.integers(1, 500, count).astype(float),
        }
    )


async def produce(bootstrap: str, topic: str, feed: pd.DataFrame, rate: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        chunk = max(1, int(rate / 10))
        started = time.monotonic()
        rows = feed.to_dict("records")
        for begin in range(0, len(rows), chunk):
            futures = []
            for r in rows[begin : begin + chunk]:
                value = json.dumps(
                    {
                        "v": 1,
                        "symbol": r["symbol"],
                        "ts_ns": int(r["ts_ns"]),
                        "price": r["price"],
                        "size": r["size"],
                        "exchange": "XNAS",
                        "seq": int(r["seq"]),
                    }
                ).encode()
                while True:
                    try:
                        futures.append(await producer.send(topic, value, key=r["symbol"].encode()))
                        break
                    except Exception:  # broker restarting: the producer keeps trying
                        await asyncio.sleep(0.5)
            for f in futures:
                with contextlib.suppress(Exception):
                    await f
            ahead = (begin + chunk) / rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()


class Replicas:
    """Two ingest processes; the supervisor restarts one that exits (like the kubelet)."""

    def __init__(self, envs: dict[str, dict[str, str]], logdir: Path) -> None:
        self.envs, self.logdir = envs, logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}
        self.restarts: Counter[str] = Counter()
        self.exit_codes: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, daemon=True)

    def _start(self, name: str) -> None:
        port = free_port()
        out = open(self.logdir / f"ingest-{name}.log", "ab")
        self.ports[name] = port
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "ticklake.ingest.cli"],
            env={**self.envs[name], "TICKLAKE_HTTP_PORT": str(port)},
            stdout=out,
            stderr=out,
        )

    def start(self) -> None:
        for name in self.envs:
            self._start(name)
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stop.is_set():
            for name, proc in list(self.procs.items()):
                if proc.poll() is not None and not self._stop.is_set():
                    self.exit_codes.append(proc.returncode)
                    time.sleep(1.0)
                    self.restarts[name] += 1
                    self._start(name)
            time.sleep(0.05)

    def kill(self, name: str) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.procs[name].send_signal(signal.SIGKILL)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                proc.kill()

    def readiness(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, port in self.ports.items():
            try:
                out[name] = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2.0).json()
            except (httpx.HTTPError, ValueError):
                out[name] = None
        return out


def check(lake: Path, feed: pd.DataFrame, client: redis.Redis) -> dict[str, Any]:
    """The independent verdict: DuckDB over the Parquet files, pandas for the reference."""
    con = duckdb.connect()
    files = list(lake.glob("ticks/**/*.parquet"))
    if not files:
        return {"lost": len(feed), "duplicated": 0, "feature_rows_differing": None}
    glob = f"{lake}/ticks/**/*.parquet"
    got = con.execute(
        f"select symbol, seq, ema_fast, ema_slow from read_parquet('{glob}', "
        "hive_partitioning=true)"
    ).df()
    distinct = got.drop_duplicates(["symbol", "seq"])
    ref = feed.sort_values(["symbol", "seq"]).copy()
    g = ref.groupby("symbol")["price"]
    ref["ema_fast_ref"] = g.transform(lambda s: s.ewm(span=EMA_FAST, adjust=False).mean())
    ref["ema_slow_ref"] = g.transform(lambda s: s.ewm(span=EMA_SLOW, adjust=False).mean())
    merged = distinct.merge(ref, on=["symbol", "seq"], how="inner")
    differ = ~(
        np.isclose(merged["ema_fast"], merged["ema_fast_ref"], rtol=1e-9, atol=0)
        & np.isclose(merged["ema_slow"], merged["ema_slow_ref"], rtol=1e-9, atol=0)
    )
    last = feed.groupby("symbol")["seq"].max()
    stale = 0
    for symbol, seq in last.items():
        value = client.hget(f"sym:{symbol}:latest", "seq")
        if value is None or int(value) != int(seq):
            stale += 1
    return {
        "produced": len(feed),
        "lake_rows": len(got),
        "lost": len(feed) - len(merged),
        "duplicated": len(got) - len(distinct),
        "feature_rows_differing": int(differ.sum()),
        "redis_latest_stale_symbols": stale,
    }


def lake_count(lake: Path) -> int:
    if not list(lake.glob("ticks/**/*.parquet")):
        return 0
    return int(
        duckdb.connect()
        .execute(
            f"select count(distinct (symbol, seq)) from read_parquet('{lake}/ticks/**/*.parquet', "
            "hive_partitioning=true)"
        )
        .fetchone()[0]  # type: ignore[index]
    )


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 4, 1)])
    finally:
        await admin.close()


def run_scenario(
    name: str, args: argparse.Namespace, broker: KafkaBroker, rs: RedisServer, base: Path
) -> dict[str, Any]:
    work = base / name
    work.mkdir(parents=True)
    lake = work / "lake"
    lake.mkdir()
    mounted = False
    if name == "lake_full":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(lake)], check=True)
        mounted = True
    try:
        topic = f"chaos-{name}-{os.getpid()}"
        asyncio.run(create_topic(broker.bootstrap, topic))
        client = redis.Redis.from_url(rs.url, password=rs.password)
        client.flushdb()  # the latest-hash guard would keep an earlier scenario's higher seq
        envs = {}
        for r in ("a", "b"):
            env = {k: v for k, v in os.environ.items() if not k.startswith("TICKLAKE_")}
            env.update(
                {
                    "TICKLAKE_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                    "TICKLAKE_TICKS_TOPIC": topic,
                    "TICKLAKE_DEAD_LETTER_TOPIC": f"{topic}.dlq",
                    "TICKLAKE_CONSUMER_GROUP": f"g-{topic}",
                    "TICKLAKE_GROUP_INSTANCE_ID": f"chaos-{r}",
                    "TICKLAKE_CLIENT_ID": f"chaos-{r}",
                    "TICKLAKE_REDIS_URL": rs.url,
                    "TICKLAKE_REDIS_PASSWORD": rs.password,
                    "TICKLAKE_LAKE_URI": str(lake),
                    "TICKLAKE_LAKE_ROLL_SECONDS": "0.5",
                    "TICKLAKE_LAKE_ROLL_ROWS": "5000",
                    "TICKLAKE_STALL_FATAL_AFTER_SECONDS": "20",
                    "TICKLAKE_LOG_LEVEL": "INFO",
                }
            )
            envs[r] = env
        feed = make_feed(args.ticks, seed=zlib.crc32(name.encode()))
        replicas = Replicas(envs, work)
        replicas.start()
        seen: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        observing = threading.Event()

        answered: set[str] = set()

        def observe() -> None:
            while not observing.is_set():
                for rname, body in replicas.readiness().items():
                    if body is None:
                        if rname in answered:  # not counted while first starting up
                            seen["no answer (down or restarting)"] += 1
                        continue
                    answered.add(rname)
                    if body.get("ready"):
                        seen["ready"] += 1
                    elif not body.get("ready"):
                        failing = sorted(k for k, v in body.get("checks", {}).items() if not v)
                        stages = sorted(
                            {s["stage"] for s in body.get("stalled_partitions", {}).values()}
                        )
                        seen[f"not ready: {','.join(failing)} {','.join(stages)}".strip()] += 1
                        for stall in body.get("stalled_partitions", {}).values():
                            reasons[f"{stall['stage']}: {stall['reason'][:120]}"] += 1
                time.sleep(0.5)

        observer = threading.Thread(target=observe, daemon=True)
        observer.start()
        feeding = threading.Thread(
            target=lambda: asyncio.run(produce(broker.bootstrap, topic, feed, args.rate)),
            daemon=True,
        )
        time.sleep(3)
        feeding.start()
        duration = args.ticks / args.rate
        rng = random.Random(7)
        fault_start = time.monotonic()
        if name == "kill9":
            moments = sorted(rng.uniform(0.5, duration) for _ in range(args.kills))
            for m in moments:
                time.sleep(max(0.0, fault_start + m - time.monotonic()))
                replicas.kill(rng.choice(["a", "b"]))
        elif name == "broker_restart":
            time.sleep(duration / 3)
            broker.restart()
        elif name == "redis_stop":
            time.sleep(duration / 3)
            rs.stop()
            time.sleep(args.redis_down_s)
            rs.start()
        elif name == "lake_full":
            time.sleep(15)
            subprocess.run(["mount", "-o", "remount,size=256m", str(lake)], check=True)
        fault_end = time.monotonic()
        feeding.join(600)
        deadline = time.monotonic() + 300
        while lake_count(lake) < args.ticks and time.monotonic() < deadline:
            time.sleep(0.5)
        recovered = time.monotonic() - fault_end
        time.sleep(3)  # let the Redis writer catch up
        observing.set()
        observer.join(5)
        replicas.stop()
        verdict = check(lake, feed, client)
        levels: Counter[str] = Counter()
        for log in work.glob("ingest-*.log"):
            for line in log.read_text(errors="replace").splitlines():
                match = LEVEL.search(line)
                if match and match.group(1) in ("warning", "error", "critical"):
                    levels[match.group(1)] += 1
        client.close()
        return {
            **verdict,
            "recovered_after_fault_s": round(recovered, 1),
            "fault_duration_s": round(fault_end - fault_start, 1),
            "process_restarts": sum(replicas.restarts.values()),
            "exit_codes": sorted(set(replicas.exit_codes)),
            "readiness_polls": dict(seen.most_common(8)),
            "stall_reasons_seen": dict(reasons.most_common(3)),
            "log_lines": dict(levels),
        }
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(lake)], check=False)


def unmount_leftovers() -> None:
    """Unmount lake tmpfs mounts a killed earlier run left behind (the host is restored)."""
    with open("/proc/mounts") as f:
        for line in f:
            _, target, fstype, *_ = line.split()
            if fstype == "tmpfs" and "/chaos-" in target and target.endswith("/lake"):
                subprocess.run(["umount", "-l", target], check=False)


def main() -> None:
    # the feed's own client retries through a broker restart; its per-attempt lines are noise
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    unmount_leftovers()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=60_000)
    parser.add_argument("--rate", type=float, default=3_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--redis-down-s", type=float, default=30)
    parser.add_argument("--scenarios", default="kill9,broker_restart,redis_stop,lake_full")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "chaos.json")
    args = parser.parse_args()
    report: dict[str, Any] = {
        "command": "uv run python bench/chaos.py " + " ".join(sys.argv[1:]),
        "ticks": args.ticks,
        "rate": args.rate,
        "load_avg_at_start": os.getloadavg()[0],
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        base = Path(tmp)
        broker = KafkaBroker(base / "kafka", default_partitions=4)
        rs = RedisServer(base / "redis")
        broker.start()
        rs.start()
        try:
            for name in args.scenarios.split(","):
                print(f"--- {name}", flush=True)
                result = run_scenario(name, args, broker, rs, base)
                report["scenarios"][name] = result
                print(json.dumps(result), flush=True)
        finally:
            rs.stop()
            broker.stop()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
