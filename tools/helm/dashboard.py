"""Generate the ticklake Grafana dashboard (charts/ticklake/dashboards/ticklake.json).

The dashboard is data: a list of panels, each a title, a unit and its PromQL
queries. Writing it here instead of by hand keeps the JSON regular (grid
positions, datasource references) and lets tests read the same list of
expressions that promtool checks. ``tests/charts/test_dashboard.py`` fails if
the committed JSON differs from what this script writes.

Usage: ``uv run python tools/helm/dashboard.py`` (rewrites the file).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

DASHBOARD_PATH = Path(__file__).resolve().parents[2] / "charts/ticklake/dashboards/ticklake.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    queries: tuple[tuple[str, str], ...]
    """(PromQL expression, legend) pairs."""
    description: str = ""


ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Flow",
        (
            Panel(
                "Throughput",
                "ops",
                (
                    ("sum(rate(ticklake_producer_ticks_sent_total[1m]))", "produced"),
                    ("sum(rate(ticklake_ingest_processed_total[1m]))", "ingested"),
                ),
                "Ticks per second acknowledged by Kafka and processed by ingest.",
            ),
            Panel(
                "End-to-end latency",
                "s",
                (
                    (
                        "histogram_quantile(0.50, sum by (le) "
                        "(rate(ticklake_ingest_e2e_latency_seconds_bucket[5m])))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.99, sum by (le) "
                        "(rate(ticklake_ingest_e2e_latency_seconds_bucket[5m])))",
                        "p99",
                    ),
                ),
                "From the tick's event time to it being visible in Redis.",
            ),
            Panel(
                "Consumer lag per partition",
                "short",
                (
                    (
                        "max by (partition) (ticklake_ingest_committed_lag)",
                        "partition {{partition}}",
                    ),
                ),
                "Messages in the ticks topic not yet committed by ingest.",
            ),
            Panel(
                "Dead letters",
                "ops",
                (
                    (
                        "sum by (reason) (rate(ticklake_ingest_dead_letters_total[5m]))",
                        "{{reason}}",
                    ),
                ),
                "Payloads sent to the dead-letter topic, per second, by reason.",
            ),
        ),
    ),
    (
        "Sinks",
        (
            Panel(
                "Lake files written per dataset",
                "ops",
                (("sum by (dataset) (rate(ticklake_ingest_lake_files_total[5m]))", "{{dataset}}"),),
            ),
            Panel(
                "Lake bytes written per dataset",
                "Bps",
                (("sum by (dataset) (rate(ticklake_ingest_lake_bytes_total[5m]))", "{{dataset}}"),),
            ),
            Panel(
                "Lake write errors",
                "ops",
                (("sum(rate(ticklake_ingest_lake_errors_total[5m]))", "errors/s"),),
                "Ingest retries a failed write and holds its offsets back meanwhile.",
            ),
            Panel(
                "Redis errors",
                "ops",
                (("sum(rate(ticklake_ingest_redis_errors_total[5m]))", "errors/s"),),
                "Failed Redis writes in ingest; the query API falls back to the lake.",
            ),
        ),
    ),
    (
        "Query API",
        (
            Panel(
                "API latency p99 per route",
                "s",
                (
                    (
                        "histogram_quantile(0.99, sum by (route, le) "
                        "(rate(ticklake_query_request_duration_seconds_bucket[5m])))",
                        "{{route}}",
                    ),
                ),
            ),
            Panel(
                "API latency p50 per route",
                "s",
                (
                    (
                        "histogram_quantile(0.50, sum by (route, le) "
                        "(rate(ticklake_query_request_duration_seconds_bucket[5m])))",
                        "{{route}}",
                    ),
                ),
            ),
            Panel(
                "API requests per route and status",
                "reqps",
                (
                    (
                        "sum by (route, status) (rate(ticklake_query_requests_total[1m]))",
                        "{{route}} {{status}}",
                    ),
                ),
            ),
            Panel(
                "Producer send errors",
                "ops",
                (
                    (
                        "sum by (error) (rate(ticklake_producer_send_errors_total[5m]))",
                        "{{error}}",
                    ),
                ),
            ),
        ),
    ),
)


NAMESPACE_SELECTOR = '{namespace=~"$namespace"}'
"""Added to every metric: the dashboard's namespace variable picks a release's
namespace. "All" is ``.*``, which also matches series with no namespace label
(compose.yaml's Prometheus), so one dashboard serves both."""


def scoped(expr: str) -> str:
    """``expr`` with every ticklake metric restricted to the chosen namespace."""
    return re.sub(r"\b(ticklake_[a-z0-9_]+)\b(?!\{)", rf"\1{NAMESPACE_SELECTOR}", expr)


def expressions() -> list[str]:
    """Every PromQL expression of the dashboard, in panel order."""
    return [scoped(expr) for _, panels in ROWS for panel in panels for expr, _ in panel.queries]


def build() -> dict[str, object]:
    panels: list[dict[str, object]] = []
    panel_id = 1
    y = 0
    for row_title, row_panels in ROWS:
        panels.append(
            {
                "type": "row",
                "id": panel_id,
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id += 1
        y += 1
        for i, panel in enumerate(row_panels):
            panels.append(
                {
                    "type": "timeseries",
                    "id": panel_id,
                    "title": panel.title,
                    "description": panel.description,
                    "datasource": DATASOURCE,
                    "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": y + 8 * (i // 2)},
                    "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                    "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
                    "targets": [
                        {
                            "refId": chr(ord("A") + n),
                            "datasource": DATASOURCE,
                            "expr": scoped(expr),
                            "legendFormat": legend,
                        }
                        for n, (expr, legend) in enumerate(panel.queries)
                    ],
                }
            )
            panel_id += 1
        y += 8 * ((len(row_panels) + 1) // 2)
    return {
        "uid": "ticklake-pipeline",
        "title": "ticklake pipeline",
        "tags": ["ticklake"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-30m", "to": "now"},
        "editable": True,
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "namespace",
                    "label": "Namespace",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {
                        "query": "label_values(ticklake_ingest_processed_total, namespace)",
                        "refId": "namespace",
                    },
                    "definition": "label_values(ticklake_ingest_processed_total, namespace)",
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "refresh": 2,
                    "current": {"text": "All", "value": "$__all"},
                    "hide": 0,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    DASHBOARD_PATH.parent.mkdir(parents=True, exist_ok=True)
    DASHBOARD_PATH.write_text(render())
    print(f"wrote {DASHBOARD_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
