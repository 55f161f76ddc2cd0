"""Read the Parquet lake with DuckDB: history, newest row, as-of and bars.

Every query lists the files it needs first (only the ``date=`` partitions a
time window touches), then hands that list to DuckDB as a *parameter*. User
input only ever reaches DuckDB as parameters; the SQL text is fixed.

The list comes from the dataset's Delta table (:mod:`ticklake.core.lake_table`):
the files of its newest snapshot, so a flush is read whole or not at all and a
file no commit added (an interrupted flush, a stranger's file) is never read. A
lake written before tables has no table log; its files are listed from the
folders (only names :func:`ticklake.core.lake_layout.parse_file_name`
recognises, so half-written temporary files are never read).

Local lakes are read by DuckDB's own Parquet reader. ``s3://`` lakes are read
through pyarrow's filesystem (DuckDB's httpfs extension would have to be
downloaded at run time) and handed to DuckDB as an Arrow table.

The methods are blocking; the API runs them in worker threads, each on its own
DuckDB cursor.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any, Final

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from ticklake.core.lake_fs import Lake
from ticklake.core.lake_layout import (
    BARS_DATASETS,
    PARTITION_COLUMN,
    TICKS_DATASET,
    parse_file_name,
    utc_date,
)
from ticklake.core.lake_table import has_table, snapshot_files, storage_options, table_uri
from ticklake.query.cursor import RowKey
from ticklake.query.params import NS_PER_S
from ticklake.query.tick_rows import clean_row

_PARTITION_PREFIX: Final = f"{PARTITION_COLUMN}="
_VERSIONS_KEPT: Final = 8
"""Old table versions (time travel) kept loaded, least recently used dropped."""


class NoSuchVersion(LookupError):
    """A time-travel read named a table version the lake does not have (any more)."""


_ORDER_DESC: Final = "ORDER BY ts_ns DESC, kafka_partition DESC, kafka_offset DESC"


class LakeReader:
    """Queries over one lake root. Thread-safe: each call opens its own cursor."""

    def __init__(self, lake: Lake, connection: duckdb.DuckDBPyConnection) -> None:
        self._lake = lake
        self._conn = connection
        self._tables: dict[str, DeltaTable] = {}
        self._versions: OrderedDict[tuple[str, int], DeltaTable] = OrderedDict()
        self._tables_lock = threading.Lock()

    # -- files ---------------------------------------------------------------

    def dates(self, dataset: str) -> list[str]:
        """The ``date=`` partitions of ``dataset``, oldest first (empty if none)."""
        selector = pafs.FileSelector(self._lake.path(dataset), allow_not_found=True)
        found = []
        for info in self._lake.fs.get_file_info(selector):
            if info.type == pafs.FileType.Directory and info.base_name.startswith(
                _PARTITION_PREFIX
            ):
                found.append(info.base_name[len(_PARTITION_PREFIX) :])
        return sorted(found)

    def files(self, dataset: str, dates: Iterable[str], version: int | None = None) -> list[str]:
        """Lake files of ``dataset`` in the given partitions, in (date, name) order: the
        newest table snapshot's (or ``version``'s: time travel), or the folders' for a lake
        without tables."""
        with self._tables_lock:
            table = self._table(dataset) if version is None else self._table_at(dataset, version)
            if table is not None:
                return snapshot_files(self._lake, table, dates)
        paths: list[str] = []
        for day in dates:
            folder = self._lake.path(f"{dataset}/{_PARTITION_PREFIX}{day}")
            selector = pafs.FileSelector(folder, allow_not_found=True)
            names = sorted(
                info.base_name
                for info in self._lake.fs.get_file_info(selector)
                if info.type == pafs.FileType.File
                and parse_file_name(dataset, day, info.base_name) is not None
            )
            paths.extend(f"{folder}/{name}" for name in names)
        return paths

    def _table(self, dataset: str) -> DeltaTable | None:
        """The dataset's table at its newest version, None while it has none (a lake
        from before tables, or no flush yet). Call with the lock held: one loaded table
        is shared by the worker threads."""
        table = self._tables.get(dataset)
        if table is not None:
            table.update_incremental()
            return table
        if not has_table(self._lake, dataset):
            return None
        options = storage_options(self._lake)
        table = DeltaTable(table_uri(self._lake, dataset), storage_options=options or None)
        self._tables[dataset] = table
        return table

    def _table_at(self, dataset: str, version: int) -> DeltaTable:
        """The dataset's table as it was at ``version``. Call with the lock held."""
        key = (dataset, version)
        table = self._versions.get(key)
        if table is not None:
            self._versions.move_to_end(key)
            return table
        newest = self._table(dataset)
        if newest is None:
            raise NoSuchVersion(f"the lake's {dataset} has no table, so no versions")
        if version > newest.version():
            # checked first: delta-rs would look for every log entry up to it
            raise NoSuchVersion(
                f"the {dataset} table has no version {version} (newest: {newest.version()})"
            )
        options = storage_options(self._lake)
        try:
            table = DeltaTable(
                table_uri(self._lake, dataset), version=version, storage_options=options or None
            )
        except DeltaError as e:
            raise NoSuchVersion(f"the {dataset} table has no version {version}: {e}") from e
        self._versions[key] = table
        if len(self._versions) > _VERSIONS_KEPT:
            self._versions.popitem(last=False)
        return table

    def table_version(self, dataset: str) -> int | None:
        """The dataset's newest table version (None: no table)."""
        with self._tables_lock:
            table = self._table(dataset)
            return None if table is None else int(table.version())

    def _dates_between(self, dataset: str, start_ns: int, end_ns: int) -> list[str]:
        first, last = utc_date(start_ns), utc_date(max(start_ns, end_ns - 1))
        return [d for d in self.dates(dataset) if first <= d <= last]

    # -- running queries -------------------------------------------------------

    def _rows(
        self, sql: str, params: dict[str, Any], files: list[str], *, with_filename: bool = False
    ) -> list[dict[str, Any]]:
        """Run ``sql`` with ``{rel}`` standing for the rows of ``files``.

        ``with_filename`` adds a ``filename`` column (the file's path).
        """
        if not files:
            return []
        cur = self._conn.cursor()
        try:
            if self._lake.is_local:
                # No Hive partitioning: DuckDB would add the folder's ``date`` as a
                # column, which the remote path and Redis rows do not have.
                rel = "read_parquet($files, union_by_name = true, hive_partitioning = false" + (
                    ", filename = true)" if with_filename else ")"
                )
                params = {**params, "files": files}
            else:
                cur.register("lake_rows", self._read_remote(files, with_filename, params))
                rel = "lake_rows"
            table = cur.sql(sql.format(rel=rel), params=params).to_arrow_table()
        finally:
            cur.close()
        return [clean_row(r) for r in table.to_pylist()]

    def _read_remote(
        self, files: list[str], with_filename: bool, params: dict[str, Any]
    ) -> pa.Table:
        # Push the symbol filter into the Parquet reader (row-group statistics),
        # so a remote lake sends the row groups of the asked symbols, not whole files.
        filters: list[tuple[str, str, Any]] | None = None
        if "symbol" in params:
            filters = [("symbol", "==", params["symbol"])]
        elif "symbols" in params:
            filters = [("symbol", "in", list(params["symbols"]))]
        tables = []
        for path in files:
            table = pq.read_table(path, filesystem=self._lake.fs, filters=filters)
            if with_filename:
                table = table.append_column("filename", pa.array([path] * table.num_rows))
            tables.append(table)
        return pa.concat_tables(tables, promote_options="default")

    # -- ticks -------------------------------------------------------------

    def ticks_page(
        self, symbol: str, start_ns: int, end_ns: int, after: RowKey | None, limit: int
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` ticks of ``symbol`` in ``[start_ns, end_ns)`` after ``after``."""
        files = self.files(TICKS_DATASET, self._dates_between(TICKS_DATASET, start_ns, end_ns))
        params: dict[str, Any] = {
            "symbol": symbol,
            "start": start_ns,
            "end": end_ns,
            "limit": limit,
        }
        after_clause = ""
        if after is not None:
            after_clause = (
                "AND (ts_ns > $ats OR (ts_ns = $ats AND (kafka_partition > $apart OR "
                "(kafka_partition = $apart AND kafka_offset > $aoff))))"
            )
            params |= {
                "ats": after.ts_ns,
                "apart": after.kafka_partition,
                "aoff": after.kafka_offset,
            }
        sql = (
            "SELECT * FROM {rel} "
            "WHERE symbol = $symbol AND ts_ns >= $start AND ts_ns < $end "
            f"{after_clause} "
            "ORDER BY ts_ns, kafka_partition, kafka_offset LIMIT $limit"
        )
        return self._rows(sql, params, files)

    def newest_tick(self, symbol: str) -> dict[str, Any] | None:
        """The newest tick of ``symbol`` anywhere in the lake (by event time)."""
        return self.newest_ticks([symbol]).get(symbol)

    def newest_ticks(self, symbols: list[str]) -> dict[str, dict[str, Any]]:
        """The newest tick of each symbol anywhere in the lake; absent symbols are left out.

        Walks the day partitions from the newest back, one query per day for
        all symbols still missing, so a symbol that stopped trading days ago is
        still found without reading the whole lake for one that trades today.
        """
        sql = (
            "SELECT * FROM {rel} WHERE list_contains($symbols, symbol) "
            "QUALIFY row_number() OVER (PARTITION BY symbol " + _ORDER_DESC + ") = 1"
        )
        found: dict[str, dict[str, Any]] = {}
        missing = list(dict.fromkeys(symbols))
        for day in reversed(self.dates(TICKS_DATASET)):
            if not missing:
                break
            for row in self._rows(sql, {"symbols": missing}, self.files(TICKS_DATASET, [day])):
                found[row["symbol"]] = row
            missing = [s for s in missing if s not in found]
        return found

    def tick_at_or_before(
        self, symbol: str, ts_ns: int, lookback_days: int, version: int | None = None
    ) -> dict[str, Any] | None:
        """As-of: the newest tick of ``symbol`` with ``ts_ns`` at or before ``ts_ns``.

        Searches the day of ``ts_ns`` and at most ``lookback_days`` days before it; in
        the ticks table as of ``version`` when given (what the lake held then).
        """
        sql = (
            "SELECT * FROM {rel} WHERE symbol = $symbol AND ts_ns <= $ts "
            + _ORDER_DESC
            + " LIMIT 1"
        )
        day = date.fromisoformat(utc_date(ts_ns))
        oldest = (day - timedelta(days=lookback_days)).isoformat()
        for candidate in reversed(self.dates(TICKS_DATASET)):
            if candidate > day.isoformat():
                continue
            if candidate < oldest:
                break
            rows = self._rows(
                sql,
                {"symbol": symbol, "ts": ts_ns},
                self.files(TICKS_DATASET, [candidate], version),
            )
            if rows:
                return rows[0]
        return None

    def symbols(self, recent_days: int) -> list[str]:
        """Symbols in the newest ``recent_days`` day partitions of ticks (the fallback
        when Redis is down; bounded so it never reads a whole long history)."""
        days = self.dates(TICKS_DATASET)[-recent_days:] if recent_days > 0 else []
        files = self.files(TICKS_DATASET, days)
        rows = self._rows("SELECT DISTINCT symbol FROM {rel} ORDER BY symbol", {}, files)
        return [r["symbol"] for r in rows]

    def has_symbol(self, symbol: str) -> bool:
        return self.newest_tick(symbol) is not None

    # -- bars ----------------------------------------------------------------

    def bars(
        self, symbol: str, width_ns: int, start_ns: int, end_ns: int
    ) -> tuple[list[dict[str, Any]], str]:
        """Whole OHLCV bars of ``width_ns`` starting in ``[floor(start), end)``, and their source.

        Reads the bar dataset ingest writes (``bars_1s`` for 1 s bars,
        ``bars_1m`` for 1 minute and coarser) when it has files for the window,
        merging partial rows of one bar; otherwise aggregates the ticks.
        Rows hold ``start_ns, open, high, low, close, volume, notional, tick_count``.
        """
        low = start_ns - start_ns % width_ns
        # Whole bars: the last one takes its rows up to its own end, past end_ns.
        high = -(-end_ns // width_ns) * width_ns
        dataset = BARS_DATASETS["1s"] if width_ns < 60 * NS_PER_S else BARS_DATASETS["1m"]
        params = {"symbol": symbol, "width": width_ns, "low": low, "high": high}
        bar_files = self.files(dataset, self._dates_between(dataset, low, high))
        if bar_files:
            return self._rows(_BARS_FROM_BARS, params, bar_files, with_filename=True), dataset
        tick_files = self.files(TICKS_DATASET, self._dates_between(TICKS_DATASET, low, high))
        return self._rows(_BARS_FROM_TICKS, params, tick_files), TICKS_DATASET


# Partial rows of one bar (its ticks were flushed in two files) are merged by
# event time: the open of the row whose open tick is earliest, the close of the
# row whose close tick is latest, ties in file-name order (for one symbol, one
# Kafka partition, that is source-offset order). Files written before the
# open_ts_ns/close_ts_ns columns read them as null (the empty UNION BY NAME
# adds them when no file has them): their bar start stands in.
_BARS_FROM_BARS: Final = """
SELECT (start_ns // $width) * $width AS start_ns,
       arg_min(open, (coalesce(open_ts_ns, start_ns), parse_filename(filename))) AS open,
       max(high) AS high,
       min(low) AS low,
       arg_max(close, (coalesce(close_ts_ns, start_ns), parse_filename(filename))) AS close,
       sum(volume) AS volume,
       sum(notional) AS notional,
       sum(tick_count)::BIGINT AS tick_count
FROM (SELECT * FROM {rel} UNION ALL BY NAME
      SELECT NULL::BIGINT AS open_ts_ns, NULL::BIGINT AS close_ts_ns WHERE false)
WHERE symbol = $symbol AND start_ns >= $low AND start_ns < $high
GROUP BY 1 ORDER BY 1
"""

# Open and close are the earliest and latest tick by event time, ties by
# source offset (as ingest's bars). A symbol's ticks all live in one Kafka
# partition (key = symbol), so the offset alone breaks ties.
_BARS_FROM_TICKS: Final = """
SELECT (ts_ns // $width) * $width AS start_ns,
       arg_min(price, (ts_ns, kafka_offset)) AS open,
       max(price) AS high,
       min(price) AS low,
       arg_max(price, (ts_ns, kafka_offset)) AS close,
       sum(size) AS volume,
       sum(price * size) AS notional,
       count(*) AS tick_count
FROM {rel}
WHERE symbol = $symbol AND ts_ns >= $low AND ts_ns < $high
GROUP BY 1 ORDER BY 1
"""
