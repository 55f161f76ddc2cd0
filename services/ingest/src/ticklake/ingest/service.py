"""The ingest service's lifecycle: wire the parts, run, stop gracefully.

SIGTERM only sets an event. The consume loop then stops fetching, the lake is
flushed and the offsets committed (bounded by ``shutdown_grace_seconds``,
which stays below the pod's ``terminationGracePeriodSeconds``), the group is
left so the partitions move at once, then Redis and HTTP close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from ticklake.core.lake_fs import Lake, open_lake
from ticklake.ingest.consumer import IngestConsumer
from ticklake.ingest.http import create_app
from ticklake.ingest.metrics import IngestMetrics
from ticklake.ingest.sequencer import Sequencer
from ticklake.ingest.settings import IngestSettings
from ticklake.ingest.sinks.lake import LakeWriteError
from ticklake.ingest.sinks.redis_writer import RedisWriter

log = logging.getLogger(__name__)

LAKE_PROBE_INTERVAL_S = 5.0


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the service owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class IngestService:
    """Kafka -> features -> lake + Redis, with an HTTP endpoint. ``start``/``stop`` idempotent."""

    def __init__(
        self, settings: IngestSettings, registry: CollectorRegistry | None = None, http: bool = True
    ) -> None:
        self.settings = settings
        self.metrics = IngestMetrics(registry)
        self.lake: Lake = open_lake(settings)
        self.cache = RedisWriter.from_url(
            settings.redis_url,
            None,  # the user and password are in client_options
            settings.redis_timeout_seconds,
            self.metrics,
            client_options=settings.redis_client_options(),
            tail_max_len=settings.redis_tail_max_len,
            pending_symbols_max=settings.redis_pending_symbols_max,
            pending_tail_max=settings.redis_pending_tail_max,
            retry_max_seconds=settings.redis_retry_max_seconds,
        )
        self.consumer = IngestConsumer(settings, self.lake, self.metrics, self.cache)
        self.sequencer = (
            Sequencer(settings, self.metrics.ordering) if settings.ordering == "sequence" else None
        )
        self._sequencer_task: asyncio.Task[None] | None = None
        self.stop_event = asyncio.Event()
        self._http_enabled = http
        self._http: _QuietServer | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._started = False
        self._stopped = False
        self._lake_probe_at = 0.0
        self._lake_probe_error: str | None = None
        self._run_task_error: str | None = None

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self._http_enabled:
            config = uvicorn.Config(
                create_app(self),
                host=self.settings.http_host,
                port=self.settings.http_port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
            self._http = _QuietServer(config)
            self._http_task = asyncio.create_task(self._http.serve(), name="http")
        await self.cache.start()
        if self.sequencer is not None:
            await self.sequencer.start()
            self._sequencer_task = asyncio.create_task(
                self.sequencer.run(self.stop_event), name="sequencer"
            )
            self._sequencer_task.add_done_callback(self._sequencer_done)
        await self.consumer.start(give_up=self.stop_event.is_set)

    def _sequencer_done(self, task: asyncio.Task[None]) -> None:
        # A dead sequencer stops the service (the consume loop raises), so the pod
        # restarts and rejoins; a clean return only happens when stopping.
        if not task.cancelled() and task.exception() is not None:
            log.error("sequencer failed", exc_info=task.exception())
            self.consumer.fatal = task.exception()

    async def run(self) -> None:
        """Start, consume until :attr:`stop_event` is set, then stop."""
        try:
            try:
                await self.start()
            except (KafkaError, OSError):
                if not self.stop_event.is_set():
                    raise
                log.info("stopped while still connecting to Kafka")
                return
            await self.consumer.run(self.stop_event)
        except Exception as e:
            self._run_task_error = f"{type(e).__name__}: {e}"
            raise
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.stop_event.set()
        started = time.monotonic()
        if self.sequencer is not None:
            if self._sequencer_task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(self._sequencer_task), 5.0)
            await self.sequencer.close()
        await self.consumer.close(self.settings.shutdown_grace_seconds)
        remaining = max(0.5, self.settings.shutdown_grace_seconds - (time.monotonic() - started))
        await self.cache.stop(flush_timeout_s=min(2.0, remaining))
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._http_task, 2.0)
        log.info("stopped", extra={"took_s": round(time.monotonic() - started, 3)})

    @property
    def registry(self) -> CollectorRegistry:
        """The Prometheus registry ``/metrics`` serves."""
        return self.metrics.registry

    async def readiness(self) -> dict[str, Any]:
        now = time.monotonic()
        if now - self._lake_probe_at >= LAKE_PROBE_INTERVAL_S:
            self._lake_probe_at = now
            try:
                await asyncio.to_thread(self.consumer.writer.probe)
                self._lake_probe_error = None
            except LakeWriteError as e:
                self._lake_probe_error = str(e)
        lake_error = self.consumer.lake_error or self._lake_probe_error
        stalled = self.consumer.stalls.report()
        tasks = self._task_deaths()
        checks = {
            "group_joined": self.consumer.group_joined,
            "lake_writable": lake_error is None,
            "redis_reachable": self.cache.healthy,
            "partitions_progressing": not stalled,
            "tasks_alive": not tasks,
        }
        if self._sequencer_task is not None:
            checks["sequencer_running"] = not self._sequencer_task.done()
        ready = all(checks.values()) and not self._stopped and self.consumer.fatal is None
        self.metrics.ready.set(1 if ready else 0)
        return {
            "ready": ready,
            "checks": checks,
            "assigned_partitions": self.consumer.assigned,
            "stalled_partitions": stalled,
            "dead_tasks": tasks,
            "fatal": None if self.consumer.fatal is None else repr(self.consumer.fatal),
            "lake_error": lake_error,
            "redis_error": self.cache.last_error,
        }

    def _task_deaths(self) -> dict[str, str]:
        """Background tasks that ended while they should run, and why."""
        dead: dict[str, str] = {}
        if self.cache.writer_died is not None:
            dead["redis-cache-writer"] = self.cache.writer_died
        if self._run_task_error is not None:
            dead["consume-loop"] = self._run_task_error
        return dead

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: int) -> None:
        log.info("signal received; stopping", extra={"signal": signal.Signals(sig).name})
        self.stop_event.set()
