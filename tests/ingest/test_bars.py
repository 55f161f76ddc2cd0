"""Bars: OHLCV per symbol and interval, with the source offsets they cover."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ticklake.ingest.bars import BAR_FILE_SCHEMA, compute_bars

S = 1_000_000_000


def test_bars_group_by_symbol_and_interval_in_offset_order() -> None:
    symbol = pa.array(["B", "A", "A", "B", "A"])
    ts = np.array([0, 100, 2 * S, S - 1, 2 * S + 5], dtype=np.int64) + 1_000 * S
    price = np.array([5.0, 1.0, 3.0, 6.0, 2.0])
    size = np.array([1.0, 2.0, 1.0, 1.0, 1.0])
    offset = np.arange(10, 15, dtype=np.int64)
    bars = compute_bars(symbol, ts, price, size, offset, 7, S).to_pylist()
    assert [(b["symbol"], b["start_ns"]) for b in bars] == [
        ("A", 1_000 * S),
        ("A", 1_002 * S),
        ("B", 1_000 * S),
    ]
    a2 = bars[1]
    assert (a2["open"], a2["high"], a2["low"], a2["close"]) == (3.0, 3.0, 2.0, 2.0)
    assert (a2["volume"], a2["notional"], a2["tick_count"]) == (2.0, 5.0, 2)
    assert (a2["first_offset"], a2["last_offset"], a2["kafka_partition"]) == (12, 14, 7)
    b = bars[2]
    assert (b["open"], b["close"], b["tick_count"]) == (5.0, 6.0, 2)


def test_no_ticks_no_bars() -> None:
    empty = np.zeros(0)
    table = compute_bars(
        pa.array([], pa.string()),
        empty.astype(np.int64),
        empty,
        empty,
        empty.astype(np.int64),
        0,
        S,
    )
    assert table.num_rows == 0 and table.schema == BAR_FILE_SCHEMA


def test_open_and_close_follow_event_time_not_arrival() -> None:
    """A late tick (older, arriving last) opens its bar; the newest tick closes it;
    equal times keep source order."""
    symbol = pa.array(["A", "A", "A", "A"])
    ts = np.array([10, 12, 12, 5], dtype=np.int64) * S // 10 + 1_000 * S
    price = np.array([1.0, 2.0, 3.0, 4.0])
    size = np.ones(4)
    offset = np.arange(20, 24, dtype=np.int64)
    (bar,) = compute_bars(symbol, ts, price, size, offset, 0, 60 * S).to_pylist()
    assert (bar["open"], bar["close"]) == (4.0, 3.0)
    assert (bar["open_ts_ns"], bar["close_ts_ns"]) == (ts[3], ts[2])
    assert (bar["first_offset"], bar["last_offset"]) == (20, 23)
