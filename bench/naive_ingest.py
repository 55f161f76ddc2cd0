"""The naive ingest the issue describes, kept as the baseline ticklake must beat.

    uv run python bench/naive_ingest.py --bootstrap HOST:PORT --topic T --lake DIR \
        --redis-url URL [--redis-password P] [--max-seconds 20] [--expect N]

Deliberately shaped like the design "found in the wild" (do not fix it):

* offsets auto-committed by the client, whether or not the data was written
  (a crash loses ticks);
* every message decoded on its own and turned into a one-row pandas frame,
  features computed with pandas per 500-tick batch, so the EMA restarts at
  every batch (wrong numbers);
* a blocking Redis client (``redis.Redis``) called inside the event loop, one
  ``HSET`` per message;
* one tiny Parquet file per 500 ticks named by wall-clock time (a replay
  duplicates them).

It prints one JSON line with what it measured: messages, seconds, and the
per-message latency from event time to its ``HSET`` returning.
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

BATCH = 500


async def run(args: argparse.Namespace) -> dict[str, object]:
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=True,
        auto_offset_reset="earliest",
    )
    client = redis.Redis.from_url(args.redis_url, password=args.redis_password)
    os.makedirs(args.lake, exist_ok=True)
    await consumer.start()
    frames: list[pd.DataFrame] = []
    latencies_ms: list[float] = []
    count = 0
    started = None
    try:
        deadline = time.monotonic() + args.max_seconds
        while time.monotonic() < deadline and (args.expect <= 0 or count < args.expect):
            try:
                msg = await asyncio.wait_for(consumer.getone(), 1.0)
            except TimeoutError:
                continue
            if started is None:
                started = time.monotonic()
            try:
                tick = decode_tick(msg.value)
            except ValueError:
                continue
            row = pd.DataFrame([tick_to_dict(tick)])
            frames.append(row)
            client.hset(
                latest_key(tick.symbol),
                mapping={
                    "symbol": tick.symbol,
                    "price": tick.price,
                    "size": tick.size,
                    "timestamp": tick.ts_ns,
                },
            )
            latencies_ms.append((time.time_ns() - tick.ts_ns) / 1e6)
            count += 1
            if len(frames) >= BATCH:
                batch = pd.concat(frames, ignore_index=True)
                frames = []
                g = batch.groupby("symbol")["price"]
                batch["ema_fast"] = g.transform(lambda s: s.ewm(span=12).mean())
                batch["ret"] = g.pct_change()
                batch.to_parquet(os.path.join(args.lake, f"ticks-{time.time_ns()}.parquet"))
    finally:
        await consumer.stop()
        client.close()
    elapsed = time.monotonic() - started if started is not None else 0.0
    return {"messages": count, "seconds": elapsed, "latencies_ms": latencies_ms}


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
