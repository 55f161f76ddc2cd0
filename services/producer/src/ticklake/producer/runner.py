"""The feed loops: paced simulation and paced replay, feeding a sink until done or stopped.

Glue only: the maths lives in :mod:`~ticklake.producer.simulator` and
:mod:`~ticklake.producer.pacing`, the Kafka side in
:mod:`~ticklake.producer.publisher`. A loop stops at its duration/count, at
the end of the input, or when ``stop`` is set (SIGTERM); the caller then
flushes the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

import numpy as np

from ticklake.core.tick import encode_ticks
from ticklake.producer import pacing
from ticklake.producer.publisher import DeliveryStats, TickPublisher
from ticklake.producer.recording import TickFileWriter
from ticklake.producer.replay import BadRow, OnBadRow, read_ticks
from ticklake.producer.simulator import MarketSimulator, TickColumns

log = logging.getLogger(__name__)

UNPACED_SLICE_TICKS = 2000
"""Ticks per generated window when the feed is unpaced (as fast as possible)."""


class TickSink(Protocol):
    """Where a feed loop puts ticks."""

    async def write_window(self, window: TickColumns) -> None: ...

    async def write_encoded(self, symbols: list[str], payloads: list[bytes]) -> None: ...

    async def idle(self) -> None:
        """The feed has caught up with the clock: send whatever is buffered."""


class KafkaSink:
    """Encodes windows with the tick contract and hands them to a :class:`TickPublisher`."""

    def __init__(self, publisher: TickPublisher) -> None:
        self.publisher = publisher

    async def write_window(self, window: TickColumns) -> None:
        await self.publisher.publish(window.symbols(), encode_ticks(window.to_ticks()))

    async def write_encoded(self, symbols: list[str], payloads: list[bytes]) -> None:
        await self.publisher.publish(symbols, payloads)

    async def idle(self) -> None:
        await self.publisher.submit_open()


class FileSink:
    """Records windows to a Parquet/CSV file (``simulate --to-parquet``)."""

    def __init__(self, writer: TickFileWriter) -> None:
        self.writer = writer

    async def write_window(self, window: TickColumns) -> None:
        self.writer.write(window)

    async def write_encoded(self, symbols: list[str], payloads: list[bytes]) -> None:
        raise NotImplementedError("replay to a file is not supported; copy the file instead")

    async def idle(self) -> None:
        return None


@dataclass(slots=True)
class FeedProgress:
    """What a feed loop has done so far (read by the progress reporter and /healthz)."""

    generated: int = 0
    bad_rows: int = 0
    started_monotonic: float = 0.0
    finished: bool = False
    last_bad_row: BadRow | None = None


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        await asyncio.sleep(0)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def run_simulation(
    simulator: MarketSimulator,
    sink: TickSink,
    *,
    plan: pacing.RatePlan | None,
    slice_ms: float,
    feed_start_ns: int,
    duration_s: float | None,
    count: int | None,
    stop: asyncio.Event,
    progress: FeedProgress,
    paced: bool = True,
) -> None:
    """Generate and send slices until the duration/count is reached or ``stop`` is set.

    ``plan=None`` is an unpaced feed: windows of :data:`UNPACED_SLICE_TICKS`
    stamped with the wall clock, as fast as the sink takes them. ``paced=False``
    keeps the plan's slices and feed times but does not wait for the clock
    (recording to a file).
    """
    progress.started_monotonic = time.monotonic()
    if plan is None:
        await _run_unpaced(simulator, sink, count, duration_s, stop, progress)
        return
    slice_ns = max(1, round(slice_ms * 1e6))
    max_slices = pacing.slices_for_duration(duration_s, slice_ns)
    clock_start = time.monotonic_ns()
    index = 0
    while not stop.is_set():
        if max_slices is not None and index >= max_slices:
            break
        if count is not None and progress.generated >= count:
            break
        window = pacing.slice_at(plan, slice_ns, index, limit=count)
        if paced:
            behind_ns = time.monotonic_ns() - clock_start - window.end_ns
            if behind_ns < 0:
                await sink.idle()
                await _sleep_or_stop(stop, -behind_ns / 1e9)
                continue
        columns = simulator.generate(
            window.count, feed_start_ns + window.start_ns, feed_start_ns + window.end_ns
        )
        await sink.write_window(columns)
        progress.generated += window.count
        index += 1
        # Let the Kafka sender, the HTTP server and the reporter run even when behind.
        await asyncio.sleep(0)
    await sink.idle()


async def _run_unpaced(
    simulator: MarketSimulator,
    sink: TickSink,
    count: int | None,
    duration_s: float | None,
    stop: asyncio.Event,
    progress: FeedProgress,
) -> None:
    deadline = None if duration_s is None else time.monotonic() + duration_s
    window_start = time.time_ns()
    while not stop.is_set():
        if count is not None and progress.generated >= count:
            break
        if deadline is not None and time.monotonic() >= deadline:
            break
        n = UNPACED_SLICE_TICKS
        if count is not None:
            n = min(n, count - progress.generated)
        window_end = max(time.time_ns(), window_start + 1)
        await sink.write_window(simulator.generate(n, window_start, window_end))
        window_start = window_end
        progress.generated += n
        await asyncio.sleep(0)
    await sink.idle()


async def run_replay(
    path: Path,
    sink: TickSink,
    *,
    speed: float,
    on_bad_row: OnBadRow,
    stop: asyncio.Event,
    progress: FeedProgress,
    report_bad_row: Callable[[BadRow], None],
    slice_ms: float = 10.0,
) -> None:
    """Send the ticks of ``path`` at ``speed`` x their original pace (0 = unpaced).

    Bad rows are passed to ``report_bad_row`` (and skipped), or raise
    :class:`~ticklake.producer.replay.ReplayInputError` under ``on_bad_row="fail"``.
    """
    progress.started_monotonic = time.monotonic()
    clock_start = time.monotonic_ns()
    first_ts: int | None = None
    for chunk in read_ticks(path, on_bad_row=on_bad_row):
        for bad in chunk.bad_rows:
            progress.bad_rows += 1
            progress.last_bad_row = bad
            report_bad_row(bad)
        if not chunk.ticks:
            continue
        symbols = [t.symbol for t in chunk.ticks]
        ts = np.fromiter((t.ts_ns for t in chunk.ticks), dtype=np.int64, count=len(chunk.ticks))
        if first_ts is None:
            first_ts = int(ts[0])
        offsets = pacing.replay_offsets_ns(ts, first_ts, speed)
        sent = 0
        while sent < len(offsets):
            if stop.is_set():
                return
            elapsed = time.monotonic_ns() - clock_start
            upto = pacing.due_prefix(offsets, elapsed)
            if upto <= sent:
                await sink.idle()
                wait_ns = int(offsets[sent]) - elapsed
                await _sleep_or_stop(stop, min(wait_ns, slice_ms * 1e6) / 1e9)
                continue
            await sink.write_encoded(symbols[sent:upto], chunk.payloads[sent:upto])
            progress.generated += upto - sent
            sent = upto
            await asyncio.sleep(0)
    await sink.idle()


def progress_line(
    stats: DeliveryStats, progress: FeedProgress, rate: float, elapsed_s: float
) -> str:
    """One progress line: ticks sent, current rate, errors, in flight."""
    parts = [
        f"[{elapsed_s:.1f}s] sent {stats.acked:,}",
        f"rate {rate:,.0f} ticks/s",
        f"errors {stats.failed:,}",
        f"in flight {stats.in_flight:,}",
    ]
    if progress.bad_rows:
        parts.append(f"bad rows {progress.bad_rows:,}")
    return " | ".join(parts)


async def report_progress(
    publisher: TickPublisher,
    progress: FeedProgress,
    interval_s: float,
    out: TextIO | None = None,
) -> None:
    """Every ``interval_s``: one progress line to ``out`` (stderr) or, if None, the log."""
    previous_acked = publisher.stats.acked
    previous_t = time.monotonic()
    while True:
        await asyncio.sleep(interval_s)
        now = time.monotonic()
        acked = publisher.stats.acked
        rate = (acked - previous_acked) / max(now - previous_t, 1e-9)
        previous_acked, previous_t = acked, now
        line = progress_line(publisher.stats, progress, rate, now - progress.started_monotonic)
        if out is None:
            log.info("%s", line)
        else:
            print(line, file=out, flush=True)
