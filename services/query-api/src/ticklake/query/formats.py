"""Output formats for row results: JSON, CSV, Parquet and Arrow IPC.

The format comes from ``format=`` when given, else from the ``Accept`` header,
else JSON. Tables keep the lake's column types (from
:mod:`ticklake.core.lake_layout`); feature columns are typed by their values.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Sequence
from typing import Any, Final

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ticklake.core.lake_layout import BAR_SCHEMA, SOURCE_FIELDS, TICK_BASE_FIELDS


class OutputFormat(enum.StrEnum):
    JSON = "json"
    CSV = "csv"
    PARQUET = "parquet"
    ARROW = "arrow"


MEDIA_TYPES: Final[dict[OutputFormat, str]] = {
    OutputFormat.JSON: "application/json",
    OutputFormat.CSV: "text/csv",
    OutputFormat.PARQUET: "application/vnd.apache.parquet",
    OutputFormat.ARROW: "application/vnd.apache.arrow.stream",
}
_ACCEPT_ALIASES: Final[dict[str, OutputFormat]] = {
    **{media: fmt for fmt, media in MEDIA_TYPES.items()},
    "application/x-parquet": OutputFormat.PARQUET,
    "application/vnd.apache.arrow.file": OutputFormat.ARROW,
    "application/x-arrow": OutputFormat.ARROW,
}

_KNOWN_TYPES: Final[dict[str, pa.DataType]] = {
    **{f.name: f.type for f in (*TICK_BASE_FIELDS, *SOURCE_FIELDS)},
    **{f.name: f.type for f in BAR_SCHEMA},
    "timestamp": pa.string(),
    "start": pa.string(),
    "vwap": pa.float64(),
}


def negotiate(format_param: OutputFormat | None, accept: str | None) -> OutputFormat:
    """``format=`` wins; else the first ``Accept`` media type we serve; else JSON."""
    if format_param is not None:
        return format_param
    for part in (accept or "").split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in _ACCEPT_ALIASES:
            return _ACCEPT_ALIASES[media]
    return OutputFormat.JSON


def rows_to_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> pa.Table:
    """An Arrow table of ``rows`` with ``columns`` first, then any extra keys seen."""
    names = list(columns)
    seen = set(names)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                names.append(key)
    arrays = []
    for name in names:
        values = [row.get(name) for row in rows]
        known = _KNOWN_TYPES.get(name)
        if known is not None:
            arrays.append(pa.array(values, type=known))
        else:
            try:
                arrays.append(pa.array(values))
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arrays.append(pa.array([None if v is None else str(v) for v in values]))
    return pa.table(dict(zip(names, arrays, strict=True)))


def render_table(table: pa.Table, fmt: OutputFormat) -> bytes:
    """Serialise ``table`` as CSV, Parquet or an Arrow IPC stream."""
    sink = io.BytesIO()
    if fmt is OutputFormat.CSV:
        pacsv.write_csv(table, sink)
    elif fmt is OutputFormat.PARQUET:
        pq.write_table(table, sink, compression="zstd")
    elif fmt is OutputFormat.ARROW:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    else:
        raise ValueError(f"render_table does not write {fmt}; JSON goes through orjson")
    return sink.getvalue()
