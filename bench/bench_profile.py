"""Where ingest's time goes per tick: py-spy on ticklake-ingest draining a backlog.

    uv run python bench/bench_profile.py [--ticks 1000000] [--repeats 1] [--rate 200]
        [--json bench/results/profile.json] [--allow-dirty]

Starts a private Kafka and Redis, fills a topic with ``--ticks`` ticks (the same
generator and keys as ``bench_ingest.py``), and starts ``ticklake-ingest`` at
its defaults. From the first record it consumes until an outside observer sees
every row durable (committed lake files and committed offsets), ``py-spy
record --format raw`` samples every busy thread of the process; the samples are
grouped into pipeline stages (``bench/profile_stages.py``) and each stage's
share is turned into CPU µs per tick with the process's own CPU time over the
same window (``/proc/PID/stat``). The reference, in the same run: the CPU µs per
tick of the raw aiokafka counting consumer of ``bench_ingest.py`` (fetch and
record parsing only) draining the same backlog in this process.

It also measures, in this process and without Kafka, what one partition's
processing step costs per tick by the step's size (:func:`step_cost`): a quiet
feed is processed in steps of a few ticks, a backlog in steps of thousands, and
the difference is the fixed cost of a step.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import profile_stages
import provenance
from bench_ingest import (
    DurabilityWatch,
    create_topic,
    fill_topic,
    ingest_env,
    make_ticks,
    private_stack,
    raw_count,
    start_ingest,
    stop_ingest,
    wait_for_metric,
    write_report,
)

from ticklake.core.tick import encode_tick
from ticklake.devstack.ports import free_port
from ticklake.devstack.redis import RedisServer
from ticklake.ingest.features import FeatureParams
from ticklake.ingest.partition import PartitionProcessor
from ticklake.ingest.sinks.redis_writer import PendingWrites

ROOT = Path(__file__).resolve().parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of ``pid`` so far (s)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # fields[11], fields[12]: utime, stime (fields 14 and 15 of proc(5), after the name)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def py_spy() -> str:
    return str(Path(sys.executable).with_name("py-spy"))


def profile_ingest(
    bootstrap: str,
    topic: str,
    redis_server: RedisServer,
    ticks: int,
    work: Path,
    rate: int,
    keep_raw: Path | None = None,
) -> dict[str, Any]:
    """One drain by ticklake-ingest at its defaults under py-spy."""
    port = free_port()
    lake = work / f"lake-{uuid.uuid4().hex[:6]}"
    env = ingest_env(bootstrap, topic, redis_server, lake, port)
    env.pop("TICKLAKE_LOG_LEVEL")
    proc = start_ingest(env, work / "ingest.log")
    raw = work / f"profile-{uuid.uuid4().hex[:6]}.txt"
    try:
        asyncio.run(wait_for_metric(port, "ticklake_ingest_consumed_total", 1, 120))
        cpu_start, wall_start = cpu_seconds(proc.pid), time.monotonic()
        spy = subprocess.Popen(
            [py_spy(), "record", "--pid", str(proc.pid), "--format", "raw", "--rate", str(rate),
             "--nonblocking", "--threads", "--output", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

        async def durable() -> None:
            group = env["TICKLAKE_CONSUMER_GROUP"]
            async with DurabilityWatch(bootstrap, topic, group, lake / "ticks") as watch:
                await watch.wait(ticks, 300)

        asyncio.run(durable())
        cpu_end, wall_end = cpu_seconds(proc.pid), time.monotonic()
        spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
        _, err = spy.communicate(timeout=60)
        if not raw.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")
    finally:
        stop_ingest(proc)
    if keep_raw is not None:
        keep_raw.mkdir(parents=True, exist_ok=True)
        shutil.copy(raw, keep_raw / raw.name)
    samples = profile_stages.by_stage(profile_stages.parse_raw(raw.read_text().splitlines()))
    cpu = cpu_end - cpu_start
    return {
        "cpu_seconds": cpu,
        "wall_seconds": wall_end - wall_start,
        "samples": samples,
        "us_per_tick": profile_stages.per_tick_us(samples, cpu, ticks),
    }


def raw_consumer_cpu_us(bootstrap: str, topic: str, ticks: int) -> float:
    """CPU µs per tick of the raw counting consumer, run in this process."""
    start = time.process_time()
    result = asyncio.run(raw_count(bootstrap, topic, ticks))
    if result["messages"] < ticks:
        raise RuntimeError(f"raw consumer counted {result['messages']} of {ticks}")
    return (time.process_time() - start) / ticks * 1e6


STEP_SIZES = (10, 100, 1_000, 10_000)
STEP_TICKS = 40_000
"""Ticks processed per size and repeat (after 1,000 that make every symbol known)."""


@dataclass(slots=True)
class _Record:
    """The fields of a Kafka record that a partition's step reads."""

    offset: int
    key: bytes | None
    value: bytes | None
    topic: str = "ticks"
    partition: int = 0
    headers: Sequence[tuple[str, bytes]] = ()


