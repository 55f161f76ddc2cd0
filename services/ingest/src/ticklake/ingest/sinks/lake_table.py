"""Adding a flush's files to the datasets' Delta tables, exactly once per Kafka offset.

The table layout (app ids, schema, statistics) is :mod:`ticklake.core.lake_table`'s; this
is the writer: one commit per dataset per flush, carrying the partition's next offset as
the commit's application transaction. Blocking; runs in the lake writer thread.

A commit is skipped when the table already holds the partition up to that offset (a
replay, a recovery rolling a flush forward, a zombie replica that lost the race), so a
file is added at most once; delta-rs refuses a commit whose transaction id another writer
committed since this one's snapshot ("concurrent transaction"), and the retry then finds
the offset held and skips.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction, RemoveAction

from ticklake.core.lake_fs import Lake
from ticklake.core.lake_table import (
    PARTITION_BY,
    app_id,
    partition_values,
    storage_options,
    table_schema,
    table_uri,
)

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 3
"""Tries of one dataset's commit when another writer won the version (each after a fresh
snapshot); past that the flush fails and is retried as a whole."""


@dataclass(frozen=True, slots=True)
class TableFile:
    """A data file to add: where it is below its dataset's folder and what it holds."""

    dataset: str
    date: str
    path: str
    """Relative to the dataset folder (the table root): ``date=D/p....parquet``."""
    size: int
    stats: str
    """Delta statistics JSON (:func:`ticklake.core.lake_table.file_stats`)."""


class LakeTables:
    """The Delta tables of one lake's datasets, opened (or created) on first use."""

    def __init__(
        self,
        lake: Lake,
        topic: str,
        file_schemas: Mapping[str, pa.Schema],
        on_commit: Callable[[str, float], None] | None = None,
    ) -> None:
        self.lake = lake
        self.topic = topic
        self._on_commit = on_commit
        """Called with (dataset, seconds) after each commit made (the metric)."""
        self._schemas = {name: table_schema(s) for name, s in file_schemas.items()}
        self._tables: dict[str, DeltaTable] = {}

    def table(self, dataset: str) -> DeltaTable:
        """The dataset's table at its newest version (created if the lake has none yet:
        creation is a put-if-absent of version 0, so two replicas cannot both create it)."""
        table = self._tables.get(dataset)
        if table is not None:
            table.update_incremental()
            return table
        uri, options = table_uri(self.lake, dataset), storage_options(self.lake)
        if not DeltaTable.is_deltatable(uri, options):
            DeltaTable.create(
                uri,
                schema=self._schemas[dataset],
                mode="ignore",
                partition_by=PARTITION_BY,
                name=dataset,
                description=f"ticklake {dataset}: Parquet files named by Kafka partition "
                "and offsets; one commit per flush, its offset in the txn action",
                storage_options=options or None,
            )
        table = DeltaTable(uri, storage_options=options or None)
        self._tables[dataset] = table
        return table

    def held_offset(self, dataset: str, partition: int) -> int | None:
        """The next offset of ``partition`` the dataset's table holds (None: nothing yet)."""
        version = self.table(dataset).transaction_version(app_id(self.topic, partition))
        return None if version is None else int(version)

    def commit(self, partition: int, next_offset: int, files: Sequence[TableFile]) -> list[str]:
        """Add ``files`` (one flush of ``partition``, up to ``next_offset``): one commit per
        dataset the table does not yet hold to that offset. Returns the datasets committed.
        Raises delta-rs errors (the caller turns them into a failed flush)."""
        by_dataset: dict[str, list[TableFile]] = {}
        for f in files:
            by_dataset.setdefault(f.dataset, []).append(f)
        committed = []
        for dataset, dataset_files in by_dataset.items():
            started = time.perf_counter()
            if self._commit_dataset(dataset, partition, next_offset, dataset_files):
                committed.append(dataset)
                if self._on_commit is not None:
                    self._on_commit(dataset, time.perf_counter() - started)
        return committed

    def _commit_dataset(
        self, dataset: str, partition: int, next_offset: int, files: list[TableFile]
    ) -> bool:
        app = app_id(self.topic, partition)
        now_ms = int(time.time() * 1000)
        actions: list[AddAction | RemoveAction] = [
            AddAction(f.path, f.size, partition_values(f.date), now_ms, True, f.stats)
            for f in files
        ]
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            table = self.table(dataset)
            held = table.transaction_version(app)
            if held is not None and held >= next_offset:
                return False
            try:
                table.create_write_transaction(
                    actions,
                    mode="append",
                    schema=self._schemas[dataset],
                    partition_by=PARTITION_BY,
                    commit_properties=CommitProperties(
                        app_transactions=[Transaction(app, next_offset)],
                        custom_metadata={"ticklake.partition": partition},
                    ),
                )
                return True
            except CommitFailedError as e:
                if attempt == COMMIT_ATTEMPTS:
                    raise
                log.warning(
                    "table commit lost a race; retrying on a fresh snapshot",
                    extra={"dataset": dataset, "partition": partition, "error": str(e)},
                )
        return False  # unreachable: the last attempt returns or raises
