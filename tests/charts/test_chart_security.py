"""Security scan of the rendered chart and the Dockerfiles.

checkov over every value set and the Dockerfiles, and hadolint over the
Dockerfiles. Every checkov finding must be listed, with its reason, in
docs/security-exceptions.md; every listed exception must still be needed.
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest
from chartkit import ROOT, VALUE_SETS, helm_template, run, tool

# The product's images (checkov and hadolint) ...
DOCKERFILES = ["Dockerfile"]
# ... and the stand-ins and test-cluster images of tools/images (hadolint).
TOOL_DOCKERFILES = [
    "tools/images/python/Dockerfile",
    "tools/images/kafka/Dockerfile",
    "tools/images/redis/Dockerfile",
]
EXCEPTIONS_DOC = ROOT / "docs" / "security-exceptions.md"


def exceptions() -> dict[str, list[str]]:
    """check id -> resource globs, from the table in docs/security-exceptions.md."""
    out: dict[str, list[str]] = {}
    for line in EXCEPTIONS_DOC.read_text().splitlines():
        m = re.match(r"^\| (CKV\w+) \| (.+?) \| .+\|$", line)
        if m:
            out[m.group(1)] = re.findall(r"`([^`]+)`", m.group(2))
    return out


@pytest.fixture(scope="module")
def checkov_findings(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    """(check id, resource) of every failed checkov check."""
    folder = tmp_path_factory.mktemp("scan")
    files = []
    for name, value_files in VALUE_SETS.items():
        path = folder / f"{name}.yaml"
        path.write_text(helm_template(value_files))
        files += ["-f", str(path)]
    for dockerfile in DOCKERFILES:
        files += ["-f", str(ROOT / dockerfile)]
    result = run(
        [tool("checkov"), *files, "--framework", "kubernetes", "dockerfile",
         "--quiet", "--compact", "--output", "json", "--skip-download"],
        timeout=600,
    )  # fmt: skip
    assert result.stdout.strip(), result.stderr
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}
    for r in reports:
        assert r["summary"]["parsing_errors"] == 0, r["summary"]
        assert r["summary"]["passed"] > 0
    return [(f["check_id"], f["resource"]) for r in reports for f in r["results"]["failed_checks"]]


def test_every_checkov_finding_is_a_written_down_exception(
    checkov_findings: list[tuple[str, str]],
) -> None:
    allowed = exceptions()
    unexplained = sorted(
        {
            (check, resource)
            for check, resource in checkov_findings
            if not any(fnmatch.fnmatch(resource, g) for g in allowed.get(check, []))
        }
    )
    assert not unexplained, f"fix these or add them to {EXCEPTIONS_DOC.name}: {unexplained}"


def test_every_exception_is_still_needed(checkov_findings: list[tuple[str, str]]) -> None:
    for check, globs in exceptions().items():
        for g in globs:
            assert any(c == check and fnmatch.fnmatch(r, g) for c, r in checkov_findings), (
                f"{check} {g} no longer fails: remove it from {EXCEPTIONS_DOC.name}"
            )


def test_dockerfiles_pass_checkov(checkov_findings: list[tuple[str, str]]) -> None:
    assert not [f for f in checkov_findings if f[0].startswith("CKV_DOCKER")]


@pytest.mark.parametrize("dockerfile", DOCKERFILES + TOOL_DOCKERFILES)
def test_hadolint_is_clean(dockerfile: str) -> None:
    result = run([tool("hadolint"), "--failure-threshold", "info", dockerfile])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    assert run([tool("hadolint"), str(bad)]).returncode != 0


SERVICE_TARGETS = ["producer", "ingest", "query-api", "operator"]


def test_dockerfile_shape() -> None:
    """Multi-stage on python:3.11-slim, deps from the lockfile, non-root."""
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+) AS (\S+)$", text, re.M)
    bases = {stage: base for base, stage in froms}
    assert bases["workspace"] == "python:3.11-slim"
    # The runtime is the base trimmed, then flattened into one layer.
    assert bases["runtime-root"] == "python:3.11-slim"
    assert bases["runtime"] == "scratch"
    assert re.search(r"^USER 10001:10001$", text, re.M)
    stages = text.split("\nFROM ")
    for target in SERVICE_TARGETS:
        package = f"ticklake-{target}"
        assert bases[f"{target}-venv"] == "workspace"
        assert bases[target] == "runtime"
        venv = next(s for s in stages if s.startswith(f"workspace AS {target}-venv\n"))
        assert f"uv sync --frozen --no-dev --no-install-workspace --package {package}" in venv
        assert f"uv sync --frozen --no-dev --no-editable --package {package}" in venv
        # The image copies nothing but its venv from the build stages or the context.
        final = next(s for s in stages if s.startswith(f"runtime AS {target}\n"))
        assert re.findall(r"^COPY .*", final, re.M) == [
            f"COPY --from={target}-venv /opt/ticklake/venv /opt/ticklake/venv"
        ]
    runtime = next(s for s in stages if s.startswith("scratch AS runtime\n"))
    assert re.findall(r"^COPY .*", runtime, re.M) == ["COPY --from=runtime-root / /"]
    root = next(s for s in stages if s.startswith("python:3.11-slim AS runtime-root\n"))
    assert re.findall(r"^COPY .*", root, re.M) == [
        "COPY tools/images/trim_runtime.sh /usr/local/sbin/trim-runtime"
    ]
