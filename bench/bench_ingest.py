"""Sustained ingest throughput with the lake and Redis on, beside two references.

    uv run python bench/bench_ingest.py [--ticks 300000] [--repeats 3] [--symbols 100]
        [--partitions 4] [--json bench/results/ingest.json]

Starts a private Kafka broker and Redis (``ticklake.devstack``) on loopback,
fills a topic with ``--ticks`` encoded ticks (keyed by symbol, like the
producer), then runs, ``--repeats`` times each, every one in its own process
and consumer group over the same backlog:

* **raw**: an aiokafka consumer that only counts messages (``getmany``,
  20,000 records a call): the client library's own ceiling on this machine;
* **ticklake**: ``ticklake-ingest`` with its defaults (lake + Redis on,
  ``lake_roll_seconds=2`` so the tail is written promptly); the rate is taken
  from its ``/metrics`` (first record consumed -> last record processed), and
  separately until every row is durable in the lake; peak and steady RSS from
  ``/proc``;
* **naive**: ``bench/naive_ingest.py`` (auto-commit, per-message pandas,
  blocking Redis, tiny wall-clock files), time-boxed to ``--naive-seconds``.

Prints and writes the medians; the issue's target is 50,000 ticks/s with
steady RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import provenance
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ticklake.core.tick import Tick, encode_tick
from ticklake.core.topic_admin import TopicSpec, ensure_topics
from ticklake.devstack import process
from ticklake.devstack.kafka import KafkaBroker
from ticklake.devstack.ports import free_port
from ticklake.devstack.redis import RedisServer

ROOT = Path(__file__).resolve().parents[1]
TARGET_TICKS_PER_S = 50_000
TARGET_RSS_MB = 300


@contextmanager
def private_stack(base: Path) -> Iterator[tuple[str, RedisServer]]:
    """A Kafka broker and a Redis of our own, stopped at the end."""
    broker = KafkaBroker(base / "kafka")
    redis_server = RedisServer(base / "redis")
    broker.start()
    redis_server.start()
    try:
        yield broker.bootstrap, redis_server
    finally:
        redis_server.stop()
        broker.stop()


async def create_topic(bootstrap: str, partitions: int) -> str:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions)])
    return topic


def make_ticks(count: int, symbols: int, seed: int = 1, now_ns: int | None = None) -> list[Tick]:
    """A random walk over ``symbols`` symbols with per-symbol sequence numbers."""
    rng = random.Random(seed)
    names = [f"S{i:03d}" for i in range(symbols)]
    price = [50.0 + i for i in range(symbols)]
    seq = [0] * symbols
    t0 = now_ns if now_ns is not None else time.time_ns()
    out = []
    for i in range(count):
        k = rng.randrange(symbols)
        seq[k] += 1
        price[k] *= 1 + rng.gauss(0, 0.0005)
        p = round(price[k], 4)
        out.append(
            Tick(
                symbol=names[k],
                ts_ns=t0 + i * 10_000,
                price=p,
                size=float(rng.randint(1, 500)),
                exchange="XNAS",
                seq=seq[k],
                bid=p - 0.01,
                ask=p + 0.01,
                bid_size=300.0,
                ask_size=200.0,
            )
        )
    return out


async def fill_topic(bootstrap: str, topic: str, ticks: list[Tick]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=262_144, acks=1
    )
    await producer.start()
    try:
        futures = []
        for t in ticks:
            futures.append(await producer.send(topic, encode_tick(t), key=t.symbol.encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


# --- the raw counting consumer (also run as a child: --raw-consumer) -----------------------


async def raw_count(bootstrap: str, topic: str, expect: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    count, first = 0, None
    try:
        while count < expect:
            batch = await consumer.getmany(timeout_ms=200, max_records=20_000)
            n = sum(len(v) for v in batch.values())
            if n and first is None:
                first = time.monotonic()
            count += n
    finally:
        last = time.monotonic()
        await consumer.stop()
    return {"messages": count, "seconds": last - (first or last)}


def run_child(argv: list[str], timeout_s: float) -> dict[str, Any]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --- ticklake-ingest as a child ----------------------------------------------------------------


def ingest_env(
    bootstrap: str, topic: str, redis_server: RedisServer, lake: Path, port: int, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKLAKE_")}
    env.update(
        {
            "TICKLAKE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "TICKLAKE_TICKS_TOPIC": topic,
            "TICKLAKE_DEAD_LETTER_TOPIC": f"{topic}.dlq",
            "TICKLAKE_CONSUMER_GROUP": f"ingest-{uuid.uuid4().hex[:6]}",
            "TICKLAKE_REDIS_URL": redis_server.url,
            "TICKLAKE_REDIS_PASSWORD": redis_server.password,
            "TICKLAKE_LAKE_URI": str(lake),
            "TICKLAKE_HTTP_PORT": str(port),
            "TICKLAKE_LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    return env


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def start_ingest(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "ticklake.ingest.cli"], env=env, stdout=out, stderr=out, cwd=ROOT
    )


def naive_argv(
    bootstrap: str, topic: str, lake: Path, redis_server: RedisServer, max_seconds: float
) -> list[str]:
    """The command of the naive baseline (bench/naive_ingest.py) in a fresh group."""
    return [
        sys.executable,
        str(ROOT / "bench/naive_ingest.py"),
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--group",
        f"naive-{uuid.uuid4().hex[:6]}",
        "--lake",
        str(lake),
        "--redis-url",
        redis_server.url,
        "--redis-password",
        redis_server.password,
        "--max-seconds",
        str(max_seconds),
    ]


def stop_ingest(proc: subprocess.Popen[bytes]) -> None:
    process.stop(proc, timeout=30)


def scrape_metrics(port: int, timeout_s: float) -> Iterator[tuple[float, str]]:
    """(monotonic time, /metrics text) of the ingest on ``port``, every 50 ms, until
    ``timeout_s`` has passed (the caller breaks when it has what it waits for)."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            try:
                text = http.get(f"http://127.0.0.1:{port}/metrics").text
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            yield time.monotonic(), text
            time.sleep(0.05)


