"""Retry with exponential backoff: the one loop every service uses for a passing failure.

Ingest retries Kafka connects, lake recovery and commits with it; the producer its
connect to Kafka. What counts as passing is the caller's ``errors``; when to stop is
``give_up`` (a predicate asked after each failure) and/or ``max_wait_s``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class RetryTimeout(Exception):
    """``max_wait_s`` passed without a success; ``__cause__`` is the last error."""

    def __init__(self, what: str, max_wait_s: float, tries: int, last: BaseException) -> None:
        super().__init__(f"{what}: no answer within {max_wait_s:.0f}s ({tries} attempts): {last!r}")


async def retry_with_backoff(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    errors: tuple[type[BaseException], ...],
    *,
    max_delay: float,
    first_delay: float = 0.2,
    give_up: Callable[[], bool] = lambda: False,
    max_wait_s: float | None = None,
) -> T:
    """Call ``attempt`` until it succeeds, doubling the wait from ``first_delay`` up to
    ``max_delay`` seconds.

    A failure in ``errors`` is retried unless ``give_up()`` says stop (then it is
    re-raised as it is) or ``max_wait_s`` seconds have passed (then
    :class:`RetryTimeout` is raised from it; no pause runs past that time). Anything
    else propagates at once.
    """
    deadline = None if max_wait_s is None else time.monotonic() + max_wait_s
    delay = first_delay
    tries = 0
    while True:
        tries += 1
        try:
            return await attempt()
        except errors as e:
            if give_up():
                raise
            pause = delay
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    assert max_wait_s is not None
                    raise RetryTimeout(what, max_wait_s, tries, e) from e
                pause = min(pause, remaining)
            log.warning(
                "%s: failed (attempt %d: %r); retrying in %.1fs",
                what,
                tries,
                e,
                pause,
                extra={"error": repr(e), "attempt": tries, "retry_in_s": round(pause, 3)},
            )
            await asyncio.sleep(pause)
            delay = min(delay * 2, max_delay)


def after_attempts(count: int) -> Callable[[], bool]:
    """A ``give_up`` for :func:`retry_with_backoff` that gives up after ``count`` failures."""
    failures = 0

    def give_up() -> bool:
        nonlocal failures
        failures += 1
        return failures >= count

    return give_up
