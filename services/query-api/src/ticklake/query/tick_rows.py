"""Tick rows as plain dicts: ordering, identity, merging lake and Redis rows.

Rows from the lake (DuckDB) and from Redis (decoded by
:mod:`ticklake.core.hot_cache`) have the same column names and types, so the
routes and the output formats see one shape whichever store answered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ticklake.core.lake_layout import SOURCE_FIELDS, TICK_BASE_FIELDS
from ticklake.query.cursor import RowKey

BASE_COLUMNS: Final = tuple(f.name for f in (*TICK_BASE_FIELDS, *SOURCE_FIELDS))
"""Lake columns every tick row has, in lake order; feature columns follow."""


def clean_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row with NaN/inf floats as ``None`` (JSON cannot carry them)."""
    for name, value in row.items():
        if isinstance(value, float) and not math.isfinite(value):
            row[name] = None
    return row


def row_key(row: Mapping[str, Any]) -> RowKey:
    """Sort key of a tick row; rows without a source position sort by time alone."""
    return RowKey(
        int(row["ts_ns"]), int(row.get("kafka_partition") or 0), int(row.get("kafka_offset") or 0)
    )


def identity(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """What makes two rows the same tick: its Kafka position, else (symbol, seq).

    The Kafka position is the real identity (a replay writes the same offsets
    again); ``seq`` is only used for rows that lack a position.
    """
    partition, offset = row.get("kafka_partition"), row.get("kafka_offset")
    if partition is not None and offset is not None:
        return ("kafka", partition, offset)
    if row.get("seq") is not None:
        return ("seq", row.get("symbol"), row["seq"])
    return ("row", row.get("symbol"), row.get("ts_ns"), row.get("price"), row.get("size"))


def merge_page(
    lake_rows: Iterable[dict[str, Any]],
    tail_rows: Iterable[dict[str, Any]],
    *,
    start_ns: int,
    end_ns: int,
    after: RowKey | None,
    limit: int,
) -> tuple[list[dict[str, Any]], bool]:
    """One page of ticks in ``[start_ns, end_ns)`` after ``after``, lake and tail merged.

    Each source must hold at least its first ``limit + 1`` qualifying rows; the
    result is de-duplicated by :func:`identity` (the lake row wins) and sorted
    by :func:`row_key`. Returns the page and whether more rows follow.
    """
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in lake_rows:
        merged.setdefault(identity(row), row)
    for row in tail_rows:
        ts = row.get("ts_ns")
        if ts is None or not start_ns <= ts < end_ns:
            continue
        if after is not None and row_key(row) <= after:
            continue
        merged.setdefault(identity(row), row)
    ordered = sorted(merged.values(), key=row_key)
    return ordered[:limit], len(ordered) > limit


def newest(rows: Iterable[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The row with the greatest :func:`row_key`, ignoring ``None``."""
    best: dict[str, Any] | None = None
    for row in rows:
        if row is not None and (best is None or row_key(row) > row_key(best)):
            best = row
    return best


def last_at_or_before(rows: Iterable[dict[str, Any]], ts_ns: int) -> dict[str, Any] | None:
    """As-of: the newest row whose ``ts_ns`` is at or before ``ts_ns``."""
    return newest(r for r in rows if r.get("ts_ns") is not None and r["ts_ns"] <= ts_ns)
