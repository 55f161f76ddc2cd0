"""Replay input: CSV and Parquet rows become contract-valid ticks; bad rows name file and line."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ticklake.core.lake_layout import SOURCE_FIELDS, TICK_BASE_FIELDS, LakeFile
from ticklake.core.tick import Tick
from ticklake.producer.replay import ReplayInputError, read_ticks

HEADER = "symbol,ts_ns,price,size,exchange,seq,bid,ask,bid_size,ask_size,note\n"
GOOD_1 = "AAPL,1764000000000000000,190.1,100,XNAS,1,190.0,190.2,100,200,x\n"
GOOD_2 = "msft,1764000000000000002,420.5,3,xnys,7,,,,,y\n"


def _read_all(path: Path, **kwargs) -> tuple[list[Tick], list[str]]:
    ticks, bad = [], []
    for chunk in read_ticks(path, **kwargs):
        ticks += chunk.ticks
        bad += [str(b) for b in chunk.bad_rows]
    return ticks, bad


def test_csv_rows_become_normalised_ticks(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text(HEADER + GOOD_1 + GOOD_2)
    ticks, bad = _read_all(path)
    assert bad == []
    assert ticks == [
        Tick(symbol="AAPL", ts_ns=1764000000000000000, price=190.1, size=100.0, exchange="XNAS",
             seq=1, bid=190.0, ask=190.2, bid_size=100.0, ask_size=200.0),
        Tick(symbol="MSFT", ts_ns=1764000000000000002, price=420.5, size=3.0, exchange="XNYS",
             seq=7),
    ]  # fmt: skip


BAD_ROWS = [
    ("AAPL,1764000000000000001,abc,100,XNAS,2,,,,,x\n", "price 'abc' is not a number"),
    ("AAPL,1764000000000000003,-1,100,XNAS,4,,,,,x\n", "non_positive_price"),
    ("AAPL,1764000000000000004,190.1,100,XNAS,5,190.3,190.2,,,x\n", "crossed_book"),
    ("AAPL,1764000000000000005,190.1,100,XNAS,6,nan,,,,x\n", "bid nan is not a finite number"),
    (",1764000000000000006,190.1,100,XNAS,7,,,,,x\n", "required field 'symbol' is empty"),
    ("AAPL,1764000000000000007,190.1,100\n", "has 4 cells, the header has 11"),
    ("AAPL,12,190.1,100,XNAS,8,,,,,x\n", "timestamp_out_of_range"),
    ("AAPL,1764000000000000009,190.1,100,XNAS,1.5,,,,,x\n", "seq '1.5' is not an integer"),
]


@pytest.mark.parametrize("row, reason", BAD_ROWS)
def test_bad_csv_rows_are_skipped_and_reported_with_file_and_line(
    tmp_path: Path, row: str, reason: str
) -> None:
    path = tmp_path / "feed.csv"
    path.write_text(HEADER + GOOD_1 + row + GOOD_2)
    ticks, bad = _read_all(path, on_bad_row="skip")
    assert [t.seq for t in ticks] == [1, 7]
    assert len(bad) == 1
    assert bad[0].startswith(f"{path}:3: ")
    assert reason in bad[0]


def test_first_bad_row_is_fatal_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    path.write_text(HEADER + GOOD_1 + GOOD_2 + BAD_ROWS[1][0])
    with pytest.raises(ReplayInputError, match=r"feed\.csv:4: non_positive_price") as info:
        _read_all(path, on_bad_row="fail")
    assert info.value.bad_row is not None and info.value.bad_row.line == 4


def test_quoted_multiline_cells_keep_physical_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    two_line_row = 'AAPL,1764000000000000000,190.1,100,XNAS,1,,,,,"two\nlines"\n'
    path.write_text(HEADER + two_line_row + "AAPL,1,x,1,X,2,,,,,z\n")
    _, bad = _read_all(path)
    assert bad[0].startswith(f"{path}:4: ")


def test_csv_without_a_required_column_is_rejected_by_name(tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    path.write_text("symbol,ts_ns,size,exchange\nAAPL,1764000000000000000,1,XNAS\n")
    with pytest.raises(ReplayInputError, match=r"lacks required column.*price"):
        _read_all(path)


def test_csv_with_iso_times(tmp_path: Path) -> None:
    path = tmp_path / "legacy.csv"
    path.write_text(
        "symbol,price,size,exchange,ts\n"
        "AAPL,190.1,100,XNAS,2025-11-24T16:00:00.123456789+00:00\n"
        "AAPL,190.1,100,XNAS,2025-11-24T16:00:00\n"
    )
    ticks, bad = _read_all(path)
    assert [t.ts_ns for t in ticks] == [1_764_000_000_123_456_789]
    assert len(bad) == 1 and "legacy.csv:3: naive_timestamp" in bad[0]


def _lake_table(rows: list[dict]) -> pa.Table:
    schema = pa.schema([*TICK_BASE_FIELDS, *SOURCE_FIELDS, pa.field("vwap_1m", pa.float64())])
    full = [
        {**r, "kafka_partition": 0, "kafka_offset": i, "ingest_ns": 0, "vwap_1m": 1.0}
        for i, r in enumerate(rows)
    ]
    # Nullable symbol so a broken file (a null where the lake never writes one) can be built.
    return pa.Table.from_pylist(full, schema=schema.set(0, pa.field("symbol", pa.string())))


T = 1764000000000000000
DAY = 86_400_000_000_000


def _row(seq: int, **over) -> dict:
    base = dict(symbol="AAPL", ts_ns=1764000000000000000 + seq, price=190.0, size=1.0,
                exchange="XNAS", seq=seq, bid=None, ask=None)  # fmt: skip
    return {**base, **over}


def test_lake_parquet_extra_columns_are_ignored_and_bad_rows_named_by_row(tmp_path: Path) -> None:
    path = tmp_path / "p0000-00000000000000000000-00000000000000000002.parquet"
    pq.write_table(_lake_table([_row(1), _row(2, symbol=None), _row(3, price=0.0), _row(4)]), path)
    ticks, bad = _read_all(path)
    assert [t.seq for t in ticks] == [1, 4]
    assert bad == [
        f"{path}:2: required field 'symbol' is empty",
        f"{path}:3: non_positive_price: price 0.0 must be > 0",
    ]


def _lake_file(day: Path, partition: int, first: int, rows: list[dict]) -> None:
    day.mkdir(parents=True, exist_ok=True)
    name = LakeFile("ticks", day.name[5:], partition, first, first + len(rows) - 1).name
    pq.write_table(_lake_table(rows), day / name)


def test_a_lake_folder_is_merged_by_event_time_across_partitions(tmp_path: Path) -> None:
    ticks_dir = tmp_path / "ticks"
    d1, d2 = ticks_dir / "date=2025-11-24", ticks_dir / "date=2025-11-25"
    # Partition 0 holds AAPL, partition 1 MSFT; each partition spans two files and two days.
    _lake_file(d1, 0, 0, [_row(1, ts_ns=T + 10), _row(2, ts_ns=T + 30)])
    _lake_file(d1, 0, 2, [_row(3, ts_ns=T + 50)])
    _lake_file(d2, 0, 3, [_row(4, ts_ns=T + DAY + 10)])
    _lake_file(
        d1, 1, 0, [_row(1, symbol="MSFT", ts_ns=T + 20), _row(2, symbol="MSFT", ts_ns=T + 40)]
    )
    _lake_file(d2, 1, 2, [_row(3, symbol="MSFT", ts_ns=T + DAY + 5)])
    ticks, bad = _read_all(ticks_dir, chunk_rows=2)
    assert bad == []
    assert [(t.symbol, t.seq) for t in ticks] == [
        ("AAPL", 1), ("MSFT", 1), ("AAPL", 2), ("MSFT", 2), ("AAPL", 3), ("MSFT", 3), ("AAPL", 4),
    ]  # fmt: skip


def test_other_files_in_a_folder_are_merged_by_time_too(tmp_path: Path) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    pq.write_table(_lake_table([_row(2, ts_ns=T + 2), _row(4, ts_ns=T + 4)]), folder / "b.parquet")
    (folder / "a.csv").write_text(
        f"symbol,ts_ns,price,size,exchange,seq\nAAPL,{T + 1},1,1,X,1\nAAPL,{T + 3},0,1,X,3\n"
    )
    ticks, bad = _read_all(folder)
    assert [t.seq for t in ticks] == [1, 2, 4]
    assert bad == [f"{folder / 'a.csv'}:3: non_positive_price: price 0.0 must be > 0"]


def test_missing_file_and_unreadable_parquet(tmp_path: Path) -> None:
    with pytest.raises(ReplayInputError, match="no such file"):
        _read_all(tmp_path / "nope.csv")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(ReplayInputError, match="not a readable Parquet file"):
        _read_all(junk)


def test_chunks_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "many.parquet"
    pq.write_table(_lake_table([_row(i) for i in range(1, 26)]), path)
    sizes = [len(c) for c in read_ticks(path, chunk_rows=10)]
    assert sizes == [10, 10, 5]
