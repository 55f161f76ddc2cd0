"""What the sequencer's extra hop costs: ordering=sequence beside ordering=keyed, same run.

    uv run python bench/bench_sequencer.py [--ticks 100000] [--repeats 3] [--rate 2000]
        [--json bench/results/sequencer.json]

Starts a private Kafka broker and Redis (``ticklake.devstack``) and, per repeat,
one ``ticklake-ingest`` process per mode (each in its own consumer groups):

* **throughput**: a backlog of ``--ticks`` ticks over 4 partitions, keyed by
  symbol for ``keyed`` and on a random partition without a key for
  ``sequence`` (each partition in time order). Rate = ticks / (first sign of
  work on ``/metrics`` -> every row in the lake), so it includes the
  sequencer, its transactions and ingest behind it;
* **latency**: ``--rate`` ticks/s for ``--seconds`` (after a warm-up), event
  time = send time, keyed vs unkeyed as above; ingest's own histogram
  ``ticklake_ingest_e2e_latency_seconds`` (event time -> visible in Redis)
  over the window. The sequencer adds its merge wait (every partition must
  show a later time; at this rate each partition sees a tick every few ms)
  and up to ``sequencer_transaction_ms`` (100 ms) before ingest can read it.

Prints and writes medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import provenance
from aiokafka import AIOKafkaProducer
from bench_ingest import (
    create_topic,
    ingest_env,
    make_ticks,
    metric,
    private_stack,
    scrape_metrics,
    start_ingest,
    stop_ingest,
    summary,
)

from ticklake.core.tick import Tick, encode_tick
from ticklake.devstack import metrics_text
from ticklake.devstack.ports import free_port
from ticklake.devstack.redis import RedisServer

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4
E2E = "ticklake_ingest_e2e_latency_seconds"
PROCESSED = "ticklake_ingest_processed_total"


async def fill(bootstrap: str, topic: str, ticks: list[Tick], keyed: bool) -> None:
    """Keyed by symbol, or unkeyed on a random partition (time order kept per partition)."""
    rng = random.Random(3)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=262_144, acks=1
    )
    await producer.start()
    try:
        futures = []
        for t in ticks:
            if keyed:
                futures.append(await producer.send(topic, encode_tick(t), key=t.symbol.encode()))
            else:
                futures.append(
                    await producer.send(topic, encode_tick(t), partition=rng.randrange(PARTITIONS))
                )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def mode_env(
    mode: str, bootstrap: str, topic: str, redis_server: RedisServer, lake: Path, port: int
) -> dict[str, str]:
    extra = {"TICKLAKE_LAKE_ROLL_SECONDS": "1", "TICKLAKE_ORDERING": mode}
    if mode == "sequence":
        run = uuid.uuid4().hex[:6]
        extra |= {
            "TICKLAKE_SEQUENCED_TOPIC": f"{topic}.by-symbol-{run}",
            "TICKLAKE_SEQUENCER_GROUP": f"seq-{run}",
        }
    return ingest_env(bootstrap, topic, redis_server, lake, port, **extra)


def started_work(text: str) -> bool:
    return (
        metric(text, "ticklake_ingest_consumed_total") > 0
        or metric(text, "ticklake_ingest_sequencer_buffered") > 0
        or metric(text, "ticklake_ingest_sequencer_records_total") > 0
    )


def throughput(
    mode: str, bootstrap: str, topic: str, redis_server: RedisServer, expect: int, work: Path
) -> float:
    port = free_port()
    env = mode_env(mode, bootstrap, topic, redis_server, work / f"lake-{uuid.uuid4().hex}", port)
    proc = start_ingest(env, work / f"ingest-{mode}.log")
    first = done = None
    try:
        for now, text in scrape_metrics(port, 600):
            if first is None and started_work(text):
                first = now
            if metric(text, 'ticklake_ingest_lake_rows_total{dataset="ticks"}') >= expect:
                done = now
                break
    finally:
        stop_ingest(proc)
    if first is None or done is None:
        raise RuntimeError(f"{mode}: the lake did not get {expect} rows; see {work}")
    return expect / max(done - first, 1e-9)


async def produce_paced(bootstrap: str, topic: str, rate: int, seconds: float, keyed: bool) -> None:
    rng = random.Random(5)
    symbols = [f"L{i:02d}" for i in range(20)]
    seq = dict.fromkeys(symbols, 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks=1)
    await producer.start()
    try:
        slice_s = 0.005
        per_slice = max(1, round(rate * slice_s))
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < seconds:
            for _ in range(per_slice):
                s = symbols[rng.randrange(len(symbols))]
                seq[s] += 1
                tick = Tick(symbol=s, ts_ns=time.time_ns(), price=100.0 + rng.random(),
                            size=1.0, exchange="XNAS", seq=seq[s])  # fmt: skip
                if keyed:
                    await producer.send(topic, encode_tick(tick), key=s.encode())
                else:
                    await producer.send(
                        topic, encode_tick(tick), partition=rng.randrange(PARTITIONS)
                    )
            n += per_slice
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        await producer.flush()
    finally:
        await producer.stop()


def latency(
    mode: str,
    bootstrap: str,
    redis_server: RedisServer,
    rate: int,
    warmup_s: float,
    seconds: float,
    work: Path,
) -> dict[str, float]:
    topic = asyncio.run(create_topic(bootstrap, PARTITIONS))
    port = free_port()
    env = mode_env(mode, bootstrap, topic, redis_server, work / f"lake-{uuid.uuid4().hex}", port)
    proc = start_ingest(env, work / f"ingest-lat-{mode}.log")
    try:
        with httpx.Client(timeout=2.0) as http:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    ready = http.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
                    text = http.get(f"http://127.0.0.1:{port}/metrics").text
                except httpx.HTTPError:
                    ready = False
                # sequence: also wait for the sequencer to own the input, else the
                # window would measure the catch-up after its group join
                if ready and (
                    mode == "keyed" or metric(text, "ticklake_ingest_sequencer_active") == 1
                ):
                    break
                time.sleep(0.2)
            producing = subprocess.Popen(
                [
                    sys.executable, __file__, "--paced-child", bootstrap, topic, str(rate),
                    str(warmup_s + seconds + 2), "1" if mode == "keyed" else "0",
                ],
                cwd=ROOT,
            )  # fmt: skip
            try:
                time.sleep(warmup_s)
                before = http.get(f"http://127.0.0.1:{port}/metrics").text
                time.sleep(seconds)
                after = http.get(f"http://127.0.0.1:{port}/metrics").text
            finally:
                producing.wait(60)
    finally:
        stop_ingest(proc)
    window = metrics_text.bucket_delta(
        metrics_text.histogram_buckets(after, E2E), metrics_text.histogram_buckets(before, E2E)
    )
    processed = metrics_text.sample_sum(after, PROCESSED) - metrics_text.sample_sum(
        before, PROCESSED
    )
    return {
        "achieved_rate": processed / seconds,
        "p50_ms": metrics_text.quantile(window, 0.50) * 1000,
        "p99_ms": metrics_text.quantile(window, 0.99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--rate", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/sequencer.json")
    parser.add_argument("--paced-child", nargs=5, help=argparse.SUPPRESS)
    provenance.add_argument(parser)
    args = parser.parse_args()
    if args.paced_child:
        bootstrap, topic, rate, seconds, keyed = args.paced_child
        asyncio.run(produce_paced(bootstrap, topic, int(rate), float(seconds), keyed == "1"))
        return
    stamp = provenance.stamp(args.allow_dirty)

    results: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)

    with tempfile.TemporaryDirectory(prefix="bench-seq-") as tmp:
        work = Path(tmp)
        with private_stack(work) as (bootstrap, redis_server):
            ticks = make_ticks(args.ticks, args.symbols)
            topics = {}
            for mode in ("keyed", "sequence"):
                topics[mode] = asyncio.run(create_topic(bootstrap, PARTITIONS))
                asyncio.run(fill(bootstrap, topics[mode], ticks, keyed=mode == "keyed"))
            for repeat in range(args.repeats):
                for mode in ("keyed", "sequence"):
                    rate = throughput(mode, bootstrap, topics[mode], redis_server, args.ticks, work)
                    note(f"{mode}_ticks_per_s", rate)
                    lat = latency(
                        mode, bootstrap, redis_server, args.rate, args.warmup, args.seconds, work
                    )
                    for name, value in lat.items():
                        note(f"{mode}_{name}", value)
                    print(f"repeat {repeat} {mode}: {rate:,.0f} ticks/s, latency {lat}", flush=True)
    out: dict[str, Any] = {name: summary(values) for name, values in results.items()}
    keyed, seq = out["keyed_ticks_per_s"]["median"], out["sequence_ticks_per_s"]["median"]
    out["sequence_vs_keyed_throughput"] = round(seq / keyed, 3)
    out["added_p50_ms"] = round(out["sequence_p50_ms"]["median"] - out["keyed_p50_ms"]["median"], 1)
    out["added_p99_ms"] = round(out["sequence_p99_ms"]["median"] - out["keyed_p99_ms"]["median"], 1)
    out["setup"] = {
        "ticks": args.ticks,
        "partitions": PARTITIONS,
        "symbols": args.symbols,
        "latency_rate": args.rate,
        "latency_seconds": args.seconds,
        "repeats": args.repeats,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "command": "uv run --frozen python bench/bench_sequencer.py",
    }
    out.update(stamp)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
