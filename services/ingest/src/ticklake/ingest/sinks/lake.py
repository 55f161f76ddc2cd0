"""The Parquet lake sink: exactly-once files named by Kafka partition and offsets.

A flush of partition ``p`` covers the records ``[first_offset, next_offset)``
consumed since the previous flush. It is written in this order, and Kafka's
offset is committed only after the table commits (step 3)::

    1. _state/{topic}/p{p:04d}-{next_offset:020d}.json   the checkpoint: the
       partition's feature state after the flush, and the list of data files
       the flush is about to write (an intent record)
    2. ticks/date=D/p{p:04d}-{first:020d}-{last:020d}.parquet    one per UTC day
       bars_1s/date=D/..., bars_1m/date=D/...                     of the flush
    3. one Delta commit per dataset adding its files, with next_offset as the
       commit's transaction version (:mod:`ticklake.ingest.sinks.lake_table`)
    4. commit next_offset to the consumer group

Every file is written to a temporary name, fsynced and renamed (local) or
uploaded in one request (S3), so a file either exists whole or not at all.

Recovery (:meth:`LakeWriter.recover`, when a replica is assigned ``p``): a
checkpoint above the committed offset whose files all exist is a complete
flush whose commit was lost, so its table commits are made if missing (rolled
forward) and processing resumes after it; one whose files do not all exist is
an interrupted flush (no table commit can name its files: step 3 follows every
file), so its files and temporaries are deleted and the records are processed
again. Processing then continues from the chosen checkpoint's state. Since
the checkpoint chain is deterministic from there on, no (partition, offset)
ends up in two files, whatever moment the previous owner died at. See
``docs/ingest.md`` for the argument.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake.exceptions import DeltaError

from ticklake.core.lake_fs import Lake
from ticklake.core.lake_layout import BARS_DATASETS, TICKS_DATASET, LakeFile, utc_date
from ticklake.core.lake_table import STATS_COLUMNS, file_stats
from ticklake.ingest import arrow_arrays
from ticklake.ingest.bars import BAR_FILE_SCHEMA, BAR_INTERVALS_NS, compute_bars
from ticklake.ingest.features import DAY_NS
from ticklake.ingest.partition import TICK_FILE_SCHEMA, ProcessedBatch, to_record_batch
from ticklake.ingest.sinks.lake_table import LakeTables, TableFile

log = logging.getLogger(__name__)

STATE_DIR: Final = "_state"
COMPACT_EVERY: Final = 64
"""Pending column chunks of a partition concatenated into one every this many."""
CHECKPOINT_FORMAT: Final = 1


class LakeWriteError(RuntimeError):
    """A lake write failed (disk full, permissions, S3 down). Retry later; commit nothing."""


@dataclass(frozen=True, slots=True)
class LakeOptions:
    roll_rows: int = 250_000
    roll_bytes: int = 64 * 1024 * 1024
    roll_seconds: float = 30.0
    roll_idle_seconds: float = 1.0
    roll_idle_min_rows: int = 10_000
    buffer_max_bytes: int = 64 * 1024 * 1024
    row_group_rows: int = 256_000
    zstd_level: int = 3
    table: bool = True
    """Add every flush's files to the datasets' Delta tables (``TICKLAKE_LAKE_TABLE``)."""


@dataclass(slots=True)
class FlushJob:
    """One partition's records ``[first_offset, next_offset)`` ready to be written.

    The rows are either an Arrow ``table`` or, from :class:`PartitionBuffer`,
    numpy column chunks (``parts``) turned into a table in the writer thread.
    """

    partition: int
    first_offset: int
    next_offset: int
    table: pa.Table | None
    state: bytes
    """:meth:`PartitionState.to_json` after the last record of the flush."""
    parts: list[dict[str, np.ndarray]] = field(default_factory=list)
    """Pending rows as numpy column chunks (see :class:`PartitionBuffer`)."""
    symbol_names: pa.Array | None = None
    """The partition's symbols by code (``_codes`` in ``parts`` index it)."""
    abandoned: bool = False
    """Set when the partition left this replica mid-flush: the writer then writes no
    further file of the job, so none lands after the next owner's recovery."""

    @property
    def ticks(self) -> pa.Table:
        """The rows as an Arrow table (built once, in the writer thread)."""
        if self.table is None:
            if not self.parts or self.symbol_names is None:
                self.table = TICK_FILE_SCHEMA.empty_table()
            else:
                columns = _concat(self.parts)
                codes = columns.pop(CODES)
                batch = to_record_batch(columns, codes, self.symbol_names)
                self.table = pa.Table.from_batches([batch])
                # the chunks are copied into Arrow; the table stays for a retry
                self.parts = []
        return self.table


