"""Lake maintenance on the real Delta tables: compaction (atomic, sorted, beside ingest's
appends, one at a time), retention, vacuum, and the ``ticklake-lake`` command."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from ingest_kit import DAY0_NS, Rec, three_days, tick_messages, tick_stream
from ingest_kit import LakeFeed as Feed

from ticklake.core.lake_fs import Lake, open_lake
from ticklake.core.lake_layout import utc_date
from ticklake.core.settings import LakeFields
from ticklake.ingest import lake_maintenance as maintenance
from ticklake.ingest.features import DAY_NS, FeatureParams
from ticklake.ingest.partition import PartitionProcessor
from ticklake.ingest.sinks.lake import LakeOptions, LakeSink, LakeWriter
from ticklake.query.lake_reader import LakeReader


def day(i: int) -> str:
    return utc_date(DAY0_NS + i * DAY_NS)


def table_rows(root: Path, dataset: str = "ticks", on: str | None = None) -> pa.Table:
    table = DeltaTable(str(root / dataset)).to_pyarrow_dataset().to_table()
    if on is not None:
        table = table.filter(pa.compute.equal(table.column("date"), on))
    return table


def identities(table: pa.Table) -> Counter[tuple[int, int]]:
    return Counter(
        zip(
            table.column("kafka_partition").to_pylist(),
            table.column("kafka_offset").to_pylist(),
            strict=True,
        )
    )


def files_of(root: Path, on: str, dataset: str = "ticks") -> list[str]:
    uris = DeltaTable(str(root / dataset)).file_uris()
    return sorted(Path(u).name for u in uris if f"date={on}" in u)


async def test_compacting_a_day_swaps_its_files_for_one_sorted_file(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    feed = await three_days(root)
    before = table_rows(root)
    old_files = files_of(root, day(0))
    version = DeltaTable(str(root / "ticks")).version()
    assert len(old_files) == 3

    result = maintenance.compact_day(feed.lake, "ticks", day(0))

    assert (result.files_before, result.files_after, result.version) == (3, 1, version + 1)
    after = table_rows(root)
    assert identities(after) == identities(before)  # every row once, none lost
    assert (
        after.num_rows
        == before.num_rows
        == result.rows + sum(table_rows(root, on=day(i)).num_rows for i in (1, 2))
    )
    (new_file,) = files_of(root, day(0))
    assert new_file.startswith(maintenance.COMPACTED_PREFIX)
    rows = pq.read_table(root / "ticks" / f"date={day(0)}" / new_file)
    keys = list(
        zip(rows.column("symbol").to_pylist(), rows.column("ts_ns").to_pylist(), strict=True)
    )
    assert keys == sorted(keys)
    # the other days are untouched, and the old files stay on disk until vacuum
    assert len(files_of(root, day(1))) == 3
    assert all((root / "ticks" / f"date={day(0)}" / f).exists() for f in old_files)
    # a second run has nothing to do
    again = maintenance.compact_day(feed.lake, "ticks", day(0))
    assert again.version is None and again.files_after == 1


async def test_small_targets_give_files_of_whole_symbols_in_symbol_order(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    feed = await three_days(root, flushes=3, per_flush=400)  # one flush a day
    # new symbols (the same ones again would be dropped as duplicates by their seq)
    await feed.flush(tick_stream(["EE", "FF", "GG"], 200, seed=5, t0_ns=DAY0_NS + 1, step_ns=1000))
    result = maintenance.compact_day(feed.lake, "ticks", day(0), target_rows=150)
    assert result.files_after >= 2
    firsts = []
    for name in files_of(root, day(0)):
        symbols = pq.read_table(root / "ticks" / f"date={day(0)}" / name).column("symbol")
        firsts.append((name, symbols[0].as_py(), symbols[-1].as_py()))
    firsts.sort()
    # names in write order; each file's symbols come after the previous file's
    for (_, _, last), (_, first, _) in itertools.pairwise(firsts):
        assert last < first


async def test_a_flush_committed_during_the_compaction_stays(tmp_path: Path) -> None:
    """Ingest appends a late tick's file to the day being compacted, between the read and
    the commit: both commits stand, every row is in the table once."""
    root = tmp_path / "lake"
    feed = await three_days(root)
    late = tick_stream(["LATE"], 10, seed=4, t0_ns=DAY0_NS + 5, step_ns=1000)

    async def ingest_flush() -> None:
        await feed.flush(late)

    import asyncio

    loop = asyncio.get_running_loop()

    def during() -> None:
        asyncio.run_coroutine_threadsafe(ingest_flush(), loop).result(30)

    result = await asyncio.to_thread(
        maintenance.compact_day, feed.lake, "ticks", day(0), before_commit=during
    )
    assert result.version is not None
    files = files_of(root, day(0))
    assert len(files) == 2  # the compacted one and the late flush's
    table = table_rows(root)
    assert max(identities(table).values()) == 1
    assert table.num_rows == feed.offset


async def test_two_compactions_at_once_one_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    feed = await three_days(root)
    before = identities(table_rows(root))
    folder = root / "ticks" / f"date={day(0)}"

    def the_other_one() -> None:
        maintenance.compact_day(feed.lake, "ticks", day(0))

    with pytest.raises(maintenance.MaintenanceConflict, match="another maintenance commit"):
        maintenance.compact_day(feed.lake, "ticks", day(0), before_commit=the_other_one)
    assert identities(table_rows(root)) == before
    assert len(files_of(root, day(0))) == 1
    # the refused run's files are gone; the winner's file is the only compacted one
    compacted = [p.name for p in folder.iterdir() if p.name.startswith("compacted-")]
    assert compacted == files_of(root, day(0))


async def test_a_compaction_that_dies_before_its_commit_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    feed = await three_days(root)
    version = DeltaTable(str(root / "ticks")).version()

    def killed() -> None:
        raise KeyboardInterrupt("killed before the commit")

    with pytest.raises(KeyboardInterrupt):
        maintenance.compact_day(feed.lake, "ticks", day(0), before_commit=killed)
    assert DeltaTable(str(root / "ticks")).version() == version
    assert len(files_of(root, day(0))) == 3
    # a kill -9 would leave its files behind: they are reported, never read
    stray = root / "ticks" / f"date={day(0)}" / "compacted-deadbeef-00000.parquet"
    stray.write_bytes((root / "ticks" / f"date={day(0)}" / files_of(root, day(0))[0]).read_bytes())
    status = run_cli(root, "status")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert (
        f"date={day(0)}/compacted-deadbeef-00000.parquet" in report["ticks"]["files_not_in_table"]
    )
    assert report["ticks"]["days"][day(0)]["files"] == 3
    assert identities(table_rows(root)) == identities(
        DeltaTable(str(root / "ticks"), version=version).to_pyarrow_dataset().to_table()
    )


async def test_the_query_api_answers_the_same_after_compaction(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    feed = await three_days(root)
    reader = LakeReader(
        Lake(fs=pafs.LocalFileSystem(), base=str(root), uri=str(root)), duckdb.connect()
    )

    def answers() -> tuple:  # type: ignore[type-arg]
        page = reader.ticks_page("BB", DAY0_NS, DAY0_NS + 3 * DAY_NS, None, 10_000)
        bars, _ = reader.bars("CC", 3600 * 10**9, DAY0_NS, DAY0_NS + 2 * DAY_NS)
        return [r["kafka_offset"] for r in page], [(b["start_ns"], b["tick_count"]) for b in bars]

    before = answers()
    for dataset in maintenance.DATASETS:
        maintenance.compact_day(feed.lake, dataset, day(0))
        maintenance.compact_day(feed.lake, dataset, day(1))
    assert answers() == before
    assert len(before[0]) > 0 and len(before[1]) > 0


async def test_expiry_removes_old_days_and_vacuum_deletes_their_files(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    feed = await three_days(root)
    today = date.fromisoformat(day(2)) + timedelta(days=1)
    removed = maintenance.expire(feed.lake, "ticks", 2, today)  # keep day(1) and day(2)
    assert removed == [day(0)]
    assert files_of(root, day(0)) == []
    assert len(files_of(root, day(1))) == 3
    assert table_rows(root).num_rows == sum(table_rows(root, on=day(i)).num_rows for i in (1, 2))
    folder = root / "ticks" / f"date={day(0)}"
    assert len(list(folder.glob("*.parquet"))) == 3  # until vacuum
    assert len(files_of(root, day(0), "bars_1m")) == 3  # bars have their own retention
    deleted = maintenance.vacuum(feed.lake, "ticks", 0, log_retention_days=7)
    assert len(deleted) == 3
    configuration = DeltaTable(str(root / "ticks")).metadata().configuration
    assert configuration["delta.logRetentionDuration"] == "interval 7 days"
    assert list(folder.glob("*.parquet")) == []
    assert maintenance.expire(feed.lake, "ticks", 2, today) == []


def test_symbol_groups_hold_at_least_the_target_but_the_last() -> None:
    counts = [("DD", 50), ("AA", 70), ("CC", 10), ("BB", 40), ("EE", 5)]
    assert maintenance.symbol_groups(counts, 100) == [["AA", "BB"], ["CC", "DD", "EE"]]
    assert maintenance.symbol_groups(counts, 1) == [["AA"], ["BB"], ["CC"], ["DD"], ["EE"]]
    assert maintenance.symbol_groups([], 10) == []


def test_finished_days_wait_the_settle_time() -> None:
    days = ["2025-01-01", "2025-01-02", "2025-01-03"]
    # on 01-03, 01-02 ended less than a day ago; 01-01 a whole day ago
    assert maintenance.finished_days(days, date(2025, 1, 3), 1) == ["2025-01-01"]
    assert maintenance.finished_days(days, date(2025, 1, 4), 1) == ["2025-01-01", "2025-01-02"]
    assert maintenance.finished_days(days, date(2025, 1, 4), 2) == ["2025-01-01"]


def run_cli(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TICKLAKE_")}
    return subprocess.run(
        [sys.executable, "-m", "ticklake.ingest.lake_cli", *args],
        env={**clean, "TICKLAKE_LAKE_URI": str(root), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_command_compacts_expires_and_refuses_bad_input(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    await three_days(root)
    done = run_cli(root, "compact", "--dataset", "ticks", "--date", day(1))
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)
    assert (result["date"], result["files_before"], result["files_after"]) == (day(1), 3, 1)
    # every finished day (all three are in the past), every dataset, then retention
    maintain = run_cli(root, "maintain", TICKLAKE_BARS_RETENTION_DAYS="100000")
    assert maintain.returncode == 0, maintain.stderr
    report = json.loads(maintain.stdout)
    compacted = {(r["dataset"], r["date"]) for r in report["compacted"] if r["version"]}
    assert ("ticks", day(0)) in compacted and ("bars_1m", day(2)) in compacted
    assert report["expired"] == {"bars_1s": [], "bars_1m": []}

    bad_day = run_cli(root, "compact", "--date", "2025-13-01")
    assert bad_day.returncode == 2 and "not a day" in bad_day.stderr
    bad_setting = run_cli(root, "expire", TICKLAKE_TICKS_RETENTION_DAYS="0")
    assert bad_setting.returncode == 2 and "ticks_retention_days" in bad_setting.stderr
    no_table = run_cli(tmp_path / "empty", "compact", "--dataset", "ticks")
    assert no_table.returncode == 1 and "has no Delta table" in no_table.stderr


async def test_adopt_adds_the_complete_flushes_of_a_lake_from_before_tables(
    tmp_path: Path,
) -> None:
    root = tmp_path / "lake"
    lake = open_lake(LakeFields(lake_uri=str(root)))
    # written with tables off, as before them: two partitions, the newest flush of
    # partition 1 interrupted (its bars_1m file never written)
    feeds = {}
    for partition in (0, 1):
        feed = Feed(root)
        feed.writer = LakeWriter(feed.lake, "topic", LakeOptions(roll_rows=10**9, table=False))
        feed.processor = PartitionProcessor(partition, FeatureParams(), 4096)
        feed.sink = LakeSink(
            feed.writer, lambda p, f=feed: f.processor.state.to_json(f.sink.buffers[p].next_offset)
        )
        feed.sink.open_partition(partition, 0)
        feeds[partition] = feed
    symbols = {0: ["AA", "BB"], 1: ["CC", "DD"]}
    for partition, feed in feeds.items():
        ticks = tick_stream(symbols[partition], 300, seed=partition, t0_ns=DAY0_NS, step_ns=10**9)
        for i in range(3):
            recs = [
                Rec(feed.offset + j, k, v, h)
                for j, (k, v, h) in enumerate(tick_messages(ticks[i * 100 : (i + 1) * 100]))
            ]
            for rec in recs:
                rec.partition = partition
            feed.offset += len(recs)
            feed.sink.add(feed.processor.process(recs, 1))
            await feed.sink.write(feed.sink.take(partition))  # type: ignore[arg-type]
    interrupted = sorted((root / "bars_1m").glob("*/p0001-00000000000000000200-*.parquet"))
    assert len(interrupted) == 1
    interrupted[0].unlink()
    assert not (root / "ticks" / "_delta_log").exists()

    added = maintenance.adopt(lake, "topic")

    assert added == {"ticks": 5, "bars_1s": 5, "bars_1m": 5}  # 3 + 2 flushes each
    table = DeltaTable(str(root / "ticks"))
    assert table.transaction_version("ticklake/topic/p0000") == 300
    assert table.transaction_version("ticklake/topic/p0001") == 200
    rows = table_rows(root)
    assert rows.num_rows == 500 and max(identities(rows).values()) == 1
    assert not any("p0001-00000000000000000200" in f for f in files_of(root, day(0)))
    # nothing twice on a second run
    assert maintenance.adopt(lake, "topic") == {"ticks": 0, "bars_1s": 0, "bars_1m": 0}
    # and the command finds the topic itself
    done = run_cli(root, "adopt")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ticks": 0, "bars_1s": 0, "bars_1m": 0}
