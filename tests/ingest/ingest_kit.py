"""Helpers for the ingest tests (real Kafka, real Redis, a temporary lake).

Named ``ingest_kit`` because pytest puts each test folder on sys.path and a
generic name would clash with another folder's module. Ticks are produced with
aiokafka and the core contract directly: services never import each other.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ticklake.core.lake_fs import Lake, open_lake
from ticklake.core.settings import LakeFields
from ticklake.core.tick import Tick, encode_tick
from ticklake.core.topic_admin import TopicSpec, ensure_topics
from ticklake.core.topics import tick_key
from ticklake.devstack.ports import free_port
from ticklake.ingest.features import DAY_NS, FeatureParams
from ticklake.ingest.partition import PartitionProcessor
from ticklake.ingest.settings import IngestSettings
from ticklake.ingest.sinks.lake import LakeOptions, LakeSink, LakeWriter

T0_NS = 1_735_828_200_000_000_000  # 2025-01-02T14:30:00Z
INGEST_REDIS_DB = 3


def unique_topic() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def unique_prefix() -> str:
    """A symbol prefix no other test uses (symbols are shared in the Redis db)."""
    return "Z" + uuid.uuid4().hex[:5].upper()


def ingest_redis_url(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + f"/{INGEST_REDIS_DB}"


def settings_for(
    bootstrap: str,
    topic: str,
    lake: Path | str,
    redis_url: str,
    redis_password: str,
    **overrides: Any,
) -> IngestSettings:
    """Explicit settings so nothing leaks in from the environment."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "ticks_topic": topic,
        "dead_letter_topic": f"{topic}.dlq",
        "consumer_group": f"g-{topic}",
        "lake_uri": str(lake),
        "redis_url": redis_url,
        "redis_password": redis_password,
        "http_port": 0,
        "lake_roll_rows": 500,
        "lake_roll_seconds": 0.5,
        "session_timeout_ms": 6_000,
        "heartbeat_interval_ms": 500,
        "shutdown_grace_seconds": 15.0,
        "kafka_retry_max_seconds": 1.0,
        "lake_retry_max_seconds": 0.5,
        "redis_retry_max_seconds": 0.5,
        "redis_timeout_seconds": 1.0,
        "metrics_lag_interval_seconds": 0.2,
    }
    values.update(overrides)
    return IngestSettings(**values)


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions)])


def tick_stream(
    symbols: Sequence[str],
    count: int,
    seed: int = 7,
    t0_ns: int = T0_NS,
    step_ns: int = 1_000_000,
    quotes: bool = True,
) -> list[Tick]:
    """A random walk per symbol with per-symbol sequence numbers (1, 2, ...)."""
    rng = random.Random(seed)
    price = {s: 100.0 + 10 * i for i, s in enumerate(symbols)}
    seq = dict.fromkeys(symbols, 0)
    ticks = []
    for i in range(count):
        s = symbols[rng.randrange(len(symbols))]
        seq[s] += 1
        price[s] = max(0.01, price[s] * (1 + rng.gauss(0, 0.001)))
        p = round(price[s], 4)
        half = round(rng.uniform(0.005, 0.05), 4)
        ticks.append(
            Tick(
                symbol=s,
                ts_ns=t0_ns + i * step_ns,
                price=p,
                size=float(rng.randint(1, 500)),
                exchange="XNAS",
                seq=seq[s],
                bid=p - half if quotes else None,
                ask=p + half if quotes else None,
                bid_size=float(rng.randint(1, 9) * 100) if quotes else None,
                ask_size=float(rng.randint(1, 9) * 100) if quotes else None,
            )
        )
    return ticks


Message = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def tick_messages(ticks: Iterable[Tick]) -> list[Message]:
    return [(tick_key(t.symbol), encode_tick(t), [("tl-schema", b"tick/1")]) for t in ticks]


async def produce(bootstrap: str, topic: str, messages: Iterable[Message]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=value, key=key, headers=headers)
            for key, value, headers in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list:
    """At least ``expected`` records of ``topic`` (all partitions), or fail after a timeout."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


async def wait_until(
    predicate: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout_s: float = 60.0,
    what: str = "condition",
    interval_s: float = 0.1,
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


def read_ticks(lake: Path | str, filesystem: Any = None) -> pa.Table:
    """Every row of the lake's ticks dataset (empty table if there is none yet)."""
    root = f"{lake}/ticks"
    if filesystem is None and not Path(root).exists():
        return pa.table({})
    dataset = ds.dataset(root, format="parquet", partitioning="hive", filesystem=filesystem)
    return dataset.to_table()