CODES: Final = "_codes"
"""Key of the symbol codes in a pending column chunk."""


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return dict(parts[0])
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


@dataclass(frozen=True, slots=True)
class WrittenFile:
    dataset: str
    relative_path: str
    rows: int
    bytes: int
    stats: str = ""
    """Delta statistics JSON of the file (for its table commit)."""

    def table_file(self) -> TableFile:
        return _table_file(self.relative_path, self.bytes, self.stats)


def _table_file(relative_path: str, size: int, stats: str) -> TableFile:
    """A lake file (``dataset/date=D/name``) as its table's add: path below the dataset."""
    dataset, folder, name = relative_path.split("/")
    return TableFile(dataset, folder.split("=", 1)[1], f"{folder}/{name}", size, stats)


@dataclass(frozen=True, slots=True)
class Recovery:
    """Where a newly assigned partition resumes and with which state."""

    resume_offset: int | None
    """Offset to seek to; ``None``: Kafka's committed offset (or the log start)."""
    state: bytes | None
    """The state at ``resume_offset`` (or at the committed offset); ``None``: fresh."""
    deleted: list[str] = field(default_factory=list)


def checkpoint_name(partition: int, next_offset: int) -> str:
    return f"p{partition:04d}-{next_offset:020d}.json"


def _parse_checkpoint_name(name: str) -> tuple[int, int] | None:
    if not (name.startswith("p") and name.endswith(".json") and len(name) == 31):
        return None
    try:
        return int(name[1:5]), int(name[6:26])
    except ValueError:
        return None


