"""Event-time merge of a topic's partitions with per-partition watermarks. Pure.

The sequencer (:mod:`ticklake.ingest.sequencer`) feeds every record of every
source partition into one :class:`EventTimeMerge` and forwards what
:meth:`EventTimeMerge.release` hands back. No I/O and no clock here: the
caller passes the time and which partitions are caught up, so tests drive the
merge directly.

Why the output is exactly event-time order: each source partition carries its
producer's order (event time never decreases within a partition). The
buffered record with the smallest ``(ts_ns, partition, offset)`` is released
only when no record still to come can sort before it, i.e. when every other
partition either has a buffered record (which sorts after it, since it was not
the smallest) or has already shown a time past it. "Past" is lexicographic on
``(ts_ns, partition)``: a partition that showed the candidate's very time can
still send another record with that time, which sorts first if that partition's
number is smaller. So the output is sorted by ``(ts_ns, partition, offset)``,
ties broken by source position.

Why restarts are exact: records leave each partition's buffer from its head
only, so what was released from a partition is a prefix of it, and
:meth:`EventTimeMerge.resume_offsets` (the first unreleased offset of each
partition) is where a restart resumes. Everything released sorts before
everything not released, so the restarted merge continues the same sequence.

Idle partitions: a partition with nothing buffered blocks the merge until it
shows a later time. One that is caught up (nothing more in the log) and silent
for ``allowed_lateness_ns`` is *idle*: a record may pass it once that record
has itself been buffered for ``allowed_lateness_ns``. Waiting on the record's
own arrival, not only on the partition's silence, is what keeps a restart of
traffic exact: when a paused producer resumes, its records for different
partitions reach the log milliseconds apart (one batch per partition), and a
record of a busy partition must not overtake the first record of an idle one
that is still on its way. A record that arrives more than
``allowed_lateness_ns`` after a later one of another partition was buffered
(or any record that breaks its partition's order) is still released, marked
``late``; the merge never drops anything.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

NO_TIME = -(2**63)
"""Watermark of a partition that has shown no record yet: blocks every candidate."""


@dataclass(frozen=True, slots=True)
class Released(Generic[T]):
    """A record leaving the merge, in output order."""

    ts_ns: int
    partition: int
    offset: int
    item: T
    late: bool
    """True when a record with a later event time was released before this one."""


@dataclass(slots=True)
class _Source(Generic[T]):
    queue: deque[tuple[int, int, T, int]]
    """Buffered (ts_ns, offset, item, arrival_ns), in offset order."""
    next_offset: int
    """Offset after the last record added (where reading continues)."""
    watermark: int
    """Highest event time seen on this partition (:data:`NO_TIME` before the first)."""
    last_arrival_ns: int
    """Caller's clock when the last record arrived (or the partition was opened)."""


