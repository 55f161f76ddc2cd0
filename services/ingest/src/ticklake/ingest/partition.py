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

from ticklake.core.lake_layout import SOURCE_FIELDS, TICK_BASE_FIELDS
from ticklake.ingest.features import FEATURE_FIELDS, FeatureParams, TickInput, compute_features
from ticklake.ingest.normalise import DeadLetter, KafkaRecord, normalise
from ticklake.ingest.state import PartitionState

TICK_FILE_SCHEMA: Final = pa.schema([*TICK_BASE_FIELDS, *SOURCE_FIELDS, *FEATURE_FIELDS])
"""Columns of a ``ticks`` lake file: the tick, its source, then every feature."""


@dataclass(slots=True)
class ProcessedBatch:
    """What one processing step of one partition produced."""

    partition: int
    first_offset: int
    """Offset of the first record consumed in this step (-1 if none)."""
    last_offset: int
    """Offset of the last record consumed (accepted, duplicate or dead letter)."""
    rows: pa.RecordBatch
    """Accepted ticks with features, in offset order, in :data:`TICK_FILE_SCHEMA`."""
    columns: dict[str, np.ndarray]
    """The same rows as numpy columns (``symbol``/``exchange`` as object arrays)."""
    dead_letters: list[DeadLetter] = field(default_factory=list)
    consumed: int = 0
    duplicates: int = 0
    stale: int = 0
    gaps: int = 0
    out_of_order: int = 0
    resets: int = 0

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1


def _nullable(values: np.ndarray) -> pa.Array:
    """Float column with NaN as null (a missing quote or an undefined feature)."""
    mask = np.isnan(values)
    return pa.array(values, mask=mask if mask.any() else None)


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
        arrays: list[pa.Array] = []
        for fld in TICK_FILE_SCHEMA:
            values = columns[fld.name]
            if fld.name == "seq":
                missing = values < 0
                arrays.append(pa.array(values, mask=missing if missing.any() else None))
            elif values.dtype.kind == "f" and fld.nullable:
                arrays.append(_nullable(values))
            elif values.dtype == object:
                # via a list: converting an object ndarray makes pyarrow import pandas
                arrays.append(pa.array(values.tolist(), type=fld.type))
            else:
                arrays.append(pa.array(values, type=fld.type))
        rows = pa.RecordBatch.from_arrays(arrays, schema=TICK_FILE_SCHEMA)
        return ProcessedBatch(
            partition=self.partition,
            first_offset=normalised.first_offset,
            last_offset=normalised.last_offset,
            rows=rows,
            columns=columns,
            dead_letters=normalised.dead_letters,
            consumed=len(records),
            duplicates=normalised.duplicates,
            stale=normalised.stale,
            gaps=normalised.gaps,
            out_of_order=normalised.out_of_order,
            resets=normalised.resets,
        )
