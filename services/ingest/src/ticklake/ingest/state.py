"""Per-partition state that makes features continuous, and its checkpoint format.

A Kafka partition's ticks are processed in offset order by exactly one replica
at a time. Everything that replica remembers between ticks lives in one
:class:`PartitionState`: the symbols it has seen, each symbol's sequence
tracker (for dedup and gap counting) and each symbol's feature carry (last
price, EMAs, daily sums ...). The state is serialised into the lake's
``_state/`` checkpoint at every flush, together with the offset it is valid
at, so a replica taking the partition over resumes the series exactly.

Floats go through JSON as shortest round-trip decimals, so a restored state is
bit-for-bit the state that was saved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import orjson

CHECKPOINT_FORMAT: Final = 1

NO_DAY: Final = -1
"""Feature carry ``day`` before a symbol's first tick."""


def _float_slot(capacity: int) -> np.ndarray:
    return np.full(capacity, np.nan, dtype=np.float64)


@dataclass(slots=True)
class SymbolSequences:
    """Highest sequence number per symbol and which of the ``window`` below it were seen.

    ``seen[i]`` is an int used as a bit set: bit ``k`` means ``max_seq[i] - k``
    was seen. Python ints make the shift-and-mask arithmetic exact for any window.
    """

    max_seq: list[int] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)
    max_ts: list[int] = field(default_factory=list)
    """Latest event time (UTC ns) seen per symbol: tells a restarted source from a re-send."""


class FeatureCarry:
    """Named per-symbol arrays (one slot per feature that needs memory).

    Slots are created on first use, so a new stateful feature needs no change
    here. ``day`` and ``day_of_*`` slots hold UTC days (int64, :data:`NO_DAY`
    when unset), ``n_*`` slots are int64 counts, every other slot is float64
    (NaN when unset).
    """

    def __init__(self) -> None:
        self.capacity = 0
        self.slots: dict[str, np.ndarray] = {}

    def grow(self, size: int) -> None:
        if size <= self.capacity:
            return
        new_capacity = max(size, 2 * self.capacity, 64)
        for name, values in self.slots.items():
            grown = self._empty(name, new_capacity)
            grown[: self.capacity] = values[: self.capacity]
            self.slots[name] = grown
        self.capacity = new_capacity

    @staticmethod
    def _empty(name: str, capacity: int) -> np.ndarray:
        if name == "day" or name.startswith("day_of_"):
            return np.full(capacity, NO_DAY, dtype=np.int64)
        if name.startswith("n_"):
            return np.zeros(capacity, dtype=np.int64)
        return _float_slot(capacity)

    def slot(self, name: str) -> np.ndarray:
        """The array for ``name``, created on first use."""
        values = self.slots.get(name)
        if values is None:
            values = self._empty(name, self.capacity)
            self.slots[name] = values
        return values


class PartitionState:
    """Everything one partition's processing carries from one tick to the next."""

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.symbols: list[str] = []
        self.symbol_index: dict[str, int] = {}
        self.sequences = SymbolSequences()
        self.carry = FeatureCarry()

    def code_of(self, symbol: str) -> int:
        """Dense integer code of ``symbol`` in this partition; new symbols are added."""
        code = self.symbol_index.get(symbol)
        if code is None:
            code = len(self.symbols)
            self.symbols.append(symbol)
            self.symbol_index[symbol] = code
            self.sequences.max_seq.append(-1)
            self.sequences.seen.append(0)
            self.sequences.max_ts.append(-1)
            self.carry.grow(code + 1)
        return code

    # --- checkpoint -----------------------------------------------------------------

    def to_json(self, next_offset: int, extra: dict[str, Any] | None = None) -> bytes:
        """Serialise, labelled with the offset of the first tick *not* included."""
        n = len(self.symbols)
        slots: dict[str, list[Any]] = {}
        for name, values in sorted(self.carry.slots.items()):
            part = values[:n]
            if part.dtype.kind == "f":
                slots[name] = [None if math.isnan(v) else v for v in part.tolist()]
            else:
                slots[name] = part.tolist()
        doc = {
            "format": CHECKPOINT_FORMAT,
            "partition": self.partition,
            "next_offset": next_offset,
            "symbols": self.symbols,
            "max_seq": self.sequences.max_seq,
            # hex keeps arbitrarily wide bit sets exact in JSON
            "seen": [format(s, "x") for s in self.sequences.seen],
            "max_ts": self.sequences.max_ts,
            "carry": slots,
            **(extra or {}),
        }
        return orjson.dumps(doc)

    @classmethod
    def from_json(cls, payload: bytes) -> tuple[PartitionState, dict[str, Any]]:
        """Inverse of :meth:`to_json`; also returns the whole document."""
        doc = orjson.loads(payload)
        if doc.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"checkpoint format {doc.get('format')!r} is not {CHECKPOINT_FORMAT}; "
                "this ingest version cannot resume from it"
            )
        state = cls(int(doc["partition"]))
        for symbol in doc["symbols"]:
            state.code_of(symbol)
        state.sequences.max_seq = [int(v) for v in doc["max_seq"]]
        state.sequences.seen = [int(v, 16) for v in doc["seen"]]
        state.sequences.max_ts = [int(v) for v in doc["max_ts"]]
        n = len(state.symbols)
        for name, values in doc["carry"].items():
            slot = state.carry.slot(name)
            if slot.dtype.kind == "f":
                slot[:n] = [np.nan if v is None else v for v in values]
            else:
                slot[:n] = values
        return state, doc
