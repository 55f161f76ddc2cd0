"""Which pipeline stage a py-spy stack belongs to. Pure: parsing and counting only.

``py-spy record --format raw`` writes one line per distinct stack: the thread,
then its frames from the outermost to the innermost separated by ``;``, then
how many samples had that stack. :func:`stage_of` names the stage a stack
spends its sample in: the first rule of :data:`STAGES` whose pattern occurs in
any frame. The rules go from the most specific to the least, because the stages
nest (decoding happens inside normalising, Parquet encoding inside the lake
writer, everything inside the event loop): a sample in ``decode_tick`` called
by ``normalise`` is decode time, not normalise time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Stage:
    name: str
    patterns: tuple[str, ...]
    """Substrings of a frame (``function (path:line)``); any one matches."""


WAITING: Final = "waiting (epoll)"
"""Samples of the event loop blocked in ``select``: py-spy counts them as busy, but the
process uses no CPU there, so they are kept apart and left out of the shares."""

STAGES: Final = (
    Stage(WAITING, ("select (selectors.py:",)),
    Stage("decode + validate (msgspec)", ("(core/tick.py:",)),
    Stage("Parquet encode + file write", ("pyarrow/parquet/", "(core/lake_fs.py:")),
    Stage("Arrow build", ("ingest/arrow_arrays.py", "to_record_batch (", "_concat (")),
    Stage("features", ("ingest/features.py",)),
    Stage("bars", ("ingest/bars.py",)),
    Stage("normalise: sequence, dedup, columns", ("ingest/normalise.py", "ingest/partition.py")),
    Stage("Redis write", ("sinks/redis_writer.py", "core/hot_cache.py", "(redis/")),
    Stage(
        "lake buffers, flush bookkeeping, offset commit",
        ("sinks/lake.py", "ingest/flushes.py", "ingest/state.py"),
    ),
    Stage("Kafka fetch and record parsing (aiokafka)", ("aiokafka/",)),
    Stage("metrics", ("prometheus_client/", "ingest/metrics.py", "count_batch (")),
    Stage("event loop and other", ("",)),
)
"""Rules in order of precedence; the last one takes whatever is left."""


def parse_raw(lines: Iterable[str]) -> Counter[tuple[str, ...]]:
    """Stacks (outermost frame first, thread name included) -> samples."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in lines:
        line = line.rstrip("\n")
        if not line:
            continue
        body, _, count = line.rpartition(" ")
        if not body or not count.isdigit():
            raise ValueError(f"not a py-spy raw line: {line[:120]!r}")
        stacks[tuple(body.split(";"))] += int(count)
    return stacks


def stage_of(stack: tuple[str, ...]) -> str:
    for stage in STAGES:
        if any(p in frame for p in stage.patterns for frame in stack):
            return stage.name
    raise AssertionError("the last stage matches every stack")


def by_stage(stacks: Counter[tuple[str, ...]]) -> dict[str, int]:
    """Samples per stage, every stage present (0 when none), in :data:`STAGES` order."""
    counts = {stage.name: 0 for stage in STAGES}
    for stack, samples in stacks.items():
        counts[stage_of(stack)] += samples
    return counts


def per_tick_us(samples: dict[str, int], cpu_seconds: float, ticks: int) -> dict[str, float]:
    """Each stage's share of the process's CPU time, as µs per tick.

    py-spy samples every thread that is not idle at a fixed rate, so a stage's share of
    the samples is its share of the CPU the process used (``cpu_seconds``, from /proc).
    """
    total = sum(n for name, n in samples.items() if name != WAITING)
    if total == 0 or ticks <= 0:
        raise ValueError("no samples or no ticks: nothing to divide")
    return {
        name: cpu_seconds * n / total / ticks * 1e6
        for name, n in samples.items()
        if name != WAITING
    }
