"""Lake maintenance on the Delta tables: compaction of finished days, retention, vacuum.

Blocking functions over one lake (local or S3), run by ``ticklake-lake``
(:mod:`ticklake.ingest.lake_cli`) from a shell or the chart's CronJob, while ingest keeps
appending and the query API keeps reading:

* :func:`compact_day` rewrites one day of one dataset into few large files sorted by
  (symbol, time), and swaps them for the small ones in **one** table commit (removes and
  adds together). Readers of the table see the old files or the new ones, never both and
  never neither; the old files stay on disk (time travel, queries already under way)
  until :func:`vacuum`. Ingest's appends to that day (late ticks) are other files and
  commit freely beside it.
* :func:`expire` removes whole ``date`` partitions older than a dataset's retention from
  the table (files untouched until :func:`vacuum`).
* :func:`vacuum` deletes files the table removed longer ago than the retention, and log
  entries past the log retention (snapshot expiry).
* :func:`adopt` adds to the tables the complete flushes of a lake written before it had
  tables, so its history is read through them like the rest.

Two maintenance commits on one dataset at once would be unsafe (two compactions of the
same day would both add their rewrite). Every maintenance commit therefore carries the
dataset's maintenance transaction (:func:`maintenance_app_id`, version + 1), and delta-rs
refuses a commit whose transaction id another writer committed since the snapshot it was
built on: the second one fails with :class:`MaintenanceConflict`, and nothing of it is
visible. Ingest commits under per-partition ids, so it never conflicts with maintenance.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction, RemoveAction

from ticklake.core.lake_fs import Lake
from ticklake.core.lake_layout import (
    BARS_DATASETS,
    PARTITION_COLUMN,
    TICKS_DATASET,
    parse_file_name,
)
from ticklake.core.lake_table import (
    PARTITION_BY,
    STATS_COLUMNS,
    app_id,
    file_stats,
    partition_values,
    storage_options,
    table_uri,
)
from ticklake.ingest.sinks.lake import LakeOptions, LakeWriter, put_object
from ticklake.ingest.sinks.lake_table import TableFile

log = logging.getLogger(__name__)

DATASETS: Final = (TICKS_DATASET, *BARS_DATASETS.values())
SORT_KEYS: Final = {
    TICKS_DATASET: [("symbol", "ascending"), ("ts_ns", "ascending"), ("kafka_offset", "ascending")],
    **{
        d: [("symbol", "ascending"), ("start_ns", "ascending"), ("first_offset", "ascending")]
        for d in BARS_DATASETS.values()
    },
}
"""Row order of a compacted file: a symbol's rows together, in time order (offset breaks
ties), so a symbol and time filter prunes row groups by their statistics."""
COMPACTED_PREFIX: Final = "compacted-"
"""File names a compaction writes (ingest's own are ``p{partition}-...``)."""


class MaintenanceError(RuntimeError):
    """Maintenance could not be done; the table is as it was."""


class MaintenanceConflict(MaintenanceError):
    """Another maintenance commit on the dataset won; run again on the new snapshot."""


def maintenance_app_id(dataset: str) -> str:
    """The transaction id every maintenance commit on ``dataset`` carries."""
    return f"ticklake/maintenance/{dataset}"


@dataclass(frozen=True, slots=True)
class DayFile:
    path: str
    """Relative to the table root: ``date=D/name.parquet``."""
    size: int
    rows: int


@dataclass(frozen=True, slots=True)
class CompactionResult:
    dataset: str
    date: str
    files_before: int
    files_after: int
    rows: int
    seconds: float
    version: int | None
    """The table version of the compaction commit; None when there was nothing to do."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "date": self.date,
            "files_before": self.files_before,
            "files_after": self.files_after,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows / self.seconds) if self.seconds > 0 else None,
            "version": self.version,
        }


def open_table(lake: Lake, dataset: str) -> DeltaTable:
    if dataset not in DATASETS:
        raise MaintenanceError(f"unknown dataset {dataset!r}: one of {', '.join(DATASETS)}")
    options = storage_options(lake)
    uri = table_uri(lake, dataset)
    if not DeltaTable.is_deltatable(uri, options):
        raise MaintenanceError(f"{uri} has no Delta table (ingest creates it at its first flush)")
    return DeltaTable(uri, storage_options=options or None)


def day_files(table: DeltaTable) -> dict[str, list[DayFile]]:
    """The table's files by ``date`` partition (newest snapshot)."""
    adds = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    by_day: dict[str, list[DayFile]] = {}
    for add in adds:
        day = add[f"partition.{PARTITION_COLUMN}"]
        by_day.setdefault(day, []).append(
            DayFile(add["path"], int(add["size_bytes"]), int(add["num_records"] or 0))
        )
    return by_day


def finished_days(days: Sequence[str], today: date, settle_days: int) -> list[str]:
    """The days that ended at least ``settle_days`` whole days before ``today`` began
    (UTC): ingest no longer writes them except for the rare late tick, which lands in its
    own file beside the rewrite."""
    last = (today - timedelta(days=settle_days)).isoformat()
    return sorted(d for d in days if d < last)


def symbol_groups(counts: Sequence[tuple[str, int]], target_rows: int) -> list[list[str]]:
    """Consecutive symbols (in sorted order) grouped so each group but the last holds at
    least ``target_rows`` rows: each group is read, sorted and written on its own (one
    file, split only past twice the target), so memory is bounded by a group, and the
    files come out in symbol order."""
    groups: list[list[str]] = []
    current: list[str] = []
    rows = 0
    for symbol, n in sorted(counts):
        current.append(symbol)
        rows += n
        if rows >= target_rows:
            groups.append(current)
            current, rows = [], 0
    if current:
        groups.append(current)
    return groups


def compact_day(
    lake: Lake,
    dataset: str,
    day: str,
    *,
    target_rows: int = 1_000_000,
    zstd_level: int = 3,
    row_group_rows: int = 256_000,
    before_commit: Any = None,
) -> CompactionResult:
    """Rewrite ``dataset``'s files of ``day`` into files of about ``target_rows`` rows
    sorted by :data:`SORT_KEYS`, swapped in by one commit. ``before_commit`` (tests) runs
    after the new files are written and before the commit."""
    started = time.perf_counter()
    table = open_table(lake, dataset)
    guard = maintenance_app_id(dataset)
    held = table.transaction_version(guard) or 0
    old = day_files(table).get(day, [])
    if len(old) < 2:
        return CompactionResult(dataset, day, len(old), len(old), sum(f.rows for f in old),
                                time.perf_counter() - started, None)  # fmt: skip
    paths = [lake.path(f"{dataset}/{f.path}") for f in old]
    # the table's columns, not the first file's: a column is never dropped on the way
    columns = [f for f in pa.schema(table.schema().to_arrow()) if f.name != PARTITION_COLUMN]
    source = ds.dataset(paths, schema=pa.schema(columns), format="parquet", filesystem=lake.fs)
    counts = source.to_table(columns=["symbol"]).column("symbol").value_counts().to_pylist()
    groups = symbol_groups([(c["values"], c["counts"]) for c in counts], target_rows)
    run = uuid.uuid4().hex[:8]
    written: list[tuple[str, pa.Table, int]] = []
    rows = 0
    try:
        for group in groups:
            part = source.to_table(filter=pc.field("symbol").isin(group))
            part = part.sort_by(SORT_KEYS[dataset])
            for start in range(0, part.num_rows, target_rows * 2):
                chunk = part.slice(start, target_rows * 2)
                name = (
                    f"{PARTITION_COLUMN}={day}/{COMPACTED_PREFIX}{run}-{len(written):05d}.parquet"
                )
                data = _parquet_bytes(chunk, zstd_level, row_group_rows, dataset, day)
                put_object(lake, f"{dataset}/{name}", data)
                written.append((name, chunk.select(_stats_columns(chunk)), len(data)))
                rows += chunk.num_rows
        if rows != sum(f.rows for f in old):
            raise MaintenanceError(
                f"{dataset} {day}: read {rows} rows from {len(old)} files whose table "
                f"statistics say {sum(f.rows for f in old)}; nothing committed"
            )
        if before_commit is not None:
            before_commit()
        version = _swap(table, dataset, day, old, written, guard, held)
    except BaseException:
        _delete_quietly(lake, dataset, [name for name, _, _ in written])
        raise
    result = CompactionResult(dataset, day, len(old), len(written), rows,
                              time.perf_counter() - started, version)  # fmt: skip
    log.info("compacted", extra=result.as_dict())
    return result


def _stats_columns(table: pa.Table) -> list[str]:
    return [c for c in STATS_COLUMNS if c in table.column_names]


def _parquet_bytes(table: pa.Table, zstd_level: int, row_group_rows: int, dataset: str,
                   day: str) -> bytes:  # fmt: skip
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), b"ticklake.compacted": f"{dataset}/{day}".encode()}
    )
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        compression_level=zstd_level,
        row_group_size=row_group_rows,
        use_dictionary=["symbol", "exchange"] if dataset == TICKS_DATASET else True,
        write_statistics=True,
    )
    return bytes(sink.getvalue())


