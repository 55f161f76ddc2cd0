"""Read ticks from CSV or Parquet files, validating every row against the tick contract.

Accepted input:

* **Parquet** with the lake's tick columns (:data:`TICK_BASE_FIELDS`; extra
  columns such as ``kafka_offset`` or feature columns are ignored), a single
  file or a folder of them (e.g. the lake's ``ticks/`` dataset, merged by
  event time across partitions);
* **CSV** with a header row naming the same columns. ``ts`` (ISO-8601 with an
  offset) may stand in for ``ts_ns``. Empty optional cells are ``None``.

Each row is turned into a :class:`Tick`, encoded, and decoded again with
:func:`ticklake.core.tick.decode_tick`, so replay accepts exactly what ingest
accepts. A row that fails is a :class:`BadRow` naming the file and line (CSV:
physical line number, header = line 1; Parquet: row number, first row = 1).
"""

from __future__ import annotations

import csv
import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from ticklake.core.errors import TickDecodeError
from ticklake.core.lake_layout import (
    PARTITION_COLUMN,
    TICK_BASE_FIELDS,
    TICKS_DATASET,
    parse_file_name,
)
from ticklake.core.tick import MIN_TS_NS, Tick, decode_tick, encode_tick, parse_iso_ns

OnBadRow = Literal["skip", "fail"]

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in TICK_BASE_FIELDS)
REQUIRED: tuple[str, ...] = tuple(f.name for f in TICK_BASE_FIELDS if not f.nullable)
_INT_FIELDS = frozenset(f.name for f in TICK_BASE_FIELDS if pa.types.is_integer(f.type))
_FLOAT_FIELDS = frozenset(f.name for f in TICK_BASE_FIELDS if pa.types.is_floating(f.type))


@dataclass(frozen=True, slots=True)
class BadRow:
    """One input row that is not a valid tick."""

    path: str
    line: int
    reason: str
    unit: str = "line"

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


class ReplayInputError(ValueError):
    """The input cannot be replayed: a bad row under ``--on-bad-row fail``, or a bad file."""

    def __init__(self, message: str, bad_row: BadRow | None = None) -> None:
        super().__init__(message)
        self.bad_row = bad_row


@dataclass(slots=True)
class ReplayChunk:
    """Consecutive valid ticks of one file (with their wire bytes) and the rows rejected
    among them."""

    ticks: list[Tick] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ticks)


def replay_files(path: Path) -> list[Path]:
    """The files to replay for ``path``: itself, or every .parquet/.csv below a folder."""
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in {".parquet", ".csv"}
        )
        if not files:
            raise ReplayInputError(f"{path}: folder holds no .parquet or .csv files")
        return files
    if not path.exists():
        raise ReplayInputError(f"{path}: no such file")
    return [path]


def replay_streams(files: list[Path]) -> list[list[Path]]:
    """Group files into streams that are each in time order on their own.

    Lake files (``pNNNN-<first>-<last>.parquet``) of one Kafka partition form
    one stream, in (day, first offset) order: a partition is in produce order
    across its files. Any other file is a stream of its own.
    """
    by_partition: dict[int, list[tuple[str, int, Path]]] = {}
    others: list[list[Path]] = []
    for file in files:
        day = file.parent.name.removeprefix(f"{PARTITION_COLUMN}=")
        lake_file = parse_file_name(TICKS_DATASET, day, file.name)
        if lake_file is None:
            others.append([file])
        else:
            by_partition.setdefault(lake_file.partition, []).append(
                (day, lake_file.first_offset, file)
            )
    lake_streams = [[f for _, _, f in sorted(v)] for _, v in sorted(by_partition.items())]
    return lake_streams + others


def read_ticks(
    path: Path, *, on_bad_row: OnBadRow = "skip", chunk_rows: int = 5000
) -> Iterator[ReplayChunk]:
    """Validated ticks of ``path``, ``chunk_rows`` at a time.

    A file is read in file order. A folder (e.g. the lake's ``ticks/`` dataset)
    is merged by event time across its streams (:func:`replay_streams`), so a
    replay at the original pace plays the day once, not once per partition;
    within a stream the order is kept. With ``on_bad_row="fail"`` the first bad
    row raises :class:`ReplayInputError`.
    """
    streams = [_stream_rows(files, chunk_rows) for files in replay_streams(replay_files(path))]
    rows = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda r: r[0])
    chunk = ReplayChunk()
    for _, item in rows:
        if isinstance(item, BadRow):
            if on_bad_row == "fail":
                raise ReplayInputError(f"bad input row {item}", item)
            chunk.bad_rows.append(item)
            continue
        tick, payload = item
        chunk.ticks.append(tick)
        chunk.payloads.append(payload)
        if len(chunk.ticks) >= chunk_rows:
            yield chunk
            chunk = ReplayChunk()
    if chunk.ticks or chunk.bad_rows:
        yield chunk


_Row = tuple[int, tuple[Tick, bytes] | BadRow]
"""(merge key, valid tick and its bytes, or a bad row). A bad row carries the key of the
row before it, so it is reported where it sits in its stream."""


