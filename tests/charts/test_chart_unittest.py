"""helm-unittest suites of the chart (charts/ticklake/tests/*_test.yaml).

The plugin is built from the Go module proxy by tools/helm/install.sh (see
there why not `helm plugin install`). The suites cover template logic in
helm-unittest's own terms; test_chart_templates.py asserts more of it in
pytest over `helm template`.
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from chartkit import CHART, helm_plugins, run, tool


def unittest(chart: Path) -> tuple[int, str]:
    env_args = [tool("helm"), "unittest", "--color=false", str(chart)]
    result = run(["env", f"HELM_PLUGINS={helm_plugins()}", *env_args])
    return result.returncode, result.stdout + result.stderr


def test_the_chart_passes_its_helm_unittest_suites() -> None:
    code, out = unittest(CHART)
    assert code == 0, out
    suites = sorted(p.name for p in (CHART / "tests").glob("*_test.yaml"))
    assert len(suites) >= 3
    assert "Test Suites: 3 passed" in out or f"Test Suites: {len(suites)} passed" in out, out


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    chart = tmp_path / "ticklake"
    shutil.copytree(CHART, chart)
    suite = chart / "tests" / "strimzi_test.yaml"
    suite.write_text(suite.read_text().replace("value: ticklake-dual-role", "value: dual-role"))
    code, out = unittest(chart)
    assert code != 0 and "FAIL" in out, out


def test_the_suites_are_not_packaged_but_the_helm_test_hook_is(tmp_path: Path) -> None:
    """.helmignore drops the chart's tests/ folder, and only that one: a
    pattern matching every "tests" folder would drop templates/tests too."""
    result = run([tool("helm"), "package", str(CHART), "-d", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    (package,) = tmp_path.glob("ticklake-*.tgz")
    with tarfile.open(package) as tar:
        names = tar.getnames()
    assert "ticklake/templates/tests/test-query-api.yaml" in names
    assert not [n for n in names if n.startswith("ticklake/tests/")]
