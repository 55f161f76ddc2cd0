"""Write simulated ticks to a Parquet or CSV file instead of Kafka (``simulate --to-parquet``).

The Parquet schema is the lake's tick columns (:data:`TICK_BASE_FIELDS`), so
the file can be replayed (:mod:`ticklake.producer.replay`) or read next to the
lake with the same code.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from ticklake.core.lake_layout import TICK_BASE_FIELDS
from ticklake.producer.simulator import TickColumns

TICK_SCHEMA = pa.schema(list(TICK_BASE_FIELDS))


class TickFileWriter:
    """Appends windows of ticks to ``path`` (``.parquet`` or ``.csv``). Close to finish."""

    def __init__(self, path: Path) -> None:
        suffix = path.suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise ValueError(f"{path}: record to a .parquet or .csv file")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.rows = 0
        self._parquet: pq.ParquetWriter | None = None
        self._csv_file: IO[str] | None = None
        if suffix == ".parquet":
            self._parquet = pq.ParquetWriter(path, TICK_SCHEMA, compression="zstd")
        else:
            self._csv_file = open(path, "w", newline="", encoding="utf-8")
            self._csv = csv.writer(self._csv_file)
            self._csv.writerow(TICK_SCHEMA.names)

    def write(self, window: TickColumns) -> None:
        if len(window) == 0:
            return
        table = window.to_arrow()
        if self._parquet is not None:
            self._parquet.write_table(table)
        else:
            # repr() of a float is its shortest round-trip form: the CSV replays bit-exact.
            columns = [table.column(n).to_pylist() for n in TICK_SCHEMA.names]
            for row in zip(*columns, strict=True):
                self._csv.writerow([_csv_cell(v) for v in row])
        self.rows += len(window)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = None


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value
