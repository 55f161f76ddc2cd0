"""Fault suite: keyed and spread feeds, two ingest replicas, one fault per run, own checker.

    uv run python bench/chaos.py [--ticks 60000] [--kill9-ticks 1000000] [--rate 3000]
        [--feeds keyed,spread]
        [--faults kill9,broker_restart,redis_stop,lake_full,s3_errors,flush_exception]
        [--kills 20] [--redis-down-s 30] [--fault-s 15] [--json bench/results/chaos.json]

Feeds (the same ticks for every run of a feed, seeded by its name):

* ``keyed``: every tick keyed by its symbol; ingest in ``TICKLAKE_ORDERING=keyed``;
* ``spread``: no key, each tick sent to a random partition (each symbol spread over
  all four), as the prototype's producer does; ingest in ``TICKLAKE_ORDERING=sequence``
  (the sequencer merges the partitions by event time and re-keys by symbol).

For each feed, first a **clean** run (one replica, no fault, as many ticks as the largest
run), then one run per fault, each fed the first ticks of the same feed.
Each run: a fresh topic (4 partitions), consumer groups and lake; two
``ticklake-ingest`` processes (static members ``chaos-a``/``chaos-b``) kept alive by a
supervisor that restarts one that exits after 1 s, as the kubelet would; a producer
writing ``--ticks`` ticks at ``--rate``/s with per-symbol sequence numbers; one fault:

* ``kill9``: SIGKILL a random replica at ``--kills`` random moments while
  ``--kill9-ticks`` ticks are fed (flushes roll every 0.5 s, so many land mid-flush);
* ``broker_restart``: the Kafka broker stopped and started mid-feed;
* ``redis_stop``: Redis stopped for ``--redis-down-s`` seconds mid-feed;
* ``lake_full``: the lake on a 512 KiB tmpfs that fills, grown to 256 MiB after
  ``--fault-s`` (``mount -o remount``); unmounted at the end, also on failure (root);
* ``s3_errors``: the lake on S3 (moto's server, ``ticklake.devstack.s3_faults``), which
  answers every request with 503 SlowDown / 500 InternalError for ``--fault-s``;
* ``flush_exception``: through the test-only ``TICKLAKE_FAULT_INJECTION_FILE``, an
  exception in place of the lake write for the first half of ``--fault-s`` (retried in
  place), then an exception that kills the flush task (the process exits, is restarted,
  and exits again while the fault lasts) for the second half.

The checker uses none of ticklake's code: DuckDB reads the lake's Parquet files (an S3
lake is downloaded with boto3 first); pandas computes the references from the produced
ticks. Per run:

* lost = produced (symbol, seq) not in the lake; duplicated = rows beyond one per
  (symbol, seq);
* features vs clean = rows whose tick or feature columns (every column but the Kafka
  position and ingest time) differ from the clean run's row of the same (symbol, seq);
* EMAs vs pandas = rows whose ``ema_fast``/``ema_slow`` differ (rtol 1e-9) from
  ``ewm(adjust=False)`` over each symbol's produced prices in event-time order;
* 1-minute bars vs pandas = (symbol, minute) whose merged OHLCV differs from the one
  computed from the produced ticks (or is missing);
* Redis = symbols whose ``sym:{S}:latest`` hash is not the last produced seq.

"Recovered" is the time from the fault's end until every produced tick is in the lake.
What a user saw: the ``/readyz`` answers polled every 0.5 s, the stall reasons, exit
codes and the count of warning/error/critical log lines. ``bench/chaos_report.py``
renders the table of ``docs/reliability.md`` from the JSON.
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
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import duckdb
import httpx
import numpy as np
import pandas as pd
import provenance  # bench/ is the script's folder, first on sys.path
import redis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ticklake.devstack.kafka import KafkaBroker
from ticklake.devstack.ports import free_port
from ticklake.devstack.redis import RedisServer
from ticklake.devstack.s3 import S3Server

ROOT = Path(__file__).resolve().parents[1]
T0_NS = 1_735_828_200_000_000_000
SYMBOLS = [f"CH{i:02d}" for i in range(24)]
PARTITIONS = 4
EMA_FAST, EMA_SLOW = 12, 48
LEVEL = re.compile(r'"level":\s*"(\w+)"')
FEEDS = ("keyed", "spread")
FAULTS = ("kill9", "broker_restart", "redis_stop", "lake_full", "s3_errors", "flush_exception")
BUCKET = "chaos"
NOT_COMPARED = ("kafka_partition", "kafka_offset", "ingest_ns", "date")
"""Columns that differ between correct runs: where the row sat in Kafka, when it was ingested."""


def make_feed(count: int, seed: int) -> pd.DataFrame:
    """``count`` ticks of 24 symbols, one per ms of event time, each with a random partition."""
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
            "spread_to": rng.integers(0, PARTITIONS, count),
        }
    )


async def produce(bootstrap: str, topic: str, feed: pd.DataFrame, rate: float, keyed: bool) -> None:
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
                key = r["symbol"].encode() if keyed else None
                partition = None if keyed else int(r["spread_to"])
                while True:
                    try:
                        futures.append(
                            await producer.send(topic, value, key=key, partition=partition)
                        )
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
    """Ingest processes; the supervisor restarts one that exits (like the kubelet)."""

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

    def wait_joined(self, timeout_s: float) -> None:
        """Until every replica answers /readyz with its group joined (start-up is slow here:
        a fault injected before the replicas run would test nothing)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            bodies = self.readiness().values()
            if all(b and b.get("checks", {}).get("group_joined") for b in bodies):
                return
            time.sleep(0.5)
        raise RuntimeError(f"ingest replicas not in their group after {timeout_s} s")

    def readiness(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, port in self.ports.items():
            try:
                out[name] = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2.0).json()
            except (httpx.HTTPError, ValueError):
                out[name] = None
        return out


