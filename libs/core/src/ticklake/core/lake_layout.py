"""The Parquet lake's layout: datasets, Hive partitions, file names, schemas.

::

    {root}/ticks/date=2025-01-02/p0003-00000000000000001200-00000000000000005199.parquet
    {root}/bars_1s/date=2025-01-02/p0003-...parquet
    {root}/bars_1m/date=2025-01-02/p0003-...parquet

A file name carries the Kafka partition and the first and last source offset it
holds. The name is a pure function of the input, so a replay after a crash
rewrites the same file instead of adding a duplicate (the exactly-once scheme
of Kafka Connect's S3 sink). Readers (the query API, DuckDB, pandas) read a
dataset with Hive partitioning on ``date``.

Ingest adds feature columns after :data:`TICK_BASE_FIELDS`, :data:`SOURCE_FIELDS`
and :data:`FLAG_FIELDS`; readers must select columns by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import pyarrow as pa

from ticklake.core import tick_fields
from ticklake.core.tick_fields import TickField

TICKS_DATASET: Final = "ticks"
BARS_DATASETS: Final = {"1s": "bars_1s", "1m": "bars_1m"}
"""Bar interval -> dataset folder. Coarser bars are rolled up from ``bars_1m``."""
PARTITION_COLUMN: Final = "date"


def arrow_field(field: TickField) -> pa.Field:
    """The lake column of one tick field (a required field is non-nullable)."""
    return pa.field(field.name, getattr(pa, field.kind)(), nullable=not field.required)


TICK_BASE_FIELDS: Final = tuple(arrow_field(f) for f in tick_fields.TICK_FIELDS)
"""The tick's own fields (:data:`ticklake.core.tick_fields.TICK_FIELDS`)."""

SOURCE_FIELDS: Final = tuple(arrow_field(f) for f in tick_fields.SOURCE_FIELDS)
"""Where the row came from: source partition and offset, ingest wall time (UTC ns)
(:data:`ticklake.core.tick_fields.SOURCE_FIELDS`)."""

FLAG_FIELDS: Final = (pa.field("late", pa.bool_(), nullable=False),)
"""What ingest found about the row. ``late``: its event time was below the latest already
seen for its symbol when it arrived (later than the allowed lateness in ``sequence``
mode, or out of order from its producer): stored, counted in
``ticklake_ingest_late_ticks_total``, its path-dependent features null, and the series
goes on from the last on-time tick. Files written before this column existed lack it
(readers use ``union_by_name``; a missing value means not flagged)."""

BAR_SCHEMA: Final = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("start_ns", pa.int64(), nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.float64(), nullable=False),
        pa.field("notional", pa.float64(), nullable=False),
        pa.field("tick_count", pa.int64(), nullable=False),
    ]
)
"""One OHLCV bar. ``start_ns`` is the bar's UTC start; vwap = notional / volume.

A bar that spans two lake files (its ticks came in two flushes) appears as two
partial rows with the same (symbol, start_ns); readers merge them with
first/max/min/last/sum, which is exact because each partial row carries its
own first and last tick in order of offset."""

_FILE_NAME = re.compile(r"p(\d{4})-(\d{20})-(\d{20})\.parquet")


@dataclass(frozen=True, slots=True)
class LakeFile:
    """Identity of one lake file: which dataset, day and source offsets it covers."""

    dataset: str
    date: str
    partition: int
    first_offset: int
    last_offset: int

    @property
    def name(self) -> str:
        return f"p{self.partition:04d}-{self.first_offset:020d}-{self.last_offset:020d}.parquet"

    def relative_path(self) -> str:
        """Path below the lake root, with ``/`` separators (works for s3:// too)."""
        return f"{self.dataset}/{PARTITION_COLUMN}={self.date}/{self.name}"


def parse_file_name(dataset: str, date: str, name: str) -> LakeFile | None:
    """Inverse of :attr:`LakeFile.name`; ``None`` for files that are not ours."""
    m = _FILE_NAME.fullmatch(name)
    if m is None:
        return None
    return LakeFile(dataset, date, int(m.group(1)), int(m.group(2)), int(m.group(3)))


def utc_date(ts_ns: int) -> str:
    """The UTC day (``YYYY-MM-DD``) of a nanosecond timestamp: the Hive partition."""
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%d")


def dataset_uri(root: str, dataset: str) -> str:
    """URI of a dataset below a lake root (local path or ``s3://bucket/prefix``)."""
    return f"{root.rstrip('/')}/{dataset}"
