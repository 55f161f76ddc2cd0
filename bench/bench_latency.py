"""End-to-end latency (event time → visible in Redis) at fixed rates, and ingest's memory.

    uv run python bench/bench_latency.py [--quick] [--rates 1000 5000 20000]
                                         [--json bench/results/latency.json]

Starts a private Kafka broker and Redis (``ticklake.devstack``), one
``ticklake-ingest`` process with its defaults (lake and Redis on), and for
each offered rate one ``ticklake-producer simulate`` process paced at that
rate (1 ms slices, so an event time is at most 1 ms old when it is sent).

The latency is the suite's one end-to-end definition, taken by an outside
observer: a separate process (``bench_ingest_latency.observe``) subscribed to
the Redis channel the query API's ``/latest`` mirror reads records each row's
arrival; after the run the topic is read back for every tick's (symbol, seq,
event time), and a tick's latency is the first arrival of a row of its symbol
at >= its seq minus its event time. Each rate's producer has symbols of its
own (its seq numbers start at 1 again). Only ticks whose event time falls in
the measuring window (after the warm-up) count.

Beside it, ingest's own histogram ``ticklake_ingest_e2e_latency_seconds``
over the same window (``hist_*``: event time → ingest's Redis write returned,
bucket counts after the warm-up subtracted, interpolated inside buckets).

Beside it, in the same run on the same broker, **Kafka's own end-to-end
latency** at each rate (``kafka_own_*``, the reference of the ratios): the same
``ticklake-producer simulate`` command at the same rate into a fresh topic of
the same partitions, read by a plain aiokafka consumer in another process
(``bench_ingest_latency.raw_latency``: every partition assigned, ingest's fetch
settings) that only stamps each record when it is handed over: event time ->
record in the consumer's hands, wall clock in ns, over a window after a
warm-up (``--kafka-own-seconds``; the full window, 3 s quick). Same producer,
same event-time definition, so the ratio is what ingest, Redis and the
observer's hop add.

And Kafka's ``org.apache.kafka.tools.EndToEndLatency`` at the same record
size (``kafka_e2e_*``). That tool sends one record at a time and waits for it
(it has no rate option; as many records as a tenth of a measuring window's ticks, at most
20,000, 5,000 quick), and prints its percentiles in whole milliseconds,
truncated (its per-record times are integer ms; only its average has
decimals), so "0" means under 1 ms: kept as the Java client's one-record
floor, not used for ratios.

Memory: the 5,000 ticks/s phase is held for ``--soak-seconds`` (300 s full, as
the suite asks; 10 s quick) and ingest's resident set (VmRSS) is read at its
end, with its peak over the soak.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import provenance
from aiokafka import AIOKafkaConsumer, TopicPartition
from bench_ingest import create_topic, ingest_env, private_stack, rss_mb, start_ingest, stop_ingest
from bench_ingest_latency import (
    kafka_own_latencies,
    kafka_own_pairs,
    observer_argv,
    start_kafka_own,
    ticklake_latencies,
)

from ticklake.core.tick import Tick, decode_tick, encode_tick
from ticklake.devstack import metrics_text, ports, process
from ticklake.devstack.kafka import java_command

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
E2E = "ticklake_ingest_e2e_latency_seconds"
PROCESSED = "ticklake_ingest_processed_total"
PARTITIONS = 4
SYMBOLS_PER_RATE = 10
"""As many symbols as the simulator's default feed."""
_KAFKA_PCT = re.compile(r"Percentiles: 50th = (\d+), 99th = (\d+), 99.9th = (\d+)")
_KAFKA_AVG = re.compile(r"Avg latency: ([\d.]+) ms")


def record_size() -> int:
    """Bytes of one encoded tick with a full book, as the producer sends it."""
    tick = Tick(symbol="AAPL", ts_ns=time.time_ns(), price=189.12, size=100.0, exchange="XNAS",
                seq=123456, bid=189.11, ask=189.13, bid_size=300.0, ask_size=200.0)  # fmt: skip
    return len(encode_tick(tick))


