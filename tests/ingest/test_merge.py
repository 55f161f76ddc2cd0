"""The sequencer's event-time merge: pure, table-driven and property-tested."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticklake.ingest.merge import EventTimeMerge, Released, merge_all

MS = 1_000_000


def _order(out: list[Released[str]]) -> list[str]:
    return [r.item for r in out]


@pytest.mark.parametrize(
    ("streams", "expected"),
    [
        # two partitions interleave by time
        ({0: [(1, "a1"), (4, "a4")], 1: [(2, "b2"), (3, "b3")]}, ["a1", "b2", "b3", "a4"]),
        # equal times: the smaller partition first, then offset order within one
        ({0: [(5, "a5"), (5, "a5'")], 1: [(5, "b5")]}, ["a5", "a5'", "b5"]),
        ({1: [(5, "b5")], 0: [(5, "a5")]}, ["a5", "b5"]),
        # an empty partition does not hold the final flush back
        ({0: [(2, "a2")], 1: [], 2: [(1, "c1")]}, ["c1", "a2"]),
    ],
)
def test_whole_streams_come_out_in_time_then_position_order(
    streams: dict[int, list[tuple[int, str]]], expected: list[str]
) -> None:
    assert _order(merge_all(streams)) == expected


def test_a_record_waits_until_every_partition_has_shown_a_later_time() -> None:
    merge: EventTimeMerge[str] = EventTimeMerge(allowed_lateness_ns=100 * MS)
    for p in (0, 1):
        merge.open_partition(p, 0, now_ns=0)
    merge.add(0, 0, 10, "a10", now_ns=0)
    assert merge.release(now_ns=0) == []  # partition 1 has shown nothing yet
    merge.add(1, 0, 10, "b10", now_ns=0)
    # a10 < b10 by partition; b10 must wait: partition 0 may send another t=10 record
    assert _order(merge.release(now_ns=0)) == ["a10"]
    merge.add(0, 1, 11, "a11", now_ns=0)
    assert _order(merge.release(now_ns=0)) == ["b10"]
    assert merge.resume_offsets() == {0: 1, 1: 1}


def test_a_caught_up_silent_partition_stops_blocking_after_the_allowed_lateness() -> None:
    merge: EventTimeMerge[str] = EventTimeMerge(allowed_lateness_ns=100 * MS)
    for p in (0, 1):
        merge.open_partition(p, 0, now_ns=0)
    merge.add(0, 0, 10, "a10", now_ns=0)
    assert merge.release(now_ns=50 * MS, caught_up={1}) == []  # silent, but not for long
    assert merge.release(now_ns=500 * MS) == []  # silent for long, but not caught up
    assert merge.idle(now_ns=100 * MS, caught_up={1}) == [1]
    assert _order(merge.release(now_ns=100 * MS, caught_up={1})) == ["a10"]
    # partition 1 wakes up with an older record: forwarded, marked late
    merge.add(1, 0, 5, "b5", now_ns=200 * MS)
    merge.add(0, 1, 20, "a20", now_ns=200 * MS)
    out = merge.release(now_ns=200 * MS)
    assert [(r.item, r.late) for r in out] == [("b5", True)]
    assert merge.resume_offsets() == {0: 1, 1: 1}


def test_traffic_resuming_after_a_pause_is_not_overtaken_across_partitions() -> None:
    """Both partitions caught up and silent (a paused producer); it resumes and
    its records for partition 0 reach the log a few ms before the older ones
    for partition 1. The newer record must not pass partition 1 at once: it
    waits the allowed lateness (measured from its own arrival), and partition
    1's record, arriving inside that wait, goes first and is not late."""
    merge: EventTimeMerge[str] = EventTimeMerge(allowed_lateness_ns=100 * MS)
    for p in (0, 1):
        merge.open_partition(p, 0, now_ns=0)
    merge.add(0, 0, 10, "a10", now_ns=0)
    merge.add(1, 0, 11, "b11", now_ns=0)
    assert _order(merge.release(now_ns=0)) == ["a10"]
    assert _order(merge.release(now_ns=150 * MS, caught_up={0, 1})) == ["b11"]
    # paused 1 s; partition 1 is idle when partition 0's new record arrives
    merge.add(0, 1, 30, "a30", now_ns=1150 * MS)
    assert merge.idle(now_ns=1150 * MS, caught_up={1}) == [1]
    assert merge.release(now_ns=1150 * MS, caught_up={1}) == []
    merge.add(1, 1, 20, "b20", now_ns=1155 * MS)
    out = merge.release(now_ns=1155 * MS, caught_up={1})
    assert [(r.item, r.late) for r in out] == [("b20", False)]
    # a partition that stays silent holds a record for the allowed lateness only
    merge.add(0, 2, 40, "a40", now_ns=1160 * MS)
    assert _order(merge.release(now_ns=1200 * MS, caught_up={1})) == []
    assert _order(merge.release(now_ns=1300 * MS, caught_up={1})) == ["a30", "a40"]


