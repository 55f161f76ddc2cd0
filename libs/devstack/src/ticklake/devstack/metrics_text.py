"""Read figures out of Prometheus text exposition (for ``make run``'s progress line)."""

from __future__ import annotations

import math
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str, timeout: float = 1.0) -> str | None:
    """The ``/metrics`` text of a service, or ``None`` when it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return str(response.read().decode())
    except OSError:
        return None


def sample_sum(text: str, name: str) -> float:
    """Sum of every sample called ``name`` (any labels); 0 when absent."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                total += sample.value
    return total


def histogram_buckets(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of histogram ``name``, summed over its labels."""
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def bucket_delta(now: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    """Buckets of the observations made between two scrapes (a sliding window)."""
    return {bound: count - before.get(bound, 0.0) for bound, count in now.items()}


def quantile(buckets: dict[float, float], q: float) -> float:
    """Quantile ``q`` from cumulative buckets, NaN if empty.

    Linear interpolation inside the bucket, as PromQL's ``histogram_quantile`` does.
    """
    if not buckets:
        return math.nan
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            width = count - below
            return lower + (bound - lower) * ((rank - below) / width if width else 0.0)
        lower, below = bound, count
    return lower


def histogram_quantile(text: str, name: str, q: float) -> float:
    """Quantile ``q`` of histogram ``name`` over everything observed since start."""
    return quantile(histogram_buckets(text, name), q)