def _swap(
    table: DeltaTable,
    dataset: str,
    day: str,
    old: list[DayFile],
    new: list[tuple[str, pa.Table, int]],
    guard: str,
    held: int,
) -> int:
    """One commit: remove ``old``, add ``new``; refused if any other maintenance commit
    landed since ``held`` was read, or if an old file is no longer in the table."""
    table.update_incremental()
    if (table.transaction_version(guard) or 0) != held:
        raise MaintenanceConflict(f"{dataset} {day}: another maintenance commit came first")
    still = {f.path for f in day_files(table).get(day, [])}
    gone = [f.path for f in old if f.path not in still]
    if gone:
        raise MaintenanceConflict(f"{dataset} {day}: {len(gone)} files left the table meanwhile")
    now_ms = int(time.time() * 1000)
    values = dict(partition_values(day))
    actions: list[AddAction | RemoveAction] = [
        RemoveAction(f.path, False, now_ms, f.size, values) for f in old
    ]
    actions += [AddAction(name, size, values, now_ms, False, file_stats(stats))
                for name, stats, size in new]  # fmt: skip
    _commit(table, actions, [Transaction(guard, held + 1)], f"{dataset} {day}",
            {"ticklake.operation": "compact", "ticklake.date": day})  # fmt: skip
    table.update_incremental()
    return int(table.version())


