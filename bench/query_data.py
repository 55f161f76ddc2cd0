"""Generated lakes for the query benchmark, cached in ``~/.cache/ticklake/bench-data/``.

One UTC day (2025-01-02) of one symbol, ``n`` ticks (10 million by default),
written in the lake layout of :mod:`ticklake.core.lake_layout` in files of
250,000 rows (ingest's default roll size), zstd, one row group per file:

* ``query-ticks-<n>/``: the ``ticks`` dataset only (the API then computes bars
  from the ticks: the expensive path);
* ``query-bars-<n>/``: the same ticks plus ``bars_1m`` with one (partial) bar
  row per minute per file, as ingest writes them.

Feature columns are left out: no bar query reads them (Parquet projection).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ticklake.core.lake_layout import (
    BAR_SCHEMA,
    BARS_DATASETS,
    SOURCE_FIELDS,
    TICK_BASE_FIELDS,
    TICKS_DATASET,
    LakeFile,
    utc_date,
)

CACHE = Path.home() / ".cache" / "ticklake" / "bench-data"
DAY_START_NS = 1_735_776_000 * 1_000_000_000  # 2025-01-02T00:00:00Z
DAY_NS = 86_400 * 1_000_000_000
SYMBOL = "AAPL"
FILE_ROWS = 250_000
TICK_SCHEMA = pa.schema([*TICK_BASE_FIELDS, *SOURCE_FIELDS])


def day_ticks(n: int, seed: int = 42) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = np.sort(DAY_START_NS + rng.integers(0, DAY_NS, n))
    price = np.round(189.0 * np.exp(np.cumsum(rng.normal(0, 2e-5, n))), 4)
    spread = np.round(0.01 + rng.random(n) * 0.02, 4)
    return {
        "ts_ns": ts,
        "price": price,
        "size": rng.integers(1, 500, n).astype(np.float64),
        "bid": price - spread / 2,
        "ask": price + spread / 2,
    }


def tick_rows(t: dict[str, np.ndarray], lo: int, hi: int) -> pa.Table:
    """Ticks ``lo .. hi`` of :func:`day_ticks` as lake rows (partition 0, offset = index)."""
    offsets = np.arange(lo, hi, dtype=np.int64)
    return pa.table(
        {
            "symbol": pa.array([SYMBOL] * (hi - lo)),
            "ts_ns": t["ts_ns"][lo:hi],
            "price": t["price"][lo:hi],
            "size": t["size"][lo:hi],
            "exchange": pa.array(["XNAS"] * (hi - lo)),
            "seq": offsets,
            "bid": t["bid"][lo:hi],
            "ask": t["ask"][lo:hi],
            "bid_size": np.full(hi - lo, 100.0),
            "ask_size": np.full(hi - lo, 200.0),
            "kafka_partition": np.zeros(hi - lo, dtype=np.int32),
            "kafka_offset": offsets,
            "ingest_ns": t["ts_ns"][lo:hi] + 5_000_000,
        },
        schema=TICK_SCHEMA,
    )


def _minute_bars(t: dict[str, np.ndarray], lo: int, hi: int) -> pa.Table:
    ts, price, size = t["ts_ns"][lo:hi], t["price"][lo:hi], t["size"][lo:hi]
    bucket = ts // 60_000_000_000
    starts = np.flatnonzero(np.diff(bucket, prepend=-1))
    ends = np.append(starts[1:], len(ts))
    return (
        pa.table(
            {
                "symbol": pa.array([SYMBOL] * len(starts)),
                "start_ns": bucket[starts] * 60_000_000_000,
                "open": price[starts],
                "high": np.maximum.reduceat(price, starts),
                "low": np.minimum.reduceat(price, starts),
                "close": price[ends - 1],
                "volume": np.add.reduceat(size, starts),
                "notional": np.add.reduceat(price * size, starts),
                "tick_count": (ends - starts).astype(np.int64),
            },
            schema=BAR_SCHEMA,
        )
        .append_column("kafka_partition", pa.array(np.zeros(len(starts), np.int32)))
        .append_column("first_offset", pa.array(lo + starts))
        .append_column("last_offset", pa.array(lo + ends - 1))
        .append_column("open_ts_ns", pa.array(ts[starts]))
        .append_column("close_ts_ns", pa.array(ts[ends - 1]))
    )


def ensure_lakes(n: int) -> tuple[Path, Path]:
    """(ticks-only lake, ticks+bars lake) with ``n`` ticks, generated once and cached."""
    ticks_lake, bars_lake = CACHE / f"query-ticks-{n}", CACHE / f"query-bars-{n}"
    done = CACHE / f"query-{n}.done"
    if done.exists():
        return ticks_lake, bars_lake
    for path in (ticks_lake, bars_lake):
        shutil.rmtree(path, ignore_errors=True)
    t = day_ticks(n)
    date = utc_date(DAY_START_NS)
    for lo in range(0, n, FILE_ROWS):
        hi = min(n, lo + FILE_ROWS)
        table = tick_rows(t, lo, hi)
        name = LakeFile(TICKS_DATASET, date, 0, lo, hi - 1)
        bars_name = LakeFile(BARS_DATASETS["1m"], date, 0, lo, hi - 1)
        for root in (ticks_lake, bars_lake):
            path = root / name.relative_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path, compression="zstd", row_group_size=256_000)
        bars_path = bars_lake / bars_name.relative_path()
        bars_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_minute_bars(t, lo, hi), bars_path, compression="zstd")
    done.touch()
    return ticks_lake, bars_lake
