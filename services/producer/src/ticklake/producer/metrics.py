"""The producer's Prometheus metrics, in a registry of their own.

A registry per :class:`ProducerMetrics` (not the process-global one) lets tests
build several producers in one process. Names start with ``ticklake_producer_``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_SIZE_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000)
"""Ticks per Kafka batch."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds from handing a batch to the Kafka client to the broker's acknowledgement."""
SEND_ERRORS_AT_ZERO = ("KafkaTimeoutError", "CancelledError")
"""Error classes the send-errors counter exports at 0 from the start: the client's
timeouts (no room in its queue, no acknowledgement in time) and sends cut short by a
stop. A series born at its first error leaves the dashboard's panel empty ("no
data") until then and makes increase() blind to that first burst; other classes
still appear when they first happen."""


@dataclass
class ProducerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.ticks_sent = Counter(
            "ticklake_producer_ticks_sent",
            "Ticks acknowledged by Kafka (acks=all).",
            registry=r,
        )
        self.send_errors = Counter(
            "ticklake_producer_send_errors",
            "Ticks whose send failed (never acknowledged), by error type.",
            ["error"],
            registry=r,
        )
        for error in SEND_ERRORS_AT_ZERO:
            self.send_errors.labels(error)
        self.ticks_in_flight = Gauge(
            "ticklake_producer_ticks_in_flight",
            "Ticks handed to the Kafka client and not yet acknowledged or failed.",
            registry=r,
        )
        self.bad_rows = Counter(
            "ticklake_producer_replay_bad_rows",
            "Replay input rows that were not valid ticks (reported with file and line).",
            registry=r,
        )
        self.batch_size = Histogram(
            "ticklake_producer_batch_size_ticks",
            "Ticks per Kafka record batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.send_latency = Histogram(
            "ticklake_producer_send_latency_seconds",
            "Seconds from handing a batch to the Kafka client to its acknowledgement.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.target_rate = Gauge(
            "ticklake_producer_target_rate_ticks_per_second",
            "Configured feed rate (0 = unpaced).",
            registry=r,
        )

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