def _commit(
    table: DeltaTable,
    actions: list[AddAction | RemoveAction],
    transactions: list[Transaction],
    what: str,
    metadata: dict[str, Any],
) -> None:
    """One maintenance commit of ``actions``; refused (another writer committed one of
    ``transactions``' ids since the snapshot) is a :class:`MaintenanceConflict`."""
    try:
        table.create_write_transaction(
            actions,
            mode="append",
            schema=table.schema(),
            partition_by=PARTITION_BY,
            commit_properties=CommitProperties(
                app_transactions=transactions, custom_metadata=metadata
            ),
        )
    except CommitFailedError as e:
        raise MaintenanceConflict(f"{what}: commit refused (run it again): {e}") from e


def _guarded(table: DeltaTable, dataset: str, operation: str) -> CommitProperties:
    """Commit properties of a maintenance commit: the dataset's maintenance transaction."""
    guard = maintenance_app_id(dataset)
    held = table.transaction_version(guard) or 0
    return CommitProperties(
        app_transactions=[Transaction(guard, held + 1)],
        custom_metadata={"ticklake.operation": operation},
    )


def _delete_quietly(lake: Lake, dataset: str, names: list[str]) -> None:
    for name in names:
        try:
            lake.fs.delete_file(lake.path(f"{dataset}/{name}"))
        except OSError:
            log.warning("could not delete an uncommitted compaction file", extra={"file": name})


def expire(lake: Lake, dataset: str, keep_days: int, today: date) -> list[str]:
    """Remove from the table every ``date`` partition older than ``keep_days`` before
    ``today`` (files stay on disk until :func:`vacuum`). Returns the days removed."""
    table = open_table(lake, dataset)
    guard = maintenance_app_id(dataset)
    held = table.transaction_version(guard) or 0
    cutoff = (today - timedelta(days=keep_days)).isoformat()
    days = sorted(d for d in day_files(table) if d < cutoff)
    if not days:
        return []
    try:
        table.delete(
            predicate=f"{PARTITION_COLUMN} < '{cutoff}'",
            commit_properties=CommitProperties(
                app_transactions=[Transaction(guard, held + 1)],
                custom_metadata={"ticklake.operation": "expire", "ticklake.before": cutoff},
            ),
        )
    except CommitFailedError as e:
        raise MaintenanceConflict(f"{dataset}: expiry refused: {e}") from e
    log.info("expired", extra={"dataset": dataset, "days": days, "before": cutoff})
    return days


LOG_RETENTION: Final = "delta.logRetentionDuration"