# --- the lake as the checker sees it ------------------------------------------------------


@dataclass
class LakeView:
    """A local directory holding the lake's Parquet files (for S3: a downloaded mirror)."""

    local: Path
    s3: Any = None
    prefix: str = ""

    def sync(self) -> None:
        """Mirror the S3 lake's data files (new ones downloaded, removed ones removed)."""
        if self.s3 is None:
            return
        keys: set[str] = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=f"{self.prefix}/"
        ):
            for obj in page.get("Contents", []):
                relative = obj["Key"][len(self.prefix) + 1 :]
                # not _state/ nor a table log (its checkpoints are Parquet files too)
                hidden = any(part.startswith("_") for part in relative.split("/"))
                if relative.endswith(".parquet") and not hidden:
                    keys.add(relative)
        for relative in keys:
            target = self.local / relative
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(BUCKET, f"{self.prefix}/{relative}", str(target))
        for path in self.local.glob("*/date=*/*.parquet"):
            if str(path.relative_to(self.local)) not in keys:
                path.unlink()

    def glob(self, dataset: str) -> str | None:
        if not list(self.local.glob(f"{dataset}/date=*/*.parquet")):
            return None
        return f"read_parquet('{self.local}/{dataset}/date=*/*.parquet', hive_partitioning=true)"


def lake_count(view: LakeView) -> int:
    try:
        view.sync()
    except Exception:  # S3 still refusing: not there yet
        return 0
    ticks = view.glob("ticks")
    if ticks is None:
        return 0
    row = duckdb.connect().execute(f"select count(distinct (symbol, seq)) from {ticks}").fetchone()
    return int(row[0]) if row else 0


