"""The producer as a running process: connect, feed, report, and shut down cleanly.

One :class:`ProducerService` per process. ``run()``

1. starts ``/healthz`` and ``/metrics`` (if asked) so probes answer while
   Kafka is still coming up;
2. creates the topics and connects, retrying with backoff and a log line per
   attempt while the broker is unreachable;
3. runs one feed (simulation or replay) with a progress line every second;
4. on SIGTERM/SIGINT, or when the feed ends, flushes (within
   ``shutdown_timeout_s``, kept below the pod's 30 s grace period) and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from aiokafka.errors import KafkaError

from ticklake.core.retry import RetryTimeout, retry_with_backoff
from ticklake.core.topic_admin import TopicSpec, ensure_topics
from ticklake.producer import pacing
from ticklake.producer.http_api import HttpServer
from ticklake.producer.metrics import ProducerMetrics
from ticklake.producer.publisher import PublisherConfig, TickPublisher
from ticklake.producer.recording import TickFileWriter
from ticklake.producer.replay import BadRow, OnBadRow
from ticklake.producer.runner import (
    FeedProgress,
    FileSink,
    KafkaSink,
    TickSink,
    report_progress,
    run_replay,
    run_simulation,
)
from ticklake.producer.settings import ProducerSettings
from ticklake.producer.simulator import MarketSimulator, build_market

log = logging.getLogger(__name__)


class BrokerUnavailableError(ConnectionError):
    """No broker answered within ``connect_retry_max_s``."""


@dataclass(frozen=True, slots=True)
class SimulateFeed:
    paced: bool = True
    start_ns: int | None = None
    """Feed time of the first slice (UTC ns); None = now. Fix it to reproduce a run."""
    record_to: Path | None = None
    """Write ticks to this .parquet/.csv file instead of Kafka."""


@dataclass(frozen=True, slots=True)
class ReplayFeed:
    path: Path
    speed: float
    on_bad_row: OnBadRow = "skip"


@dataclass(frozen=True, slots=True)
class RunResult:
    generated: int
    acked: int
    failed: int
    unconfirmed: int
    """Ticks handed to Kafka whose outcome was still unknown at exit (flush timed out)."""
    not_sent: int
    """Ticks generated or read but never handed to Kafka (a stop cut a blocked send short)."""
    bad_rows: int
    elapsed_s: float
    stopped_by_signal: bool


class ProducerService:
    """Owns the publisher, the optional HTTP server and the feed task."""

    def __init__(
        self,
        settings: ProducerSettings,
        *,
        serve_http: bool = False,
        progress_out: TextIO | None = None,
        show_progress: bool = True,
        metrics: ProducerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or ProducerMetrics()
        self.publisher = TickPublisher(
            PublisherConfig(
                bootstrap_servers=settings.kafka_bootstrap_servers,
                topic=settings.ticks_topic,
                compression=settings.kafka_compression(),
                max_batch_bytes=settings.max_batch_bytes,
                request_timeout_ms=settings.request_timeout_ms,
                client_options=settings.kafka_client_options(),
            ),
            self.metrics,
        )
        self.progress = FeedProgress()
        self.stop_requested = asyncio.Event()
        self._serve_http = serve_http
        self._http: HttpServer | None = None
        self._progress_out = progress_out
        self._show_progress = show_progress
        self._state: Literal["starting", "running", "stopping", "stopped"] = "starting"
        self._stop_requested_at: float | None = None

    # -- HealthSource -------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        stats = self.publisher.stats
        details = {
            "status": self._state,
            "topic": self.settings.ticks_topic,
            "ticks_sent": stats.acked,
            "send_errors": stats.failed,
            "in_flight": stats.in_flight,
            "bad_rows": self.progress.bad_rows,
            "last_error": self.publisher.last_error,
        }
        return self._state == "running" and self.publisher.started, details

    # -- lifecycle ----------------------------------------------------------
    def request_stop(self) -> None:
        """What SIGTERM does: the feed stops at its next slice, then everything is flushed."""
        if not self.stop_requested.is_set():
            log.info("stop requested: finishing the current slice, then flushing")
            self._stop_requested_at = time.monotonic()
        self.stop_requested.set()

    async def run(self, feed: SimulateFeed | ReplayFeed) -> RunResult:
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.request_stop)
                installed.append(sig)
        try:
            return await self._run(feed)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def _run(self, feed: SimulateFeed | ReplayFeed) -> RunResult:
        s = self.settings
        started = time.monotonic()
        # Bad simulation parameters fail here, before anything connects.
        simulator = self._simulator() if isinstance(feed, SimulateFeed) else None
        if self._serve_http:
            self._http = HttpServer(self, s.http_host, s.http_port)
            await self._http.start()
        writer = (
            TickFileWriter(feed.record_to)
            if isinstance(feed, SimulateFeed) and feed.record_to is not None
            else None
        )
        work = asyncio.create_task(self._connect_and_feed(feed, simulator, writer), name="feed")
        stop_wait = asyncio.create_task(self.stop_requested.wait(), name="stop-wait")
        try:
            await asyncio.wait({work, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                # Stop requested: the feed ends at its next slice. It can only be slower when
                # it is blocked on Kafka (no room for a batch) or still connecting.
                await asyncio.wait({work}, timeout=s.shutdown_timeout_s / 2)
                if not work.done():
                    log.warning(
                        "feed did not stop within %.0fs; cancelling it", s.shutdown_timeout_s / 2
                    )
                    work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
        finally:
            stop_wait.cancel()
            self._state = "stopping"
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
            if writer is not None:
                writer.close()
            await self._shutdown()
        stats = self.publisher.stats
        result = RunResult(
            generated=self.progress.generated,
            acked=stats.acked,
            failed=stats.failed,
            unconfirmed=stats.in_flight,
            not_sent=0 if writer is not None else max(0, self.progress.generated - stats.submitted),
            bad_rows=self.progress.bad_rows,
            elapsed_s=time.monotonic() - started,
            stopped_by_signal=self.stop_requested.is_set(),
        )
        log.info("done: %s", result)
        return result

    async def _connect_and_feed(
        self,
        feed: SimulateFeed | ReplayFeed,
        simulator: MarketSimulator | None,
        writer: TickFileWriter | None,
    ) -> None:
        s = self.settings
        sink: TickSink
        reporter: asyncio.Task[None] | None = None
        if writer is not None:
            sink = FileSink(writer)
        else:
            await self._connect()
            sink = KafkaSink(self.publisher)
            if self._show_progress:
                reporter = asyncio.create_task(
                    report_progress(
                        self.publisher, self.progress, s.progress_interval_s, self._progress_out
                    ),
                    name="producer-progress",
                )
        self._state = "running"
        try:
            if isinstance(feed, SimulateFeed):
                assert simulator is not None
                await self._simulate(feed, simulator, sink)
            else:
                await self._replay(feed, sink)
        finally:
            if reporter is not None:
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter

    async def _connect(self) -> None:
        s = self.settings
        specs = [
            TopicSpec(s.ticks_topic, s.topic_partitions, s.topic_replication_factor),
            TopicSpec(s.dead_letter_topic, s.dead_letter_partitions, s.topic_replication_factor),
        ]

        async def attempt() -> None:
            await ensure_topics(
                s.kafka_bootstrap_servers, specs, s.request_timeout_ms, s.kafka_client_options()
            )
            await self.publisher.start()

        try:
            await retry_with_backoff(
                f"Kafka at {s.kafka_bootstrap_servers}",
                attempt,
                (KafkaError, OSError),
                first_delay=0.5,
                max_delay=5.0,
                max_wait_s=s.connect_retry_max_s,
            )
        except RetryTimeout as e:
            raise BrokerUnavailableError(str(e)) from e.__cause__

    def _simulator(self) -> MarketSimulator:
        s = self.settings
        market = build_market(
            s.symbol_list(),
            drift=s.sim_drift,
            volatility=s.sim_volatility,
            correlation=s.sim_correlation,
            spread_bps=s.sim_spread_bps,
        )
        return MarketSimulator(market, seed=s.feed_seed)

    async def _simulate(
        self, feed: SimulateFeed, simulator: MarketSimulator, sink: TickSink
    ) -> None:
        s = self.settings
        plan = None
        if s.feed_rate > 0 and (feed.paced or feed.record_to is not None):
            bursts = (
                pacing.Bursts(
                    s.feed_burst_every_s, s.feed_burst_duration_s, s.feed_burst_multiplier
                )
                if s.feed_burst_every_s is not None
                else None
            )
            plan = pacing.RatePlan(s.feed_rate, bursts)
        self.metrics.target_rate.set(s.feed_rate if plan is not None else 0)
        await run_simulation(
            simulator,
            sink,
            plan=plan,
            slice_ms=s.feed_slice_ms,
            feed_start_ns=feed.start_ns if feed.start_ns is not None else time.time_ns(),
            duration_s=s.feed_duration_s,
            count=s.feed_count,
            stop=self.stop_requested,
            progress=self.progress,
            paced=feed.paced and feed.record_to is None,
        )

    async def _replay(self, feed: ReplayFeed, sink: TickSink) -> None:
        def report(bad: BadRow) -> None:
            self.metrics.bad_rows.inc()
            log.warning("skipped bad input row %s", bad)

        await run_replay(
            feed.path,
            sink,
            speed=feed.speed,
            on_bad_row=feed.on_bad_row,
            stop=self.stop_requested,
            progress=self.progress,
            report_bad_row=report,
            slice_ms=self.settings.feed_slice_ms,
        )

    async def _shutdown(self) -> None:
        try:
            # The whole stop (feed + flush) stays within shutdown_timeout_s of the signal.
            budget = self.settings.shutdown_timeout_s
            if self._stop_requested_at is not None:
                budget -= time.monotonic() - self._stop_requested_at
            await asyncio.wait_for(self.publisher.stop(), max(budget, 1.0))
        except TimeoutError:
            log.error(
                "flush did not finish within %.0fs; %d ticks were not confirmed",
                self.settings.shutdown_timeout_s,
                self.publisher.stats.in_flight,
            )
        finally:
            self._state = "stopped"
            if self._http is not None:
                await self._http.stop()
