"""Kafka records -> validated tick columns, dead letters and sequence statistics.

Pure: no I/O. Decoding is the shared contract's :func:`~ticklake.core.tick.decode_ticks`
(canonical and legacy shapes, upper-cased symbols, UTC nanoseconds). On top of
it this module

* rejects a record whose Kafka key names another symbol than its payload
  (it would sit in the wrong partition, so its symbol's order is lost);
* drops exact duplicates by (symbol, seq): the tracker remembers the highest
  sequence number per symbol and which of the ``window`` numbers below it
  were seen, so a re-sent tick is recognised even after newer ones;
* counts gaps (sequence numbers skipped) and out-of-order ticks (a number
  below the highest, not seen before: kept, it is real data arriving late);
* recognises a restarted source: a number at or below the highest whose event
  time is later than every tick seen for the symbol is not a re-send (a
  re-send repeats the original's time) but a source that started counting
  again (the producer numbers from 1 after a restart); the tracker restarts
  from it and the tick is kept;
* marks a tick *late* when its event time is below the latest event time seen
  for its symbol: it is kept (stored in the lake) but features skip it (see
  :mod:`~ticklake.ingest.features`), so a late tick never moves a symbol's
  series backwards;
* counts records whose Kafka key is missing (they are accepted: with
  ``ordering=sequence`` the sequencer keyed them; with ``keyed`` a missing
  key means the producer does not key by symbol, and a metric says so).

A sequence number more than ``window`` below the highest, and not newer in
time, cannot be told from a re-send and is dropped as stale (counted apart
from exact duplicates). Legacy ticks have no sequence number and are never
dropped.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ticklake.core.errors import TickDecodeError
from ticklake.core.tick import Tick, decode_ticks
from ticklake.ingest.state import PartitionState


class IngestRejectReason(enum.StrEnum):
    """Dead-letter reasons decided by ingest on top of :class:`DecodeReason` (wire values)."""

    KEY_MISMATCH = "key_mismatch"
    SEQUENCE_OUT_OF_RANGE = "sequence_out_of_range"


SEQ_MAX = 2**63 - 1
"""Largest sequence number the lake's int64 column holds."""


class KafkaRecord(Protocol):
    """What normalising needs of a consumed record (aiokafka's ConsumerRecord fits)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected record: the original bytes and headers, and why."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    reason: str
    detail: str


@dataclass(slots=True)
class TickColumns:
    """Accepted ticks of one batch as columns, in offset order."""

    codes: np.ndarray  # int64 symbol code in the partition state
    ts_ns: np.ndarray  # int64
    price: np.ndarray  # float64
    size: np.ndarray  # float64
    seq: np.ndarray  # int64, -1 where the tick has none (legacy)
    bid: np.ndarray  # float64, NaN where absent
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray
    offset: np.ndarray  # int64 Kafka offset
    exchange: list[str]
    late: np.ndarray  # bool: event time below the latest seen for the symbol

    def __len__(self) -> int:
        return len(self.offset)


@dataclass(slots=True, kw_only=True)
class SequenceCounts:
    """What normalising counted in one batch (ingest's metrics and logs report them)."""

    duplicates: int = 0
    """Exact re-sends (same symbol and seq seen within the window)."""
    stale: int = 0
    """Ticks with a seq below the window (too old to tell; dropped)."""
    gaps: int = 0
    out_of_order: int = 0
    resets: int = 0
    late: int = 0
    """Ticks older than their symbol's latest (stored; features skip them)."""
    unkeyed: int = 0
    """Records without a Kafka key."""
    key_mismatches: int = 0
    """Records whose key named another symbol (dead-lettered)."""

    def counts(self) -> dict[str, int]:
        """The counts alone, to carry them into another :class:`SequenceCounts`."""
        return {name: getattr(self, name) for name in SequenceCounts.__dataclass_fields__}


@dataclass(slots=True)
class NormalisedBatch(SequenceCounts):
    """Result of :func:`normalise`: ticks, rejects and sequence statistics."""

    ticks: TickColumns
    dead_letters: list[DeadLetter] = field(default_factory=list)
    first_offset: int = -1
    last_offset: int = -1


_NAN = float("nan")


def _dead_letter(record: KafkaRecord, reason: str, detail: str) -> DeadLetter:
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=tuple(record.headers or ()),
        reason=reason,
        detail=detail,
    )