def step_cost(symbols: int, repeats: int) -> dict[str, dict[str, float]]:
    """CPU µs per tick of one partition's step, by step size (median, min, max of repeats).

    A step here is what ingest's event loop does per partition and batch before any
    I/O: decode and validate, sequence and de-duplicate, features, columns
    (``PartitionProcessor.process``), and the Redis write's preparation
    (``PendingWrites.add`` and ``take``: merging, JSON of the rows to write).
    """
    ticks = make_ticks(1_000 + STEP_TICKS, symbols, seed=3)
    records = [_Record(i, t.symbol.encode(), encode_tick(t)) for i, t in enumerate(ticks)]
    out: dict[str, dict[str, float]] = {}
    for size in STEP_SIZES:
        samples = []
        for _ in range(repeats):
            processor = PartitionProcessor(0, FeatureParams(), 4096)
            processor.process(records[:1_000], time.time_ns())
            pending = PendingWrites(1_000, 100_000)
            start = time.process_time()
            for i in range(1_000, 1_000 + STEP_TICKS, size):
                pending.add(processor.process(records[i : i + size], time.time_ns()))
                pending.take()
            samples.append((time.process_time() - start) / STEP_TICKS * 1e6)
        median = statistics.median(samples)
        out[str(size)] = {
            "median_us_per_tick": round(median, 2),
            "min_us_per_tick": round(min(samples), 2),
            "max_us_per_tick": round(max(samples), 2),
            "ms_per_step": round(median * size / 1000, 3),
        }
        print(f"step of {size:>6} ticks: {median:8.2f} µs/tick, {median * size / 1000:.3f} ms")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/profile.json")
    parser.add_argument("--keep-raw", type=Path, help="copy py-spy's raw stacks into this folder")
    provenance.add_argument(parser)
    args = parser.parse_args()
    stamp = provenance.stamp(args.allow_dirty)

    steps = step_cost(args.symbols, max(3, args.repeats))
    runs: list[dict[str, Any]] = []
    raw_us: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        work = Path(tmp)
        with private_stack(work) as (bootstrap, redis_server):
            topic = asyncio.run(create_topic(bootstrap, args.partitions))
            asyncio.run(fill_topic(bootstrap, topic, make_ticks(args.ticks, args.symbols)))
            for run in range(args.repeats):
                raw_us.append(raw_consumer_cpu_us(bootstrap, topic, args.ticks))
                runs.append(profile_ingest(bootstrap, topic, redis_server, args.ticks, work,
                                           args.rate, args.keep_raw))  # fmt: skip
                print(
                    f"run {run + 1}: {runs[-1]['cpu_seconds']:.1f} s CPU, raw {raw_us[-1]:.2f} µs"
                )

    stages = list(runs[0]["us_per_tick"])
    us_per_tick = {
        s: round(statistics.median(r["us_per_tick"][s] for r in runs), 3) for s in stages
    }
    total = round(statistics.median(r["cpu_seconds"] / args.ticks * 1e6 for r in runs), 3)
    report = {
        "benchmark": "where ingest's CPU goes per tick (py-spy), draining a backlog until durable",
        "ticks": args.ticks,
        "symbols": args.symbols,
        "partitions": args.partitions,
        "repeats": args.repeats,
        "py_spy_rate_hz": args.rate,
        "settings": {"ingest": "every setting at its default (lake and Redis on)"},
        "results": {
            "ingest_cpu_us_per_tick": total,
            "raw_consumer_cpu_us_per_tick": round(statistics.median(raw_us), 3),
            "stage_us_per_tick": us_per_tick,
            "step_cost_by_ticks_per_step": steps,
            "runs": runs,
        },
        "command": "uv run python bench/bench_profile.py " + " ".join(sys.argv[1:]),
        **stamp,
    }
    write_report(args.json, report, "results")


if __name__ == "__main__":
    main()
