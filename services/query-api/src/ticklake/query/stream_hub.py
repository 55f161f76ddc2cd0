"""Fan the Redis tick channel out to live clients (SSE and WebSocket).

One subscription to :data:`ticklake.core.hot_cache.TICKS_CHANNEL` per process,
however many clients listen: each client gets a bounded queue, filtered to
the symbols it asked for. A client that reads too slowly loses its oldest
batches instead of growing memory without bound. When Redis drops, the hub
reconnects with a capped backoff; clients just see a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ticklake.core.hot_cache import TICKS_CHANNEL, decode_channel_message
from ticklake.query.latest_mirror import LatestMirror
from ticklake.query.tick_rows import clean_row

log = logging.getLogger(__name__)

CLOSED: Final = None
"""Put on a client's queue when the hub stops: the stream should end."""

_BACKOFF_MIN_S: Final = 0.2
_BACKOFF_MAX_S: Final = 5.0


@dataclass(eq=False)
class Subscription:
    """One live client: the symbols it wants (``None`` = all), those it may read
    (``None`` = all; its key's entitlements) and its queue."""

    symbols: frozenset[str] | None
    queue: asyncio.Queue[list[dict[str, Any]] | None] = field(repr=False)
    allowed: Callable[[str], bool] | None = None
    dropped: int = 0


def filter_batch(
    batch: list[dict[str, Any]],
    symbols: frozenset[str] | None,
    allowed: Callable[[str], bool] | None = None,
) -> list[dict[str, Any]]:
    """The rows of ``batch`` whose symbol the client asked for and may read."""
    if symbols is not None:
        batch = [row for row in batch if row.get("symbol") in symbols]
    if allowed is not None:
        batch = [row for row in batch if allowed(str(row.get("symbol")))]
    return batch


def parse_message(data: str | bytes) -> list[dict[str, Any]]:
    """A channel message (JSON array of tick objects, see :mod:`ticklake.core.hot_cache`)."""
    return [clean_row(item) for item in decode_channel_message(data) if isinstance(item, dict)]


class StreamHub:
    """Owns the one pub/sub connection; :meth:`start`/:meth:`stop` are idempotent."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        queue_max: int,
        on_clients_changed: Callable[[int], None] | None = None,
        mirror: LatestMirror | None = None,
    ) -> None:
        self._client = client
        self._queue_max = queue_max
        self._subs: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._on_clients_changed = on_clients_changed or (lambda n: None)
        self.connected = asyncio.Event()
        self.messages = 0
        self.mirror = mirror
        self.died: str | None = None
        """Why the hub's task ended, if it ended with an error (it should never end)."""

    async def start(self) -> None:
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name="ticklake-stream-hub")
        self._task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        # /readyz reads this: a hub that died serves no stream until the pod restarts
        self.died = f"{type(error).__name__}: {error}"
        self._went_dark()
        log.error("stream hub stopped with an error", exc_info=error)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        # wait() rather than await: a task that died has already been logged and
        # shown in /readyz by _task_done; re-raising it here would turn a clean
        # shutdown into a crash.
        await asyncio.wait([task])
        for sub in list(self._subs):
            self._offer(sub, CLOSED)

    def subscribe(
        self, symbols: frozenset[str] | None, allowed: Callable[[str], bool] | None = None
    ) -> Subscription:
        sub = Subscription(symbols, asyncio.Queue(self._queue_max), allowed)
        self._subs.add(sub)
        self._on_clients_changed(len(self._subs))
        if self._task is None:
            self._offer(sub, CLOSED)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.discard(sub)
            self._on_clients_changed(len(self._subs))

    @property
    def client_count(self) -> int:
        return len(self._subs)

    def _offer(self, sub: Subscription, item: list[dict[str, Any]] | None) -> None:
        while True:
            try:
                sub.queue.put_nowait(item)
                return
            except asyncio.QueueFull:
                sub.queue.get_nowait()  # drop the oldest batch: live data, newest matters
                sub.dropped += 1

    def publish_local(self, batch: list[dict[str, Any]]) -> None:
        """Deliver ``batch`` to every interested client (what the Redis reader calls)."""
        self.messages += 1
        if self.mirror is not None:
            self.mirror.apply(batch)
        for sub in self._subs:
            rows = filter_batch(batch, sub.symbols, sub.allowed)
            if rows:
                self._offer(sub, rows)

    def _went_dark(self) -> None:
        self.connected.clear()
        if self.mirror is not None:
            self.mirror.go_dark()

    async def _run(self) -> None:
        backoff = _BACKOFF_MIN_S
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(TICKS_CHANNEL)
                self.connected.set()
                if self.mirror is not None:
                    self.mirror.go_live()
                backoff = _BACKOFF_MIN_S
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        batch = parse_message(message["data"])
                    except (ValueError, TypeError):
                        log.warning("ignoring a malformed message on %s", TICKS_CHANNEL)
                        continue
                    self.publish_local(batch)
            except (RedisError, OSError) as e:
                self._went_dark()
                log.warning("stream hub lost Redis (%s); retrying in %.1fs", e, backoff)
            finally:
                self._went_dark()
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)