def scrape(port: int) -> str:
    text = metrics_text.scrape(f"http://127.0.0.1:{port}/metrics", timeout=5)
    if text is None:
        raise RuntimeError(f"ingest /metrics on port {port} does not answer")
    return text


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def kafka_end_to_end(bootstrap: str, records: int, size: int) -> dict[str, float]:
    topic = f"e2e-{uuid.uuid4().hex[:8]}"
    argv = java_command(
        "org.apache.kafka.tools.EndToEndLatency",
        "--bootstrap-server", bootstrap, "--topic", topic, "--num-records", str(records),
        "--producer-acks", "all", "--record-size", str(size),
    )  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    out = result.stdout + result.stderr
    pct, avg = _KAFKA_PCT.search(out), _KAFKA_AVG.search(out)
    if pct is None or avg is None:
        raise RuntimeError(f"EndToEndLatency output not understood:\n{out[-2000:]}")
    return {
        "kafka_e2e_avg_ms": float(avg.group(1)),
        "kafka_e2e_p50_ms": float(pct.group(1)),
        "kafka_e2e_p99_ms": float(pct.group(2)),
        "kafka_e2e_p999_ms": float(pct.group(3)),
        "kafka_e2e_records": records,
    }


def simulate_argv(bootstrap: str, topic: str, rate: int, seconds: float) -> list[str]:
    """The paced producer of a rate: ``ticklake-producer simulate``, 1 ms slices, the
    rate's own symbols (the same command for ticklake's run and Kafka's own)."""
    return [str(BIN / "ticklake-producer"), "simulate", "--rate", str(rate),
            "--duration", str(seconds), "--slice-ms", "1",
            "--symbols", ",".join(rate_symbols(rate)),
            "--bootstrap-servers", bootstrap, "--topic", topic, "--quiet"]  # fmt: skip


def kafka_own(
    bootstrap: str, rate: int, warmup_s: float, measure_s: float, logs: Path
) -> dict[str, Any]:
    """Kafka's own end-to-end latency at ``rate``: the same producer command into a fresh
    topic of :data:`PARTITIONS`, read by a consumer that only stamps arrivals (ms)."""
    topic = asyncio.run(create_topic(bootstrap, PARTITIONS))
    out = logs / f"kafka-own-{rate}.json"
    consumer = start_kafka_own(bootstrap, topic, PARTITIONS, warmup_s + measure_s + 3, out)
    producer = process.spawn(
        simulate_argv(bootstrap, topic, rate, warmup_s + measure_s + 1),
        logs / f"producer-kafka-own-{rate}.log",
    )
    try:
        time.sleep(warmup_s)
        start_ns = time.time_ns()
        time.sleep(measure_s)
        end_ns = time.time_ns()
    finally:
        process.stop(producer, timeout=30)
    values = kafka_own_latencies(kafka_own_pairs(consumer, out, 60), start_ns, end_ns)
    if not values:
        raise RuntimeError(f"Kafka's own consumer saw no tick of the window at {rate}/s")
    arr = np.asarray(values)
    return {
        "kafka_own_p50_ms": round(float(np.percentile(arr, 50)), 3),
        "kafka_own_p99_ms": round(float(np.percentile(arr, 99)), 3),
        "kafka_own_p999_ms": round(float(np.percentile(arr, 99.9)), 3),
        "kafka_own_ticks": len(values),
        "kafka_own_window_s": measure_s,
    }


def rate_symbols(rate: int) -> list[str]:
    """Symbols of their own for each rate's producer: its seq numbers start at 1 again,
    and the observer tells the rates apart by symbol."""
    return [f"R{rate}S{i:02d}" for i in range(SYMBOLS_PER_RATE)]