def reference(feed: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """pandas over the produced ticks: EMAs per symbol in event-time order, 1-minute OHLCV."""
    ref = feed.sort_values(["symbol", "ts_ns"]).copy()
    g = ref.groupby("symbol")["price"]
    ref["ema_fast_ref"] = g.transform(lambda s: s.ewm(span=EMA_FAST, adjust=False).mean())
    ref["ema_slow_ref"] = g.transform(lambda s: s.ewm(span=EMA_SLOW, adjust=False).mean())
    ref["start_ns"] = ref["ts_ns"] // 60_000_000_000 * 60_000_000_000
    ref["notional"] = ref["price"] * ref["size"]
    bars = (
        ref.groupby(["symbol", "start_ns"])
        .agg(
            open=("price", "first"),
            high=("price", "max"),
            low=("price", "min"),
            close=("price", "last"),
            volume=("size", "sum"),
            notional=("notional", "sum"),
            tick_count=("price", "size"),
        )
        .reset_index()
    )
    return ref[["symbol", "seq", "ema_fast_ref", "ema_slow_ref"]], bars


def check(
    view: LakeView,
    feed: pd.DataFrame,
    ref: tuple[pd.DataFrame, pd.DataFrame],
    client: redis.Redis,
    clean: LakeView | None,
) -> dict[str, Any]:
    """The independent verdict: DuckDB over the Parquet files, pandas for the references."""
    view.sync()
    con = duckdb.connect()
    ticks = view.glob("ticks")
    if ticks is None:
        return {"produced": len(feed), "lost": len(feed), "duplicated": 0}
    got = con.execute(f"select symbol, seq, ema_fast, ema_slow, late from {ticks}").df()
    distinct = got.drop_duplicates(["symbol", "seq"])
    ema_ref, bars_ref = ref
    merged = distinct.merge(ema_ref, on=["symbol", "seq"], how="inner")
    ema_differ = ~(
        np.isclose(merged["ema_fast"], merged["ema_fast_ref"], rtol=1e-9, atol=0)
        & np.isclose(merged["ema_slow"], merged["ema_slow_ref"], rtol=1e-9, atol=0)
    )
    result: dict[str, Any] = {
        "produced": len(feed),
        "lake_rows": len(got),
        "lost": len(feed) - len(merged),
        "duplicated": len(got) - len(distinct),
        "ema_rows_differing_from_pandas": int(ema_differ.sum()),
        # a late tick keeps its row but not the features (docs/ingest.md): every
        # later EMA of its symbol then differs from pandas, which saw it in order
        "late_rows": int(distinct["late"].sum()),
        "bars_1m_differing_from_pandas": bars_differing(con, view, bars_ref),
    }
    if clean is not None:
        result.update(differs_from_clean(con, ticks, clean))
    last = feed.groupby("symbol")["seq"].max()
    stale = 0
    for symbol, seq in last.items():
        value = client.hget(f"sym:{symbol}:latest", "seq")
        if value is None or int(value) != int(seq):
            stale += 1
    result["redis_latest_stale_symbols"] = stale
    return result


def bars_differing(con: duckdb.DuckDBPyConnection, view: LakeView, bars_ref: pd.DataFrame) -> int:
    """(symbol, minute) whose lake bar, partial rows merged by offset, is not pandas' bar."""
    source = view.glob("bars_1m")
    if source is None:
        return len(bars_ref)
    lake = con.execute(
        "select symbol, start_ns, arg_min(open, (open_ts_ns, first_offset)) as open, "
        "max(high) as high, min(low) as low, arg_max(close, (close_ts_ns, last_offset)) as close, "
        "sum(volume) as volume, "
        f"sum(notional) as notional, sum(tick_count) as tick_count from {source} group by all"
    ).df()
    both = bars_ref.merge(lake, on=["symbol", "start_ns"], how="outer", suffixes=("", "_lake"))
    same = np.ones(len(both), dtype=bool)
    for column in ("open", "high", "low", "close", "volume", "notional", "tick_count"):
        same &= np.isclose(
            both[column].astype(float), both[f"{column}_lake"].astype(float), rtol=1e-9, atol=0
        )
    return int((~same).sum())


def differs_from_clean(
    con: duckdb.DuckDBPyConnection, ticks: str, clean: LakeView
) -> dict[str, Any]:
    """Rows (by symbol, seq) with any tick or feature column unlike the clean run's row."""
    clean_ticks = clean.glob("ticks")
    assert clean_ticks is not None, "the clean run left no lake"
    columns = [
        c
        for c, *_ in con.execute(f"describe select * from {clean_ticks}").fetchall()
        if c not in NOT_COMPARED and c not in ("symbol", "seq")
    ]
    excluded = ", ".join(NOT_COMPARED)
    differs = " or ".join(f"r.{c} is distinct from c.{c}" for c in columns)
    per_column = ", ".join(
        f"sum(case when r.{c} is distinct from c.{c} then 1 else 0 end) as {c}" for c in columns
    )
    row = con.execute(
        f"with r as (select distinct on (symbol, seq) * exclude ({excluded}) from {ticks}), "
        f"c as (select distinct on (symbol, seq) * exclude ({excluded}) from {clean_ticks}) "
        f"select count(*) filter (where {differs}), {per_column} "
        "from r join c using (symbol, seq)"
    ).fetchone()
    assert row is not None
    by_column = {c: int(n) for c, n in zip(columns, row[1:], strict=True) if n}
    return {
        "feature_rows_differing_from_clean": int(row[0]),
        "columns_differing_from_clean": by_column,
        "columns_compared_with_clean": len(columns) + 2,
    }


# --- one run ---------------------------------------------------------------------------------


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


@dataclass
class Stack:
    broker: KafkaBroker
    redis: RedisServer
    s3: S3Server
    base: Path

    def s3_client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.s3.endpoint,
            aws_access_key_id="chaos",
            aws_secret_access_key="chaos",
            region_name="us-east-1",
        )


