"""The scaling rules of ticklake.operator.decision, table-driven and as properties."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticklake.operator.decision import Decision, Mode, Observation, Policy, Reason, decide

P = Policy
LAG = Mode.LAG


def obs(
    partitions: int, current: int, lag: dict[int, int] | None = None, **kw: float | None
) -> Observation:
    return Observation(partitions=partitions, current_replicas=current, lag=lag or {}, **kw)  # type: ignore[arg-type]


TABLE: list[tuple[str, Observation, Policy, int, Reason]] = [
    ("one replica per partition at start", obs(12, 1), P(), 12, Reason.SCALE_UP),
    ("partitions per replica", obs(12, 1), P(partitions_per_replica=3), 4, Reason.SCALE_UP),
    ("uneven partitions round up", obs(10, 1), P(partitions_per_replica=3), 4, Reason.SCALE_UP),
    ("already right", obs(12, 4), P(partitions_per_replica=3), 4, Reason.STEADY),
    ("capped by maxReplicas", obs(12, 1), P(max_replicas=5), 5, Reason.SCALE_UP),
    (
        "never more than partitions",
        obs(3, 1),
        P(min_replicas=5, max_replicas=10),
        3,
        Reason.SCALE_UP,
    ),
    (
        "idle consumers allowed",
        obs(3, 1),
        P(min_replicas=5, max_replicas=10, allow_idle_consumers=True),
        5,
        Reason.SCALE_UP,
    ),
    (
        "partition increase is immediate",
        obs(24, 12, since_last_scale_s=1),
        P(scale_down_stabilization_s=600),
        24,
        Reason.SCALE_UP,
    ),
    (
        "lag: ceil(total / threshold)",
        obs(12, 1, {0: 2500, 1: 100}),
        P(mode=LAG, lag_threshold=1000),
        3,
        Reason.SCALE_UP,
    ),
    ("lag: no lag gives min", obs(12, 1, {0: 0}), P(mode=LAG, min_replicas=2), 2, Reason.SCALE_UP),
    (
        "lag: scale to zero when allowed",
        obs(12, 0, {}),
        P(mode=LAG, min_replicas=0),
        0,
        Reason.STEADY,
    ),
    (
        "lag: capped at partitions",
        obs(4, 1, {0: 10**9}),
        P(mode=LAG, lag_threshold=1),
        4,
        Reason.SCALE_UP,
    ),
    (
        "lag: hot partitions each need a consumer",
        obs(12, 1, {0: 1001, 1: 1001, 2: 1001}),
        P(mode=LAG, lag_threshold=1000),
        4,
        Reason.SCALE_UP,
    ),
    (
        "even distribution rounds up to a divisor",
        obs(12, 1),
        P(max_replicas=5, even_distribution=True),
        4,
        Reason.SCALE_UP,
    ),
    (
        "even distribution: lag 5 -> 6 of 12",
        obs(12, 1, {0: 5000}),
        P(mode=LAG, even_distribution=True),
        6,
        Reason.SCALE_UP,
    ),
    (
        "even distribution: prime partitions",
        obs(7, 1, {0: 3000}),
        P(mode=LAG, even_distribution=True),
        7,
        Reason.SCALE_UP,
    ),
    (
        "even distribution down when up breaks max",
        obs(12, 1, {0: 5000}),
        P(mode=LAG, max_replicas=5, even_distribution=True),
        4,
        Reason.SCALE_UP,
    ),
    (
        "down waits for the window (never scaled)",
        obs(12, 12, {}),
        P(mode=LAG),
        12,
        Reason.STABILISING,
    ),
    (
        "down waits: wanted too briefly",
        obs(12, 12, {}, since_last_scale_s=1000, scale_down_wanted_for_s=10),
        P(mode=LAG),
        12,
        Reason.STABILISING,
    ),
    (
        "down waits: scaled recently",
        obs(12, 12, {}, since_last_scale_s=10, scale_down_wanted_for_s=1000),
        P(mode=LAG),
        12,
        Reason.STABILISING,
    ),
    (
        "down after the window",
        obs(12, 12, {}, since_last_scale_s=300, scale_down_wanted_for_s=300),
        P(mode=LAG),
        1,
        Reason.SCALE_DOWN,
    ),
    (
        "window zero scales down at once",
        obs(12, 12, {}),
        P(mode=LAG, scale_down_stabilization_s=0),
        1,
        Reason.SCALE_DOWN,
    ),
    ("lowered max applies at once", obs(12, 12), P(max_replicas=6), 6, Reason.SCALE_DOWN),
]


@pytest.mark.parametrize(
    ("o", "p", "want", "reason"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE]
)
def test_table(o: Observation, p: Policy, want: int, reason: Reason) -> None:
    d = decide(o, p)
    assert (d.desired, d.reason) == (want, reason), d.message


def test_hold_reports_the_lower_target_and_pending() -> None:
    d = decide(obs(12, 12, {}), P(mode=LAG))
    assert (d.target, d.scale_down_pending) == (1, True)
    assert "stabilisation" in d.message


@pytest.mark.parametrize(
    "kw",
    [
        dict(min_replicas=3, max_replicas=2),
        dict(min_replicas=-1),
        dict(partitions_per_replica=0),
        dict(lag_threshold=0),
        dict(scale_down_stabilization_s=-1),
    ],
)
def test_invalid_policy_is_refused(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        Policy(**kw)  # type: ignore[arg-type]


def test_zero_partitions_is_an_error() -> None:
    with pytest.raises(ValueError):
        decide(obs(0, 1), P())


# --- properties ----------------------------------------------------------------

policies = st.builds(
    lambda lo, span, ppr, thr, win, even, idle, mode: Policy(
        mode=mode,
        min_replicas=lo,
        max_replicas=max(1, lo + span),
        partitions_per_replica=ppr,
        lag_threshold=thr,
        scale_down_stabilization_s=win,
        even_distribution=even,
        allow_idle_consumers=idle,
    ),
    st.integers(0, 20),
    st.integers(0, 40),
    st.integers(1, 8),
    st.integers(1, 5000),
    st.sampled_from([0.0, 30.0, 300.0]),
    st.booleans(),
    st.booleans(),
    st.sampled_from(list(Mode)),
)
ages = st.none() | st.floats(0, 1000)


@st.composite
def observations(draw: st.DrawFn) -> Observation:
    n = draw(st.integers(1, 64))
    lag = draw(st.dictionaries(st.integers(0, n - 1), st.integers(0, 10**6), max_size=n))
    return Observation(
        partitions=n,
        current_replicas=draw(st.integers(0, 80)),
        lag=lag,
        since_last_scale_s=draw(ages),
        scale_down_wanted_for_s=draw(ages),
    )


@given(observations(), policies)
def test_bounds_always_respected(o: Observation, p: Policy) -> None:
    d = decide(o, p)
    cap = p.max_replicas if p.allow_idle_consumers else min(p.max_replicas, o.partitions)
    assert d.desired <= cap
    assert d.desired >= min(p.min_replicas, cap)
    assert d.target <= cap


@given(observations(), policies, st.integers(0, 63), st.integers(1, 10**6))
def test_monotone_in_lag(o: Observation, p: Policy, partition: int, extra: int) -> None:
    more = dict(o.lag)
    part = partition % o.partitions
    more[part] = more.get(part, 0) + extra
    assert decide(dataclasses.replace(o, lag=more), p).desired >= decide(o, p).desired


@given(observations(), policies)
def test_even_distribution_divides_when_possible(o: Observation, p: Policy) -> None:
    p = dataclasses.replace(p, even_distribution=True, scale_down_stabilization_s=0)
    d = decide(o, p)
    lo, hi = max(1, min(p.min_replicas, o.partitions)), min(p.max_replicas, o.partitions)
    if (
        d.desired > 0
        and not p.allow_idle_consumers
        and any(o.partitions % r == 0 for r in range(lo, hi + 1))
    ):
        assert o.partitions % d.desired == 0


def _simulate(o: Observation, p: Policy, rounds: int, step_s: float) -> list[Decision]:
    """What the glue does: apply each decision, track the last scale and pending times."""
    current, since_scale, pending_since, t = o.current_replicas, None, None, 0.0
    out = []
    for _ in range(rounds):
        d = decide(
            dataclasses.replace(
                o,
                current_replicas=current,
                since_last_scale_s=None if since_scale is None else t - since_scale,
                scale_down_wanted_for_s=None if pending_since is None else t - pending_since,
            ),
            p,
        )
        if d.desired != current:
            current, since_scale, pending_since = d.desired, t, None
        elif d.scale_down_pending:
            pending_since = t if pending_since is None else pending_since
        else:
            pending_since = None
        out.append(d)
        t += step_s
    return out


@settings(max_examples=200)
@given(observations(), policies, st.floats(1, 120))
def test_no_flapping_under_steady_input(o: Observation, p: Policy, step_s: float) -> None:
    ds = _simulate(o, p, rounds=40, step_s=step_s)
    counts = [o.current_replicas] + [d.desired for d in ds]
    changes = [b - a for a, b in itertools.pairwise(counts) if b != a]
    # At most one move to the bounds and one to the target, never back again.
    assert len(changes) <= 2
    assert all(c > 0 for c in changes) or all(c < 0 for c in changes)
    # Steady input ends steady: the last rounds change nothing.
    if step_s * 20 > p.scale_down_stabilization_s:
        assert len(set(counts[-10:])) == 1
