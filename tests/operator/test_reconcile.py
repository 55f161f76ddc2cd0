"""The status the reconcile writes (pure part of ticklake.operator.reconcile)."""

from __future__ import annotations

import datetime as dt

from ticklake.operator import decision, lag, reconcile

T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)
TOPIC = lag.TopicLag(
    topic="market.ticks",
    partitions=2,
    offsets={
        0: lag.PartitionOffsets(beginning=0, end=10, committed=4),
        1: lag.PartitionOffsets(beginning=0, end=5, committed=None),
    },
)


def _patch(old: dict, d: decision.Decision, *, scaled: bool, now: dt.datetime = T0) -> dict:
    return reconcile.status_patch(
        old_status=old, generation=3, topic=TOPIC, partitions=2, current=2, d=d,
        scaled=scaled, suspended=False, now=now,
    )  # fmt: skip


HOLD = decision.Decision(2, 1, decision.Reason.STABILISING, "hold", scale_down_pending=True)
STEADY = decision.Decision(2, 2, decision.Reason.STEADY, "ok", scale_down_pending=False)
DOWN = decision.Decision(1, 1, decision.Reason.SCALE_DOWN, "2 -> 1", scale_down_pending=False)


def test_lag_per_partition_and_totals() -> None:
    st = _patch({}, STEADY, scaled=False)
    assert st["totalLag"] == 6 + 5
    assert st["lagPerPartition"] == [
        {"partition": 0, "lag": 6, "end": 10, "committed": 4},
        {"partition": 1, "lag": 5, "end": 5},
    ]
    assert st["observedGeneration"] == 3
    assert "lastScaleTime" not in st


def test_pending_scale_down_keeps_its_first_time() -> None:
    first = _patch({}, HOLD, scaled=False)
    assert first["scaleDownPendingSince"] == "2026-12-01T10:00:00Z"
    later = _patch(first, HOLD, scaled=False, now=T0 + dt.timedelta(minutes=3))
    assert later["scaleDownPendingSince"] == "2026-12-01T10:00:00Z"
    # A round that no longer wants fewer replicas resets the clock.
    assert _patch(later, STEADY, scaled=False)["scaleDownPendingSince"] is None


def test_a_scale_records_time_reason_and_clears_pending() -> None:
    st = _patch({"scaleDownPendingSince": "2026-12-01T09:00:00Z"}, DOWN, scaled=True)
    assert st["lastScaleTime"] == "2026-12-01T10:00:00Z"
    assert st["lastScaleReason"] == "ScaleDown"
    assert st["currentReplicas"] == 1
    assert st["scaleDownPendingSince"] is None


def test_ready_transition_time_moves_only_on_a_flip() -> None:
    ok = _patch({}, STEADY, scaled=False)
    again = _patch(ok, STEADY, scaled=False, now=T0 + dt.timedelta(hours=1))
    assert again["conditions"][0]["lastTransitionTime"] == "2026-12-01T10:00:00Z"
    failed = reconcile.condition(
        again, ok=False, reason="KafkaUnavailable", message="down", generation=3,
        now=T0 + dt.timedelta(hours=2),
    )  # fmt: skip
    assert failed[0]["lastTransitionTime"] == "2026-12-01T12:00:00Z"
    assert failed[0]["status"] == "False"