def write_report(path: Path, report: dict[str, Any], *shown: str) -> None:
    """Write a benchmark's JSON report (adding the machine) and print its ``shown`` keys."""
    report.setdefault("machine", {"cpus": os.cpu_count(), "python": platform.python_version()})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    for key in shown:
        print(json.dumps(report[key], indent=2))


def run_ticklake(
    bootstrap: str, topic: str, redis_server: RedisServer, expect: int, work: Path
) -> dict[str, float]:
    port = free_port()
    lake = work / f"lake-{uuid.uuid4().hex[:6]}"
    env = ingest_env(bootstrap, topic, redis_server, lake, port, TICKLAKE_LAKE_ROLL_SECONDS="2")
    proc = start_ingest(env, work / "ingest.log")
    samples: list[tuple[float, float, float, float]] = []  # t, consumed, processed, lake rows
    rss: list[tuple[float, float]] = []
    try:
        for now, text in scrape_metrics(port, 300):
            samples.append(
                (
                    now,
                    metric(text, "ticklake_ingest_consumed_total"),
                    metric(text, "ticklake_ingest_processed_total"),
                    metric(text, 'ticklake_ingest_lake_rows_total{dataset="ticks"}'),
                )
            )
            rss.append((samples[-1][1], rss_mb(proc.pid)))
            if samples[-1][3] >= expect:
                break
    finally:
        stop_ingest(proc)
    first = next(t for t, consumed, _, _ in samples if consumed > 0)
    processed_at = next(t for t, _, processed, _ in samples if processed >= expect)
    durable_at = samples[-1][0]
    if samples[-1][3] < expect:
        raise RuntimeError(f"ticklake wrote only {samples[-1][3]:.0f} of {expect} rows")
    # steady: while the second half of the backlog was being consumed
    steady = [m for consumed, m in rss if expect / 2 <= consumed < expect] or [rss[-1][1]]
    return {
        "ticks_per_s": expect / max(processed_at - first, 1e-9),
        "durable_ticks_per_s": expect / max(durable_at - first, 1e-9),
        "rss_peak_mb": max(m for _, m in rss),
        "rss_steady_mb": statistics.median(steady),
    }


