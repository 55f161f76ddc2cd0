"""Which partitions cannot make progress, since when, and why. No I/O.

A partition stalls when a step of its write path fails: publishing its dead
letters, writing its lake flush, or committing its offset. While stalled it
moves no further (its flush task retries the same step with backoff and holds
the partition's next flush back), so nothing later is written or committed.
The consumer reports stalls here; readiness and metrics read them, and the
consume loop asks :meth:`PartitionStalls.overdue` whether one has lasted past
the configured bound, after which the process exits so it is restarted and
recovers from the last durable flush.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import Any

from ticklake.ingest.metrics import IngestMetrics


class Stage(enum.StrEnum):
    """Steps of a partition's write path (label values of the failures metric)."""

    DEAD_LETTERS = "dead_letters"
    LAKE_WRITE = "lake_write"
    COMMIT = "commit"
    FLUSH_TASK = "flush_task"
    """The flush task itself died (a bug): its job is lost, so the process must restart."""


@dataclass(slots=True)
class Stall:
    stage: Stage
    reason: str
    since: float
    """``time.monotonic()`` of the first failure of this stall."""
    failures: int = 1


class PartitionStalls:
    """Stalled partitions of this replica, mirrored into the metrics."""

    def __init__(self, metrics: IngestMetrics) -> None:
        self._metrics = metrics
        self._stalls: dict[int, Stall] = {}

    def failed(
        self, partition: int, stage: Stage, error: BaseException, now: float | None = None
    ) -> Stall:
        """Record one failed attempt; a stall keeps the time of its first failure."""
        now = time.monotonic() if now is None else now
        reason = f"{type(error).__name__}: {error}"
        stall = self._stalls.get(partition)
        if stall is None:
            stall = self._stalls[partition] = Stall(stage, reason, now)
        else:
            stall.stage, stall.reason = stage, reason
            stall.failures += 1
        self._metrics.failures.labels(stage.value).inc()
        self._metrics.partition_stalled.labels(str(partition)).set(1)
        return stall

    def progressed(self, partition: int) -> None:
        """A step of ``partition`` succeeded: whatever held it is over."""
        if self._stalls.pop(partition, None) is not None:
            self._metrics.partition_stalled.labels(str(partition)).set(0)

    def forget(self, partition: int) -> None:
        """The partition left this replica."""
        self._stalls.pop(partition, None)
        try:
            self._metrics.partition_stalled.remove(str(partition))
        except KeyError:
            pass

    def overdue(self, after_s: float, now: float | None = None) -> tuple[int, Stall] | None:
        """The longest stall that has lasted ``after_s`` seconds or more, if any."""
        now = time.monotonic() if now is None else now
        worst = min(self._stalls.items(), key=lambda kv: kv[1].since, default=None)
        if worst is not None and now - worst[1].since >= after_s:
            return worst
        return None

    def report(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        """For ``/readyz``: per stalled partition, the stage, the reason and how long."""
        now = time.monotonic() if now is None else now
        return {
            str(p): {
                "stage": s.stage.value,
                "reason": s.reason[:500],
                "stalled_for_s": round(now - s.since, 3),
                "failures": s.failures,
            }
            for p, s in sorted(self._stalls.items())
        }

    def __bool__(self) -> bool:
        return bool(self._stalls)

    def __contains__(self, partition: object) -> bool:
        return partition in self._stalls
