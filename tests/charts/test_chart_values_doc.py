"""docs/chart.md's table of values is generated from values.yaml's comments
(tools/chart_values_doc.py) and must be current."""

from __future__ import annotations

import subprocess
import sys

import pytest
from chartkit import CHART, ROOT
from crdkit import PROMETHEUS_OPERATOR_BUNDLE, STRIMZI_BUNDLES

sys.path.insert(0, str(ROOT / "tools"))
import chart_values_doc


def test_the_values_table_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "chart_values_doc.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_every_value_is_a_row() -> None:
    rows = {r.path for r in chart_values_doc.values_rows((CHART / "values.yaml").read_text())}
    assert {"kafka.strimzi.listenerPort", "redis.external.url", "tests.enabled"} <= rows
    assert len(rows) > 150


def test_an_undocumented_value_is_an_error() -> None:
    with pytest.raises(chart_values_doc.UndocumentedValue, match=r"a\.b has no"):
        chart_values_doc.values_rows("a:\n  # -- fine\n  c: 1\n  b: 2\n")


def test_the_versions_line_names_the_bundles_the_tests_use() -> None:
    assert chart_values_doc.STRIMZI_BUNDLES == STRIMZI_BUNDLES
    assert chart_values_doc.PROMETHEUS_OPERATOR_BUNDLE == PROMETHEUS_OPERATOR_BUNDLE