class LakeWriter:
    """Blocking lake I/O for one topic; every method is safe to run in a worker thread."""

    def __init__(
        self,
        lake: Lake,
        topic: str,
        options: LakeOptions,
        on_table_commit: Callable[[str, float], None] | None = None,
    ) -> None:
        self.lake = lake
        self.topic = topic
        self.options = options
        self._state_dir = f"{STATE_DIR}/{topic}"
        self.tables: LakeTables | None = None
        if options.table:
            schemas = {TICKS_DATASET: TICK_FILE_SCHEMA}
            schemas.update({dataset: BAR_FILE_SCHEMA for dataset in BARS_DATASETS.values()})
            self.tables = LakeTables(lake, topic, schemas, on_table_commit)

    # --- paths and raw I/O ----------------------------------------------------------

    def _put(self, relative: str, data: bytes) -> None:
        put_object(self.lake, relative, data)

    def _exists(self, relative: str) -> bool:
        info = self.lake.fs.get_file_info(self.lake.path(relative))
        return bool(info.type == pafs.FileType.File)

    def _delete(self, relative: str) -> bool:
        try:
            self.lake.fs.delete_file(self.lake.path(relative))
        except FileNotFoundError:
            return False
        except OSError as e:
            if self._exists(relative):
                raise LakeWriteError(f"cannot delete {relative}: {e}") from e
            return False
        return True

    def _read(self, relative: str) -> bytes:
        with self.lake.fs.open_input_stream(self.lake.path(relative)) as f:
            return bytes(f.read())

    def _list(self, relative_dir: str) -> list[str]:
        selector = pafs.FileSelector(self.lake.path(relative_dir), allow_not_found=True)
        return [info.base_name for info in self.lake.fs.get_file_info(selector)]

    # --- writing ------------------------------------------------------------------------

    def plan(self, job: FlushJob) -> list[tuple[LakeFile, pa.Table]]:
        """The files a flush writes: per UTC day, its ticks and its bars."""
        if job.ticks.num_rows == 0:
            return []
        ticks = job.ticks.sort_by([("symbol", "ascending"), ("kafka_offset", "ascending")])
        ts = arrow_arrays.to_numpy(ticks.column("ts_ns"))
        days = ts // DAY_NS
        planned: list[tuple[LakeFile, pa.Table]] = []
        last_offset = job.next_offset - 1
        for day in np.unique(days).tolist():
            date = utc_date(day * DAY_NS)
            part = (
                ticks.filter(arrow_arrays.booleans(days == day))
                if len(np.unique(days)) > 1
                else ticks
            )
            planned.append(
                (LakeFile(TICKS_DATASET, date, job.partition, job.first_offset, last_offset), part)
            )
            for interval, dataset in BARS_DATASETS.items():
                bars = compute_bars(
                    part.column("symbol"),
                    arrow_arrays.to_numpy(part.column("ts_ns")),
                    arrow_arrays.to_numpy(part.column("price")),
                    arrow_arrays.to_numpy(part.column("size")),
                    arrow_arrays.to_numpy(part.column("kafka_offset")),
                    job.partition,
                    BAR_INTERVALS_NS[interval],
                )
                planned.append(
                    (LakeFile(dataset, date, job.partition, job.first_offset, last_offset), bars)
                )
        return planned

    def _parquet_bytes(self, table: pa.Table, lake_file: LakeFile, job: FlushJob) -> bytes:
        metadata = {
            b"ticklake.topic": self.topic.encode(),
            b"ticklake.partition": str(job.partition).encode(),
            b"ticklake.first_offset": str(job.first_offset).encode(),
            b"ticklake.next_offset": str(job.next_offset).encode(),
        }
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
        sink = pa.BufferOutputStream()
        pq.write_table(
            table,
            sink,
            compression="zstd",
            compression_level=self.options.zstd_level,
            row_group_size=self.options.row_group_rows,
            use_dictionary=["symbol", "exchange"] if lake_file.dataset == TICKS_DATASET else True,
            write_statistics=True,
        )
        return bytes(sink.getvalue())

    def write(self, job: FlushJob) -> list[WrittenFile]:
        """Checkpoint (intent) first, then the data files. Raises :class:`LakeWriteError`."""
        try:
            planned = self.plan(job)
            checkpoint = orjson.dumps(
                {
                    "format": CHECKPOINT_FORMAT,
                    "topic": self.topic,
                    "partition": job.partition,
                    "first_offset": job.first_offset,
                    "next_offset": job.next_offset,
                    "files": [f.relative_path() for f, _ in planned],
                    "written_at_ns": time.time_ns(),
                    "state": orjson.Fragment(job.state),
                }
            )
            _refuse_abandoned(job)
            self._put(
                f"{self._state_dir}/{checkpoint_name(job.partition, job.next_offset)}", checkpoint
            )
            written: list[WrittenFile] = []
            for lake_file, table in planned:
                data = self._parquet_bytes(table, lake_file, job)
                _refuse_abandoned(job)
                self._put(lake_file.relative_path(), data)
                stats = file_stats(table) if self.tables is not None else ""
                written.append(
                    WrittenFile(
                        lake_file.dataset,
                        lake_file.relative_path(),
                        table.num_rows,
                        len(data),
                        stats,
                    )
                )
            if self.tables is not None and written:
                _refuse_abandoned(job)
                self.tables.commit(
                    job.partition, job.next_offset, [w.table_file() for w in written]
                )
            return written
        except LakeWriteError:
            raise
        except (OSError, pa.ArrowException, DeltaError) as e:
            raise LakeWriteError(
                f"writing partition {job.partition} offsets "
                f"[{job.first_offset}, {job.next_offset}) to {self.lake.uri}: {e}"
            ) from e

    # --- recovery -----------------------------------------------------------------------

    def checkpoints(self, partition: int) -> list[int]:
        """The ``next_offset`` of every checkpoint of ``partition``, ascending."""
        found = []
        for name in self._list(self._state_dir):
            parsed = _parse_checkpoint_name(name)
            if parsed is not None and parsed[0] == partition:
                found.append(parsed[1])
        return sorted(found)

    def checkpointed_partitions(self) -> list[int]:
        """The partitions that have checkpoints, ascending."""
        found = {p[0] for p in map(_parse_checkpoint_name, self._list(self._state_dir)) if p}
        return sorted(found)

    def load_checkpoint(self, partition: int, next_offset: int) -> dict[str, object]:
        doc: dict[str, object] = orjson.loads(
            self._read(f"{self._state_dir}/{checkpoint_name(partition, next_offset)}")
        )
        return doc

    def _remove_temporaries(self, relative_dir: str, partition: int) -> list[str]:
        prefix = f".p{partition:04d}-"
        removed = []
        for name in self._list(relative_dir):
            if name.startswith(prefix) and name.endswith(".tmp"):
                if self._delete(f"{relative_dir}/{name}"):
                    removed.append(f"{relative_dir}/{name}")
        return removed

    def recover(self, partition: int, committed: int | None) -> Recovery:
        """Clean up after the previous owner of ``partition`` and find where to resume."""
        try:
            return self._recover(partition, committed)
        except (OSError, pa.ArrowException, ValueError, DeltaError) as e:
            raise LakeWriteError(f"recovering partition {partition} in {self.lake.uri}: {e}") from e

    def _recover(self, partition: int, committed: int | None) -> Recovery:
        deleted = self._remove_temporaries(self._state_dir, partition)
        offsets = self.checkpoints(partition)
        floor = -1 if committed is None else committed
        for next_offset in reversed([o for o in offsets if o > floor]):
            doc = self.load_checkpoint(partition, next_offset)
            files = [str(f) for f in doc.get("files", [])]  # type: ignore[attr-defined]
            if all(self._exists(f) for f in files):
                rolled = self._roll_forward(partition, next_offset, files)
                log.info(
                    "resuming after a complete flush whose commit was lost",
                    extra={
                        "partition": partition,
                        "next_offset": next_offset,
                        "table_commits_made": rolled,
                    },
                )
                return Recovery(next_offset, orjson.dumps(doc["state"]), deleted)
            dirs = set()
            for f in files:
                if self._delete(f):
                    deleted.append(f)
                dirs.add(f.rsplit("/", 1)[0])
            for d in sorted(dirs):
                deleted.extend(self._remove_temporaries(d, partition))
            self._delete(f"{self._state_dir}/{checkpoint_name(partition, next_offset)}")
            deleted.append(f"{self._state_dir}/{checkpoint_name(partition, next_offset)}")
            log.warning(
                "removed an interrupted flush",
                extra={"partition": partition, "next_offset": next_offset, "files": files},
            )
        if committed is not None and committed in offsets:
            return Recovery(
                None, orjson.dumps(self.load_checkpoint(partition, committed)["state"]), deleted
            )
        if committed is not None and committed > 0:
            log.warning(
                "no checkpoint at the committed offset: features restart from empty state",
                extra={"partition": partition, "committed": committed},
            )
        return Recovery(None, None, deleted)

    def _roll_forward(self, partition: int, next_offset: int, files: list[str]) -> list[str]:
        """Make the table commits of a complete flush that the previous owner did not
        reach (skipped per dataset where the table holds the offset already)."""
        if self.tables is None or not files:
            return []
        return self.tables.commit(
            partition, next_offset, [self.table_file_on_disk(f) for f in files]
        )

    def table_file_on_disk(self, relative: str) -> TableFile:
        """A data file as its table add: its size and statistics from the file itself."""
        path = self.lake.path(relative)
        size = self.lake.fs.get_file_info(path).size
        with self.lake.fs.open_input_file(path) as f:
            parquet = pq.ParquetFile(f)
            columns = [c for c in STATS_COLUMNS if c in parquet.schema_arrow.names]
            stats = file_stats(parquet.read(columns=columns))
        return _table_file(relative, int(size or 0), stats)

    def prune(self, partition: int, below: int, keep: int = 2) -> None:
        """Delete checkpoints of ``partition`` older than ``below`` (keeping ``keep``)."""
        older = [o for o in self.checkpoints(partition) if o < below]
        for next_offset in older[: max(0, len(older) - keep)]:
            self._delete(f"{self._state_dir}/{checkpoint_name(partition, next_offset)}")

    def probe(self) -> None:
        """Write and delete a small file: raises :class:`LakeWriteError` if not writable."""
        name = f"{self._state_dir}/.probe-{uuid.uuid4().hex}"
        try:
            self._put(name, b"ok")
            self._delete(name)
        except OSError as e:
            raise LakeWriteError(f"lake {self.lake.uri} is not writable: {e}") from e


