"""The naive ingest ticklake is compared with: what a reasonable prototype script does.

    uv run python bench/naive_ingest.py --bootstrap HOST:PORT --topic T --lake DIR \
        --redis-url URL [--redis-password P] [--max-seconds 20] [--expect N]

Shaped like a careful first version of "consume, write Parquet, update Redis",
with none of ticklake's machinery:

* one ``getmany`` batch (up to :data:`BATCH` records) at a time, decoded into a
  list of dicts and turned into **one pandas DataFrame**;
* features with pandas on that frame (per-symbol return and a 12-tick EMA; the
  EMA restarts with every batch, a prototype's simplification);
* **one Parquet file per batch** (``pandas.to_parquet``, named by wall-clock time,
  so a replay writes the batch again under another name);
* **one Redis pipeline per batch** (blocking redis-py, one ``HSET`` of the latest
  hash per tick);
* offsets **committed after** the file and the pipeline are written (auto-commit
  off), so a crash replays the batch instead of losing it.

It prints one JSON line: messages, the wall-clock ns of the first message and of the
last commit, and each tick's latency from event time to its batch's Redis pipeline
returning.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

import pandas as pd
import redis
from aiokafka import AIOKafkaConsumer

from ticklake.core.hot_cache import latest_key
from ticklake.core.tick import decode_tick, tick_to_dict

BATCH = 10_000
"""Most records per ``getmany`` call, file and pipeline."""
POLL_MS = 100
"""How long ``getmany`` waits for records when none are ready (ms)."""

DESCRIPTION = (
    f"batch prototype (`bench/naive_ingest.py`): each `getmany` batch (up to {BATCH:,} "
    "records) → one pandas DataFrame → one Parquet file, one blocking Redis pipeline per "
    "batch, offsets committed after both"
)
"""How the benchmarks' results and report describe this baseline."""


async def run(args: argparse.Namespace) -> dict[str, object]:
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    client = redis.Redis.from_url(args.redis_url, password=args.redis_password)
    os.makedirs(args.lake, exist_ok=True)
    await consumer.start()
    latencies_ms: list[float] = []
    count = 0
    first_ns: int | None = None
    last_commit_ns: int | None = None
    try:
        deadline = time.monotonic() + args.max_seconds
        while time.monotonic() < deadline and (args.expect <= 0 or count < args.expect):
            batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=BATCH)
            records = [r for rs in batches.values() for r in rs]
            if not records:
                continue
            if first_ns is None:
                first_ns = time.time_ns()
            ticks = []
            for r in records:
                try:
                    ticks.append(decode_tick(r.value))
                except ValueError:
                    continue
            frame = pd.DataFrame([tick_to_dict(t) for t in ticks])
            by_symbol = frame.groupby("symbol")["price"]
            frame["ret"] = by_symbol.pct_change()
            frame["ema_fast"] = by_symbol.transform(lambda s: s.ewm(span=12).mean())
            frame.to_parquet(os.path.join(args.lake, f"ticks-{time.time_ns()}.parquet"))
            pipe = client.pipeline(transaction=False)
            for t in ticks:
                pipe.hset(
                    latest_key(t.symbol),
                    mapping={"symbol": t.symbol, "price": t.price, "size": t.size,
                             "timestamp": t.ts_ns},
                )  # fmt: skip
            pipe.execute()
            now = time.time_ns()
            latencies_ms.extend((now - t.ts_ns) / 1e6 for t in ticks)
            await consumer.commit()
            last_commit_ns = time.time_ns()
            count += len(records)
    finally:
        await consumer.stop()
        client.close()
    return {
        "messages": count,
        "first_ns": first_ns,
        "last_commit_ns": last_commit_ns,
        "seconds": ((last_commit_ns or 0) - (first_ns or 0)) / 1e9,
        "latencies_ms": latencies_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", default="naive-ingest")
    parser.add_argument("--lake", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--redis-password")
    parser.add_argument("--max-seconds", type=float, default=20.0)
    parser.add_argument("--expect", type=int, default=0, help="stop after this many (0: no)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
