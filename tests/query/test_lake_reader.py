"""LakeReader: the same answers through DuckDB's Parquet reader (local lakes) and
through pyarrow's filesystem (the path ``s3://`` lakes take)."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow.fs as pafs
import pytest

from query.ingest_like import NS, IngestLike, make_ticks, new_symbol
from ticklake.core.lake_fs import Lake
from ticklake.core.lake_layout import utc_date
from ticklake.query.cursor import RowKey
from ticklake.query.lake_reader import LakeReader

START = 1_736_200_000 * NS


@pytest.fixture(scope="module")
def lake_with_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, list[dict]]:
    root = tmp_path_factory.mktemp("reader-lake")
    writer = IngestLike(root, None)
    symbol = new_symbol()
    rows = []
    ticks = make_ticks(symbol, 300, start_ns=START, step_ns=400 * NS)  # crosses two midnights
    for lo in range(0, 300, 77):
        part = writer.process(ticks[lo : lo + 77] + make_ticks(new_symbol(), 3, start_ns=START))
        writer.to_lake(part)
        rows += [r for r in part if r["symbol"] == symbol]
    # a temporary file as ingest leaves it mid-write must be ignored
    day = next((root / "ticks").iterdir())
    (day / ".p0000-00000000000000000000-00000000000000000001.parquet.abc.tmp").write_bytes(b"x")
    return root, symbol, rows


def readers(root: Path) -> list[LakeReader]:
    local = Lake(fs=pafs.LocalFileSystem(), base=str(root), uri=str(root))
    # Not a LocalFileSystem instance, so the reader takes its remote (pyarrow) path.
    remote = Lake(
        fs=pafs.SubTreeFileSystem("/", pafs.LocalFileSystem()),
        base=str(root).lstrip("/"),
        uri=f"test://{root}",
    )
    assert local.is_local and not remote.is_local
    return [LakeReader(local, duckdb.connect()), LakeReader(remote, duckdb.connect())]


def test_both_paths_give_the_same_answers(lake_with_data: tuple[Path, str, list[dict]]) -> None:
    root, symbol, rows = lake_with_data
    answers = []
    for reader in readers(root):
        ts = sorted(r["ts_ns"] for r in rows)
        page = reader.ticks_page(symbol, ts[10], ts[200], RowKey(ts[20], 0, 0), 50)
        answers.append(
            (
                reader.dates("ticks"),
                [r["kafka_offset"] for r in page],
                reader.newest_tick(symbol)["kafka_offset"],
                reader.tick_at_or_before(symbol, ts[150] + 1, 7)["ts_ns"],
                reader.bars(symbol, 3600 * NS, START, START + 86_400 * NS),
                symbol in reader.symbols(recent_days=30),
            )
        )
    local_bars, remote_bars = answers[0][4][0], answers[1][4][0]
    assert [(b["start_ns"], b["open"], b["close"], b["tick_count"]) for b in local_bars] == [
        (b["start_ns"], b["open"], b["close"], b["tick_count"]) for b in remote_bars
    ]
    # sums may add up in another order: equal to rounding
    assert [b["notional"] for b in local_bars] == pytest.approx(
        [b["notional"] for b in remote_bars]
    )
    assert answers[0][:4] + answers[0][5:] == answers[1][:4] + answers[1][5:]
    dates, offsets, newest, asof, (bars, source), listed = answers[0]
    assert len(dates) == 3 and listed
    assert len(offsets) == 50
    assert newest == max(rows, key=lambda r: r["ts_ns"])["kafka_offset"]
    assert asof == sorted(r["ts_ns"] for r in rows)[150]
    hour = 3600 * NS
    in_window = [
        r for r in rows if START - START % hour <= r["ts_ns"] // hour * hour < START + 86_400 * NS
    ]
    assert source == "bars_1m" and sum(b["tick_count"] for b in bars) == len(in_window) < len(rows)


def test_an_empty_lake_answers_nothing(tmp_path: Path) -> None:
    for reader in readers(tmp_path):
        assert reader.dates("ticks") == []
        assert reader.newest_tick("AAPL") is None
        assert reader.ticks_page("AAPL", START, START + NS, None, 10) == []
        assert reader.bars("AAPL", 60 * NS, START, START + 3600 * NS) == ([], "ticks")


def test_bars_follow_event_time_when_a_late_tick_arrives_in_a_later_flush(
    tmp_path: Path,
) -> None:
    """A tick older than its minute's other ticks, flushed after them, opens the
    bar (its time is the earliest) and does not become its close."""
    writer = IngestLike(tmp_path, None)
    symbol = new_symbol()
    minute = START - START % (60 * NS)
    on_time = make_ticks(symbol, 3, start_ns=minute + 10 * NS, step_ns=NS, price=100.0)
    writer.to_lake(writer.process(on_time))
    (late,) = make_ticks(symbol, 1, start_ns=minute + 5 * NS, step_ns=NS, price=50.0)
    (late_row,) = writer.process([late])
    assert late_row["late"] is True  # ingest saw it after newer ticks of its symbol
    writer.to_lake([late_row])
    for reader in readers(tmp_path):
        (bar,), source = reader.bars(symbol, 60 * NS, minute, minute + 60 * NS)
        assert source == "bars_1m"
        assert bar["open"] == late.price, bar
        assert bar["close"] == on_time[-1].price, bar
        assert bar["tick_count"] == 4
        assert (bar["high"], bar["low"]) == (max(t.price for t in on_time), late.price)


def test_the_reader_reads_the_table_snapshot_not_the_folder(tmp_path: Path) -> None:
    """A file no commit added (an interrupted flush as a crash leaves it) is not read;
    a flush committed after the reader loaded the table is read by the next query."""
    writer = IngestLike(tmp_path, None)
    symbol = new_symbol()
    ticks = make_ticks(symbol, 80, start_ns=START, step_ns=NS)
    writer.to_lake(writer.process(ticks[:50]))
    day_folder = tmp_path / "ticks" / f"date={utc_date(START)}"
    (committed,) = day_folder.glob("*.parquet")
    stray = day_folder / "p0000-00000000000000000050-00000000000000000099.parquet"
    shutil.copy(committed, stray)  # same rows again under a name no commit added
    local = Lake(fs=pafs.LocalFileSystem(), base=str(tmp_path), uri=str(tmp_path))
    reader = LakeReader(local, duckdb.connect())

    def offsets() -> list[int]:
        page = reader.ticks_page(symbol, START, START + 86_400 * NS, None, 1000)
        return [r["kafka_offset"] for r in page]

    assert offsets() == list(range(50))
    writer.to_lake(writer.process(ticks[50:]))  # the next flush, committed now
    assert offsets() == list(range(80))
    # a lake from before tables (no log): its folders are listed, the stray file included
    stray.unlink()
    shutil.rmtree(tmp_path / "ticks" / "_delta_log")
    legacy = LakeReader(local, duckdb.connect())
    page = legacy.ticks_page(symbol, START, START + 86_400 * NS, None, 1000)
    assert [r["kafka_offset"] for r in page] == list(range(80))
