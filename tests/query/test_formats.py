"""Format negotiation and table rendering."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ticklake.query.formats import OutputFormat, negotiate, render_table, rows_to_table


@pytest.mark.parametrize(
    ("param", "accept", "expected"),
    [
        (None, None, OutputFormat.JSON),
        (None, "*/*", OutputFormat.JSON),
        (None, "text/csv", OutputFormat.CSV),
        (None, "text/html,application/vnd.apache.parquet;q=0.5", OutputFormat.PARQUET),
        (None, "application/x-arrow", OutputFormat.ARROW),
        (OutputFormat.CSV, "application/vnd.apache.parquet", OutputFormat.CSV),
    ],
)
def test_negotiate(param: OutputFormat | None, accept: str | None, expected: OutputFormat) -> None:
    assert negotiate(param, accept) is expected


def test_tables_keep_lake_types_and_extra_columns() -> None:
    rows = [
        {"symbol": "A", "ts_ns": 1, "price": 2.0, "kafka_offset": 5, "ema": 1.5, "note": "x"},
        {"symbol": "A", "ts_ns": 2, "price": 3.0, "kafka_offset": 6, "ema": None},
    ]
    table = rows_to_table(rows, ["symbol", "ts_ns", "price", "kafka_offset"])
    assert table.column_names == ["symbol", "ts_ns", "price", "kafka_offset", "ema", "note"]
    assert table.schema.field("kafka_offset").type == pa.int64()
    assert table.column("note").to_pylist() == ["x", None]
    back = pq.read_table(io.BytesIO(render_table(table, OutputFormat.PARQUET)))
    assert back.equals(table)
    assert pa.ipc.open_stream(render_table(table, OutputFormat.ARROW)).read_all().equals(table)
    assert render_table(table, OutputFormat.CSV).decode().splitlines()[0].startswith('"symbol"')


def test_empty_tables_still_have_their_columns() -> None:
    table = rows_to_table([], ["symbol", "ts_ns"])
    assert table.num_rows == 0 and table.schema.field("ts_ns").type == pa.int64()
