"""Every metric the alerts and the dashboard use is exported by the running services.

The three services run as their own console scripts (as in their images)
against the session's real Kafka and Redis, on a topic of their own; the
producer's simulated feed flows through ingest into the lake and Redis, and
the query API answers a few requests. Then each ``/metrics`` is scraped and
every ``ticklake_*`` name in ``files/alerts.yaml`` and the dashboard must be a
sample name of a metric family a service (or the operator's registry) exports
(a labelled family with no samples yet still declares its name and type).
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import prometheus_client
import pytest
import yaml
from chartkit import ROOT
from prometheus_client.parser import text_string_to_metric_families

from ticklake.devstack import metrics_text, ports, process

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gauge": ("",),
    "unknown": ("",),
}


def used_metric_names() -> dict[str, set[str]]:
    """Metric name -> the labels the alerts and dashboard use with it."""
    expressions = [
        rule["expr"]
        for group in yaml.safe_load((ROOT / "charts/ticklake/files/alerts.yaml").read_text())[
            "groups"
        ]
        for rule in group["rules"]
    ]
    board = json.loads((ROOT / "charts/ticklake/dashboards/ticklake.json").read_text())
    expressions += [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    used: dict[str, set[str]] = {}
    for expr in expressions:
        labels = set()
        for group in re.findall(r"by \(([^)]*)\)", expr):
            labels |= {label.strip() for label in group.split(",")}
        for name in re.findall(r"\bticklake_[a-z0-9_]+", expr):
            used.setdefault(name, set()).update(labels - {"le", "namespace"})
    return used


def exported(text: str) -> tuple[dict[str, set[str]], dict[str, float]]:
    """(sample name -> label names seen, sample name -> summed value) of a scrape,
    including the names a declared family would have once it has samples."""
    names: dict[str, set[str]] = {}
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for suffix in SUFFIXES.get(family.type, ("",)):
            names.setdefault(family.name + suffix, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
            values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return names, values


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except OSError:
        return 0


@pytest.fixture(scope="module")
def scrapes(
    kafka_bootstrap: str,
    redis_url: str,
    redis_password: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    """The /metrics text of each running service, after traffic went through."""
    work = tmp_path_factory.mktemp("metrics-pipeline")
    topic = f"t-{uuid4().hex[:8]}"
    common = {
        "TICKLAKE_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TICKLAKE_TICKS_TOPIC": topic,
        "TICKLAKE_DEAD_LETTER_TOPIC": f"{topic}.dlq",
        "TICKLAKE_REDIS_URL": redis_url,
        "TICKLAKE_REDIS_PASSWORD": redis_password,
        "TICKLAKE_LAKE_URI": str(work / "lake"),
        "TICKLAKE_HTTP_HOST": "127.0.0.1",
    }
    port = {name: ports.free_port() for name in ("producer", "ingest", "query-api")}
    services = {
        "producer": (["ticklake-producer", "serve"], {
            "TICKLAKE_TOPIC_PARTITIONS": "2", "TICKLAKE_FEED_RATE": "200",
        }),
        "ingest": (["ticklake-ingest"], {
            "TICKLAKE_CONSUMER_GROUP": f"g-{topic}", "TICKLAKE_LAKE_ROLL_SECONDS": "1",
        }),
        # API keys off: this run is about which metrics exist, not who may query.
        "query-api": (["ticklake-query", "serve"], {"TICKLAKE_AUTH_ENABLED": "false"}),
    }  # fmt: skip
    bin_dir = Path(sys.executable).parent
    procs = {}
    try:
        for name, (argv, env) in services.items():
            script = bin_dir / argv[0]
            if not script.exists():
                pytest.skip(f"{argv[0]} is not installed: uv sync --all-packages --frozen")
            procs[name] = process.spawn(
                [str(script), *argv[1:]],
                work / f"{name}.log",
                env={**common, **env, "TICKLAKE_HTTP_PORT": str(port[name])},
            )
        for name in services:
            ports.wait_until(
                lambda n=name: (
                    procs[n].poll() is None and get(f"http://127.0.0.1:{port[n]}/healthz") == 200
                ),
                timeout=90,
                what=f"{name} /healthz (log: {work / f'{name}.log'})",
            )

        def ingest_has(sample: str) -> bool:
            text = metrics_text.scrape(f"http://127.0.0.1:{port['ingest']}/metrics") or ""
            return metrics_text.sample_sum(text, sample) > 0

        ports.wait_until(
            lambda: ingest_has("ticklake_ingest_processed_total"), 90, "ticks ingested"
        )
        ports.wait_until(lambda: ingest_has("ticklake_ingest_lake_files_total"), 90, "a lake file")
        base = f"http://127.0.0.1:{port['query-api']}"
        for path in ("/readyz", "/symbols", "/latest", "/healthz"):
            get(base + path)
        scraped = {
            name: metrics_text.scrape(f"http://127.0.0.1:{port[name]}/metrics") or ""
            for name in services
        }
        # The operator serves prometheus_client's default registry, where its
        # metrics module declares every family (it needs a cluster to run;
        # tests/cluster/test_monitoring.py scrapes the real one).
        importlib.import_module("ticklake.operator.metrics")
        scraped["operator"] = prometheus_client.generate_latest().decode()
        yield scraped
    finally:
        for proc in procs.values():
            process.stop(proc, timeout=40)


def test_every_metric_the_alerts_and_dashboard_use_is_exported(scrapes: dict[str, str]) -> None:
    names: dict[str, set[str]] = {}
    for text in scrapes.values():
        for name, labels in exported(text)[0].items():
            names.setdefault(name, set()).update(labels)
    used = used_metric_names()
    assert len(used) >= 10
    missing = sorted(set(used) - set(names))
    assert not missing, f"used by alerts/dashboard but exported by no service: {missing}"
    for name, labels in used.items():
        seen = names[name]
        if seen:  # a family with samples shows its label names
            assert labels <= seen, f"{name}: grouped by {labels - seen}, which it does not carry"


def test_the_pipeline_really_ran(scrapes: dict[str, str]) -> None:
    """The scrape came from a live flow, not idle services."""
    produced = exported(scrapes["producer"])[1]
    ingested = exported(scrapes["ingest"])[1]
    api = exported(scrapes["query-api"])[1]
    assert produced["ticklake_producer_ticks_sent_total"] > 0
    assert ingested["ticklake_ingest_processed_total"] > 0
    assert ingested["ticklake_ingest_lake_files_total"] > 0
    assert api["ticklake_query_requests_total"] > 0
