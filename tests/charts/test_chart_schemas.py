"""Every rendered object against its schema.

* Kubernetes kinds: kubernetes-validate (the OpenAPI schemas of each release
  ship in its wheel), strict, so an unknown field fails, for the oldest and
  the newest release the chart supports.
* Strimzi and Prometheus Operator kinds: the real upstream CRD schemas in
  ../shared/k8s-crds (Strimzi 1.2.0 and 0.51.0, prometheus-operator v0.93.0;
  see crdkit.py), for every Strimzi bundle.
* IngestScaler: the chart's own CRD (crds/).

CRD objects go through check-jsonschema (types, enums, required) and through
:func:`chartkit.unknown_fields` (fields the schema does not declare, which the
API server would prune). The same objects are applied to a real API server
with these CRDs in test_chart_matrix.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartkit import (
    CHART,
    VALUE_SETS,
    Manifest,
    crd_versions,
    render,
    run,
    tool,
    unknown_fields,
)
from crdkit import STRIMZI_BUNDLES, schemas

KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
CRD_GROUPS = ("monitoring.coreos.com", "ticklake.dev", "kafka.strimzi.io")


def is_custom(o: Manifest) -> bool:
    return o["apiVersion"].split("/")[0] in CRD_GROUPS


@pytest.mark.parametrize("kube_version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_kubernetes_objects_match_the_openapi_schema(
    value_set: str, kube_version: str, tmp_path: Path
) -> None:
    builtin = [o for o in render(value_set) if not is_custom(o)]
    manifest = tmp_path / "builtin.yaml"
    manifest.write_text(yaml.safe_dump_all(builtin))
    result = run([tool("kubernetes-validate"), "--strict", "-k", kube_version, str(manifest)])
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if " passed for resource " in line]
    assert len(passed) == len(builtin), result.stdout + result.stderr


def python_patterns(schema: Any) -> Any:
    """The schema with Go (RE2) patterns made valid for Python's re: RE2 allows
    an inline flag like ``(?i)`` after ``^``; Python wants it first."""
    if isinstance(schema, dict):
        out = {k: python_patterns(v) for k, v in schema.items()}
        pattern = out.get("pattern")
        if isinstance(pattern, str) and "(?i)" in pattern and not pattern.startswith("(?i)"):
            out["pattern"] = "(?i)" + pattern.replace("(?i)", "")
        return out
    if isinstance(schema, list):
        return [python_patterns(v) for v in schema]
    return schema


def schemas_by_kind(strimzi: str = STRIMZI_BUNDLES[0]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> JSON schema, from every source above."""
    out = {key: python_patterns(schema) for key, schema in schemas(strimzi).items()}
    for path in (CHART / "crds").glob("*.yaml"):
        for crd in crd_versions(path):
            out[(f"{crd.group}/{crd.version}", crd.kind)] = python_patterns(crd.schema)
    return out


@pytest.mark.parametrize("strimzi", STRIMZI_BUNDLES)
@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_custom_resources_match_their_crd_schemas(
    value_set: str, strimzi: str, tmp_path: Path
) -> None:
    schemas = schemas_by_kind(strimzi)
    by_schema: dict[tuple[str, str], list[Manifest]] = {}
    for o in render(value_set):
        if is_custom(o):
            key = (o["apiVersion"], o["kind"])
            assert key in schemas, f"no schema for {key}"
            by_schema.setdefault(key, []).append(o)
    for (api_version, kind), objects in by_schema.items():
        schema = schemas[(api_version, kind)]
        schema_file = tmp_path / f"{kind}.schema.json"
        schema_file.write_text(json.dumps(schema))
        instances = []
        for i, o in enumerate(objects):
            instance = tmp_path / f"{kind}-{i}.json"
            instance.write_text(json.dumps(o))
            instances.append(str(instance))
            # metadata is the API server's; only spec (and the rest) is the CRD's.
            unknown = unknown_fields(schema, {k: v for k, v in o.items() if k != "metadata"})
            assert not unknown, f"{kind}/{o['metadata']['name']}: undeclared fields {unknown}"
        result = run(
            [
                tool("check-jsonschema"),
                "--regex-variant",
                "python",
                "--schemafile",
                str(schema_file),
                *instances,
            ]
        )
        assert result.returncode == 0, f"{kind}: {result.stdout}{result.stderr}"


def test_the_crd_checks_can_fail(tmp_path: Path) -> None:
    """A misspelt field and a wrong type are both caught."""
    schemas = schemas_by_kind()
    monitor = next(o for o in render("defaults") if o["kind"] == "ServiceMonitor")
    bad = json.loads(json.dumps(monitor))
    bad["spec"]["endpoints"][0]["intervall"] = "15s"
    schema = schemas[("monitoring.coreos.com/v1", "ServiceMonitor")]
    assert unknown_fields(schema, bad) == [".spec.endpoints[0].intervall"]
    topic = next(o for o in render("defaults") if o["kind"] == "KafkaTopic")
    bad_topic = json.loads(json.dumps(topic))
    bad_topic["spec"]["partitions"] = "six"
    schema_file = tmp_path / "topic.schema.json"
    schema_file.write_text(json.dumps(schemas[("kafka.strimzi.io/v1", "KafkaTopic")]))
    instance = tmp_path / "topic.json"
    instance.write_text(json.dumps(bad_topic))
    result = run(
        [
            tool("check-jsonschema"),
            "--regex-variant",
            "python",
            "--schemafile",
            str(schema_file),
            str(instance),
        ]
    )
    assert result.returncode != 0
