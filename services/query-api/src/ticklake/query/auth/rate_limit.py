"""Per-key request-rate limits: one token bucket per key (pure; the clock is given).

A key may send ``burst`` requests at once, then ``rate_per_s`` a second. The
buckets live in one process: with N query-API replicas behind a Service a key
gets up to N times its rate (docs/security.md says so).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, rate_per_s: float, burst: int) -> float:
        """Spend one token of ``key``'s bucket: 0.0 if allowed, else seconds until one is due."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(burst), now)
        else:
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate_per_s)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate_per_s
