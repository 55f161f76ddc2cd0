"""One partition's processing step: records -> lake rows with features. Pure.

:class:`PartitionProcessor` owns the partition's :class:`PartitionState` and
turns a list of consumed records into a :class:`ProcessedBatch`: an Arrow
record batch in the lake's tick schema (:data:`TICK_FILE_SCHEMA`), the dead
letters, and the sequence statistics. The consumer loop hands the batch to
the sinks; nothing here does I/O, so tests drive it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import pyarrow as pa

from ticklake.core.lake_layout import FLAG_FIELDS, SOURCE_FIELDS, TICK_BASE_FIELDS
from ticklake.ingest import arrow_arrays
from ticklake.ingest.features import FEATURE_FIELDS, FeatureParams, TickInput, compute_features
from ticklake.ingest.normalise import DeadLetter, KafkaRecord, SequenceCounts, normalise
from ticklake.ingest.state import PartitionState

TICK_FILE_SCHEMA: Final = pa.schema(
    [*TICK_BASE_FIELDS, *SOURCE_FIELDS, *FLAG_FIELDS, *FEATURE_FIELDS]
)
"""Columns of a ``ticks`` lake file: the tick, its source, its flags, then every feature."""


@dataclass(slots=True)
class ProcessedBatch(SequenceCounts):
    """What one processing step of one partition produced."""

    partition: int
    first_offset: int
    """Offset of the first record consumed in this step (-1 if none)."""
    last_offset: int
    """Offset of the last record consumed (accepted, duplicate or dead letter)."""
    columns: dict[str, np.ndarray]
    """Accepted ticks with features, in offset order, as numpy columns named as in
    :data:`TICK_FILE_SCHEMA` (``symbol``/``exchange`` as object arrays), without the
    flags."""
    flags: dict[str, np.ndarray]
    """The :data:`~ticklake.core.lake_layout.FLAG_FIELDS` columns (bool). Kept apart from
    ``columns`` because the latest hash has no such fields (it never holds a late tick:
    it keeps the newest by event time); the tail and the channel carry them."""
    codes: np.ndarray
    """Per row, the symbol's dense code in the partition's state (groups rows by symbol)."""
    symbol_names: pa.Array
    """The partition's symbols by code, as Arrow strings (to build the symbol column)."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    consumed: int = 0

    _rows: pa.RecordBatch | None = None

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1

    @property
    def num_rows(self) -> int:
        return len(self.codes)

    @property
    def lake_columns(self) -> dict[str, np.ndarray]:
        """Every column of :data:`TICK_FILE_SCHEMA`: ``columns`` and ``flags``."""
        return {**self.columns, **self.flags}

    def rows(self) -> pa.RecordBatch:
        """The rows as an Arrow record batch in :data:`TICK_FILE_SCHEMA`.

        Built on first use (the lake buffers numpy columns and builds Arrow once
        per flush; this is for tests and tools).
        """
        if self._rows is None:
            self._rows = to_record_batch(self.lake_columns, self.codes, self.symbol_names)
        return self._rows


def to_record_batch(
    columns: dict[str, np.ndarray], codes: np.ndarray, symbol_names: pa.Array
) -> pa.RecordBatch:
    arrays: list[pa.Array] = []
    for fld in TICK_FILE_SCHEMA:
        values = columns[fld.name]
        if fld.name == "symbol":
            arrays.append(symbol_names.take(arrow_arrays.numeric(codes, pa.int64())))
        elif fld.name == "exchange":
            arrays.append(arrow_arrays.strings(values.tolist()))
        elif values.dtype.kind == "b":
            arrays.append(arrow_arrays.booleans(values))
        elif fld.name == "seq":
            arrays.append(arrow_arrays.numeric(values, fld.type, values < 0))
        elif values.dtype.kind == "f" and fld.nullable:
            arrays.append(arrow_arrays.floats_nan_as_null(values))
        else:
            arrays.append(arrow_arrays.numeric(values, fld.type))
    return pa.RecordBatch.from_arrays(arrays, schema=TICK_FILE_SCHEMA)


class PartitionProcessor:
    """Decode -> dedup -> features for one Kafka partition, with carried state."""

    def __init__(
        self,
        partition: int,
        params: FeatureParams,
        dedup_window: int,
        state: PartitionState | None = None,
    ) -> None:
        self.partition = partition
        self.params = params
        self.dedup_window = dedup_window
        self.state = state if state is not None else PartitionState(partition)
        self._symbols: pa.Array | None = None  # state.symbols as Arrow, rebuilt when it grows

    def process(self, records: Sequence[KafkaRecord], ingest_ns: int) -> ProcessedBatch:
        """Process ``records`` (this partition's, in offset order)."""
        normalised = normalise(records, self.state, self.dedup_window)
        ticks = normalised.ticks
        features = compute_features(
            TickInput(
                codes=ticks.codes,
                ts_ns=ticks.ts_ns,
                price=ticks.price,
                size=ticks.size,
                bid=ticks.bid,
                ask=ticks.ask,
                late=ticks.late,
            ),
            self.state.carry,
            self.params,
        )
        n = len(ticks)
        symbols = (
            np.asarray(self.state.symbols, dtype=object)[ticks.codes]
            if n
            else (np.zeros(0, dtype=object))
        )
        exchange = np.asarray(ticks.exchange, dtype=object)
        columns: dict[str, np.ndarray] = {
            "symbol": symbols,
            "ts_ns": ticks.ts_ns,
            "price": ticks.price,
            "size": ticks.size,
            "exchange": exchange,
            "seq": ticks.seq,
            "bid": ticks.bid,
            "ask": ticks.ask,
            "bid_size": ticks.bid_size,
            "ask_size": ticks.ask_size,
            "kafka_partition": np.full(n, self.partition, dtype=np.int32),
            "kafka_offset": ticks.offset,
            "ingest_ns": np.full(n, ingest_ns, dtype=np.int64),
            **features,
        }
        if self._symbols is None or len(self._symbols) != len(self.state.symbols):
            self._symbols = arrow_arrays.strings(self.state.symbols)
        return ProcessedBatch(
            partition=self.partition,
            first_offset=normalised.first_offset,
            last_offset=normalised.last_offset,
            columns=columns,
            flags={"late": ticks.late},
            codes=ticks.codes,
            symbol_names=self._symbols,
            dead_letters=normalised.dead_letters,
            consumed=len(records),
            **normalised.counts(),
        )