def _stream_rows(files: list[Path], chunk_rows: int) -> Iterator[_Row]:
    last_ts = MIN_TS_NS
    for file in files:
        if file.suffix.lower() == ".csv":
            rows: Iterator[tuple[int, dict[str, Any] | BadRow]] = _csv_rows(file)
        elif file.suffix.lower() == ".parquet":
            rows = _parquet_rows(file, chunk_rows)
        else:
            raise ReplayInputError(f"{file}: unknown file type (use .csv or .parquet)")
        unit = _unit_of(file)
        for line, row in rows:
            item = row if isinstance(row, BadRow) else _validated_tick(row, str(file), line, unit)
            if not isinstance(item, BadRow):
                # Never decrease within a stream: heapq.merge needs sorted inputs, and an
                # out-of-order row keeps its place in the file.
                last_ts = max(last_ts, item[0].ts_ns)
            yield last_ts, item


def _unit_of(file: Path) -> str:
    return "line" if file.suffix.lower() == ".csv" else "row"


def _validated_tick(
    row: dict[str, Any], path: str, line: int, unit: str
) -> tuple[Tick, bytes] | BadRow:
    for name in REQUIRED:
        if row.get(name) is None:
            return BadRow(path, line, f"required field {name!r} is empty", unit)
    for name in _FLOAT_FIELDS:
        value = row.get(name)
        # JSON has no NaN/inf: the encoder would turn them into null, silently.
        if isinstance(value, float) and not math.isfinite(value):
            return BadRow(path, line, f"{name} {value} is not a finite number", unit)
    try:
        tick = Tick(**row)
        payload = encode_tick(tick)
        checked = decode_tick(payload)
    except TickDecodeError as e:
        return BadRow(path, line, str(e), unit)
    except (TypeError, ValueError, OverflowError) as e:
        return BadRow(path, line, f"not a tick: {e}", unit)
    if checked != tick:  # normalised (e.g. lower-case symbol): publish the canonical form
        tick, payload = checked, encode_tick(checked)
    return tick, payload


def _csv_rows(file: Path) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    with open(file, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as e:
            raise ReplayInputError(f"{file}:1: unreadable CSV header: {e}") from e
        columns = [h.strip() for h in header]
        time_column = "ts_ns" if "ts_ns" in columns else "ts"
        missing = [c for c in REQUIRED if c != "ts_ns" and c not in columns]
        if time_column not in columns:
            missing.append("ts_ns (or ts)")
        if missing:
            raise ReplayInputError(
                f"{file}:1: CSV header lacks required column(s) {', '.join(missing)}; "
                f"expected some of {', '.join(FIELD_NAMES)}"
            )
        index = {name: columns.index(name) for name in (*FIELD_NAMES, "ts") if name in columns}
        width = len(columns)
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as e:
                yield reader.line_num, BadRow(str(file), reader.line_num, f"unreadable CSV: {e}")
                continue
            line = reader.line_num
            if not record:
                continue  # blank line
            if len(record) != width:
                yield (
                    line,
                    BadRow(str(file), line, f"has {len(record)} cells, the header has {width}"),
                )
                continue
            yield line, _csv_record(record, index, str(file), line)


def _csv_record(
    record: list[str], index: dict[str, int], path: str, line: int
) -> dict[str, Any] | BadRow:
    row: dict[str, Any] = {}
    for name, i in index.items():
        text = record[i].strip()
        if name == "ts":
            if "ts_ns" in index:
                continue
            try:
                row["ts_ns"] = parse_iso_ns(text) if text else None
            except TickDecodeError as e:
                return BadRow(path, line, str(e))
            continue
        if not text:
            row[name] = None
            continue
        try:
            if name in _INT_FIELDS:
                row[name] = int(text)
            elif name in _FLOAT_FIELDS:
                row[name] = float(text)
            else:
                row[name] = text
        except ValueError:
            kind = "an integer" if name in _INT_FIELDS else "a number"
            return BadRow(path, line, f"{name} {text!r} is not {kind}")
    return row


def _parquet_rows(file: Path, chunk_rows: int) -> Iterator[tuple[int, dict[str, Any] | BadRow]]:
    try:
        parquet = pq.ParquetFile(file)
    except (pa.ArrowInvalid, OSError) as e:
        raise ReplayInputError(f"{file}: not a readable Parquet file: {e}") from e
    names = set(parquet.schema_arrow.names)
    has_ts = "ts_ns" in names or "ts" in names
    missing = [c for c in REQUIRED if c != "ts_ns" and c not in names]
    if not has_ts:
        missing.append("ts_ns (or ts)")
    if missing:
        raise ReplayInputError(
            f"{file}: Parquet schema lacks required column(s) {', '.join(missing)}"
        )
    columns = [n for n in FIELD_NAMES if n in names]
    if "ts_ns" not in names:
        columns.append("ts")
    row_number = 0
    for batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
        table = pa.Table.from_batches([batch])
        if "ts" in table.column_names:
            table = _with_ts_ns(table)
        for row in table.to_pylist():
            row_number += 1
            yield row_number, row


def _with_ts_ns(table: pa.Table) -> pa.Table:
    """Replace a ``ts`` column (timestamp or ISO string) by ``ts_ns`` (int64 UTC ns)."""
    ts = table.column("ts")
    if pa.types.is_timestamp(ts.type):
        ns = ts.cast(pa.timestamp("ns", tz=ts.type.tz)).cast(pa.int64())
    else:
        values = []
        for text in ts.to_pylist():
            try:
                values.append(parse_iso_ns(text) if text else None)
            except (TickDecodeError, TypeError):
                values.append(None)
        ns = pa.array(values, pa.int64())
    return table.drop_columns(["ts"]).append_column("ts_ns", ns)