def ingest_envs(
    stack: Stack, topic: str, feed_name: str, lake_env: dict[str, str], names: list[str]
) -> dict[str, dict[str, str]]:
    envs = {}
    for r in names:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TICKLAKE_")}
        env.update(
            {
                "TICKLAKE_KAFKA_BOOTSTRAP_SERVERS": stack.broker.bootstrap,
                "TICKLAKE_TICKS_TOPIC": topic,
                "TICKLAKE_DEAD_LETTER_TOPIC": f"{topic}.dlq",
                "TICKLAKE_CONSUMER_GROUP": f"g-{topic}",
                "TICKLAKE_GROUP_INSTANCE_ID": f"chaos-{r}",
                "TICKLAKE_CLIENT_ID": f"chaos-{r}",
                "TICKLAKE_REDIS_URL": stack.redis.url,
                "TICKLAKE_REDIS_PASSWORD": stack.redis.password,
                "TICKLAKE_LAKE_ROLL_SECONDS": "0.5",
                "TICKLAKE_LAKE_ROLL_ROWS": "5000",
                "TICKLAKE_STALL_FATAL_AFTER_SECONDS": "20",
                "TICKLAKE_LOG_LEVEL": "INFO",
                **lake_env,
            }
        )
        if feed_name == "spread":
            env.update(
                {
                    "TICKLAKE_ORDERING": "sequence",
                    "TICKLAKE_SEQUENCED_TOPIC": f"{topic}.by-symbol",
                    "TICKLAKE_SEQUENCER_GROUP": f"seq-{topic}",
                }
            )
        envs[r] = env
    return envs


