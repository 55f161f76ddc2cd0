"""Write ticks the way ingest does, for the query API's tests.

The lake is written by ingest's own library functions (its partition
processor computes the feature columns, its lake writer names and writes the
files, bars included), and so is Redis (its writer, ``RedisWriter``, run on a
private event loop), so a change of the Redis format reaches these tests.
Tests import ``ticklake.ingest`` here; the query service's code never does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import redis
import redis.asyncio as aioredis

from ticklake.core.lake_fs import open_lake
from ticklake.core.settings import LakeFields
from ticklake.core.tick import Tick, encode_tick
from ticklake.core.topics import TICKS_TOPIC, tick_key
from ticklake.ingest.features import FeatureParams
from ticklake.ingest.metrics import IngestMetrics
from ticklake.ingest.partition import TICK_FILE_SCHEMA, PartitionProcessor, ProcessedBatch
from ticklake.ingest.sinks.lake import FlushJob, LakeOptions, LakeWriter
from ticklake.ingest.sinks.redis_writer import RedisWriter

NS = 1_000_000_000


def new_symbol(prefix: str = "T") -> str:
    """A symbol no other test uses (tests share one Redis and one lake)."""
    return f"{prefix}{uuid.uuid4().hex[:8].upper()}"


@dataclass
class _Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class IngestLike:
    """Feeds ticks through ingest's processing, then to the lake and/or Redis."""

    def __init__(
        self,
        lake_root: Path,
        redis_client: redis.Redis | None,
        redis_url: str | None = None,
        redis_password: str | None = None,
    ) -> None:
        self.lake = open_lake(LakeFields(lake_uri=str(lake_root)))
        self.writer = LakeWriter(self.lake, TICKS_TOPIC, LakeOptions())
        self.redis = redis_client
        """For reading back and for forging what ingest would never write."""
        self.redis_url, self.redis_password = redis_url, redis_password
        self._processors: dict[int, PartitionProcessor] = {}
        self._next_offset: dict[int, int] = {}
        self._batches: list[ProcessedBatch] = []

    def process(self, ticks: list[Tick], partition: int = 0) -> list[dict[str, Any]]:
        """Run ``ticks`` through ingest's processor; returns the typed lake rows."""
        processor = self._processors.setdefault(
            partition, PartitionProcessor(partition, FeatureParams(), dedup_window=1024)
        )
        first = self._next_offset.get(partition, 0)
        records = [
            _Record(TICKS_TOPIC, partition, first + i, tick_key(t.symbol), encode_tick(t))
            for i, t in enumerate(ticks)
        ]
        batch = processor.process(records, ingest_ns=time.time_ns())
        self._next_offset[partition] = first + len(records)
        self._last_batch = batch
        self._batches.append(batch)
        return pa.Table.from_batches([_record_batch(batch)]).to_pylist()

    @property
    def last_batch(self) -> ProcessedBatch:
        """Ingest's own result for the last :meth:`process` call (for ingest's sinks)."""
        return self._last_batch

    def to_lake(self, rows: list[dict[str, Any]], partition: int = 0) -> None:
        """One lake flush holding exactly ``rows`` (consecutive offsets of one partition)."""
        if not rows:
            return
        processor = self._processors[partition]
        first = min(r["kafka_offset"] for r in rows)
        last = max(r["kafka_offset"] for r in rows)
        table = pa.Table.from_pylist(rows, schema=TICK_FILE_SCHEMA)
        self.writer.write(
            FlushJob(partition, first, last + 1, table, processor.state.to_json(last + 1))
        )

    def to_redis(
        self,
        rows: list[dict[str, Any]],
        *,
        announce: bool = True,
        redis_url: str | None = None,
        redis_password: str | None = None,
        redis_options: dict[str, Any] | None = None,
    ) -> None:
        """Write ``rows`` (from one :meth:`process` call) with ingest's Redis writer.

        ``announce=False`` publishes on a channel nobody reads, so only Redis has the
        rows; ``redis_url`` writes to another Redis than the fixture's, with
        ``redis_options`` (user, password, TLS: ``RedisFields.redis_client_options``)
        if given.
        """
        batch = self._batch_of(rows)
        url = redis_url or self.redis_url
        assert url is not None, "IngestLike was made without a Redis"
        password = redis_password if redis_url else self.redis_password

        async def write() -> None:
            options = redis_options if redis_options is not None else {"password": password}
            writer = RedisWriter(
                aioredis.Redis.from_url(url, **options),
                IngestMetrics(),
                **({} if announce else {"channel": f"unannounced:{uuid.uuid4().hex}"}),
            )
            try:
                writer.add(batch)
                await writer.flush()
            finally:
                await writer.stop()

        # the writer is async and tests may already run a loop: give it its own thread
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, write()).result()

    def _batch_of(self, rows: list[dict[str, Any]]) -> ProcessedBatch:
        """The part of a processed batch holding exactly ``rows``."""
        offsets = [r["kafka_offset"] for r in rows]
        partition = rows[0]["kafka_partition"]
        for batch in reversed(self._batches):
            have = batch.columns["kafka_offset"]
            if batch.partition == partition and np.isin(offsets, have).all():
                keep = np.isin(have, offsets)
                return ProcessedBatch(
                    partition=batch.partition,
                    first_offset=min(offsets),
                    last_offset=max(offsets),
                    columns={name: column[keep] for name, column in batch.columns.items()},
                    flags={name: column[keep] for name, column in batch.flags.items()},
                    codes=batch.codes[keep],
                    symbol_names=batch.symbol_names,
                )
        raise AssertionError("rows must come from one IngestLike.process call")

    def ingest(
        self, ticks: list[Tick], *, lake: bool = True, redis_: bool = True
    ) -> list[dict[str, Any]]:
        rows = self.process(ticks)
        if lake:
            self.to_lake(rows)
        if redis_:
            self.to_redis(rows)
        return rows


def _record_batch(batch: ProcessedBatch) -> pa.RecordBatch:
    # ``rows`` became a lazily built method in ingest; accept either shape so
    # these tests follow ingest's processor without pinning its internals.
    rows = batch.rows
    return rows() if callable(rows) else rows


def make_ticks(
    symbol: str,
    n: int,
    *,
    start_ns: int,
    step_ns: int = NS // 4,
    price: float = 100.0,
    seed: int = 0,
) -> list[Tick]:
    """``n`` ticks of ``symbol`` every ``step_ns`` from ``start_ns``, a seeded random walk.

    ``seq`` goes on from the previous call for the same symbol, as a feed's
    would, so ingest's sequence de-duplication keeps every tick.
    """
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        price = max(1.0, price * (1 + rng.gauss(0, 0.001)))
        spread = round(0.01 + rng.random() * 0.02, 4)
        ts_ns = start_ns + i * step_ns + rng.randrange(0, step_ns // 2)
        out.append(
            Tick(
                symbol=symbol,
                ts_ns=ts_ns,
                price=round(price, 4),
                size=float(rng.randrange(1, 500)),
                exchange="XNAS",
                seq=_NEXT_SEQ.get(symbol, 0) + i,
                bid=round(price - spread / 2, 4),
                ask=round(price + spread / 2, 4),
                bid_size=100.0,
                ask_size=200.0,
            )
        )
    _NEXT_SEQ[symbol] = _NEXT_SEQ.get(symbol, 0) + n
    return out


_NEXT_SEQ: dict[str, int] = {}
