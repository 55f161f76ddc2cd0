"""The feed loops, driving a recording stand-in sink (the Kafka side is tested on a broker)."""

from __future__ import annotations

import asyncio

from ticklake.producer import pacing
from ticklake.producer.publisher import DeliveryStats
from ticklake.producer.runner import FeedProgress, progress_line, run_simulation
from ticklake.producer.simulator import MarketSimulator, TickColumns, build_market

T0 = 1_764_000_000_000_000_000


class RecordingSink:
    def __init__(self) -> None:
        self.windows: list[TickColumns] = []
        self.idles = 0

    async def write_window(self, window: TickColumns) -> None:
        self.windows.append(window)

    async def write_encoded(self, symbols: list[str], payloads: list[bytes]) -> None:
        raise AssertionError("not used by simulations")

    async def idle(self) -> None:
        self.idles += 1


async def _simulate(**kwargs) -> tuple[RecordingSink, FeedProgress]:
    sink, progress = RecordingSink(), FeedProgress()
    defaults = dict(
        plan=pacing.RatePlan(1000), slice_ms=10, feed_start_ns=T0, duration_s=None,
        count=None, stop=asyncio.Event(), progress=progress, paced=False,
    )  # fmt: skip
    await run_simulation(MarketSimulator(build_market(), seed=3), sink, **{**defaults, **kwargs})
    return sink, progress


async def test_duration_gives_rate_times_duration_ticks_in_fixed_windows() -> None:
    sink, progress = await _simulate(duration_s=1.5)
    assert progress.generated == sum(len(w) for w in sink.windows) == 1500
    assert len(sink.windows) == 150
    assert sink.windows[7].ts_ns.min() >= T0 + 70_000_000
    assert sink.windows[7].ts_ns.max() < T0 + 80_000_000
    assert sink.idles == 1  # once at the end: an unpaced loop never waits


async def test_count_stops_exactly() -> None:
    sink, progress = await _simulate(count=1234)
    assert progress.generated == sum(len(w) for w in sink.windows) == 1234


async def test_the_same_windows_whatever_the_pace() -> None:
    unpaced, _ = await _simulate(count=300)
    paced, _ = await _simulate(count=300, paced=True)
    assert [w.to_ticks() for w in paced.windows] == [w.to_ticks() for w in unpaced.windows]
    assert paced.idles > 1  # it waited for the clock between slices


async def test_stop_ends_the_loop_at_the_next_slice() -> None:
    stop = asyncio.Event()
    stop.set()
    sink, progress = await _simulate(stop=stop)
    assert progress.generated == 0 and sink.windows == []


def test_progress_line_names_sent_rate_and_errors() -> None:
    stats = DeliveryStats(submitted=1300, acked=1200, failed=50)
    line = progress_line(stats, FeedProgress(bad_rows=2), 5012.4, 3.04)
    assert line == (
        "[3.0s] sent 1,200 | rate 5,012 ticks/s | errors 50 | in flight 50 | bad rows 2"
    )