def run_one(
    feed_name: str,
    fault: str,
    feed: pd.DataFrame,
    ref: tuple[pd.DataFrame, pd.DataFrame],
    args: argparse.Namespace,
    stack: Stack,
    clean: LakeView | None,
) -> tuple[dict[str, Any], LakeView]:
    work = stack.base / f"{feed_name}-{fault}"
    work.mkdir(parents=True)
    topic = f"chaos-{feed_name}-{fault}-{os.getpid()}"
    lake = work / "lake"
    lake.mkdir()
    view = LakeView(lake)
    lake_env = {"TICKLAKE_LAKE_URI": str(lake)}
    fault_file = work / "fault"
    mounted = False
    if fault == "lake_full":
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(lake)], check=True)
        mounted = True
    elif fault == "s3_errors":
        view = LakeView(work / "lake-mirror", stack.s3_client(), topic)
        lake_env = {
            "TICKLAKE_LAKE_URI": f"s3://{BUCKET}/{topic}",
            "TICKLAKE_S3_ENDPOINT_URL": stack.s3.endpoint,
            "TICKLAKE_S3_ACCESS_KEY_ID": "chaos",
            "TICKLAKE_S3_SECRET_ACCESS_KEY": "chaos",
        }
    elif fault == "flush_exception":
        lake_env["TICKLAKE_FAULT_INJECTION_FILE"] = str(fault_file)
    try:
        asyncio.run(create_topic(stack.broker.bootstrap, topic))
        client = redis.Redis.from_url(stack.redis.url, password=stack.redis.password)
        client.flushdb()  # the latest-hash guard would keep an earlier run's newer tick
        names = ["a"] if fault == "clean" else ["a", "b"]
        replicas = Replicas(ingest_envs(stack, topic, feed_name, lake_env, names), work)
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
                        continue
                    failing = sorted(k for k, v in body.get("checks", {}).items() if not v)
                    stalls = body.get("stalled_partitions", {}).values()
                    stages = sorted({s["stage"] for s in stalls})
                    seen[f"not ready: {','.join(failing)} {','.join(stages)}".strip()] += 1
                    for stall in stalls:
                        reasons[f"{stall['stage']}: {stall['reason'][:120]}"] += 1
                time.sleep(0.5)

        observer = threading.Thread(target=observe, daemon=True)
        observer.start()
        feeding = threading.Thread(
            target=lambda: asyncio.run(
                produce(stack.broker.bootstrap, topic, feed, args.rate, feed_name == "keyed")
            ),
            daemon=True,
        )
        replicas.wait_joined(timeout_s=120)
        feeding.start()
        duration = len(feed) / args.rate
        rng = random.Random(7)
        fault_start = time.monotonic()
        injected: dict[str, Any] = {}
        if fault == "kill9":
            moments = sorted(rng.uniform(0.5, duration) for _ in range(args.kills))
            for m in moments:
                time.sleep(max(0.0, fault_start + m - time.monotonic()))
                replicas.kill(rng.choice(["a", "b"]))
        elif fault == "broker_restart":
            time.sleep(duration / 3)
            stack.broker.restart()
        elif fault == "redis_stop":
            time.sleep(duration / 3)
            stack.redis.stop()
            time.sleep(args.redis_down_s)
            stack.redis.start()
        elif fault == "lake_full":
            time.sleep(args.fault_s)
            subprocess.run(["mount", "-o", "remount,size=256m", str(lake)], check=True)
        elif fault == "s3_errors":
            time.sleep(duration / 3)
            stack.s3.fail_requests(True)
            time.sleep(args.fault_s)
            injected["s3_requests_failed"] = stack.s3.fail_requests(False)
        elif fault == "flush_exception":
            time.sleep(duration / 3)
            fault_file.write_text("lake_write\n")
            time.sleep(args.fault_s / 2)
            fault_file.write_text("flush_task\n")
            time.sleep(args.fault_s / 2)
            fault_file.unlink()
        fault_end = time.monotonic()
        feeding.join(3600)
        deadline = time.monotonic() + 300
        while lake_count(view) < len(feed) and time.monotonic() < deadline:
            time.sleep(1.0)
        recovered = time.monotonic() - fault_end
        time.sleep(3)  # let the Redis writer catch up
        observing.set()
        observer.join(5)
        replicas.stop()
        verdict = check(view, feed, ref, client, clean)
        levels: Counter[str] = Counter()
        for log in work.glob("ingest-*.log"):
            if args.keep_logs is not None:  # the work dir goes with the run
                kept = args.keep_logs / feed_name / fault
                kept.mkdir(parents=True, exist_ok=True)
                shutil.copy(log, kept / log.name)
            for line in log.read_text(errors="replace").splitlines():
                match = LEVEL.search(line)
                if match and match.group(1) in ("warning", "error", "critical"):
                    levels[match.group(1)] += 1
        client.close()
        return {
            **verdict,
            **injected,
            "replicas": len(names),
            "ordering": "sequence" if feed_name == "spread" else "keyed",
            "recovered_after_fault_s": round(recovered, 1),
            "fault_duration_s": round(fault_end - fault_start, 1),
            "process_restarts": sum(replicas.restarts.values()),
            "exit_codes": sorted(set(replicas.exit_codes)),
            "readiness_polls": dict(seen.most_common(8)),
            "stall_reasons_seen": dict(reasons.most_common(3)),
            "log_lines": dict(levels),
        }, view
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
    logging.getLogger("botocore").setLevel(logging.CRITICAL)
    unmount_leftovers()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=60_000)
    parser.add_argument("--rate", type=float, default=3_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument(
        "--kill9-ticks",
        type=int,
        default=1_000_000,
        help="ticks of the kill9 run (and of the clean run it is compared with)",
    )
    parser.add_argument("--redis-down-s", type=float, default=30)
    parser.add_argument("--fault-s", type=float, default=15)
    parser.add_argument("--feeds", default=",".join(FEEDS))
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument(
        "--keep-logs", type=Path, default=None,
        help="copy each scenario's ingest logs to DIR/<feed>/<fault>/",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "chaos.json")
    provenance.add_argument(parser)
    args = parser.parse_args()
    stamp = provenance.stamp(args.allow_dirty)
    feeds = args.feeds.split(",")
    faults = args.faults.split(",")
    unknown = (set(feeds) - set(FEEDS)) | (set(faults) - set(FAULTS))
    if unknown:
        parser.error(f"unknown feed or fault: {sorted(unknown)}; feeds {FEEDS}, faults {FAULTS}")
    report: dict[str, Any] = {
        "command": "uv run python bench/chaos.py " + " ".join(sys.argv[1:]),
        "commit": stamp["git_commit"] + ("-dirty" if stamp["dirty"] else ""),
        **stamp,
        "ticks": args.ticks,
        "rate": args.rate,
        "kills": args.kills,
        "kill9_ticks": args.kill9_ticks,
        "cpus": os.cpu_count(),
        "load_avg_at_start": round(os.getloadavg()[0], 2),
        "scenarios": {},
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        base = Path(tmp)
        stack = Stack(
            KafkaBroker(base / "kafka", default_partitions=PARTITIONS),
            RedisServer(base / "redis"),
            S3Server(base / "s3", faults=True),
            base,
        )
        stack.broker.start()
        stack.redis.start()
        if "s3_errors" in faults:
            stack.s3.start()
            stack.s3_client().create_bucket(Bucket=BUCKET)
        try:
            for feed_name in feeds:
                clean: LakeView | None = None
                # one feed per feed kind; a run takes its first n ticks (features are
                # causal, so the clean run's first n rows are a clean run of those n)
                sizes = {f: args.kill9_ticks if f == "kill9" else args.ticks for f in faults}
                largest = max(sizes.values())
                full = make_feed(largest, seed=zlib.crc32(feed_name.encode()))
                refs = {n: reference(full.iloc[:n]) for n in set(sizes.values()) | {largest}}
                for fault in ["clean", *faults]:
                    name = f"{feed_name}/{fault}"
                    print(f"--- {name}", flush=True)
                    n = sizes.get(fault, largest)
                    feed = full.iloc[:n]
                    result, view = run_one(feed_name, fault, feed, refs[n], args, stack, clean)
                    if fault == "clean":
                        clean = view
                    report["scenarios"][name] = result
                    print(json.dumps(result), flush=True)
        finally:
            stack.s3.stop()
            stack.redis.stop()
            stack.broker.stop()
    report["wall_s"] = round(time.monotonic() - started)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