def run_rate(
    bootstrap: str, topic: str, rate: int, warmup_s: float, measure_s: float,
    ingest_port: int, ingest_pid: int, logs: Path,
) -> dict[str, Any]:  # fmt: skip
    producer = process.spawn(
        simulate_argv(bootstrap, topic, rate, warmup_s + measure_s + 5),
        logs / f"producer-{rate}.log",
    )
    try:
        time.sleep(warmup_s)
        before = scrape(ingest_port)
        window_start_ns = time.time_ns()
        started = time.monotonic()
        peak_rss = rss_mb(ingest_pid)
        while time.monotonic() - started < measure_s:
            time.sleep(min(5.0, measure_s - (time.monotonic() - started)) or 0.1)
            peak_rss = max(peak_rss, rss_mb(ingest_pid))
        after = scrape(ingest_port)
        window_end_ns = time.time_ns()
        elapsed = time.monotonic() - started
    finally:
        process.stop(producer, timeout=30)
    window = metrics_text.bucket_delta(
        metrics_text.histogram_buckets(after, E2E), metrics_text.histogram_buckets(before, E2E)
    )
    processed = metrics_text.sample_sum(after, PROCESSED) - metrics_text.sample_sum(
        before, PROCESSED
    )
    return {
        "offered_rate": rate,
        "achieved_rate": round(processed / elapsed, 1),
        "hist_p50_ms": round(metrics_text.quantile(window, 0.50) * 1000, 3),
        "hist_p99_ms": round(metrics_text.quantile(window, 0.99) * 1000, 3),
        "hist_p999_ms": round(metrics_text.quantile(window, 0.999) * 1000, 3),
        "window_ns": [window_start_ns, window_end_ns],
        "ticks_measured": int(processed),
        "window_s": round(elapsed, 1),
        "ingest_rss_mb_end": round(rss_mb(ingest_pid), 1),
        "ingest_rss_mb_peak": round(peak_rss, 1),
    }