def summary(values: list[float]) -> dict[str, object]:
    return {
        "median": round(statistics.median(values), 1),
        "min": round(min(values), 1),
        "max": round(max(values), 1),
        "runs": [round(v, 1) for v in values],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--naive-seconds", type=float, default=15.0)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/ingest.json")
    parser.add_argument(
        "--raw-consumer", nargs=3, metavar=("BOOTSTRAP", "TOPIC", "EXPECT"), help=argparse.SUPPRESS
    )
    provenance.add_argument(parser)
    args = parser.parse_args()
    if args.raw_consumer:
        bootstrap, topic, expect = args.raw_consumer
        print(json.dumps(asyncio.run(raw_count(bootstrap, topic, int(expect)))))
        return
    stamp = provenance.stamp(args.allow_dirty)

    results: dict[str, list[float]] = {
        "raw_msgs_per_s": [],
        "ticklake_ticks_per_s": [],
        "ticklake_durable_ticks_per_s": [],
        "ticklake_rss_peak_mb": [],
        "ticklake_rss_steady_mb": [],
        "naive_ticks_per_s": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        with private_stack(work) as (bootstrap, redis_server):
            topic = asyncio.run(create_topic(bootstrap, args.partitions))
            started = time.monotonic()
            asyncio.run(fill_topic(bootstrap, topic, make_ticks(args.ticks, args.symbols)))
            print(f"filled {topic} with {args.ticks} ticks in {time.monotonic() - started:.1f}s")
            for run in range(args.repeats):
                raw = run_child(
                    [sys.executable, __file__, "--raw-consumer", bootstrap, topic, str(args.ticks)],
                    300,
                )
                results["raw_msgs_per_s"].append(float(raw["messages"]) / float(raw["seconds"]))
                tl = run_ticklake(bootstrap, topic, redis_server, args.ticks, work)
                results["ticklake_ticks_per_s"].append(tl["ticks_per_s"])
                results["ticklake_durable_ticks_per_s"].append(tl["durable_ticks_per_s"])
                results["ticklake_rss_peak_mb"].append(tl["rss_peak_mb"])
                results["ticklake_rss_steady_mb"].append(tl["rss_steady_mb"])
                lake = work / f"naive-{run}"
                argv = naive_argv(bootstrap, topic, lake, redis_server, args.naive_seconds)
                naive = run_child([*argv, "--expect", str(args.ticks)], args.naive_seconds + 120)
                results["naive_ticks_per_s"].append(
                    float(naive["messages"]) / max(float(naive["seconds"]), 1e-9)
                )
                print(
                    f"run {run + 1}: " + ", ".join(f"{k}={v[-1]:,.0f}" for k, v in results.items())
                )

    report = {
        "benchmark": "ingest throughput (backlog drain), lake + Redis on",
        "ticks": args.ticks,
        "symbols": args.symbols,
        "partitions": args.partitions,
        "repeats": args.repeats,
        "results": {k: summary(v) for k, v in results.items()},
        # the medians under the keys bench/report.py reads (ingest.*, memory.*)
        "ingest": {
            "ticks_per_s": round(statistics.median(results["ticklake_ticks_per_s"])),
            "durable_ticks_per_s": round(
                statistics.median(results["ticklake_durable_ticks_per_s"])
            ),
            "raw_consumer_ticks_per_s": round(statistics.median(results["raw_msgs_per_s"])),
            "naive_baseline_ticks_per_s": round(statistics.median(results["naive_ticks_per_s"])),
        },
        "memory": {
            "ingest_rss_mb": round(statistics.median(results["ticklake_rss_steady_mb"]), 1),
            "ingest_rss_peak_mb": round(statistics.median(results["ticklake_rss_peak_mb"]), 1),
        },
        "targets": {
            "ticks_per_s": TARGET_TICKS_PER_S,
            "met": statistics.median(results["ticklake_ticks_per_s"]) >= TARGET_TICKS_PER_S,
            "rss_mb": TARGET_RSS_MB,
            "rss_met": statistics.median(results["ticklake_rss_steady_mb"]) <= TARGET_RSS_MB,
        },
        "command": "uv run python bench/bench_ingest.py " + " ".join(sys.argv[1:]),
        **stamp,
    }
    write_report(args.json, report, "results", "targets")


if __name__ == "__main__":
    main()
