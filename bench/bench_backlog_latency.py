"""End-to-end latency of new ticks while ingest drains a large backlog, and its memory.

    uv run python bench/bench_backlog_latency.py [--backlog 1000000] [--rate 200]
        [--settle-seconds 10] [--json bench/results/backlog_latency.json] [--allow-dirty]

The question: does a backlog hold up the ticks of symbols that have none
(head-of-line blocking inside ingest)? Kafka keeps order only within a
partition, so a tick queued behind backlog in its own partition cannot be
processed before that backlog however ingest is built; a tick on a partition
without backlog can. Both are measured in the same run, labelled apart:

* a topic of ``--partitions`` (4) partitions; a backlog of ``--backlog`` ticks
  from ``bench_ingest.make_ticks`` (the generator of the throughput benchmark:
  100 symbols, random walk) is written to the first ``--backlog-partitions``
  (3) partitions only, each symbol to one partition, before ingest starts;
* ``ticklake-ingest`` with every setting at its default then starts and drains
  it; once its ``/metrics`` show the drain begun (a first batch processed: the
  start-up, recovery included, is not what is measured), this process sends,
  paced at ``--rate`` ticks/s each, two symbols that have no backlog: ``IDLEFREE`` on the last
  partition (no backlog: the figure) and ``IDLEBEHIND`` on partition 0
  (queued behind that partition's backlog: what Kafka's order alone costs);
* latency is the suite's one definition (``bench_ingest_latency``): event time
  stamped just before sending -> the tick visible in Redis, seen by a separate
  observer process subscribed to the ticks channel;
* **during the drain** counts the idle ticks whose event time falls between
  ``WARMUP_S`` after the feed started and the moment ingest's ``/metrics``
  shows every backlog tick processed; **after the drain** (the reference, same
  run, same symbol) the ones from ``AFTER_GAP_S`` after the drain to the end;
* ingest's resident set (VmRSS, ``/proc``) is sampled every ``RSS_POLL_S``:
  the peak while draining (ingest start -> backlog processed) and, after every
  backlog row is durable (``bench_ingest.DurabilityWatch``: in committed lake
  files, offsets committed; at the defaults the last files roll by age, up to
  30 s), the median over ``--settle-seconds`` of the idle feed alone.

Targets: p99 of ``IDLEFREE`` during the drain <= 50 ms; RSS peak while
draining <= 300 MB; after, steady <= 200 MB. One run (the drain is the
experiment; ``--quick`` in ``run_all.py`` uses a smaller backlog, labelled).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import provenance
from aiokafka import AIOKafkaProducer
from bench_ingest import (
    DurabilityWatch,
    create_topic,
    ingest_env,
    make_ticks,
    private_stack,
    rss_mb,
    start_ingest,
    stop_ingest,
    wait_for_metric,
    write_report,
)
from bench_ingest_latency import observer_argv, ticklake_latencies

from ticklake.core.tick import Tick, encode_tick
from ticklake.devstack.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
FREE = "IDLEFREE"
"""The idle symbol on the partition without backlog (the figure)."""
BEHIND = "IDLEBEHIND"
"""The idle symbol on partition 0, behind that partition's backlog (Kafka's order)."""
IDLE_PREFIX = "IDLE"
"""What the observer keeps: only the idle symbols' rows (the backlog's are many)."""
WARMUP_S = 1.0
"""Idle ticks sent in the feed's first second are not counted (connections warming)."""
AFTER_GAP_S = 2.0
"""The after-the-drain reference starts this long after the backlog was processed."""
RSS_POLL_S = 0.1
PROCESSED = "ticklake_ingest_processed_total"
"""Ingest's count of ticks processed (Redis written, rows buffered for the lake): the
drain is over when it reaches the backlog. The idle ticks count in it too, so it reaches
the backlog at most the idle ticks processed so far early (a few hundred ticks: a few ms
of the drain)."""
TARGET_P99_MS = 50.0
TARGET_RSS_PEAK_MB = 300.0
TARGET_RSS_AFTER_MB = 200.0


def backlog_partition(symbol_index: int, backlog_partitions: int) -> int:
    """The partition of a backlog symbol: symbols spread over the first
    ``backlog_partitions`` partitions, each always on the same one (as keys would)."""
    return symbol_index % backlog_partitions