def vacuum(
    lake: Lake,
    dataset: str,
    retain_hours: int,
    *,
    full: bool = False,
    log_retention_days: int | None = None,
) -> list[str]:
    """Delete files the table removed more than ``retain_hours`` ago (``full``: also files
    no version ever added, such as an interrupted compaction's, as old), then log entries
    older than the table's log retention (snapshot expiry: versions before them can no
    longer be read), set to ``log_retention_days`` first when given. Returns the files
    deleted."""
    table = open_table(lake, dataset)
    deleted = table.vacuum(
        retention_hours=retain_hours, dry_run=False, enforce_retention_duration=False, full=full
    )
    if log_retention_days is not None:
        wanted = f"interval {log_retention_days} days"
        if table.metadata().configuration.get(LOG_RETENTION) != wanted:
            table.alter.set_table_properties(
                {LOG_RETENTION: wanted},
                raise_if_not_exists=False,
                commit_properties=_guarded(table, dataset, "log retention"),
            )
    table.create_checkpoint()
    table.cleanup_metadata()
    log.info("vacuumed", extra={"dataset": dataset, "deleted": len(deleted)})
    return list(deleted)


def today_utc() -> date:
    return datetime.now(tz=UTC).date()


def adoptable(writer: LakeWriter, partition: int) -> int | None:
    """The offset up to which ``partition``'s flushes are complete, from its checkpoints
    (files holding offsets below it may be adopted); None when it has none.

    Flushes of a partition are written one after the other, and an interrupted flush is
    removed by the next owner's recovery before any later one is written; so every flush
    but the newest is complete, and the newest is complete when every file its checkpoint
    lists exists (the test recovery makes)."""
    offsets = writer.checkpoints(partition)
    if not offsets:
        return None
    newest = offsets[-1]
    doc = writer.load_checkpoint(partition, newest)
    files = [str(f) for f in doc.get("files", [])]  # type: ignore[attr-defined]
    complete = all(writer.lake.fs.get_file_info(writer.lake.path(f)).is_file for f in files)
    return newest if complete else int(doc["first_offset"])  # type: ignore[call-overload]


def adopt(lake: Lake, topic: str) -> dict[str, int]:
    """Add every complete flush's files that a dataset's table does not hold yet (a lake
    written before tables), one commit per dataset, each partition's reach as its
    transaction version where the table holds less. Files of a flush that may be
    interrupted, and files of partitions without checkpoints, are left out (``status``
    lists them). Returns the files added per dataset."""
    writer = LakeWriter(lake, topic, LakeOptions())
    assert writer.tables is not None
    partitions = writer.checkpointed_partitions()
    reach = {p: r for p in partitions if (r := adoptable(writer, p)) is not None}
    added: dict[str, int] = {}
    for dataset in DATASETS:
        table = writer.tables.table(dataset)
        held = {f.path for files in day_files(table).values() for f in files}
        new: list[TableFile] = []
        for relative in folder_files(lake, dataset):
            folder, _, name = relative.partition("/")
            parsed = parse_file_name(dataset, folder.partition("=")[2], name)
            if parsed is None or parsed.partition not in reach or relative in held:
                continue
            if parsed.last_offset < reach[parsed.partition]:
                new.append(writer.table_file_on_disk(f"{dataset}/{relative}"))
        if new:
            _add(table, dataset, new, topic, reach)
        added[dataset] = len(new)
    log.info("adopted", extra={"topic": topic, "files": added})
    return added


def folder_files(lake: Lake, dataset: str) -> list[str]:
    """Every visible file below the dataset's folder (not the table log, not a writer's
    temporary), relative to it: what is on disk, whatever the table says."""
    base = lake.path(dataset).rstrip("/") + "/"
    selector = pafs.FileSelector(lake.path(dataset), recursive=True, allow_not_found=True)
    found = []
    for info in lake.fs.get_file_info(selector):
        relative = info.path.removeprefix(base)
        hidden = any(part.startswith(("_", ".")) for part in relative.split("/"))
        if info.is_file and not hidden:
            found.append(relative)
    return sorted(found)


def _add(
    table: DeltaTable, dataset: str, files: list[TableFile], topic: str, reach: dict[int, int]
) -> None:
    guard = maintenance_app_id(dataset)
    held = table.transaction_version(guard) or 0
    transactions = [Transaction(guard, held + 1)]
    for partition, offset in sorted(reach.items()):
        app = app_id(topic, partition)
        current = table.transaction_version(app)
        if current is None or current < offset:
            transactions.append(Transaction(app, offset))
    now_ms = int(time.time() * 1000)
    actions: list[AddAction | RemoveAction] = [
        AddAction(f.path, f.size, dict(partition_values(f.date)), now_ms, True, f.stats)
        for f in files
    ]
    _commit(table, actions, transactions, dataset, {"ticklake.operation": "adopt"})
