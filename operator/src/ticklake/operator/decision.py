"""The scaling decision: how many ingest replicas, and why. Pure; no I/O.

Everything the kopf glue gathers (partition count, lag per partition, the
workload's current replicas, the time since the last scale) goes in; a
:class:`Decision` comes out. Keeping this a function of plain values is what
lets the table-driven and property tests in ``tests/operator/test_decision.py``
cover every rule without a cluster.

The rules, in the order they apply:

1. **Target.** ``partitions`` mode: ``ceil(P / partitionsPerReplica)``.
   ``lag`` mode: ``ceil(totalLag / lagThreshold)`` (KEDA's formula), but never
   below the partitions that are individually over the threshold, because a
   partition is consumed by one consumer only and a backlog in it cannot be
   shared.
2. **Bounds.** ``minReplicas`` .. ``maxReplicas``, and never more replicas than
   partitions (a consumer beyond that gets no partition and idles) unless
   ``allowIdleConsumers``. The partition cap wins over ``minReplicas``.
3. **Even distribution** (optional): move to a replica count that divides P,
   so every consumer owns the same number of partitions: the next divisor
   up, or if that breaks the bounds, the next one down.
4. **Stabilisation.** Up at once (partitions growing or lag rising must not
   wait); down only when both the last scale and the first moment the lower
   count was wanted lie ``scaleDownStabilizationSeconds`` in the past. While
   it waits, the current count is kept, clipped into the bounds.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass


class Mode(enum.StrEnum):
    PARTITIONS = "partitions"
    """One replica per ``partitionsPerReplica`` partitions, whatever the lag."""
    LAG = "lag"
    """As many replicas as the lag needs, between the bounds."""


class Reason(enum.StrEnum):
    """Short CamelCase reasons; used as the Kubernetes Event reason too."""

    SCALE_UP = "ScaleUp"
    SCALE_DOWN = "ScaleDown"
    STEADY = "Steady"
    STABILISING = "ScaleDownStabilising"


@dataclass(frozen=True)
class Policy:
    """The scaling part of an IngestScaler spec, already validated."""

    mode: Mode = Mode.PARTITIONS
    min_replicas: int = 1
    max_replicas: int = 100
    partitions_per_replica: int = 1
    lag_threshold: int = 1000
    """Messages of lag one replica is expected to work off (lag mode)."""
    scale_down_stabilization_s: float = 300.0
    """Seconds a lower replica count must be wanted before scaling down."""
    even_distribution: bool = False
    allow_idle_consumers: bool = False

    def __post_init__(self) -> None:
        if self.min_replicas < 0 or self.max_replicas < 1:
            raise ValueError("minReplicas must be >= 0 and maxReplicas >= 1")
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas {self.min_replicas} > maxReplicas {self.max_replicas}")
        if self.partitions_per_replica < 1 or self.lag_threshold < 1:
            raise ValueError("partitionsPerReplica and lagThreshold must be >= 1")
        if self.scale_down_stabilization_s < 0:
            raise ValueError("scaleDownStabilizationSeconds must be >= 0")


@dataclass(frozen=True)
class Observation:
    """What the operator saw this round."""

    partitions: int
    current_replicas: int
    lag: Mapping[int, int]
    """Lag (messages) per partition id; missing partitions count as 0."""
    since_last_scale_s: float | None = None
    """Seconds since the operator last changed the replicas; None = never."""
    scale_down_wanted_for_s: float | None = None
    """Seconds a count below the current one has been wanted without a break;
    None = it was not wanted in the previous round."""

    @property
    def total_lag(self) -> int:
        return sum(max(0, v) for v in self.lag.values())


@dataclass(frozen=True)
class Decision:
    desired: int
    """Replicas the workload should have now."""
    target: int
    """Replicas the inputs call for, before stabilisation."""
    reason: Reason
    message: str
    scale_down_pending: bool
    """True while a lower target waits for the window; the glue records the
    first time this turns true and passes the age back next round."""

    @property
    def changes(self) -> bool:
        return self.reason in (Reason.SCALE_UP, Reason.SCALE_DOWN)


def bounds(partitions: int, policy: Policy) -> tuple[int, int]:
    """(lowest, highest) replica count allowed for ``partitions``."""
    upper = policy.max_replicas
    if not policy.allow_idle_consumers:
        upper = min(upper, partitions)
    lower = min(policy.min_replicas, upper)
    return lower, upper


def raw_target(obs: Observation, policy: Policy) -> tuple[int, str]:
    """The count the inputs call for before bounds, with a human explanation."""
    if policy.mode is Mode.PARTITIONS:
        n = math.ceil(obs.partitions / policy.partitions_per_replica)
        return n, f"{obs.partitions} partitions / {policy.partitions_per_replica} per replica"
    total = obs.total_lag
    by_total = math.ceil(total / policy.lag_threshold)
    hot = sum(1 for v in obs.lag.values() if v > policy.lag_threshold)
    n = max(by_total, hot)
    return n, f"lag {total} / threshold {policy.lag_threshold}, {hot} partitions over it"


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def evenly_dividing(n: int, partitions: int, lower: int, upper: int) -> int:
    """The replica count nearest above ``n`` that divides ``partitions``.

    Falls back to the nearest divisor below, and to ``n`` itself when no
    divisor lies within [lower, upper].
    """
    divs = [d for d in _divisors(partitions) if lower <= d <= upper]
    up = [d for d in divs if d >= n]
    if up:
        return up[0]
    down = [d for d in divs if d <= n]
    return down[-1] if down else n


def decide(obs: Observation, policy: Policy) -> Decision:
    """The replica count for this round and the reason."""
    if obs.partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {obs.partitions}")
    lower, upper = bounds(obs.partitions, policy)
    raw, why = raw_target(obs, policy)
    target = max(lower, min(raw, upper))
    if policy.even_distribution and target > 0:
        target = evenly_dividing(target, obs.partitions, max(lower, 1), upper)
    current = obs.current_replicas
    if target > current:
        return Decision(target, target, Reason.SCALE_UP, f"{current} -> {target}: {why}", False)
    if target == current:
        return Decision(current, target, Reason.STEADY, f"{current} replicas: {why}", False)

    window = policy.scale_down_stabilization_s
    settled = (obs.since_last_scale_s is None or obs.since_last_scale_s >= window) and (
        window == 0
        or (obs.scale_down_wanted_for_s is not None and obs.scale_down_wanted_for_s >= window)
    )
    if settled:
        return Decision(target, target, Reason.SCALE_DOWN, f"{current} -> {target}: {why}", False)
    # Keep what runs, but never outside the bounds: a lowered maxReplicas or
    # the partition cap applies at once.
    held = min(current, upper)
    reason = Reason.SCALE_DOWN if held != current else Reason.STABILISING
    return Decision(
        held,
        target,
        reason,
        f"want {target}, keeping {held} for the {window:g}s stabilisation window: {why}",
        True,
    )
