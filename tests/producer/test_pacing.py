"""Pacing arithmetic: exact counts per slice, bursts, replay offsets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticklake.producer import pacing
from ticklake.producer.pacing import NS_PER_S, Bursts, RatePlan

MS = 1_000_000


@pytest.mark.parametrize(
    "rate, elapsed_ns, due",
    [
        (5000, 0, 0),
        (5000, 100 * MS, 500),
        (5000, 10 * NS_PER_S, 50_000),
        (3, NS_PER_S // 2, 1),
        (0.5, 3 * NS_PER_S, 1),
        (100_000, 10 * MS, 1000),
    ],
)
def test_due_is_the_floored_integral_of_the_rate(rate: float, elapsed_ns: int, due: int) -> None:
    assert RatePlan(rate).due(elapsed_ns) == due


def test_slices_add_up_to_the_rate_exactly() -> None:
    plan = RatePlan(4321.0)
    counts = [pacing.slice_at(plan, 10 * MS, i).count for i in range(1000)]
    assert sum(counts) == plan.due(10 * NS_PER_S) == 43_210
    assert max(counts) - min(counts) <= 1


@pytest.mark.parametrize(
    "elapsed_s, in_burst",
    [(0.0, 0.0), (9.9, 0.0), (10.0, 0.0), (10.5, 0.5), (11.0, 1.0), (19.0, 1.0), (20.25, 1.25)],
)
def test_burst_seconds(elapsed_s: float, in_burst: float) -> None:
    assert Bursts(every_s=10, duration_s=1, multiplier=5).seconds_in_burst(
        elapsed_s
    ) == pytest.approx(in_burst)


def test_bursts_multiply_the_rate_inside_bursts_only() -> None:
    plan = RatePlan(1000, Bursts(every_s=10, duration_s=2, multiplier=4))
    assert plan.rate_at(5) == 1000
    assert plan.rate_at(10.5) == 4000
    assert plan.rate_at(12.5) == 1000
    # 20 s: 20,000 base plus 2 bursts of 2 s at +3,000/s... only one burst has started by 20 s
    # (bursts start at 10 and 20), so 20,000 + 2 * 3,000.
    assert plan.due(20 * NS_PER_S) == 26_000
    burst_slices = [pacing.slice_at(plan, 10 * MS, i).count for i in range(1000, 1200)]
    assert sum(burst_slices) == 8000


def test_count_limit_truncates_the_last_slice() -> None:
    plan = RatePlan(1000)
    assert pacing.slice_at(plan, 10 * MS, 0, limit=25).count == 10
    assert pacing.slice_at(plan, 10 * MS, 2, limit=25).count == 5
    assert pacing.slice_at(plan, 10 * MS, 3, limit=25).count == 0


@pytest.mark.parametrize(
    "duration_s, slice_ns, slices",
    [(None, 10 * MS, None), (1.0, 10 * MS, 100), (0.015, 10 * MS, 2)],
)
def test_slices_for_duration(duration_s: float | None, slice_ns: int, slices: int | None) -> None:
    assert pacing.slices_for_duration(duration_s, slice_ns) == slices


@pytest.mark.parametrize("bad", [{"every_s": 1, "duration_s": 1}, {"every_s": 1, "duration_s": 0}])
def test_bad_bursts_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError, match="burst duration"):
        Bursts(multiplier=2, **bad)


def test_replay_offsets_follow_speed_and_never_go_back() -> None:
    ts = np.array([100, 1100, 600, 2100], dtype=np.int64) * MS
    assert pacing.replay_offsets_ns(ts, 100 * MS, 1.0).tolist() == [
        0,
        1000 * MS,
        1000 * MS,
        2000 * MS,
    ]
    assert pacing.replay_offsets_ns(ts, 100 * MS, 10.0).tolist() == [
        0,
        100 * MS,
        100 * MS,
        200 * MS,
    ]
    assert pacing.replay_offsets_ns(ts, 100 * MS, 0).tolist() == [0, 0, 0, 0]


def test_due_prefix() -> None:
    offsets = np.array([0, 10, 10, 30])
    assert [pacing.due_prefix(offsets, t) for t in (-1, 0, 9, 10, 29, 30)] == [0, 1, 1, 3, 3, 4]


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=200_000),
    slice_ms=st.integers(min_value=1, max_value=100),
    slices=st.integers(min_value=1, max_value=500),
    burst=st.one_of(
        st.none(),
        st.tuples(
            st.floats(min_value=0.2, max_value=5),
            st.floats(min_value=0.05, max_value=0.9),
            st.floats(min_value=0.1, max_value=20),
        ),
    ),
)
def test_slices_never_lose_or_invent_ticks(
    rate: float, slice_ms: int, slices: int, burst: tuple[float, float, float] | None
) -> None:
    bursts = None if burst is None else Bursts(burst[0], burst[0] * burst[1], burst[2])
    plan = RatePlan(rate, bursts)
    counts = [pacing.slice_at(plan, slice_ms * MS, i).count for i in range(slices)]
    assert all(c >= 0 for c in counts)
    assert sum(counts) == plan.due(slices * slice_ms * MS)
