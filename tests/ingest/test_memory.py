"""Freed buffers go back to the system: allocators tuned at start, trims rate-limited."""

from __future__ import annotations

import platform

import pyarrow as pa

from ticklake.ingest import memory

GLIBC = platform.libc_ver()[0] == "glibc"


def test_tuning_puts_arrow_on_the_system_allocator_and_fixes_glibcs_threshold() -> None:
    assert memory.tune() is GLIBC
    assert pa.default_memory_pool().backend_name == "system"


def test_a_requested_trim_is_due_at_most_once_per_interval_and_never_lost() -> None:
    now = [100.0]
    trimmer = memory.MemoryTrimmer(min_interval_s=2.0, clock=lambda: now[0])
    assert not trimmer.due()  # nothing flushed, nothing to trim
    trimmer.request()
    if not GLIBC:  # malloc_trim is glibc's: never due elsewhere
        assert not trimmer.due()
        return
    assert trimmer.due()
    assert not trimmer.due()  # claimed
    now[0] += 1.0
    trimmer.request()  # the drain's last flush, too soon after the last trim
    assert not trimmer.due()
    now[0] += 1.5
    assert trimmer.due()  # still due once the interval has passed
    trimmer.trim()  # returns: the call itself is glibc's