def put_object(lake: Lake, relative: str, data: bytes) -> None:
    """Write one lake file whole or not at all: locally a temporary name, fsync and
    rename; on S3 one upload (with the lake's server-side encryption, if any)."""
    path = lake.path(relative)
    if lake.is_local:
        _atomic_write_local(path, data)
    elif lake.encrypted_put is not None:
        lake.encrypted_put(path, data)
    else:
        with lake.fs.open_output_stream(path) as out:
            out.write(data)


def _refuse_abandoned(job: FlushJob) -> None:
    if job.abandoned:
        raise LakeWriteError(
            f"flush of partition {job.partition} [{job.first_offset}, {job.next_offset}) "
            "abandoned: the partition moved to another replica"
        )


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write_local(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, exist_ok=True)
        _fsync_dir(os.path.dirname(directory))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


# --- per-partition buffering -------------------------------------------------------------


class PartitionBuffer:
    """Rows of one partition consumed since its last flush.

    Kept as numpy column chunks, not Arrow: a low-latency feed makes many tiny
    batches, and Arrow arrays cost far more per batch than their data. Every
    :data:`COMPACT_EVERY` chunks are concatenated into one; Arrow is built once
    per flush, in the writer thread.
    """

    def __init__(self, partition: int, next_offset: int) -> None:
        self.partition = partition
        self.first_offset = next_offset
        self.next_offset = next_offset
        self.parts: list[dict[str, np.ndarray]] = []
        self.small: list[dict[str, np.ndarray]] = []
        self.symbol_names: pa.Array | None = None
        self.rows = 0
        self.nbytes = 0
        self.opened_at: float | None = None
        self.last_record_at: float | None = None
        self.busy = False
        """The last file rolled held at least ``roll_idle_min_rows`` rows: the partition
        was draining or in a burst, so its remainder rolls when idle, whatever its size."""

    @property
    def has_records(self) -> bool:
        return self.next_offset > self.first_offset

    def add(self, batch: ProcessedBatch) -> None:
        if batch.last_offset < 0:
            return
        if not self.has_records:
            self.first_offset = batch.first_offset
            self.opened_at = time.monotonic()
        self.last_record_at = time.monotonic()
        self.next_offset = batch.next_offset
        n = batch.num_rows
        if n:
            part = {**batch.lake_columns, CODES: batch.codes}
            self.small.append(part)
            self.symbol_names = batch.symbol_names  # codes only grow: the newest covers all
            self.rows += n
            # object columns hold pointers to shared strings; count them as ~16 bytes a row
            self.nbytes += sum(v.nbytes for v in part.values()) + 16 * n
            if len(self.small) >= COMPACT_EVERY:
                self.parts.append(_concat(self.small))
                self.small = []

    def due(self, now: float, options: LakeOptions) -> bool:
        if not self.has_records:
            return False
        if self.rows >= options.roll_rows or self.nbytes >= options.roll_bytes:
            return True
        # A burst or a backlog drain that ended: nothing new for a while, and enough rows
        # for a file worth writing now rather than after the age limit, or the remainder
        # of a drain (the previous file was that big). A quiet feed that trickles in never
        # reaches the row floor, so it still rolls by age, not a file per tick.
        if (
            (self.rows >= options.roll_idle_min_rows or self.busy)
            and self.last_record_at is not None
            and now - self.last_record_at >= options.roll_idle_seconds
        ):
            return True
        return self.opened_at is not None and now - self.opened_at >= options.roll_seconds

    def take(self, state: bytes, options: LakeOptions) -> FlushJob:
        job = FlushJob(
            self.partition,
            self.first_offset,
            self.next_offset,
            None,
            state,
            parts=self.parts + self.small,
            symbol_names=self.symbol_names,
        )
        self.busy = self.rows >= options.roll_idle_min_rows
        self.first_offset = self.next_offset
        self.parts = []
        self.small = []
        self.rows = 0
        self.nbytes = 0
        self.opened_at = None
        self.last_record_at = None
        return job


