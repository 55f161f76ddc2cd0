"""Metrics of per-symbol ordering: the sequencer stage and how input is keyed.

Kept apart from :mod:`~ticklake.ingest.metrics` (one class per concern) and
registered on the same registry, so ``/metrics`` shows them together.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

PREFIX = "ticklake_ingest_"


class OrderingMetrics:
    """Counters and gauges of the ordering guarantees (see docs/architecture.md)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        p = PREFIX
        self.key_not_symbol = Counter(
            f"{p}key_not_symbol",
            "Records whose Kafka key is not their symbol, by stage (sequencer, ingest) and "
            "kind (missing, mismatch). In ordering=keyed mode these break per-symbol order.",
            ["stage", "kind"],
            registry=r,
        )
        self.late_ticks = Counter(
            f"{p}late_ticks",
            "Ticks older than their symbol's latest tick: stored, skipped by features.",
            registry=r,
        )
        self.sequencer_active = Gauge(
            f"{p}sequencer_active",
            "1 while this replica's sequencer owns the input partitions (0: hot standby).",
            registry=r,
        )
        self.sequencer_records = Counter(
            f"{p}sequencer_records",
            "Records the sequencer re-keyed and forwarded (counted when their transaction "
            "commits).",
            registry=r,
        )
        self.sequencer_late = Counter(
            f"{p}sequencer_late",
            "Records the sequencer released after a record with a later event time "
            "(an idle partition woke up, or a partition broke its own order).",
            registry=r,
        )
        self.sequencer_transactions = Counter(
            f"{p}sequencer_transactions",
            "Sequencer transactions, by outcome (committed, aborted).",
            ["outcome"],
            registry=r,
        )
        self.sequencer_buffered = Gauge(
            f"{p}sequencer_buffered",
            "Records held by the sequencer's merge, waiting for the other partitions' watermarks.",
            registry=r,
        )
        self.sequencer_idle_partitions = Gauge(
            f"{p}sequencer_idle_partitions",
            "Input partitions caught up and silent past the allowed lateness (not waited for).",
            registry=r,
        )
        self.sequencer_delay = Gauge(
            f"{p}sequencer_event_time_lag_seconds",
            "Wall clock minus the event time of the last record released (s).",
            registry=r,
        )
