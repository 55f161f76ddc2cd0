"""Prometheus metrics of the ingest service (all named ``ticklake_ingest_*``).

Each service instance owns its registry, so tests can run several in one
process. The end-to-end latency histogram takes a whole batch at once
(:class:`BulkHistogram`): observing 50,000 ticks a second one by one would
cost more than computing their features.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ticklake.core.errors import DecodeReason
from ticklake.ingest.normalise import IngestRejectReason
from ticklake.ingest.ordering_metrics import OrderingMetrics

PREFIX = "ticklake_ingest_"

LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class BulkHistogram(Collector):
    """A Prometheus histogram fed with numpy arrays (one call per batch)."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = np.asarray(buckets, dtype=np.float64)
        self.counts = np.zeros(len(buckets) + 1, dtype=np.int64)
        self.total = 0.0
        registry.register(self)

    def observe_many(self, values: np.ndarray) -> None:
        if len(values) == 0:
            return
        # side="left": a value equal to a bound belongs to that bound's bucket (le).
        index = np.searchsorted(self.bounds, values, side="left")
        self.counts += np.bincount(index, minlength=len(self.counts))
        self.total += float(values.sum())

    def collect(self) -> Iterator[Metric]:
        cumulative = np.cumsum(self.counts).tolist()
        buckets = [
            (repr(float(b)), c) for b, c in zip(self.bounds.tolist(), cumulative, strict=False)
        ]
        buckets.append(("+Inf", cumulative[-1]))
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=buckets, sum_value=self.total
        )

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding quantile ``q`` (for logs and tests)."""
        total = int(self.counts.sum())
        if total == 0:
            return float("nan")
        rank = np.searchsorted(np.cumsum(self.counts), q * total, side="left")
        return float(self.bounds[rank]) if rank < len(self.bounds) else float("inf")


class IngestMetrics:
    """Every metric ingest exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        p = PREFIX
        self.consumed = Counter(f"{p}consumed", "Kafka records consumed.", registry=r)
        self.processed = Counter(
            f"{p}processed", "Ticks accepted (decoded, valid, not duplicates).", registry=r
        )
        self.dead_letters = Counter(
            f"{p}dead_letters",
            "Records sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=r,
        )
        # Every reason starts at 0: a series born at its first dead letter
        # makes increase() blind to the burst that created it, so one bad
        # payload (or a burst between two scrapes) would never raise
        # TicklakeDeadLettersArriving.
        for reason in (*DecodeReason, *IngestRejectReason):
            self.dead_letters.labels(reason.value)
        self.duplicates = Counter(
            f"{p}duplicates",
            "Ticks dropped as duplicates by (symbol, seq): exact, or stale (too old to tell).",
            ["kind"],
            registry=r,
        )
        self.gaps = Counter(f"{p}gaps", "Sequence numbers skipped (missing ticks).", registry=r)
        self.out_of_order = Counter(
            f"{p}out_of_order", "Ticks arriving below their symbol's highest seq.", registry=r
        )
        self.sequence_resets = Counter(
            f"{p}sequence_resets",
            "Ticks whose seq restarted below the highest with a later event time (source restart).",
            registry=r,
        )
        self.batch_size = Histogram(
            f"{p}batch_size",
            "Records per processing step.",
            buckets=(1, 10, 50, 100, 500, 1000, 5000, 10000, 20000, 50000),
            registry=r,
        )
        self.batch_seconds = Histogram(
            f"{p}batch_seconds",
            "Time to process one step (decode, features, hand to sinks), seconds.",
            buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.e2e_latency = BulkHistogram(
            f"{p}e2e_latency_seconds",
            "Tick event time to visible in Redis, seconds.",
            LATENCY_BUCKETS_S,
            r,
        )
        self.lake_rows = Counter(
            f"{p}lake_rows", "Rows written to the lake.", ["dataset"], registry=r
        )
        self.lake_files = Counter(
            f"{p}lake_files", "Files written to the lake.", ["dataset"], registry=r
        )
        self.lake_bytes = Counter(
            f"{p}lake_bytes", "Bytes written to the lake.", ["dataset"], registry=r
        )
        self.lake_errors = Counter(f"{p}lake_errors", "Failed lake writes.", registry=r)
        self.lake_flush_seconds = Histogram(
            f"{p}lake_flush_seconds",
            "Time to write one flush (checkpoint, files and table commits), seconds.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.lake_table_commit_seconds = Histogram(
            f"{p}lake_table_commit_seconds",
            "Time to add one flush's files to one dataset's Delta table (refresh and "
            "commit), seconds.",
            ["dataset"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.failures = Counter(
            f"{p}failures",
            "Failed attempts in a partition's write path, by stage (dead_letters, lake_write, "
            "commit, flush_task). Each is retried; the partition holds until it succeeds.",
            ["stage"],
            registry=r,
        )
        self.partition_stalled = Gauge(
            f"{p}partition_stalled",
            "1 while the partition's write path is failing and it makes no progress.",
            ["partition"],
            registry=r,
        )
        self.dead_letters_pending = Gauge(
            f"{p}dead_letters_pending",
            "Dead letters queued and not yet acknowledged by the dead-letter topic.",
            registry=r,
        )
        self.commits = Counter(f"{p}commits", "Offset commits that succeeded.", registry=r)
        self.commit_errors = Counter(f"{p}commit_errors", "Offset commits that failed.", registry=r)
        self.committed_lag = Gauge(
            f"{p}committed_lag",
            "Records between the partition's high watermark and our committed offset.",
            ["partition"],
            registry=r,
        )
        self.redis_errors = Counter(f"{p}redis_errors", "Failed Redis writes.", registry=r)
        self.redis_up = Gauge(f"{p}redis_up", "1 if the last Redis write succeeded.", registry=r)
        self.assigned_partitions = Gauge(
            f"{p}assigned_partitions", "Partitions assigned to this replica.", registry=r
        )
        self.ready = Gauge(f"{p}ready", "1 if /readyz reports ready.", registry=r)
        self.ordering = OrderingMetrics(r)
