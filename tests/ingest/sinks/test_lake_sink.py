"""The lake sink: atomic deterministic files, checkpoints, recovery after a crash."""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec
import orjson
import pyarrow.parquet as pq
import pytest
from ingest_kit import Rec, records, tick_messages, tick_stream

from ticklake.core.lake_fs import open_lake
from ticklake.core.settings import LakeFields
from ticklake.ingest.features import FeatureParams
from ticklake.ingest.partition import TICK_FILE_SCHEMA, PartitionProcessor
from ticklake.ingest.sinks.lake import (
    LakeOptions,
    LakeSink,
    LakeWriteError,
    LakeWriter,
    PartitionBuffer,
    checkpoint_name,
)
from ticklake.ingest.state import PartitionState


def make(tmp_path: Path) -> tuple[LakeWriter, LakeSink, PartitionProcessor]:
    lake = open_lake(LakeFields(lake_uri=str(tmp_path / "lake")))
    writer = LakeWriter(lake, "topic", LakeOptions(roll_rows=100, roll_seconds=60))
    processor = PartitionProcessor(0, FeatureParams(), 4096)
    sink = LakeSink(writer, lambda p: processor.state.to_json(sink.buffers[p].next_offset))
    sink.open_partition(0, 0)
    return writer, sink, processor


def files(root: Path) -> list[str]:
    """Data files and checkpoints (the tables' logs: ``test_lake_table.py``)."""
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "_delta_log" not in p.parts
    )


async def test_a_flush_writes_a_checkpoint_then_files_named_by_offsets(tmp_path: Path) -> None:
    _, sink, processor = make(tmp_path)
    sink.add(processor.process(records(150), 1))
    assert sink.due() == [0]
    job = sink.take(0)
    assert job is not None and (job.first_offset, job.next_offset) == (0, 150)
    written = await sink.write(job)
    root = tmp_path / "lake"
    assert files(root) == [
        "_state/topic/" + checkpoint_name(0, 150),
        "bars_1m/date=2025-01-02/p0000-00000000000000000000-00000000000000000149.parquet",
        "bars_1s/date=2025-01-02/p0000-00000000000000000000-00000000000000000149.parquet",
        "ticks/date=2025-01-02/p0000-00000000000000000000-00000000000000000149.parquet",
    ]
    ticks = pq.read_table(root / written[0].relative_path)
    assert ticks.num_rows == 150
    assert ticks.schema.remove_metadata() == TICK_FILE_SCHEMA
    # sorted by symbol then offset, so row-group statistics prune by symbol
    assert ticks.column("symbol").to_pylist() == sorted(ticks.column("symbol").to_pylist())
    meta = pq.read_metadata(root / written[0].relative_path)
    assert meta.row_group(0).column(0).compression == "ZSTD"
    doc = orjson.loads((root / "_state/topic" / checkpoint_name(0, 150)).read_bytes())
    assert doc["files"] == [w.relative_path for w in written]
    assert doc["state"]["symbols"] == ["AA", "BB"] or doc["state"]["symbols"] == ["BB", "AA"]


async def test_replaying_the_same_records_rewrites_the_same_files(tmp_path: Path) -> None:
    _, sink, processor = make(tmp_path)
    sink.add(processor.process(records(120), 1))
    await sink.write(sink.take(0))  # type: ignore[arg-type]
    before = files(tmp_path / "lake")
    # a second replica replaying from offset 0 with fresh state
    _, sink2, processor2 = make(tmp_path)
    sink2.add(processor2.process(records(120), 2))
    await sink2.write(sink2.take(0))  # type: ignore[arg-type]
    assert files(tmp_path / "lake") == before


async def test_recovery_removes_an_interrupted_flush_and_its_temporaries(tmp_path: Path) -> None:
    writer, sink, processor = make(tmp_path)
    sink.add(processor.process(records(100), 1))
    first = sink.take(0)
    await sink.write(first)  # type: ignore[arg-type]  # committed at 100
    sink.add(processor.process(records(100, start=100), 1))
    job = sink.take(0)
    assert job is not None
    written = await sink.write(job)
    # simulate a crash after the checkpoint and the ticks file, before the bars:
    root = tmp_path / "lake"
    for w in written[1:]:
        os.unlink(root / w.relative_path)
    temp = root / written[1].relative_path
    temp = temp.with_name(f".{temp.name}.abc.tmp")
    temp.write_bytes(b"partial")

    recovery = writer.recover(0, committed=100)
    assert recovery.resume_offset is None  # back to the committed offset
    assert recovery.state is not None
    state, _ = PartitionState.from_json(recovery.state)
    assert sorted(state.symbols) == ["AA", "BB"]
    assert not (root / written[0].relative_path).exists()
    assert not temp.exists()
    assert writer.checkpoints(0) == [100]


async def test_recovery_resumes_after_a_complete_flush_whose_commit_was_lost(
    tmp_path: Path,
) -> None:
    writer, sink, processor = make(tmp_path)
    sink.add(processor.process(records(100), 1))
    await sink.write(sink.take(0))  # type: ignore[arg-type]
    sink.add(processor.process(records(50, start=100), 1))
    await sink.write(sink.take(0))  # type: ignore[arg-type]
    recovery = writer.recover(0, committed=100)
    assert recovery.resume_offset == 150
    assert recovery.deleted == []


async def test_without_a_commit_the_newest_complete_checkpoint_is_the_position(
    tmp_path: Path,
) -> None:
    writer, sink, processor = make(tmp_path)
    sink.add(processor.process(records(100), 1))
    await sink.write(sink.take(0))  # type: ignore[arg-type]
    assert writer.recover(0, committed=None).resume_offset == 100
    assert writer.recover(1, committed=None).state is None