class EventTimeMerge(Generic[T]):
    """Merges per-partition-ordered streams into one stream in event-time order."""

    def __init__(self, allowed_lateness_ns: int) -> None:
        if allowed_lateness_ns < 0:
            raise ValueError(f"allowed_lateness_ns must be >= 0, got {allowed_lateness_ns}")
        self.allowed_lateness_ns = allowed_lateness_ns
        self._sources: dict[int, _Source[T]] = {}
        self._heads: list[tuple[int, int, int]] = []
        """Heap of (ts_ns, partition, offset) of each non-empty queue's head."""
        self.released_ts = NO_TIME
        """Highest event time released so far."""
        self.buffered = 0

    # --- partitions -----------------------------------------------------------------

    def open_partition(self, partition: int, next_offset: int, now_ns: int) -> None:
        """Start merging ``partition``, whose next record is at ``next_offset``."""
        if partition in self._sources:
            raise ValueError(f"partition {partition} is already open")
        self._sources[partition] = _Source(deque(), next_offset, NO_TIME, now_ns)

    def close_all(self) -> None:
        """Forget every partition and buffered record (on losing the partitions)."""
        self._sources.clear()
        self._heads.clear()
        self.buffered = 0
        self.released_ts = NO_TIME

    @property
    def partitions(self) -> list[int]:
        return sorted(self._sources)

    # --- records --------------------------------------------------------------------

    def add(self, partition: int, offset: int, ts_ns: int, item: T, now_ns: int) -> None:
        """Buffer one record of ``partition`` (records of a partition in offset order)."""
        source = self._sources[partition]
        if offset < source.next_offset:
            raise ValueError(
                f"partition {partition}: offset {offset} is below the next expected "
                f"{source.next_offset} (records must be added once, in offset order)"
            )
        if not source.queue:
            heapq.heappush(self._heads, (ts_ns, partition, offset))
        source.queue.append((ts_ns, offset, item, now_ns))
        source.next_offset = offset + 1
        source.watermark = max(source.watermark, ts_ns)
        source.last_arrival_ns = now_ns
        self.buffered += 1

    def buffered_in(self, partition: int) -> int:
        return len(self._sources[partition].queue)

    def next_offset(self, partition: int) -> int:
        """The offset after the last record added to ``partition``."""
        return self._sources[partition].next_offset

    def watermark_of(self, partition: int) -> int:
        return self._sources[partition].watermark

    def release(self, now_ns: int, caught_up: Collection[int] = ()) -> list[Released[T]]:
        """Every record that can leave now, in output order.

        ``caught_up``: partitions whose consumer has reached the log's end; with
        an empty buffer and no record for ``allowed_lateness_ns`` they are idle:
        they hold back only records buffered less than ``allowed_lateness_ns``.
        """
        bound, idle_bound = self._bounds(now_ns, caught_up)
        out: list[Released[T]] = []
        heads = self._heads
        while heads:
            ts_ns, partition, offset = heads[0]
            if (ts_ns, partition) >= bound:
                break
            source = self._sources[partition]
            if (ts_ns, partition) >= idle_bound and (
                now_ns - source.queue[0][3] < self.allowed_lateness_ns
            ):
                break  # an idle partition's next record may still be on its way
            heapq.heappop(heads)
            _, _, item, _ = source.queue.popleft()
            self.buffered -= 1
            late = ts_ns < self.released_ts
            if not late:
                self.released_ts = ts_ns
            out.append(Released(ts_ns, partition, offset, item, late))
            if source.queue:
                next_ts, next_offset, _, _ = source.queue[0]
                heapq.heappush(heads, (next_ts, partition, next_offset))
            elif not self._idle(partition, source, now_ns, caught_up):
                bound = min(bound, (source.watermark, partition))
            else:
                idle_bound = min(idle_bound, (source.watermark, partition))
        return out

    def _idle(
        self, partition: int, source: _Source[T], now_ns: int, caught_up: Collection[int]
    ) -> bool:
        return (
            partition in caught_up and now_ns - source.last_arrival_ns >= self.allowed_lateness_ns
        )

    def idle(self, now_ns: int, caught_up: Collection[int]) -> list[int]:
        """Partitions not waited for right now (empty, caught up, silent long enough)."""
        return [
            p
            for p, source in self._sources.items()
            if not source.queue and self._idle(p, source, now_ns, caught_up)
        ]

    def _bounds(
        self, now_ns: int, caught_up: Collection[int]
    ) -> tuple[tuple[int, int], tuple[int, int]]:
        """The smallest (watermark, partition) of the empty partitions, in two
        groups: those that hold the merge (not idle; a head below it can leave)
        and the idle ones (a head at or above it leaves only after it waited
        ``allowed_lateness_ns``)."""
        holding = idle = (2**63, 2**31)
        for partition, source in self._sources.items():
            if source.queue:
                continue
            if self._idle(partition, source, now_ns, caught_up):
                idle = min(idle, (source.watermark, partition))
            else:
                holding = min(holding, (source.watermark, partition))
        return holding, idle

    # --- restart point --------------------------------------------------------------

    def resume_offsets(self) -> dict[int, int]:
        """Per partition, the first offset not yet released: commit these with the
        released records and a restart continues exactly after them."""
        offsets = {}
        for partition, source in self._sources.items():
            offsets[partition] = source.queue[0][1] if source.queue else source.next_offset
        return offsets


def merge_all(
    streams: dict[int, Iterable[tuple[int, T]]], start_offsets: dict[int, int] | None = None
) -> list[Released[T]]:
    """Merge whole finite streams (partition -> (ts_ns, item) in offset order): a reference
    for tests and tools. Offsets count from ``start_offsets`` (0 by default)."""
    merge: EventTimeMerge[T] = EventTimeMerge(0)
    starts = start_offsets or {}
    for partition in streams:
        merge.open_partition(partition, starts.get(partition, 0), 0)
    for partition, stream in streams.items():
        for i, (ts_ns, item) in enumerate(stream):
            merge.add(partition, starts.get(partition, 0) + i, ts_ns, item, 0)
    return merge.release(1, caught_up=set(streams))
