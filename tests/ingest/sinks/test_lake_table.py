"""The lake's Delta tables: one commit per dataset per flush, the Kafka offset as its
transaction version, never a file twice (replay, recovery, a racing replica), and
recovery at each crash point of a flush."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from ingest_kit import records

from ticklake.core.lake_fs import open_lake
from ticklake.core.lake_table import app_id, file_stats, has_table, table_schema
from ticklake.core.settings import LakeFields
from ticklake.ingest.bars import BAR_FILE_SCHEMA
from ticklake.ingest.features import FeatureParams
from ticklake.ingest.partition import TICK_FILE_SCHEMA, PartitionProcessor
from ticklake.ingest.sinks import lake_table
from ticklake.ingest.sinks.lake import LakeOptions, LakeSink, LakeWriteError, LakeWriter

DATASETS = ("ticks", "bars_1s", "bars_1m")


def make(root: Path, *, table: bool = True) -> tuple[LakeWriter, LakeSink, PartitionProcessor]:
    lake = open_lake(LakeFields(lake_uri=str(root)))
    writer = LakeWriter(lake, "topic", LakeOptions(roll_rows=100, roll_seconds=60, table=table))
    processor = PartitionProcessor(0, FeatureParams(), 4096)
    sink = LakeSink(writer, lambda p: processor.state.to_json(sink.buffers[p].next_offset))
    sink.open_partition(0, 0)
    return writer, sink, processor


async def flush(sink: LakeSink, processor: PartitionProcessor, n: int, start: int) -> list:  # type: ignore[type-arg]
    sink.add(processor.process(records(n, start=start), 1))
    job = sink.take(0)
    assert job is not None
    return await sink.write(job)


def table_files(root: Path, dataset: str) -> list[str]:
    uris = DeltaTable(str(root / dataset)).file_uris()
    return sorted(str(Path(u).relative_to(root)) for u in uris)


def disk_files(root: Path, dataset: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in (root / dataset).glob("date=*/*.parquet"))


def add_actions(root: Path, dataset: str) -> list[dict]:  # type: ignore[type-arg]
    return pa.table(DeltaTable(str(root / dataset)).get_add_actions(flatten=True)).to_pylist()


def held(root: Path, dataset: str, partition: int = 0) -> int | None:
    return DeltaTable(str(root / dataset)).transaction_version(app_id("topic", partition))


async def test_a_flush_adds_its_files_to_each_table_with_its_offset(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    _, sink, processor = make(root)
    written = await flush(sink, processor, 150, 0)
    for dataset in DATASETS:
        assert table_files(root, dataset) == disk_files(root, dataset)
        assert held(root, dataset) == 150
        table = DeltaTable(str(root / dataset))
        assert table.metadata().partition_columns == ["date"]
        assert table.version() == 1  # created, then one commit
    # the table's statistics are the file's: row count and the symbol/offset ranges
    ticks = next(w for w in written if w.dataset == "ticks")
    adds = add_actions(root, "ticks")
    assert [a["num_records"] for a in adds] == [150]
    assert adds[0]["size_bytes"] == (root / ticks.relative_path).stat().st_size
    assert adds[0]["min.kafka_offset"] == 0 and adds[0]["max.kafka_offset"] == 149
    assert adds[0]["partition.date"] == "2025-01-02"
    # a second flush: one more commit per table, the version moves to its offset
    await flush(sink, processor, 50, 150)
    for dataset in DATASETS:
        assert len(table_files(root, dataset)) == 2
        assert held(root, dataset) == 200


async def test_the_table_reads_back_every_row_once_through_two_readers(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    _, sink, processor = make(root)
    await flush(sink, processor, 120, 0)
    await flush(sink, processor, 80, 120)
    table = DeltaTable(str(root / "ticks"))
    by_arrow = table.to_pyarrow_dataset().to_table()
    assert by_arrow.num_rows == 200
    assert sorted(by_arrow.column("kafka_offset").to_pylist()) == list(range(200))
    assert set(by_arrow.column("date").to_pylist()) == {"2025-01-02"}
    count, distinct = (
        duckdb.connect()
        .execute(
            "select count(*), count(distinct kafka_offset) from read_parquet($files)",
            {"files": table.file_uris()},
        )
        .fetchone()
    ) or (None, None)
    assert (count, distinct) == (200, 200)


async def test_replaying_the_same_records_adds_nothing(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    _, sink, processor = make(root)
    await flush(sink, processor, 120, 0)
    versions = {d: DeltaTable(str(root / d)).version() for d in DATASETS}
    # a second replica replaying from offset 0 with fresh state
    _, sink2, processor2 = make(root)
    await flush(sink2, processor2, 120, 0)
    for dataset in DATASETS:
        assert DeltaTable(str(root / dataset)).version() == versions[dataset]
        assert table_files(root, dataset) == disk_files(root, dataset)


async def test_two_writers_racing_on_one_offset_add_the_file_once(tmp_path: Path) -> None:
    """A zombie replica and the new owner both commit the same flush: delta-rs refuses
    the second (same transaction id since its snapshot); its retry finds the offset held."""
    root = tmp_path / "lake"
    _, sink_a, processor_a = make(root)
    writer_b, sink_b, processor_b = make(root)
    await flush(sink_a, processor_a, 100, 0)
    await flush(sink_b, processor_b, 100, 0)  # b writes the same flush after a: skipped
    for dataset in DATASETS:
        assert table_files(root, dataset) == disk_files(root, dataset)
        assert len(table_files(root, dataset)) == 1
    # b's commit racing a's: b read its snapshot before a committed the same offset
    stale = DeltaTable(str(root / "ticks"))
    await flush(sink_a, processor_a, 10, 100)

    class RacingTables(lake_table.LakeTables):
        snapshots = 0

        def table(self, dataset: str) -> DeltaTable:
            self.snapshots += 1
            return stale if self.snapshots == 1 else super().table(dataset)

    racing = RacingTables(writer_b.lake, "topic", {"ticks": TICK_FILE_SCHEMA})
    file = lake_table.TableFile("ticks", "2025-01-02", "date=2025-01-02/x.parquet", 1, "{}")
    assert racing.commit(0, 110, [file]) == []  # refused, then found held on a fresh one
    assert racing.snapshots == 2
    assert not any(f.endswith("/x.parquet") for f in table_files(root, "ticks"))


async def test_crash_after_the_files_before_the_table_commit_is_rolled_forward(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lake"
    _, sink, processor = make(root)
    await flush(sink, processor, 100, 0)  # committed at 100
    real_commit = lake_table.LakeTables._commit_dataset

    def crash_after_ticks(self, dataset, partition, next_offset, files):  # type: ignore[no-untyped-def]
        if dataset != "ticks":
            raise OSError("killed between the ticks table commit and the bars ones")
        return real_commit(self, dataset, partition, next_offset, files)

    monkeypatch.setattr(lake_table.LakeTables, "_commit_dataset", crash_after_ticks)
    with pytest.raises(LakeWriteError, match="killed between"):
        await flush(sink, processor, 50, 100)
    monkeypatch.setattr(lake_table.LakeTables, "_commit_dataset", real_commit)
    assert held(root, "ticks") == 150 and held(root, "bars_1s") == 100

    # the next owner: the flush is complete on disk, so it is rolled forward, not redone
    new_writer, _, _ = make(root)
    recovery = new_writer.recover(0, committed=100)
    assert recovery.resume_offset == 150 and recovery.deleted == []
    for dataset in DATASETS:
        assert held(root, dataset) == 150
        assert table_files(root, dataset) == disk_files(root, dataset)


async def test_crash_before_any_table_commit_rolls_forward_every_dataset(tmp_path: Path) -> None:
    """Files written by a flush that never reached its table commits (here: a writer with
    tables off, as a kill between step 2 and 3 leaves it)."""
    root = tmp_path / "lake"
    _, sink, processor = make(root)
    await flush(sink, processor, 100, 0)
    _, bare_sink, bare_processor = make(root, table=False)
    bare_processor.state = processor.state
    await flush(bare_sink, bare_processor, 60, 100)
    assert held(root, "ticks") == 100
    assert len(disk_files(root, "ticks")) == 2 and len(table_files(root, "ticks")) == 1

    writer, _, _ = make(root)
    assert writer.recover(0, committed=100).resume_offset == 160
    for dataset in DATASETS:
        assert held(root, dataset) == 160
        assert table_files(root, dataset) == disk_files(root, dataset)
    adds = add_actions(root, "ticks")
    newest = max(adds, key=lambda a: a["max.kafka_offset"])
    assert (newest["num_records"], newest["min.kafka_offset"]) == (60, 100)


async def test_an_interrupted_flush_never_reaches_the_table(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    writer, sink, processor = make(root)
    await flush(sink, processor, 100, 0)
    _, bare_sink, bare_processor = make(root, table=False)
    written = await flush(bare_sink, bare_processor, 100, 100)
    os.unlink(root / written[-1].relative_path)  # the crash came before the last file
    recovery = writer.recover(0, committed=100)
    assert recovery.resume_offset is None
    for dataset in DATASETS:
        assert held(root, dataset) == 100
        assert table_files(root, dataset) == disk_files(root, dataset)
        assert len(table_files(root, dataset)) == 1


async def test_tables_off_writes_the_files_only(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    _, sink, processor = make(root, table=False)
    await flush(sink, processor, 100, 0)
    lake = open_lake(LakeFields(lake_uri=str(root)))
    assert not any(has_table(lake, d) for d in DATASETS)
    assert len(disk_files(root, "ticks")) == 1


async def test_an_unwritable_table_log_fails_the_flush_and_a_retry_completes_it(
    tmp_path: Path,
) -> None:
    root = tmp_path / "lake"
    _, sink, processor = make(root)
    await flush(sink, processor, 100, 0)
    log_dir = root / "bars_1m" / "_delta_log"
    moved = log_dir.with_name("log-aside")
    log_dir.rename(moved)
    log_dir.write_bytes(b"not a directory")
    sink.add(processor.process(records(30, start=100), 1))
    job = sink.take(0)
    assert job is not None
    with pytest.raises(LakeWriteError, match=r"offsets \[100, 130\)"):
        await sink.write(job)
    log_dir.unlink()
    moved.rename(log_dir)
    await sink.write(job)
    for dataset in DATASETS:
        assert held(root, dataset) == 130
        assert table_files(root, dataset) == disk_files(root, dataset)


def test_table_schema_is_the_file_schema_plus_the_date_partition() -> None:
    for schema in (TICK_FILE_SCHEMA, BAR_FILE_SCHEMA):
        with_date = table_schema(schema)
        assert with_date.names == [*schema.names, "date"]
        assert table_schema(with_date) == with_date


def test_file_stats_are_delta_statistics_of_the_chosen_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pq.write_table(TICK_FILE_SCHEMA.empty_table(), path)
    stats = json.loads(file_stats(pq.read_table(path)))
    assert stats == {
        "numRecords": 0,
        "minValues": {},
        "maxValues": {},
        "nullCount": {"symbol": 0, "ts_ns": 0, "kafka_partition": 0, "kafka_offset": 0},
    }