def lake_row_count(lake: Path | str) -> int:
    table = read_ticks(lake)
    return table.num_rows


def reference_features(
    df: pd.DataFrame, ema_fast_span: int, ema_slow_span: int, vol_span: int
) -> pd.DataFrame:
    """An independent pandas computation of every feature, in the frame's row order.

    ``df`` has symbol, ts_ns, price, size, bid, ask, in stream order.
    """
    out = pd.DataFrame(index=df.index)
    g = df.groupby("symbol", sort=False)
    out["mid"] = (df["bid"] + df["ask"]) / 2
    out["spread"] = df["ask"] - df["bid"]
    out["spread_bps"] = out["spread"] / out["mid"] * 1e4
    prev = g["price"].shift(1)
    out["prev_price"] = prev
    out["ret_simple"] = df["price"] / prev - 1
    out["ret_log"] = np.log(df["price"] / prev)
    out["ema_fast"] = g["price"].transform(lambda s: s.ewm(span=ema_fast_span, adjust=False).mean())
    out["ema_slow"] = g["price"].transform(lambda s: s.ewm(span=ema_slow_span, adjust=False).mean())
    sq = out["ret_log"] ** 2
    out["vol_ewma"] = np.sqrt(
        sq.groupby(df["symbol"], sort=False).transform(
            lambda s: s.ewm(span=vol_span, adjust=False, ignore_na=True).mean()
        )
    )
    day = df["ts_ns"] // 86_400_000_000_000
    day_run = day.groupby(df["symbol"], sort=False).cummax()
    keys = [df["symbol"], day_run]
    out["volume_day"] = df["size"].groupby(keys, sort=False).cumsum()
    out["notional_day"] = (df["price"] * df["size"]).groupby(keys, sort=False).cumsum()
    out["vwap_day"] = out["notional_day"] / out["volume_day"]
    out["ticks_day"] = df["size"].groupby(keys, sort=False).cumcount() + 1
    return out


class RunningIngest:
    """An in-process ingest service, run as a task; ``async with`` starts and stops it."""

    def __init__(self, settings: IngestSettings, http: bool = False) -> None:
        from ticklake.ingest.service import IngestService

        self.service = IngestService(settings, http=http)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RunningIngest:
        self.task = asyncio.create_task(self.service.run())
        return self

    async def stop(self) -> None:
        self.service.stop_event.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 60)

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def counter(self, name: str, **labels: str) -> float:
        value = self.service.metrics.registry.get_sample_value(name, labels or None)
        return value or 0.0


def sent_frame(ticks: Sequence[Tick]) -> pd.DataFrame:
    """What was produced, as the columns :func:`reference_features` reads."""
    return pd.DataFrame(
        {
            "symbol": [t.symbol for t in ticks],
            "seq": [t.seq for t in ticks],
            "ts_ns": [t.ts_ns for t in ticks],
            "price": [t.price for t in ticks],
            "size": [t.size for t in ticks],
            "bid": [t.bid for t in ticks],
            "ask": [t.ask for t in ticks],
        }
    )


def assert_features_match(
    lake_rows: pd.DataFrame, sent: pd.DataFrame, settings: IngestSettings, names: Sequence[str]
) -> pd.DataFrame:
    """The lake's feature columns equal one uninterrupted pandas run over ``sent`` (in
    its row order); returns the rows joined with the reference on (symbol, seq)."""
    ref = pd.concat(
        [
            sent[["symbol", "seq"]],
            reference_features(
                sent, settings.ema_fast_span, settings.ema_slow_span, settings.vol_span
            ),
        ],
        axis=1,
    )
    merged = lake_rows.merge(ref, on=["symbol", "seq"], suffixes=("", "_ref"))
    for name in names:
        np.testing.assert_allclose(
            merged[name].to_numpy(np.float64),
            merged[f"{name}_ref"].to_numpy(np.float64),
            rtol=1e-9,
            equal_nan=True,
            err_msg=name,
        )
    return merged


def ticks_frame(lake: Path | str) -> pd.DataFrame:
    """The lake's ticks in stream order per partition (kafka_partition, kafka_offset)."""
    table = read_ticks(lake)
    if table.num_rows == 0:
        return pd.DataFrame()
    df = table.to_pandas()
    return df.sort_values(["kafka_partition", "kafka_offset"]).reset_index(drop=True)


# --- ingest as a real process (ticklake-ingest) ----------------------------------------


def env_of(settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKLAKE_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"TICKLAKE_{name.upper()}"] = str(value)
    env["TICKLAKE_LOG_LEVEL"] = "INFO"
    return env


