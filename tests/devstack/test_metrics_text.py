"""Reading figures from Prometheus text, checked against a real prometheus_client registry."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from ticklake.devstack.metrics_text import (
    bucket_delta,
    histogram_buckets,
    histogram_quantile,
    quantile,
    sample_sum,
)


def test_counters_are_summed_over_labels() -> None:
    registry = CollectorRegistry()
    counter = Counter("demo_ticks", "ticks", ["partition"], registry=registry)
    counter.labels("0").inc(3)
    counter.labels("1").inc(4)
    text = generate_latest(registry).decode()
    assert sample_sum(text, "demo_ticks_total") == 7
    assert sample_sum(text, "missing_total") == 0


def test_histogram_quantile_interpolates_within_buckets() -> None:
    registry = CollectorRegistry()
    hist = Histogram("demo_latency_seconds", "l", buckets=(0.001, 0.01, 0.1), registry=registry)
    for _ in range(90):
        hist.observe(0.0005)
    for _ in range(10):
        hist.observe(0.05)
    text = generate_latest(registry).decode()
    assert histogram_quantile(text, "demo_latency_seconds", 0.5) <= 0.001
    p99 = histogram_quantile(text, "demo_latency_seconds", 0.99)
    assert 0.01 < p99 <= 0.1
    assert math.isnan(histogram_quantile(text, "absent_seconds", 0.5))


def test_window_quantile_ignores_what_was_observed_before_the_window() -> None:
    registry = CollectorRegistry()
    hist = Histogram("demo_e2e_seconds", "l", buckets=(0.001, 0.01, 1.0, 10.0), registry=registry)
    for _ in range(1000):
        hist.observe(5.0)  # a slow start-up
    before = histogram_buckets(generate_latest(registry).decode(), "demo_e2e_seconds")
    for _ in range(100):
        hist.observe(0.0005)
    now = histogram_buckets(generate_latest(registry).decode(), "demo_e2e_seconds")
    assert quantile(bucket_delta(now, before), 0.99) <= 0.001
    assert quantile(now, 0.5) > 1.0