def normalise(
    records: Iterable[KafkaRecord], state: PartitionState, window: int
) -> NormalisedBatch:
    """Decode, validate, de-duplicate ``records`` of one partition (in offset order).

    Updates ``state``'s sequence trackers; returns columns of accepted ticks.
    """
    codes: list[int] = []
    ts_ns: list[int] = []
    price: list[float] = []
    size: list[float] = []
    seq_col: list[int] = []
    bid: list[float] = []
    ask: list[float] = []
    bid_size: list[float] = []
    ask_size: list[float] = []
    offsets: list[int] = []
    exchange: list[str] = []
    late: list[bool] = []
    dead: list[DeadLetter] = []
    max_seq = state.sequences.max_seq
    max_ts = state.sequences.max_ts
    seen = state.sequences.seen
    mask = (1 << window) - 1
    duplicates = stale = gaps = out_of_order = resets = late_count = unkeyed = mismatches = 0
    first_offset = last_offset = -1
    code_of = state.code_of
    known_codes = state.symbol_index  # a dict lookup inline; code_of only for a new symbol
    key_cache: dict[bytes, str] = {}

    records = records if isinstance(records, list) else list(records)
    if records:
        first_offset, last_offset = records[0].offset, records[-1].offset
    # one msgspec call for the batch's payloads (decode_ticks), not one per record
    for record, tick in zip(records, decode_ticks([r.value for r in records]), strict=True):
        if type(tick) is not Tick:
            assert isinstance(tick, TickDecodeError)
            dead.append(_dead_letter(record, tick.reason.value, tick.detail))
            continue
        symbol = tick.symbol
        key = record.key
        if key:
            key_symbol = key_cache.get(key)
            if key_symbol is None:
                key_symbol = key.decode("utf-8", "replace").strip().upper()
                key_cache[key] = key_symbol
            if key_symbol != symbol:
                mismatches += 1
                dead.append(
                    _dead_letter(
                        record,
                        IngestRejectReason.KEY_MISMATCH.value,
                        f"record key {key_symbol!r} differs from payload symbol {symbol!r}",
                    )
                )
                continue
        else:
            unkeyed += 1
        seq = tick.seq
        if seq is not None and seq > SEQ_MAX:
            dead.append(
                _dead_letter(
                    record,
                    IngestRejectReason.SEQUENCE_OUT_OF_RANGE.value,
                    f"seq {seq} does not fit a signed 64-bit integer",
                )
            )
            continue
        code = known_codes.get(symbol)
        if code is None:
            code = code_of(symbol)
        ts = tick.ts_ns
        is_late = ts < max_ts[code]
        if seq is None:
            seq = -1
            if not is_late:
                max_ts[code] = ts
        else:
            top = max_seq[code]
            if seq > top:
                if top >= 0:
                    gaps += seq - top - 1
                    jump = seq - top
                    # a jump past the window forgets everything: never shift by it
                    seen[code] = ((seen[code] << jump) | 1) & mask if jump < window else 1
                else:
                    seen[code] = 1
                max_seq[code] = seq
            elif ts > max_ts[code]:
                resets += 1
                max_seq[code] = seq
                seen[code] = 1
            else:
                behind = top - seq
                if behind >= window:
                    stale += 1
                    continue
                bit = 1 << behind
                if seen[code] & bit:
                    duplicates += 1
                    continue
                seen[code] |= bit
                out_of_order += 1
            if ts > max_ts[code]:
                max_ts[code] = ts
        codes.append(code)
        ts_ns.append(ts)
        price.append(tick.price)
        size.append(tick.size)
        seq_col.append(seq)
        b = tick.bid
        bid.append(_NAN if b is None else b)
        a = tick.ask
        ask.append(_NAN if a is None else a)
        bs = tick.bid_size
        bid_size.append(_NAN if bs is None else bs)
        az = tick.ask_size
        ask_size.append(_NAN if az is None else az)
        offsets.append(record.offset)
        exchange.append(tick.exchange)
        late.append(is_late)
        late_count += is_late

    columns = TickColumns(
        codes=np.array(codes, dtype=np.int64),
        ts_ns=np.array(ts_ns, dtype=np.int64),
        price=np.array(price, dtype=np.float64),
        size=np.array(size, dtype=np.float64),
        seq=np.array(seq_col, dtype=np.int64),
        bid=np.array(bid, dtype=np.float64),
        ask=np.array(ask, dtype=np.float64),
        bid_size=np.array(bid_size, dtype=np.float64),
        ask_size=np.array(ask_size, dtype=np.float64),
        offset=np.array(offsets, dtype=np.int64),
        exchange=exchange,
        late=np.array(late, dtype=bool),
    )
    return NormalisedBatch(
        ticks=columns,
        dead_letters=dead,
        duplicates=duplicates,
        stale=stale,
        gaps=gaps,
        out_of_order=out_of_order,
        resets=resets,
        late=late_count,
        unkeyed=unkeyed,
        key_mismatches=mismatches,
        first_offset=first_offset,
        last_offset=last_offset,
    )