def test_a_record_out_of_its_partitions_order_is_released_late_never_dropped() -> None:
    out = merge_all({0: [(10, "a10"), (3, "a3")], 1: [(5, "b5")]})
    assert [(r.item, r.late) for r in out] == [("b5", False), ("a10", False), ("a3", True)]


def test_bad_use_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="allowed_lateness_ns"):
        EventTimeMerge(-1)
    merge: EventTimeMerge[str] = EventTimeMerge(0)
    merge.open_partition(0, 5, 0)
    with pytest.raises(ValueError, match="already open"):
        merge.open_partition(0, 5, 0)
    with pytest.raises(ValueError, match="below the next expected"):
        merge.add(0, 4, 1, "x", 0)


# --- properties -----------------------------------------------------------------------

sorted_streams = st.dictionaries(
    keys=st.integers(0, 5),
    values=st.lists(st.integers(0, 40), max_size=25).map(sorted),
    min_size=1,
    max_size=5,
)


def _arrivals(
    streams: dict[int, list[int]], choices: list[int], start: dict[int, int] | None = None
) -> list[tuple[int, int, int]]:
    """One interleaving of the streams' records as (partition, offset, ts), each
    partition's in offset order; ``choices`` picks which partition goes next."""
    cursor = dict.fromkeys(streams, 0) if start is None else dict(start)
    order: list[tuple[int, int, int]] = []
    i = 0
    while any(cursor[p] < len(s) for p, s in streams.items()):
        live = [p for p, s in streams.items() if cursor[p] < len(s)]
        p = live[choices[i % len(choices)] % len(live)] if choices else live[0]
        i += 1
        order.append((p, cursor[p], streams[p][cursor[p]]))
        cursor[p] += 1
    return order


def _run(
    streams: dict[int, list[int]],
    arrivals: list[tuple[int, int, int]],
    start: dict[int, int],
    stop_after: int | None = None,
) -> tuple[list[tuple[int, int, int]], dict[int, int]]:
    """Feed ``arrivals`` one by one, releasing after each (never idling anybody), then
    flush everything unless stopped early. Returns the output and the resume offsets."""
    merge: EventTimeMerge[None] = EventTimeMerge(allowed_lateness_ns=0)
    for p in streams:
        merge.open_partition(p, start.get(p, 0), 0)
    out: list[tuple[int, int, int]] = []
    for n, (p, offset, ts) in enumerate(arrivals):
        if stop_after is not None and n == stop_after:
            return out, merge.resume_offsets()
        merge.add(p, offset, ts, None, 0)
        out += [(r.ts_ns, r.partition, r.offset) for r in merge.release(0)]
        assert not any(r.late for r in merge.release(0))
    out += [(r.ts_ns, r.partition, r.offset) for r in merge.release(1, caught_up=set(streams))]
    return out, merge.resume_offsets()


def _expected(streams: dict[int, list[int]]) -> list[tuple[int, int, int]]:
    return sorted((ts, p, o) for p, s in streams.items() for o, ts in enumerate(s))


@settings(max_examples=300, deadline=None)
@given(streams=sorted_streams, choices=st.lists(st.integers(0, 100), max_size=60))
def test_any_interleaving_of_ordered_partitions_comes_out_in_global_order(
    streams: dict[int, list[int]], choices: list[int]
) -> None:
    out, resume = _run(streams, _arrivals(streams, choices), {})
    assert out == _expected(streams)
    assert resume == {p: len(s) for p, s in streams.items()}


@settings(max_examples=300, deadline=None)
@given(
    streams=sorted_streams,
    choices=st.lists(st.integers(0, 100), max_size=60),
    cut=st.integers(0, 200),
    choices_after=st.lists(st.integers(0, 100), max_size=60),
)
def test_a_restart_from_the_resume_offsets_continues_the_same_sequence(
    streams: dict[int, list[int]], choices: list[int], cut: int, choices_after: list[int]
) -> None:
    arrivals = _arrivals(streams, choices)
    before, resume = _run(streams, arrivals, {}, stop_after=min(cut, len(arrivals)))
    # the restart re-reads each partition from its resume offset, in a new interleaving
    after, _ = _run(streams, _arrivals(streams, choices_after, resume), resume)
    assert before + after == _expected(streams)
