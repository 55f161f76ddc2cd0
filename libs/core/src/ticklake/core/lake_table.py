"""The lake's datasets as Delta Lake tables: the one owner of the table layer.

Each dataset folder (``ticks``, ``bars_1s``, ``bars_1m``) is also a Delta table: its
``_delta_log/`` says which of the folder's files a reader should see, at which version.
The data files are the same offset-named Parquet files as before (see
:mod:`ticklake.core.lake_layout`); a table adds them, it never rewrites them, and the
``date`` Hive folder is the table's partition column (Delta keeps partition values in the
log, not in the files, exactly as the files already are).

Ingest writes a flush's files, then adds them to each dataset's table in one commit that
also records the Kafka partition's next offset as a Delta *application transaction*
(``txn`` action, app id :func:`app_id`, version = next offset). The table's transaction
version for a partition is thus the offset up to which the table holds that partition,
and a commit for an offset the table already holds is skipped: a replay after a crash can
rewrite a file, never add it twice.

Readers (the query API) read the files of one table snapshot (:func:`snapshot_files`),
so a flush is seen whole or not at all, and a file on disk that no commit added (an
interrupted flush, a stranger's file) is never read. Spark, Trino, DuckDB's ``delta``
extension and polars read the same tables.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from ticklake.core.lake_fs import Lake
from ticklake.core.lake_layout import PARTITION_COLUMN

PARTITION_BY: Final = [PARTITION_COLUMN]
STATS_COLUMNS: Final = (
    "symbol",
    "ts_ns",
    "start_ns",
    "kafka_partition",
    "kafka_offset",
    "first_offset",
    "last_offset",
)
"""Columns whose min/max go into each file's Delta statistics (data skipping by symbol,
time and source offset); the others are left out to keep the log small."""


def app_id(topic: str, partition: int) -> str:
    """The Delta application id under which a Kafka partition's offsets are committed."""
    return f"ticklake/{topic}/p{partition:04d}"


def table_schema(file_schema: pa.Schema) -> pa.Schema:
    """A dataset's table schema: its files' columns and the ``date`` partition column."""
    schema = file_schema.remove_metadata()
    if PARTITION_COLUMN not in schema.names:
        schema = schema.append(pa.field(PARTITION_COLUMN, pa.string(), nullable=False))
    return schema


def file_stats(table: pa.Table) -> str:
    """Delta per-file statistics (``numRecords``, min/max/null count of
    :data:`STATS_COLUMNS`) as the JSON string an add action carries."""
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    for name in STATS_COLUMNS:
        if name not in table.column_names:
            continue
        column = table.column(name)
        nulls[name] = column.null_count
        if table.num_rows and column.null_count < table.num_rows:
            bounds = pc.min_max(column).as_py()
            mins[name], maxs[name] = bounds["min"], bounds["max"]
    return json.dumps(
        {"numRecords": table.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}
    )


def storage_options(lake: Lake) -> dict[str, str]:
    """delta-rs storage options that reach the same store as ``lake``'s filesystem."""
    return dict(lake.storage_options)


def table_uri(lake: Lake, dataset: str) -> str:
    """URI of a dataset's table, as delta-rs takes it (a local path or ``s3://``)."""
    return f"{lake.uri.rstrip('/')}/{dataset}"


def has_table(lake: Lake, dataset: str) -> bool:
    """Whether ``dataset`` has a Delta log (a lake written before tables has none)."""
    from deltalake import DeltaTable

    return bool(DeltaTable.is_deltatable(table_uri(lake, dataset), storage_options(lake)))


def snapshot_files(lake: Lake, table: Any, dates: Iterable[str]) -> list[str]:
    """Files of the loaded Delta ``table``'s snapshot in the given ``date`` partitions, as
    paths in ``lake.fs``, in (date, name) order: the order a folder listing gives."""
    wanted = sorted(set(dates))
    if not wanted:
        return []
    uris: list[str] = table.file_uris(file_pruning_predicate=[(PARTITION_COLUMN, "in", wanted)])
    paths = [u.removeprefix("s3://") if not lake.is_local else u for u in uris]
    return sorted(paths, key=lambda u: (u.rsplit("/", 2)[-2], u.rsplit("/", 1)[-1]))


def partition_values(date: str) -> Mapping[str, str | None]:
    return {PARTITION_COLUMN: date}
