"""When ticks are due: pure arithmetic on elapsed time, no clock and no sleeping.

Simulation is paced in fixed *slices* of feed time (``slice_ns``, 10 ms by
default). Slice ``k`` covers ``[k*slice_ns, (k+1)*slice_ns)`` and holds
``due((k+1)*slice_ns) - due(k*slice_ns)`` ticks, where ``due(t)`` is the
integral of the rate (with bursts) from 0 to ``t``, floored. The runner sends
slice ``k`` once the wall clock has passed its end, so over any window the
count sent is exact to one slice, and because the slice boundaries do not
depend on how fast the loop runs, a seeded run is reproducible tick for tick.

Replay is paced by the file's own event times: a row is due ``(ts - first_ts) /
speed`` after the start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Bursts:
    """Periodic bursts: from ``every_s``, ``2*every_s`` ... the rate is ``multiplier``
    times the base for ``duration_s`` seconds."""

    every_s: float
    duration_s: float
    multiplier: float

    def __post_init__(self) -> None:
        if not 0 < self.duration_s < self.every_s:
            raise ValueError(
                f"burst duration {self.duration_s}s must be in (0, every {self.every_s}s)"
            )
        if not self.multiplier > 0:
            raise ValueError(f"burst multiplier {self.multiplier} must be > 0")

    def seconds_in_burst(self, elapsed_s: float) -> float:
        """Total burst time inside ``[0, elapsed_s]``."""
        if elapsed_s < self.every_s:
            return 0.0
        started = math.floor(elapsed_s / self.every_s)
        last_start = started * self.every_s
        return (started - 1) * self.duration_s + min(self.duration_s, elapsed_s - last_start)


@dataclass(frozen=True, slots=True)
class RatePlan:
    """A feed's rate over time: ``rate`` ticks/s, optionally with bursts."""

    rate: float
    bursts: Bursts | None = None

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate {self.rate} ticks/s must be > 0")

    def rate_at(self, elapsed_s: float) -> float:
        """Instantaneous rate (ticks/s) at ``elapsed_s``."""
        b = self.bursts
        if b is None or elapsed_s < b.every_s:
            return self.rate
        in_period = elapsed_s - math.floor(elapsed_s / b.every_s) * b.every_s
        return self.rate * b.multiplier if in_period < b.duration_s else self.rate

    def due(self, elapsed_ns: int) -> int:
        """Ticks due in ``[0, elapsed_ns]``: the integral of the rate, floored."""
        seconds = elapsed_ns / NS_PER_S
        total = self.rate * seconds
        if self.bursts is not None:
            total += (
                self.rate * (self.bursts.multiplier - 1.0) * self.bursts.seconds_in_burst(seconds)
            )
        # A hair of tolerance so 0.1 s * 5000/s is 500, not 499.99999.
        return math.floor(total + 1e-9)


@dataclass(frozen=True, slots=True)
class Slice:
    """Slice ``index`` of a paced feed: ``count`` ticks in ``[start_ns, end_ns)`` of feed time
    (relative to the feed start)."""

    index: int
    start_ns: int
    end_ns: int
    count: int


def slice_at(plan: RatePlan, slice_ns: int, index: int, limit: int | None = None) -> Slice:
    """Slice ``index`` of ``plan``; with ``limit``, no slice goes past ``limit`` ticks in total."""
    start_ns = index * slice_ns
    end_ns = start_ns + slice_ns
    first = plan.due(start_ns)
    last = plan.due(end_ns)
    if limit is not None:
        first, last = min(first, limit), min(last, limit)
    return Slice(index=index, start_ns=start_ns, end_ns=end_ns, count=last - first)


def slices_for_duration(duration_s: float | None, slice_ns: int) -> int | None:
    """How many slices cover ``duration_s`` (None = unbounded)."""
    if duration_s is None:
        return None
    return math.ceil(round(duration_s * NS_PER_S / slice_ns, 6))


def replay_offsets_ns(ts_ns: np.ndarray, first_ts_ns: int, speed: float) -> np.ndarray:
    """Wall-clock offsets (ns from the replay start) at which rows are due.

    ``speed`` 1 keeps the original pace, 10 is ten times faster, 0 means no
    pacing (every row is due at once). Rows are sent in file order, so a row
    whose time is earlier than a row before it (out of order input) is due
    together with that row: offsets never decrease.
    """
    if speed <= 0:
        return np.zeros(len(ts_ns), dtype=np.int64)
    offsets = (ts_ns.astype(np.int64) - first_ts_ns).astype(np.float64) / speed
    np.maximum(offsets, 0.0, out=offsets)
    if len(offsets):
        np.maximum.accumulate(offsets, out=offsets)
    return offsets.astype(np.int64)


def due_prefix(offsets_ns: np.ndarray, elapsed_ns: int) -> int:
    """How many leading rows (offsets sorted ascending) are due at ``elapsed_ns``."""
    return int(np.searchsorted(offsets_ns, elapsed_ns, side="right"))
