"""Ingest's metrics as Prometheus first sees them."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ticklake.core.errors import DecodeReason
from ticklake.ingest.metrics import IngestMetrics
from ticklake.ingest.normalise import IngestRejectReason


def test_every_dead_letter_reason_is_exported_at_zero_before_the_first() -> None:
    """increase() needs a sample before the first dead letter, or the alert misses it
    (tests/charts/promtool/alerts-test.yaml shows both cases)."""
    metrics = IngestMetrics()
    text = generate_latest(metrics.registry).decode()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name.endswith("dead_letters")]
    samples = {s.labels["reason"]: s.value for s in family.samples if s.name.endswith("_total")}
    assert samples == {r.value: 0.0 for r in (*DecodeReason, *IngestRejectReason)}
    metrics.dead_letters.labels(DecodeReason.BAD_JSON.value).inc(3)
    text = generate_latest(metrics.registry).decode()
    assert 'ticklake_ingest_dead_letters_total{reason="bad_json"} 3.0' in text