async def test_old_checkpoints_are_pruned_but_the_recent_ones_kept(tmp_path: Path) -> None:
    writer, sink, processor = make(tmp_path)
    for i in range(5):
        sink.add(processor.process(records(10, start=10 * i), 1))
        await sink.write(sink.take(0))  # type: ignore[arg-type]
    writer.prune(0, below=50, keep=2)
    assert writer.checkpoints(0) == [30, 40, 50]


async def test_a_flush_over_midnight_writes_one_file_per_utc_day(tmp_path: Path) -> None:
    _, sink, processor = make(tmp_path)
    day_ns = 86_400_000_000_000
    ticks = tick_stream(["AA"], 10, t0_ns=20_000 * day_ns - 5, step_ns=1)
    recs = [Rec(i, k, v, h) for i, (k, v, h) in enumerate(tick_messages(ticks))]
    sink.add(processor.process(recs, 1))
    written = await sink.write(sink.take(0))  # type: ignore[arg-type]
    ticks_files = [w for w in written if w.dataset == "ticks"]
    assert [(w.relative_path.split("/")[1], w.rows) for w in ticks_files] == [
        ("date=2024-10-03", 5),
        ("date=2024-10-04", 5),
    ]


async def test_an_unwritable_lake_raises_a_clear_error_and_the_job_can_be_retried(
    tmp_path: Path,
) -> None:
    _, sink, processor = make(tmp_path)
    blocker = tmp_path / "lake" / "ticks"
    blocker.write_bytes(b"not a directory")  # fails for root too, unlike chmod
    sink.add(processor.process(records(10), 1))
    job = sink.take(0)
    assert job is not None
    with pytest.raises(LakeWriteError, match=r"offsets \[0, 10\)"):
        await sink.write(job)
    blocker.unlink()
    written = await sink.write(job)
    assert sum(w.rows for w in written if w.dataset == "ticks") == 10


async def test_late_ticks_are_stored_flagged_and_do_not_rewind_the_features(
    tmp_path: Path,
) -> None:
    stream = tick_stream(["AA"], 6)
    # the 4th tick arrives with an event time before the 3rd's: late
    late_one = msgspec.structs.replace(stream[3], ts_ns=stream[1].ts_ns)
    arrived = [*stream[:3], late_one, *stream[4:]]
    msgs = tick_messages(arrived)
    recs = [Rec(i, k, v, h) for i, (k, v, h) in enumerate(msgs)]
    _, sink, processor = make(tmp_path)
    batch = processor.process(recs, 1)
    assert batch.late == 1
    sink.add(batch)
    written = await sink.write(sink.take(0))  # type: ignore[arg-type]
    ticks = pq.read_table(tmp_path / "lake" / written[0].relative_path).to_pylist()
    assert [t["late"] for t in ticks] == [False, False, False, True, False, False]
    assert ticks[3]["prev_price"] is None and ticks[3]["ema_fast"] is None
    # the next on-time tick continues from the last on-time one (the 3rd)
    assert ticks[4]["prev_price"] == arrived[2].price
    assert ticks[3]["ticks_day"] == 4  # it counts in the day: that volume happened


@pytest.mark.parametrize(
    ("rows", "age_s", "idle_s", "due"),
    [
        (50, 0.5, 0.5, False),  # filling, recent
        (100, 0.5, 0.0, True),  # the row limit
        (50, 60.0, 0.0, True),  # the age limit, records still arriving
        (20, 5.0, 2.0, True),  # idle with at least the floor: a drain ended
        (19, 5.0, 2.0, False),  # idle below the floor: a trickle waits for the age limit
        (20, 5.0, 0.5, False),  # not idle long enough
    ],
)
def test_a_buffer_rolls_by_rows_age_or_idleness_above_a_row_floor(
    tmp_path: Path, rows: int, age_s: float, idle_s: float, due: bool
) -> None:
    options = LakeOptions(roll_rows=100, roll_seconds=60, roll_idle_seconds=1.0,
                          roll_idle_min_rows=20)  # fmt: skip
    processor = PartitionProcessor(0, FeatureParams(), 4096)
    buffer = PartitionBuffer(0, 0)
    buffer.add(processor.process(records(rows), 1))
    assert buffer.rows == rows
    assert buffer.opened_at is not None
    buffer.last_record_at = buffer.opened_at + age_s - idle_s
    assert buffer.due(buffer.opened_at + age_s, options) is due


def test_the_remainder_of_a_drain_rolls_when_idle_even_below_the_floor(tmp_path: Path) -> None:
    options = LakeOptions(roll_rows=100, roll_seconds=60, roll_idle_seconds=1.0,
                          roll_idle_min_rows=20)  # fmt: skip
    processor = PartitionProcessor(0, FeatureParams(), 4096)
    buffer = PartitionBuffer(0, 0)
    recs = records(110)
    buffer.add(processor.process(recs[:100], 1))
    assert buffer.due(time.monotonic(), options)  # the row limit
    buffer.take(b"{}", options)
    assert buffer.busy  # that file held at least the floor
    buffer.add(processor.process(recs[100:], 1))  # 10 rows: below the floor
    assert buffer.last_record_at is not None
    idle = buffer.last_record_at + 1.5
    assert buffer.due(idle, options)  # the drain's remainder does not wait 60 s
    buffer.take(b"{}", options)
    assert not buffer.busy  # a small file: the next remainder needs the floor again
