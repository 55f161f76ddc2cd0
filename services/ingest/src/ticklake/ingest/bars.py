"""OHLCV bars per symbol and interval from a flush's ticks. Pure, vectorised.

Open and close follow event time: the bar's tick with the smallest
``ts_ns`` opens it and the one with the largest closes it, ties by source
offset. A late tick (one that reached ingest after a newer tick of its
symbol) therefore lands where its own time puts it and never becomes the
close just because it came last.

Bars are computed from exactly the ticks of one lake flush, so they need no
carried state: a bar whose ticks straddle two flushes is written as two
partial rows (in two files), which readers merge (open of the row with the
smallest ``(open_ts_ns, first_offset)``, max high, min low, close of the row
with the largest ``(close_ts_ns, last_offset)``, sums of volume, notional and
tick_count). See ``docs/lake.md``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ticklake.core.lake_layout import BAR_SCHEMA
from ticklake.ingest import arrow_arrays

BAR_INTERVALS_NS: Final = {"1s": 1_000_000_000, "1m": 60_000_000_000}
"""Interval name (as in :data:`ticklake.core.lake_layout.BARS_DATASETS`) -> length in ns."""

BAR_SOURCE_FIELDS: Final = (
    pa.field("kafka_partition", pa.int32(), nullable=False),
    pa.field("first_offset", pa.int64(), nullable=False),
    pa.field("last_offset", pa.int64(), nullable=False),
    pa.field("open_ts_ns", pa.int64(), nullable=False),
    pa.field("close_ts_ns", pa.int64(), nullable=False),
)
"""Appended after :data:`BAR_SCHEMA`: which source offsets the (partial) bar covers and
the event times of its open and close ticks, so readers can merge partial rows."""

BAR_FILE_SCHEMA: Final = pa.schema([*BAR_SCHEMA, *BAR_SOURCE_FIELDS])


def compute_bars(
    symbol: pa.Array | pa.ChunkedArray,
    ts_ns: np.ndarray,
    price: np.ndarray,
    size: np.ndarray,
    offset: np.ndarray,
    partition: int,
    interval_ns: int,
) -> pa.Table:
    """Bars of ``interval_ns`` for the given ticks (any order of symbols; offset order
    within a symbol). Rows come out sorted by (symbol, start_ns); within a bar, ticks
    are taken in event-time order (ties by offset) for open and close."""
    n = len(ts_ns)
    if n == 0:
        return BAR_FILE_SCHEMA.empty_table()
    if isinstance(symbol, pa.ChunkedArray):
        symbol = symbol.combine_chunks()
    dictionary = pc.dictionary_encode(symbol)
    codes = arrow_arrays.to_numpy(dictionary.indices).astype(np.int64)
    names = dictionary.dictionary
    # Sort symbols by name so the output order does not depend on first appearance.
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(np.asarray(names.to_pylist(), dtype=object))] = np.arange(len(names))
    bucket = ts_ns // interval_ns
    key = (rank[codes] << 40) + (bucket - bucket.min())
    # by bar, then event time; lexsort is stable, so equal times keep offset order
    order = np.lexsort((ts_ns, key))
    key_sorted = key[order]
    starts = np.flatnonzero(np.diff(key_sorted, prepend=-1))
    ends = np.append(starts[1:], n)
    p = price[order]
    s = size[order]
    o = offset[order]
    t = ts_ns[order]
    columns = {
        "symbol": names.take(arrow_arrays.numeric(codes[order][starts], pa.int64())),
        "start_ns": bucket[order][starts] * interval_ns,
        "open": p[starts],
        "high": np.maximum.reduceat(p, starts),
        "low": np.minimum.reduceat(p, starts),
        "close": p[ends - 1],
        "volume": np.add.reduceat(s, starts),
        "notional": np.add.reduceat(p * s, starts),
        "tick_count": (ends - starts).astype(np.int64),
        "kafka_partition": np.full(len(starts), partition, dtype=np.int32),
        "first_offset": np.minimum.reduceat(o, starts),
        "last_offset": np.maximum.reduceat(o, starts),
        "open_ts_ns": t[starts],
        "close_ts_ns": t[ends - 1],
    }
    arrays = [
        values if isinstance(values, pa.Array) else arrow_arrays.numeric(values, field.type)
        for field, values in zip(BAR_FILE_SCHEMA, columns.values(), strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=BAR_FILE_SCHEMA)
