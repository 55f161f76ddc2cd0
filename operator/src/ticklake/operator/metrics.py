"""Prometheus metrics of the operator, one series per IngestScaler.

Served on ``TICKLAKE_OPERATOR_METRICS_PORT`` (default 9808) at ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LABELS = ("namespace", "name")

DESIRED = Gauge(
    "ticklake_operator_desired_replicas", "Replicas the operator wants for the workload.", _LABELS
)
TARGET = Gauge(
    "ticklake_operator_target_replicas",
    "Replicas the inputs call for before the scale-down stabilisation window.",
    _LABELS,
)
CURRENT = Gauge(
    "ticklake_operator_current_replicas", "spec.replicas of the workload as last read.", _LABELS
)
PARTITIONS = Gauge("ticklake_operator_partitions", "Partitions of the watched topic.", _LABELS)
LAG = Gauge(
    "ticklake_operator_lag_messages", "Total consumer lag of the group (messages).", _LABELS
)
PARTITION_LAG = Gauge(
    "ticklake_operator_partition_lag_messages",
    "Consumer lag per partition (messages).",
    (*_LABELS, "partition"),
)
RECONCILE_ERRORS = Counter(
    "ticklake_operator_reconcile_errors_total",
    "Reconciles that failed, by kind: kafka, kube (temporary) or spec (permanent).",
    (*_LABELS, "kind"),
)
SCALES = Counter(
    "ticklake_operator_scale_total",
    "Scale operations applied, by direction.",
    (*_LABELS, "direction"),
)
RECONCILE_SECONDS = Histogram(
    "ticklake_operator_reconcile_seconds", "Duration of one reconcile (Kafka + API calls)."
)


def forget(namespace: str, name: str) -> None:
    """Drop the series of a deleted IngestScaler so dashboards do not show ghosts."""
    for g in (DESIRED, TARGET, CURRENT, PARTITIONS, LAG):
        try:
            g.remove(namespace, name)
        except KeyError:
            pass
