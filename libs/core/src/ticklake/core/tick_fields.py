"""The tick's fields, defined once: name, type, unit, whether required, what it means.

Every other spelling of the tick is derived from these tables or tied to them by
``tests/test_tick_fields.py``, which fails when one drifts:

* derived: the lake's Arrow fields (:data:`ticklake.core.lake_layout.TICK_BASE_FIELDS`,
  :data:`~ticklake.core.lake_layout.SOURCE_FIELDS`), the Redis hash decoder's integer and
  string columns (:mod:`ticklake.core.hot_cache`), the Lua guard's field names
  (:mod:`ticklake.core.hot_cache`);
* tied by the test: the msgspec :class:`ticklake.core.tick.Tick` (written out so that
  type checkers see it and decoding stays at C speed), ingest's column builders
  (``normalise.TickColumns``, ``partition.PartitionProcessor``), the producer's
  simulator columns and the query API's response model.

Adding a tick field: add a row here, then the test lists every copy still to follow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["string", "int32", "int64", "float64"]
"""Storage type, named as Arrow names it."""

PYTHON_TYPES: Final[dict[str, type]] = {
    "string": str,
    "int32": int,
    "int64": int,
    "float64": float,
}


@dataclass(frozen=True, slots=True)
class TickField:
    name: str
    kind: Kind
    required: bool
    """Every tick has it; otherwise absent means "not given" (null in the lake,
    the empty string in the Redis hash, ``None`` in Python)."""
    unit: str
    doc: str

    @property
    def python_type(self) -> type:
        return PYTHON_TYPES[self.kind]


TICK_FIELDS: Final = (
    TickField("symbol", "string", True, "", "Instrument, upper case (``BRK.B``, ``EUR/USD``)."),
    TickField("ts_ns", "int64", True, "ns", "Event time, UTC nanoseconds since the epoch."),
    TickField("price", "float64", True, "quote currency", "Trade (or last) price, > 0."),
    TickField("size", "float64", True, "units", "Trade size (shares, coins), >= 0."),
    TickField("exchange", "string", True, "", "Venue code, upper case, [A-Z0-9_]{1,12}."),
    TickField("seq", "int64", False, "", "Per-symbol sequence number at the source."),
    TickField("bid", "float64", False, "quote currency", "Best bid."),
    TickField("ask", "float64", False, "quote currency", "Best ask."),
    TickField("bid_size", "float64", False, "units", "Size at the best bid."),
    TickField("ask_size", "float64", False, "units", "Size at the best ask."),
)
"""What a producer sends (wire schema version 1), in lake column order."""

SOURCE_FIELDS: Final = (
    TickField("kafka_partition", "int32", True, "", "Kafka partition the tick was read from."),
    TickField("kafka_offset", "int64", True, "", "Its offset in that partition."),
    TickField("ingest_ns", "int64", True, "ns", "When ingest handled it, UTC ns (wall clock)."),
)
"""What ingest adds about where a row came from; lake columns after :data:`TICK_FIELDS`.
The lake's flag columns (:data:`ticklake.core.lake_layout.FLAG_FIELDS`, lake only) and
ingest's feature columns (``ticklake.ingest.features.FEATURES``) follow them."""

ROW_FIELDS: Final = (*TICK_FIELDS, *SOURCE_FIELDS)
"""The columns every stored tick row has, in lake order."""
