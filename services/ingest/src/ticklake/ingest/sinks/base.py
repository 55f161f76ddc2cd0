"""The small contract every sink follows.

``add`` takes a processed batch and must be cheap (it runs on the consume
path); ``flush`` does the I/O. The two sinks differ in what a flush means for
offsets: the lake is the source of truth, so offsets are committed only after
the lake flushed the records they cover; the Redis cache is best effort and
never holds a commit back (when Redis is down ingest keeps going and catches
the cache up later).
"""

from __future__ import annotations

from typing import Protocol

from ticklake.ingest.partition import ProcessedBatch


class Sink(Protocol):
    def add(self, batch: ProcessedBatch) -> None:
        """Take ``batch`` (no I/O)."""

    async def flush(self) -> None:
        """Write out what was added. Raises if it could not; added data is kept."""