def start_ingest(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ticklake.ingest.cli"],
            env={**env, "TICKLAKE_HTTP_PORT": str(port)},
            stdout=out,
            stderr=out,
        )
    return proc, port


async def wait_assigned(port: int, timeout_s: float = 60.0) -> None:
    """Until the process owns at least one partition (so a kill hits real work)."""

    async def assigned() -> bool:
        try:
            async with httpx.AsyncClient(timeout=1.0) as client:
                body = (await client.get(f"http://127.0.0.1:{port}/readyz")).json()
        except (httpx.HTTPError, ValueError):
            return False
        return bool(body.get("assigned_partitions"))

    await wait_until(assigned, timeout_s, "partitions assigned", interval_s=0.05)


async def kill_9_repeatedly(
    env: dict[str, str],
    log: Path,
    kills: int,
    rng: random.Random,
    pause_s: tuple[float, float],
    *,
    first_during_startup: bool = False,
) -> None:
    """Start ingest and SIGKILL it ``kills`` times, each a random ``pause_s`` after it
    owns partitions (the first one during start-up, if asked)."""
    for kill in range(kills):
        proc, port = start_ingest(env, log)
        try:
            if kill > 0 or not first_during_startup:
                await wait_assigned(port)
            await asyncio.sleep(rng.uniform(*pause_s))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()


async def drain_and_stop(
    env: dict[str, str], log: Path, lake: Path, expect: int, timeout_s: float = 120
) -> None:
    """Start ingest, wait until the lake holds ``expect`` rows, SIGTERM it: it must exit 0."""
    proc, port = start_ingest(env, log)
    try:
        await wait_assigned(port)
        await wait_until(lambda: lake_row_count(lake) >= expect, timeout_s, f"{expect} lake rows")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_tail(log)
    finally:
        if proc.poll() is None:
            proc.kill()


def log_tail(log: Path, chars: int = 3000) -> str:
    """The end of a process's log, for an assertion message."""
    return log.read_text()[-chars:]


# --- records for the pure parts (no Kafka) --------------------------------------------


class Rec:
    """A consumed record, as normalising sees it (aiokafka's ConsumerRecord fits too)."""

    def __init__(self, offset: int, key: bytes | None, value: bytes | None, headers) -> None:
        self.topic, self.partition, self.offset = "t", 0, offset
        self.key, self.value, self.headers = key, value, headers


def records(count: int, start: int = 0, seed: int = 1) -> list[Rec]:
    """Records ``start .. start+count`` of a two-symbol stream on partition 0."""
    msgs = tick_messages(tick_stream(["AA", "BB"], count + start, seed=seed))[start:]
    return [Rec(start + i, k, v, h) for i, (k, v, h) in enumerate(msgs)]


# --- a lake written by ingest's own sink (no Kafka) ---------------------------------------

DAY0_NS = 20_100 * DAY_NS  # 2025-01-12T00:00:00Z
LAKE_SYMBOLS = ["AA", "BB", "CC", "DD"]


class LakeFeed:
    """Ingest's real lake sink over one partition: flushes of a tick stream."""

    def __init__(self, root: Path | Lake) -> None:
        """``root``: a local lake folder, or an opened lake (S3)."""
        self.lake = root if isinstance(root, Lake) else open_lake(LakeFields(lake_uri=str(root)))
        self.writer = LakeWriter(self.lake, "topic", LakeOptions(roll_rows=10**9))
        self.processor = PartitionProcessor(0, FeatureParams(), 4096)
        self.sink = LakeSink(
            self.writer, lambda p: self.processor.state.to_json(self.sink.buffers[p].next_offset)
        )
        self.sink.open_partition(0, 0)
        self.offset = 0

    async def flush(self, ticks: list) -> None:  # type: ignore[type-arg]
        recs = [Rec(self.offset + i, k, v, h) for i, (k, v, h) in enumerate(tick_messages(ticks))]
        self.offset += len(recs)
        self.sink.add(self.processor.process(recs, 1))
        job = self.sink.take(0)
        assert job is not None
        await self.sink.write(job)


async def three_days(root: Path | Lake, flushes: int = 9, per_flush: int = 120) -> LakeFeed:
    """``flushes`` flushes spread evenly over three UTC days (three files a day)."""
    feed = LakeFeed(root)
    n = flushes * per_flush
    ticks = tick_stream(LAKE_SYMBOLS, n, seed=3, t0_ns=DAY0_NS, step_ns=3 * DAY_NS // n)
    for i in range(flushes):
        await feed.flush(ticks[i * per_flush : (i + 1) * per_flush])
    return feed
