"""Normalising: decode, reject with a reason, drop duplicates, count gaps."""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest_kit import T0_NS

from ticklake.core.tick import Tick, encode_tick
from ticklake.ingest.normalise import IngestRejectReason, normalise
from ticklake.ingest.state import PartitionState


@dataclass
class Rec:
    offset: int
    value: bytes | None
    key: bytes | None = None
    topic: str = "t"
    partition: int = 0
    headers: list = field(default_factory=list)


def tick(symbol: str, seq: int | None, price: float = 10.0, ts_ns: int | None = None) -> bytes:
    ts = T0_NS + (seq or 0) if ts_ns is None else ts_ns
    return encode_tick(Tick(symbol=symbol, ts_ns=ts, price=price, size=1.0, exchange="X", seq=seq))


def records(*payloads: bytes | None, key: bytes | None = None) -> list[Rec]:
    return [Rec(i, p, key) for i, p in enumerate(payloads)]


def test_exact_duplicates_are_dropped_even_after_newer_ticks() -> None:
    state = PartitionState(0)
    out = normalise(records(tick("A", 1), tick("A", 2), tick("A", 1), tick("A", 2)), state, 64)
    assert out.ticks.seq.tolist() == [1, 2]
    assert out.duplicates == 2
    # and across batches, through the carried state
    again = normalise(records(tick("A", 2), tick("A", 3)), state, 64)
    assert again.ticks.seq.tolist() == [3] and again.duplicates == 1


def test_gaps_count_missing_numbers_and_late_ticks_are_kept_as_out_of_order() -> None:
    state = PartitionState(0)
    out = normalise(records(tick("A", 1), tick("A", 5), tick("A", 3), tick("A", 3)), state, 64)
    assert out.gaps == 3  # 2, 3, 4 missing when 5 arrived
    assert out.out_of_order == 1
    assert out.duplicates == 1
    assert out.ticks.seq.tolist() == [1, 5, 3]


def test_sequence_numbers_far_below_the_window_are_dropped_as_stale() -> None:
    state = PartitionState(0)
    out = normalise(records(tick("A", 100), tick("A", 10), tick("A", 95)), state, 8)
    assert out.stale == 1 and out.out_of_order == 1
    assert out.ticks.seq.tolist() == [100, 95]


def test_symbols_are_tracked_separately() -> None:
    state = PartitionState(0)
    out = normalise(records(tick("A", 1), tick("B", 1), tick("a", 2)), state, 64)
    assert [state.symbols[c] for c in out.ticks.codes] == ["A", "B", "A"]
    assert out.duplicates == 0 and out.gaps == 0


def test_legacy_ticks_have_no_sequence_and_are_never_dropped() -> None:
    legacy = (
        b'{"symbol":"aapl","price":1.5,"size":2,"exchange":"xnas",'
        b'"ts":"2025-01-02T14:30:00.5+00:00"}'
    )
    out = normalise(records(legacy, legacy), PartitionState(0), 64)
    assert out.ticks.seq.tolist() == [-1, -1]
    assert out.ticks.exchange == ["XNAS", "XNAS"]
    assert out.ticks.ts_ns.tolist() == [T0_NS + 500_000_000] * 2


def test_invalid_records_become_dead_letters_with_their_bytes_and_offsets() -> None:
    out = normalise(
        records(tick("A", 1), b"{", None, tick("A", 2), b"", tick("A", 3)), PartitionState(0), 64
    )
    assert out.ticks.offset.tolist() == [0, 3, 5]
    assert [(d.offset, d.reason) for d in out.dead_letters] == [
        (1, "bad_json"),
        (2, "empty_payload"),
        (4, "empty_payload"),
    ]
    assert out.dead_letters[0].value == b"{"
    assert (out.first_offset, out.last_offset) == (0, 5)


def test_a_key_naming_another_symbol_is_rejected_but_a_missing_key_is_fine() -> None:
    state = PartitionState(0)
    out = normalise([Rec(0, tick("A", 1), b"B"), Rec(1, tick("A", 2), None)], state, 64)
    assert [d.reason for d in out.dead_letters] == [IngestRejectReason.KEY_MISMATCH.value]
    assert out.ticks.offset.tolist() == [1]


def test_the_sequence_state_survives_a_checkpoint() -> None:
    state = PartitionState(0)
    normalise(records(tick("A", 1), tick("A", 3)), state, 4096)
    restored, _ = PartitionState.from_json(state.to_json(2))
    out = normalise(records(tick("A", 3), tick("A", 2), tick("A", 1)), restored, 4096)
    assert out.duplicates == 2 and out.out_of_order == 1


def test_a_restarted_source_numbering_from_one_again_is_kept_not_dropped() -> None:
    state = PartitionState(0)
    normalise(records(tick("A", 1), tick("A", 2), tick("A", 3)), state, 64)
    later = [
        encode_tick(
            Tick(symbol="A", ts_ns=T0_NS + 1_000 + s, price=1.0, size=1.0, exchange="X", seq=s)
        )
        for s in (1, 2, 2)
    ]
    out = normalise(records(*later), state, 64)
    assert out.resets == 1
    assert out.ticks.seq.tolist() == [1, 2]  # the second 2 is a real re-send
    assert out.duplicates == 1


def test_a_sequence_number_beyond_int64_is_a_dead_letter_and_a_huge_jump_is_cheap() -> None:
    state = PartitionState(0)
    huge = tick("A", 2**63 - 1, ts_ns=T0_NS + 5)
    too_big = tick("A", 2**64, ts_ns=T0_NS + 6)
    out = normalise(records(tick("A", 1), huge, too_big), state, 4096)
    assert [d.reason for d in out.dead_letters] == ["sequence_out_of_range"]
    assert out.ticks.seq.tolist() == [1, 2**63 - 1]
    assert state.sequences.seen[0] == 1  # no 2**63-bit integer was built


def test_a_tick_older_than_its_symbols_latest_is_kept_and_marked_late() -> None:
    state = PartitionState(0)
    out = normalise(
        records(
            tick("A", 1, ts_ns=T0_NS + 10),
            tick("B", 1, ts_ns=T0_NS + 1),  # older than A's, but B's own first: on time
            tick("A", 2, ts_ns=T0_NS + 5),  # behind A's latest: late
            tick("A", 3, ts_ns=T0_NS + 10),  # same time as the latest: on time
            tick("A", None, ts_ns=T0_NS + 9),  # legacy ticks are checked too
        ),
        state,
        64,
    )
    assert out.ticks.late.tolist() == [False, False, True, False, True]
    assert out.late == 2 and len(out.ticks) == 5
    # the latest time per symbol survives a checkpoint
    restored, _ = PartitionState.from_json(state.to_json(5))
    again = normalise(records(tick("A", 4, ts_ns=T0_NS + 8)), restored, 64)
    assert again.late == 1


def test_missing_and_mismatched_keys_are_counted() -> None:
    out = normalise(records(tick("A", 1), tick("A", 2)), PartitionState(0), 64)
    assert (out.unkeyed, out.key_mismatches) == (2, 0)
    out = normalise(records(tick("A", 1), key=b"B"), PartitionState(0), 64)
    assert (out.unkeyed, out.key_mismatches) == (0, 1)