async def read_topic(bootstrap: str, topic: str) -> list[tuple[str, int, int]]:
    """(symbol, seq, event ns) of every tick in ``topic``, read back after the run: what
    the producers sent, as the observer's reference."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[str, int, int]] = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)

        async def behind() -> bool:
            for tp in partitions:
                if await consumer.position(tp) < ends[tp]:
                    return True
            return False

        while await behind():
            batch = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for records in batch.values():
                for r in records:
                    tick = decode_tick(r.value)
                    out.append((tick.symbol, tick.seq or 0, tick.ts_ns))
    finally:
        await consumer.stop()
    return out


def observed(row: dict[str, Any], rate: int, sent: list[tuple[str, int, int]],
             seen: list[tuple[int, str, int]]) -> dict[str, Any]:  # fmt: skip
    """The outside observer's percentiles for one rate's measuring window."""
    prefix = f"R{rate}S"
    mine = [t for t in sent if t[0].startswith(prefix)]
    start_ns, end_ns = row["window_ns"]
    values = ticklake_latencies(mine, seen, start_ns, end_ns) if mine else []
    in_window = sum(1 for t in mine if start_ns <= t[2] < end_ns)
    if not values:
        return {"observed_ticks": 0, "ticks_in_window": in_window}
    arr = np.asarray(values)
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 3),
        "p99_ms": round(float(np.percentile(arr, 99)), 3),
        "p999_ms": round(float(np.percentile(arr, 99.9)), 3),
        "observed_ticks": len(values),
        "ticks_in_window": in_window,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows (bench-quick)")
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--soak-seconds", type=float, default=None)
    parser.add_argument(
        "--kafka-own-seconds",
        type=float,
        default=None,
        help="window of Kafka's own latency per rate (default: the measuring window; 3 quick)",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/latency.json")
    provenance.add_argument(parser)
    args = parser.parse_args()
    stamp = provenance.stamp(args.allow_dirty)
    # quick keeps every rate and reference, in shorter windows (make bench-quick < 10 min)
    warmup_s, measure_s = (3.0, 8.0) if args.quick else (5.0, 30.0)
    soak_s = args.soak_seconds or (10.0 if args.quick else 300.0)
    e2e_records_max = 5000 if args.quick else 20000
    kafka_own_s = args.kafka_own_seconds or (3.0 if args.quick else measure_s)
    size = record_size()

    with (
        tempfile.TemporaryDirectory(prefix="ticklake-latency-") as tmp,
        private_stack(Path(tmp)) as (bootstrap, redis_server),
    ):
        base = Path(tmp)
        logs = base / "logs"
        logs.mkdir()
        topic = asyncio.run(create_topic(bootstrap, PARTITIONS))
        ingest_port = ports.free_port()
        ingest = start_ingest(
            ingest_env(bootstrap, topic, redis_server, base / "lake", ingest_port),
            logs / "ingest.log",
        )
        results: dict[str, Any] = {}
        seen_file = base / "observed.json"
        observer = subprocess.Popen(observer_argv(redis_server, 24 * 3600, seen_file))
        try:
            ports.wait_until(lambda: ready(ingest_port), 60, "ingest /readyz")
            for rate in args.rates:
                measure = soak_s if rate == 5000 else measure_s
                print(f"rate {rate}/s: warm-up {warmup_s:.0f} s, measuring {measure:.0f} s",
                      flush=True)  # fmt: skip
                row = run_rate(bootstrap, topic, rate, warmup_s, measure,
                               ingest_port, ingest.pid, logs)  # fmt: skip
                row.update(kafka_own(bootstrap, rate, min(warmup_s, 3.0), kafka_own_s, logs))
                records = max(2000, min(e2e_records_max, int(rate * measure_s / 10)))
                row.update(kafka_end_to_end(bootstrap, records, size))
                results[str(rate)] = row
                print(f"  ingest's histogram p50 {row['hist_p50_ms']} ms p99 "
                      f"{row['hist_p99_ms']} ms at {row['achieved_rate']}/s | Kafka's own "
                      f"p50 {row['kafka_own_p50_ms']} p99 {row['kafka_own_p99_ms']} ms | "
                      f"EndToEndLatency p50 {row['kafka_e2e_p50_ms']} p99 "
                      f"{row['kafka_e2e_p99_ms']} ms", flush=True)  # fmt: skip
            time.sleep(2)  # the last window's rows reach the observer
        finally:
            observer.terminate()
            observer.wait(60)
            stop_ingest(ingest)
        sent = asyncio.run(read_topic(bootstrap, topic))
        seen = [tuple(x) for x in json.loads(seen_file.read_text())] if seen_file.exists() else []
        for rate_key, row in results.items():
            row.update(observed(row, int(rate_key), sent, seen))
            print(f"rate {rate_key}/s observer: p50 {row.get('p50_ms')} ms p99 "
                  f"{row.get('p99_ms')} ms over {row['observed_ticks']} of "
                  f"{row['ticks_in_window']} ticks", flush=True)  # fmt: skip

    soak = results.get("5000", {})
    report = {
        "latency": results,
        "memory": {
            "ingest_rss_mb": soak.get("ingest_rss_mb_end"),
            "ingest_rss_mb_peak": soak.get("ingest_rss_mb_peak"),
            "soak_seconds_at_5000": soak_s,
            "target_mb": 300,
        },
        "record_bytes": size,
        "partitions": PARTITIONS,
        "load_generator": "ticklake-producer simulate (separate process, 1 ms slices)",
        "latency_source": "outside observer (bench_ingest_latency.observe): producer event "
        "time -> row visible on the Redis channel the query API's mirror reads; hist_*: "
        f"{E2E} (ingest's own histogram), same window",
        "kafka_own_reference": "Kafka's own end-to-end latency: the same ticklake-producer "
        "simulate command at the same rate into a fresh topic of the same partitions, read by "
        "a plain aiokafka consumer in another process (every partition assigned, ingest's "
        "fetch settings) that only stamps arrivals: event time -> record in hand, wall clock "
        f"in ns, {kafka_own_s:g} s after a warm-up",
        "kafka_reference": "org.apache.kafka.tools.EndToEndLatency, acks=all, one record at a "
        "time; percentiles in whole ms, truncated",
        "command": " ".join(["uv run python bench/bench_latency.py", *sys.argv[1:]]),
        "load_average": list(os.getloadavg()),
        "medians_note": "each figure is a quantile over every tick of its window",
        **stamp,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