class LakeSink:
    """Buffers each partition's rows and writes flush jobs through a :class:`LakeWriter`.

    ``state_of(partition)`` returns the partition's serialised state *now*,
    which is the state after the last added record: the buffer is taken and
    the state captured in the same synchronous step.
    """

    def __init__(
        self,
        writer: LakeWriter,
        state_of: Callable[[int], bytes],
        on_written: Callable[[list[WrittenFile]], None] | None = None,
    ) -> None:
        self.writer = writer
        self.options = writer.options
        self._state_of = state_of
        self._on_written = on_written
        self.buffers: dict[int, PartitionBuffer] = {}
        # One writer thread: flushes of different partitions queue instead of holding
        # several sorted copies and Parquet buffers in memory at once.
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "lake-writer")

    def open_partition(self, partition: int, next_offset: int) -> None:
        self.buffers[partition] = PartitionBuffer(partition, next_offset)

    def close_partition(self, partition: int) -> None:
        self.buffers.pop(partition, None)

    def add(self, batch: ProcessedBatch) -> None:
        buffer = self.buffers.get(batch.partition)
        if buffer is not None:
            buffer.add(batch)

    def pending_rows(self, partition: int) -> int:
        buffer = self.buffers.get(partition)
        return buffer.rows if buffer else 0

    def due(self, now: float | None = None) -> list[int]:
        """Partitions to roll: by their own rows/bytes/age, and while all buffers together
        exceed ``buffer_max_bytes``, the fullest ones too."""
        now = time.monotonic() if now is None else now
        due = [p for p, b in self.buffers.items() if b.due(now, self.options)]
        total = sum(b.nbytes for p, b in self.buffers.items() if p not in due)
        if total > self.options.buffer_max_bytes:
            rest = sorted(
                (b for p, b in self.buffers.items() if p not in due and b.has_records),
                key=lambda b: b.nbytes,
                reverse=True,
            )
            for buffer in rest:
                if total <= self.options.buffer_max_bytes:
                    break
                due.append(buffer.partition)
                total -= buffer.nbytes
        return due

    def take(self, partition: int) -> FlushJob | None:
        buffer = self.buffers.get(partition)
        if buffer is None or not buffer.has_records:
            return None
        return buffer.take(self._state_of(partition), self.options)

    async def write(self, job: FlushJob) -> list[WrittenFile]:
        loop = asyncio.get_running_loop()
        written = await loop.run_in_executor(self._executor, self.writer.write, job)
        if self._on_written is not None:
            self._on_written(written)
        return written

    async def settle(self, timeout_s: float) -> bool:
        """Wait until the writer thread has finished what it is doing (True), or timeout."""
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(self._executor, lambda: None), timeout_s)
        except TimeoutError:
            return False
        return True
