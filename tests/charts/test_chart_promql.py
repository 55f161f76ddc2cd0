"""Every PromQL expression of the alerts and the dashboard, through promtool.

promtool comes from Debian's ``prometheus`` package (the test setup installs
it). The alerts also have promtool unit tests (promtool/alerts-test.yaml)
that feed them series and check which alerts fire.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from chartkit import ROOT, run

ALERTS = ROOT / "charts/ticklake/files/alerts.yaml"
DASHBOARD_JSON = ROOT / "charts/ticklake/dashboards/ticklake.json"
ALERTS_TEST = Path(__file__).parent / "promtool" / "alerts-test.yaml"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool missing: apt-get install prometheus (the test setup does)"
    return path


def dashboard_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "ticklake_dashboard_generator", ROOT / "tools/helm/dashboard.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_alert_rules_pass_promtool_check(promtool: str) -> None:
    result = run([promtool, "check", "rules", str(ALERTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_alerts_fire_on_the_series_that_should_raise_them(promtool: str) -> None:
    result = run([promtool, "test", "rules", str(ALERTS_TEST)], cwd=ALERTS_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_generated_from_tools_helm_dashboard_py() -> None:
    assert DASHBOARD_JSON.read_text() == dashboard_module().render(), (
        "run: uv run python tools/helm/dashboard.py"
    )


def dashboard_expressions() -> list[str]:
    board = json.loads(DASHBOARD_JSON.read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def test_dashboard_has_the_panels_the_issue_asks_for() -> None:
    exprs = " ".join(dashboard_expressions())
    for needle in (
        "ticklake_producer_ticks_sent_total",  # throughput
        "histogram_quantile(0.50, sum by (le) (rate(ticklake_ingest_e2e_latency_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(ticklake_ingest_e2e_latency_seconds_bucket",
        "max by (partition) (ticklake_ingest_committed_lag{",
        "ticklake_ingest_dead_letters_total",
        "ticklake_ingest_lake_files_total",
        "ticklake_ingest_lake_bytes_total",
        "ticklake_ingest_redis_errors_total",
        "sum by (route, le) (rate(ticklake_query_request_duration_seconds_bucket",
    ):
        assert needle in exprs, needle


def test_every_dashboard_metric_is_scoped_to_the_chosen_namespace() -> None:
    for expr in dashboard_expressions():
        for match in re.finditer(r"ticklake_[a-z0-9_]+", expr):
            assert expr[match.end() :].startswith('{namespace=~"$namespace"}'), expr


def test_dashboard_expressions_pass_promtool_check(promtool: str, tmp_path: Path) -> None:
    """promtool parses rule files only, so each expression becomes a recording rule."""
    exprs = dashboard_expressions()
    assert exprs == dashboard_module().expressions()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:panel_{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_promtool_check_can_fail(promtool: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "x", "rules": [{"record": "x", "expr": "sum(rate(x[5m])"}]}]}
        )
    )
    assert run([promtool, "check", "rules", str(path)]).returncode != 0
