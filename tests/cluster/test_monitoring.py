"""The Prometheus Operator reconciling the chart's objects, and Prometheus alerting for real.

On the one-node cluster: the operator (``monitoring`` fixture) runs a
Prometheus that selects ServiceMonitors and PrometheusRules by the label
``release: kube-prometheus-stack`` as kube-prometheus-stack's does; the chart
runs as ``skaffold dev`` deploys it (``skaffold_dev``) with the test values of
``tests/cluster/monitoring/ticklake-values.yaml`` (5 s scrapes, shortened
``for:``). Everything is asserted from Prometheus's own HTTP API.

The alerts are caused for real and removed again: the producer stopped (no
ticks), ingest scaled to zero with its IngestScaler suspended (lag), malformed
payloads written to the ticks topic (dead letters). The time from cause to
firing is printed and written to ``test-artifacts/cluster-alerts.json``.
Tests run in file order: the dead-letter alert's 5-minute window runs out
while the other alerts are exercised.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from monitoring_kit import (
    CRD_BUNDLE,
    MONITORING,
    TEST_VALUES,
    Monitoring,
    PrometheusAPI,
    SkaffoldRun,
)
from nodekit import eventually, port_forward

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ticklake"
DASHBOARD = CHART / "dashboards" / "ticklake.json"
ALERTS = CHART / "files" / "alerts.yaml"
COMPONENTS = ("producer", "ingest", "query-api", "operator")
FOR_OVERRIDES: dict[str, str] = yaml.safe_load(TEST_VALUES.read_text())["monitoring"][
    "prometheusRule"
]["forOverrides"]
TIMES: dict[str, dict[str, float]] = {}
"""Cause -> pending/firing/resolved seconds per alert, written out at the end."""


@pytest.fixture(scope="module")
def stack(
    monitoring: Monitoring, skaffold_dev: SkaffoldRun, prometheus: PrometheusAPI
) -> Iterator[tuple[SkaffoldRun, PrometheusAPI]]:
    yield skaffold_dev, prometheus


@pytest.fixture(scope="module", autouse=True)
def _write_times(artifacts_dir: Path) -> Iterator[None]:
    yield
    if TIMES:
        (artifacts_dir / "cluster-alerts.json").write_text(json.dumps(TIMES, indent=2))
        print(f"alerts, seconds from cause: {TIMES}")


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))


def test_crds_are_the_upstream_files_of_the_shared_records(monitoring: Monitoring) -> None:
    # The fixture installed the module's CRDs; those ../shared/k8s-crds records
    # (ServiceMonitor, PodMonitor, PrometheusRule) are the same files, byte for byte.
    assert set(monitoring.crd_digests) == {
        "monitoring.coreos.com_servicemonitors.yaml",
        "monitoring.coreos.com_podmonitors.yaml",
        "monitoring.coreos.com_prometheusrules.yaml",
    }
    served = monitoring.cluster.kubectl("get", "crd", "-o", "name")
    assert "customresourcedefinition.apiextensions.k8s.io/prometheuses.monitoring.coreos.com" in (
        served
    ), CRD_BUNDLE


def test_every_ticklake_target_is_up(stack: tuple[SkaffoldRun, PrometheusAPI]) -> None:
    run, prom = stack
    monitors = run.kubectl("get", "servicemonitors", "-o", "name").split()
    assert len(monitors) >= len(COMPONENTS), monitors
    pools = {f"serviceMonitor/{run.namespace}/{m.split('/')[-1]}/0" for m in monitors}

    def targets() -> list[dict[str, Any]]:
        active: list[dict[str, Any]] = prom.get("/api/v1/targets", state="active")["activeTargets"]
        return [t for t in active if t["scrapePool"] in pools]

    found = eventually(
        targets,
        lambda ts: {t["scrapePool"] for t in ts} == pools and all(t["health"] == "up" for t in ts),
        what=f"every target of {sorted(pools)} up",
        timeout_s=180,
    )
    assert {t["labels"]["namespace"] for t in found} == {run.namespace}
    up = prom.query(f'up{{namespace="{run.namespace}"}}')
    assert up and all(float(s["value"][1]) == 1 for s in up), up
    jobs = {s["metric"]["job"] for s in up}
    assert all(any(c in j for j in jobs) for c in COMPONENTS), jobs


def test_throughput_and_latency_series_exist_and_move(
    stack: tuple[SkaffoldRun, PrometheusAPI],
) -> None:
    run, prom = stack
    ns = run.namespace
    counters = (
        f'sum(ticklake_ingest_processed_total{{namespace="{ns}"}})',
        f'sum(ticklake_producer_ticks_sent_total{{namespace="{ns}"}})',
        f'sum(ticklake_ingest_e2e_latency_seconds_count{{namespace="{ns}"}})',
    )
    first = {q: eventually(lambda q=q: prom.value(q), lambda v: bool(v), what=q)
             for q in counters}  # fmt: skip
    for q in counters:
        eventually(lambda q=q: prom.value(q), lambda v, q=q: v is not None and v > first[q],
                   what=f"{q} growing past {first[q]}", timeout_s=60)  # fmt: skip
    rate = prom.value(f'sum(rate(ticklake_ingest_processed_total{{namespace="{ns}"}}[1m]))')
    assert rate is not None and rate > 0
    p99 = eventually(
        lambda: prom.value(
            "histogram_quantile(0.99, sum by (le) (rate(ticklake_ingest_e2e_latency_seconds_bucket"
            f'{{namespace="{ns}"}}[1m])))'
        ),
        lambda v: v is not None and v > 0,
        what="an end-to-end latency p99",
    )
    print(f"ingest {rate:.0f} ticks/s, end-to-end p99 {p99:.3f}s")


def _dashboard_expressions() -> list[tuple[str, str]]:
    def panels(p: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for panel in p.get("panels", []):
            yield panel
            yield from panels(panel)

    board = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in panels(board) for t in p.get("targets", [])]


def test_every_dashboard_expression_returns_data(
    stack: tuple[SkaffoldRun, PrometheusAPI],
) -> None:
    run, prom = stack
    expressions = _dashboard_expressions()
    assert len(expressions) >= 10
    # The API panels need requests: a few, through the query API's Service.
    with port_forward(run.cluster, "svc/ticklake-query-api", "http",
                      namespace=run.namespace) as port:  # fmt: skip
        for path in ("/latest/AAPL", "/bars/AAPL?interval=1s", "/latest/NOPE", "/readyz") * 3:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10).read()
            except OSError:
                pass  # a 404 is a request too
    # The namespace variable as Grafana fills it for this release.
    namespaces = prom.get("/api/v1/label/namespace/values",
                          **{"match[]": "ticklake_ingest_processed_total"})  # fmt: skip
    assert run.namespace in namespaces
    empty: dict[str, str] = {}
    deadline = time.monotonic() + 120
    pending = dict(expressions)
    while pending and time.monotonic() < deadline:
        for title, expr in list(pending.items()):
            if prom.query(expr.replace("$namespace", run.namespace)):
                del pending[title]
        if pending:
            time.sleep(5)
    empty = pending
    assert not empty, f"dashboard panels without data: {empty}"


def test_the_prometheus_rule_is_loaded_with_the_test_for(
    stack: tuple[SkaffoldRun, PrometheusAPI],
) -> None:
    _, prom = stack
    expected = {
        r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]
    }

    def rules() -> dict[str, dict[str, Any]]:
        groups = prom.get("/api/v1/rules", type="alert")["groups"]
        return {r["name"]: r for g in groups for r in g["rules"] if r["name"] in expected}

    loaded = eventually(rules, lambda r: set(r) == expected, what=f"alert rules {expected}")
    for name, duration in FOR_OVERRIDES.items():
        assert loaded[name]["duration"] == _seconds(duration), loaded[name]
    assert all(r["health"] == "ok" for r in loaded.values()), loaded


# -------------------------------------------------------------------- alerts


def _wait_state(
    prom: PrometheusAPI, namespace: str, alert: str, started: float, *, timeout_s: float = 240
) -> dict[str, float]:
    """Poll until ``alert`` fires; {"pending": s, "firing": s} after ``started``."""
    seen: dict[str, float] = {}
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        state = prom.alerts(namespace).get(alert)
        if state and state not in seen:
            seen[state] = round(time.monotonic() - started, 1)
        if state == "firing":
            return seen
        time.sleep(1)
    raise AssertionError(f"{alert} not firing {timeout_s}s after its cause; seen {seen}, "
                         f"alerts now {prom.alerts(namespace)}")  # fmt: skip


def _wait_resolved(
    prom: PrometheusAPI, namespace: str, alert: str, started: float, *, timeout_s: float = 240
) -> float:
    eventually(lambda: prom.alerts(namespace), lambda a: alert not in a,
               what=f"{alert} resolved", timeout_s=timeout_s)  # fmt: skip
    return round(time.monotonic() - started, 1)


@pytest.fixture(scope="module")
def dead_letters_sent(stack: tuple[SkaffoldRun, PrometheusAPI]) -> float:
    """Malformed payloads written to the ticks topic from the producer pod; when."""
    run, prom = stack
    # The counters must exist at 0 first (ingest exports every reason at 0).
    counters = f'ticklake_ingest_dead_letters_total{{namespace="{run.namespace}"}}'
    eventually(lambda: prom.query(counters), bool, what="dead-letter counters at 0")
    bootstrap = f"kafka.{run.namespace}.svc.cluster.local:9092"
    script = (
        "import asyncio\n"
        "from aiokafka import AIOKafkaProducer\n"
        "async def main():\n"
        f"    p = AIOKafkaProducer(bootstrap_servers={bootstrap!r})\n"
        "    await p.start()\n"
        "    for i in range(5):\n"
        "        await p.send_and_wait('market.ticks', b'this is not a tick %d' % i, key=b'AAPL')\n"
        "    await p.stop()\n"
        "asyncio.run(main())\n"
    )
    started = time.monotonic()
    run.kubectl("exec", "deploy/ticklake-producer", "--", "python", "-c", script, timeout=60)
    return started


def test_malformed_ticks_fire_the_dead_letter_alert(
    stack: tuple[SkaffoldRun, PrometheusAPI], dead_letters_sent: float
) -> None:
    run, prom = stack
    seen = _wait_state(prom, run.namespace, "TicklakeDeadLettersArriving", dead_letters_sent)
    TIMES["TicklakeDeadLettersArriving"] = seen
    count = prom.value(f'sum(ticklake_ingest_dead_letters_total{{namespace="{run.namespace}"}})')
    assert count is not None and count >= 5


def test_stopping_the_producer_fires_no_ticks_then_resolves(
    stack: tuple[SkaffoldRun, PrometheusAPI],
) -> None:
    run, prom = stack
    assert "TicklakeNoTicks" not in prom.alerts(run.namespace)
    started = time.monotonic()
    run.kubectl("scale", "deployment/ticklake-producer", "--replicas=0")
    try:
        seen = _wait_state(prom, run.namespace, "TicklakeNoTicks", started)
        assert "pending" in seen, seen  # for: holds it pending first
    finally:
        restored = time.monotonic()
        run.kubectl("scale", "deployment/ticklake-producer", "--replicas=1")
    seen["resolved_after_restore"] = _wait_resolved(
        prom, run.namespace, "TicklakeNoTicks", restored
    )
    TIMES["TicklakeNoTicks"] = seen


def test_ingest_at_zero_fires_the_lag_alert_then_resolves(
    stack: tuple[SkaffoldRun, PrometheusAPI],
) -> None:
    run, prom = stack
    (scaler,) = run.kubectl("get", "ingestscalers", "-o", "name").split()
    replicas = run.kubectl("get", "deployment/ticklake-ingest", "-o",
                           "jsonpath={.spec.replicas}").strip()  # fmt: skip
    assert "TicklakeConsumerLagHigh" not in prom.alerts(run.namespace)
    # Suspended first, or the operator scales ingest straight back.
    run.kubectl("patch", scaler, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    started = time.monotonic()
    run.kubectl("scale", "deployment/ticklake-ingest", "--replicas=0")
    try:
        seen = _wait_state(prom, run.namespace, "TicklakeConsumerLagHigh", started)
    finally:
        restored = time.monotonic()
        run.kubectl("scale", "deployment/ticklake-ingest", f"--replicas={replicas}")
        run.kubectl("patch", scaler, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    seen["resolved_after_restore"] = _wait_resolved(
        prom, run.namespace, "TicklakeConsumerLagHigh", restored
    )
    TIMES["TicklakeConsumerLagHigh"] = seen


def test_the_dead_letter_alert_resolves_once_its_window_passes(
    stack: tuple[SkaffoldRun, PrometheusAPI], dead_letters_sent: float
) -> None:
    """increase(...[5m]) > 0: it resolves 5 minutes after the last malformed payload."""
    run, prom = stack
    resolved = _wait_resolved(prom, run.namespace, "TicklakeDeadLettersArriving",
                              dead_letters_sent, timeout_s=420)  # fmt: skip
    assert resolved >= 240, resolved  # not before its window could have emptied
    TIMES.setdefault("TicklakeDeadLettersArriving", {})["resolved"] = resolved


def test_manifests_select_what_kube_prometheus_stack_selects() -> None:
    """The test's Prometheus selects as kube-prometheus-stack's, by the chart's release label."""
    prom = next(d for d in yaml.safe_load_all((MONITORING / "prometheus.yaml").read_text())
                if d and d["kind"] == "Prometheus")  # fmt: skip
    chart_labels = yaml.safe_load((CHART / "values.yaml").read_text())["monitoring"]["labels"]
    for selector in ("serviceMonitorSelector", "ruleSelector"):
        assert prom["spec"][selector]["matchLabels"] == chart_labels