async def fill_backlog(
    bootstrap: str, topic: str, ticks: list[Tick], symbols: int, backlog_partitions: int
) -> None:
    """Write ``ticks`` (keyed by symbol) to the first ``backlog_partitions`` partitions."""
    partition_of = {f"S{i:03d}": backlog_partition(i, backlog_partitions) for i in range(symbols)}
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=262_144, acks=1
    )
    await producer.start()
    try:
        futures = []
        for t in ticks:
            futures.append(
                await producer.send(
                    topic, encode_tick(t), key=t.symbol.encode(), partition=partition_of[t.symbol]
                )
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def feed_idle(
    bootstrap: str,
    topic: str,
    partitions: dict[str, int],
    rate: int,
    stop: asyncio.Event,
    sent: list[tuple[str, int, int]],
) -> None:
    """Send each symbol of ``partitions`` to its partition at ``rate`` ticks/s until
    ``stop``; each tick's ``ts_ns`` is the wall clock just before it is sent (the same
    producer settings as ``bench_ingest_latency``). Appends (symbol, seq, ts_ns) of every
    tick sent to ``sent`` as it goes (the caller reads how many were sent so far)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    await producer.start()
    seq = 0
    try:
        started = time.monotonic()
        while not stop.is_set():
            due = int((time.monotonic() - started) * rate) + 1
            while seq < due:
                seq += 1
                for k, (symbol, partition) in enumerate(partitions.items()):
                    now = time.time_ns()
                    tick = Tick(symbol=symbol, ts_ns=now, price=100.0 + k, size=1.0,
                                exchange="XNAS", seq=seq, bid=99.9 + k, ask=100.1 + k)  # fmt: skip
                    await producer.send(
                        topic, encode_tick(tick), key=symbol.encode(), partition=partition
                    )
                    sent.append((symbol, seq, now))
            await asyncio.sleep(0.001)
        await producer.flush()
    finally:
        await producer.stop()


def drain_windows(feed_started_ns: int, drained_ns: int, end_ns: int) -> dict[str, tuple[int, int]]:
    """Event-time windows [start, end) of the two phases: during the drain (after the
    feed's warm-up) and after it (from ``AFTER_GAP_S`` past the drain)."""
    return {
        "during": (feed_started_ns + int(WARMUP_S * 1e9), drained_ns),
        "after": (drained_ns + int(AFTER_GAP_S * 1e9), end_ns),
    }


def latency_summary(values: list[float], sent_in_window: int) -> dict[str, Any]:
    """Percentiles (ms) of one symbol's ticks in one window, with how many were counted."""
    out: dict[str, Any] = {"ticks_seen": len(values), "ticks_in_window": sent_in_window}
    if values:
        arr = np.asarray(values)
        for name, q in (("p50_ms", 50), ("p99_ms", 99), ("max_ms", 100)):
            out[name] = round(float(np.percentile(arr, q)), 3)
    return out


async def wait_for_readiness(port: int, timeout_s: float) -> None:
    """Until ingest's /readyz shows partitions assigned (joined the group)."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=1.0) as http:
        while time.monotonic() < deadline:
            try:
                body = (await http.get(f"http://127.0.0.1:{port}/readyz")).json()
                if body.get("assigned_partitions"):
                    return
            except (httpx.HTTPError, ValueError):
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"ingest on port {port} got no partitions in {timeout_s:.0f} s")


def start_profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` (ingest) until SIGINT, collapsed stacks with thread names
    and idle frames to ``out`` (``--py-spy``: a diagnosis aid, off in the benchmark)."""
    argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
            "--rate", "100", "--format", "raw", "--threads", "--idle", "--nonblocking",
            "--output", str(out)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    with private_stack(work) as (bootstrap, redis_server):
        topic = asyncio.run(create_topic(bootstrap, args.partitions))
        started = time.monotonic()
        ticks = make_ticks(args.backlog, args.symbols)
        asyncio.run(fill_backlog(bootstrap, topic, ticks, args.symbols, args.backlog_partitions))
        del ticks
        fill_s = time.monotonic() - started
        print(f"backlog of {args.backlog:,} ticks on partitions 0-{args.backlog_partitions - 1} "
              f"written in {fill_s:.1f} s", flush=True)  # fmt: skip

        seen_file = work / "observed.json"
        observer = subprocess.Popen(observer_argv(redis_server, 3600, seen_file, IDLE_PREFIX))
        port = free_port()
        lake = work / "lake"
        env = ingest_env(bootstrap, topic, redis_server, lake, port)
        env.pop("TICKLAKE_LOG_LEVEL")  # every setting at its default, the log level too
        ingest = start_ingest(env, work / "ingest.log")
        rss: list[tuple[int, float]] = []

        def sample_rss() -> None:
            rss.append((time.time_ns(), rss_mb(ingest.pid)))

        idle = {FREE: args.partitions - 1, BEHIND: 0}
        marks: dict[str, int] = {"ingest_started": time.time_ns()}

        sent: list[tuple[str, int, int]] = []

        async def experiment() -> None:
            stop = asyncio.Event()

            async def sampler() -> None:
                while True:
                    sample_rss()
                    await asyncio.sleep(RSS_POLL_S)

            sampling = asyncio.create_task(sampler())
            try:
                await wait_for_readiness(port, 60)
                # the drain has begun (partitions recovered, first batch processed): idle
                # ticks sent earlier would wait for ingest's start-up, not for the backlog
                marks["consuming"] = await wait_for_metric(port, PROCESSED, 1, 60)
                marks["feed_started"] = time.time_ns()
                feed = asyncio.create_task(feed_idle(bootstrap, topic, idle, args.rate, stop, sent))
                spy = start_profile(ingest.pid, args.py_spy) if args.py_spy else None
                marks["drained"] = await wait_for_metric(
                    port, PROCESSED, args.backlog, args.max_drain_seconds
                )
                if spy is not None:
                    spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
                    await asyncio.to_thread(spy.wait, 60)
                group = env["TICKLAKE_CONSUMER_GROUP"]
                async with DurabilityWatch(bootstrap, topic, group, lake / "ticks") as watch:
                    # the backlog and the idle ticks of the drain: rows in committed lake
                    # files and offsets committed (the idle feed's rows count in both)
                    await watch.wait(args.backlog + len(sent), 120)
                marks["durable"] = time.time_ns()
                await asyncio.sleep(args.settle_seconds)
                marks["end"] = time.time_ns()
                stop.set()
                await feed
            finally:
                stop.set()
                sampling.cancel()

        try:
            asyncio.run(experiment())
            time.sleep(1.0)  # the last ticks reach the observer
        finally:
            observer.terminate()
            observer.wait(60)
            stop_ingest(ingest)
        seen: list[tuple[int, str, int]] = (
            [(int(a), str(b), int(c)) for a, b, c in json.loads(seen_file.read_text())]
            if seen_file.exists()
            else []
        )

    windows = drain_windows(marks["feed_started"], marks["drained"], marks["end"])
    latency: dict[str, dict[str, Any]] = {}
    for symbol in idle:
        mine = [t for t in sent if t[0] == symbol]
        for phase, (start_ns, end_ns) in windows.items():
            values = ticklake_latencies(mine, seen, start_ns, end_ns)
            in_window = sum(1 for t in mine if start_ns <= t[2] < end_ns)
            latency[f"{symbol.lower()}_{phase}"] = latency_summary(values, in_window)
    draining = [m for t, m in rss if t <= marks["drained"]]
    until_durable = [m for t, m in rss if t <= marks["durable"]]
    after = [m for t, m in rss if marks["durable"] <= t]
    return {
        "latency_ms": latency,
        "rss_mb": {
            "peak_while_draining": round(max(draining), 1) if draining else None,
            "peak_until_durable": round(max(until_durable), 1) if until_durable else None,
            "after_steady": round(statistics.median(after), 1) if after else None,
        },
        "seconds": {
            "fill": round(fill_s, 1),
            "ingest_start_to_consuming": round(
                (marks["consuming"] - marks["ingest_started"]) / 1e9, 1
            ),
            "feed_to_drained": round((marks["drained"] - marks["feed_started"]) / 1e9, 1),
            "drained_to_durable": round((marks["durable"] - marks["drained"]) / 1e9, 1),
            "settle": args.settle_seconds,
        },
        "drain_ticks_per_s": round(
            args.backlog / max((marks["drained"] - marks["ingest_started"]) / 1e9, 1e-9)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=200, help="ticks/s of each idle symbol")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--backlog-partitions", type=int, default=3)
    parser.add_argument("--settle-seconds", type=float, default=10.0)
    parser.add_argument("--max-drain-seconds", type=float, default=300.0)
    parser.add_argument(
        "--py-spy", type=Path, help="profile ingest during the drain (py-spy, collapsed stacks)"
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/backlog_latency.json")
    provenance.add_argument(parser)
    args = parser.parse_args()
    if not 0 < args.backlog_partitions < args.partitions:
        parser.error("--backlog-partitions must leave at least one partition without backlog")
    stamp = provenance.stamp(args.allow_dirty)
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as tmp:
        result = run(args, Path(tmp))
    free = result["latency_ms"].get(f"{FREE.lower()}_during", {})
    rss = result["rss_mb"]
    report = {
        "benchmark": "end-to-end latency of idle symbols' ticks while ingest drains a backlog",
        "backlog": args.backlog,
        "symbols": args.symbols,
        "partitions": args.partitions,
        "backlog_partitions": args.backlog_partitions,
        "rate_per_idle_symbol": args.rate,
        "idle_symbols": {
            FREE: "partition without backlog",
            BEHIND: "partition 0, behind its backlog",
        },
        "warmup_s": WARMUP_S,
        "after_gap_s": AFTER_GAP_S,
        "settings": "ticklake-ingest with every setting at its default (lake and Redis on)",
        **result,
        "targets": {
            "p99_ms": TARGET_P99_MS,
            "p99_met": free.get("p99_ms", float("inf")) <= TARGET_P99_MS,
            "rss_peak_mb": TARGET_RSS_PEAK_MB,
            "rss_peak_met": (rss["peak_while_draining"] or float("inf")) <= TARGET_RSS_PEAK_MB,
            "rss_after_mb": TARGET_RSS_AFTER_MB,
            "rss_after_met": (rss["after_steady"] or float("inf")) <= TARGET_RSS_AFTER_MB,
        },
        "command": "uv run python bench/bench_backlog_latency.py " + " ".join(sys.argv[1:]),
        **stamp,
    }
    write_report(args.json, report, "latency_ms", "rss_mb", "seconds", "targets")


if __name__ == "__main__":
    main()
