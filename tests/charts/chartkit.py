"""Helpers for the chart tests: the tools, rendering, and reading manifests.

Every tool comes from ``tools/helm/install.sh`` (built or installed from the
package registries into ``${TICKLAKE_CACHE:-~/.cache/ticklake}/bin``); the
first test that needs one runs the script, which is a no-op when the cache is
warm.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ticklake"
CACHE = Path(os.environ.get("TICKLAKE_CACHE", Path.home() / ".cache" / "ticklake"))
BIN = CACHE / "bin"
RELEASE = "ticklake"
NAMESPACE = "ticklake"

VALUE_SETS: Mapping[str, tuple[str, ...]] = {
    "defaults": (),
    "external-kafka-redis": ("ci/external-kafka-redis-values.yaml",),
    "s3-lake": ("ci/s3-lake-values.yaml",),
    "monitoring-off": ("ci/monitoring-off-values.yaml",),
}
"""The value sets CI renders: the defaults and every file in ci/ (a test checks
that no ci/ file is missing here)."""

SERVICES: Mapping[str, str] = {"producer": "producer", "ingest": "ingest", "query-api": "queryApi"}
"""Component label -> values key of the three HTTP services."""

Manifest = dict[str, Any]


@functools.cache
def tools() -> Path:
    """Run tools/helm/install.sh once per session; the folder with the binaries."""
    subprocess.run(
        ["bash", str(ROOT / "tools" / "helm" / "install.sh")],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=1800,
    )
    return BIN


def helm_plugins() -> str:
    """HELM_PLUGINS for the plugins tools/helm/install.sh builds (helm-unittest)."""
    tools()
    unittest = CACHE / "helm-plugins" / "unittest" / "untt"
    assert unittest.exists(), f"helm-unittest missing ({unittest}) after tools/helm/install.sh"
    return str(CACHE / "helm-plugins")


def tool(name: str) -> str:
    path = tools() / name
    assert path.exists(), f"{name} missing from {BIN} after tools/helm/install.sh"
    return str(path)


def run(
    args: list[str], *, cwd: Path = ROOT, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def helm_template_result(
    value_files: Iterable[str] = (), sets: Iterable[str] = (), *, show_only: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``helm template`` of the chart, whatever its outcome (for renders that must fail)."""
    args = [tool("helm"), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for f in value_files:
        args += ["-f", str(CHART / f)]
    for s in sets:
        args += ["--set", s]
    if show_only:
        args += ["--show-only", show_only]
    return run(args)


def helm_template(
    value_files: Iterable[str] = (), sets: Iterable[str] = (), *, show_only: str | None = None
) -> str:
    result = helm_template_result(value_files, sets, show_only=show_only)
    assert result.returncode == 0, result.stderr
    return result.stdout


@functools.cache
def render(value_set: str) -> tuple[Manifest, ...]:
    """The objects of one named value set (cached for the session)."""
    return parse(helm_template(VALUE_SETS[value_set]))


def parse(text: str) -> tuple[Manifest, ...]:
    return tuple(doc for doc in yaml.safe_load_all(text) if doc)


def of_kind(objects: Iterable[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: Iterable[Manifest], kind: str, name: str) -> Manifest:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects"
    return matches[0]


def component_name(component: str) -> str:
    """Object name of a component for the test release ("ticklake" + chart
    "ticklake" collapse to one word)."""
    return f"{RELEASE}-{component}"


def pod_templates(objects: Iterable[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    """(owner, pod spec) of every workload and bare Pod."""
    for o in objects:
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield o, o["spec"]["template"]["spec"]
        elif o["kind"] == "CronJob":
            yield o, o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif o["kind"] == "Pod":
            yield o, o["spec"]


def pod_labels(owner: Manifest) -> dict[str, str]:
    if owner["kind"] == "Pod":
        return dict(owner["metadata"].get("labels", {}))
    if owner["kind"] == "CronJob":
        return dict(owner["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {}))
    return dict(owner["spec"]["template"]["metadata"].get("labels", {}))


def container_env(objects: Iterable[Manifest], owner: Manifest) -> dict[str, str | None]:
    """Every env var the first container of ``owner`` gets: ConfigMap entries
    (envFrom) with their values, plus ``env`` (None for secret references)."""
    objects = list(objects)
    container = owner["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        cm = named(objects, "ConfigMap", source["configMapRef"]["name"])
        env.update({k: str(v) for k, v in cm.get("data", {}).items()})
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value")
    return env


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def unknown_fields(schema: Mapping[str, Any], value: Any, path: str = "") -> list[str]:
    """Fields of ``value`` that an OpenAPI v3 (structural) schema does not
    declare: what the API server's strict field validation rejects. JSON
    Schema validation alone lets them through because CRD schemas do not say
    ``additionalProperties: false``."""
    problems: list[str] = []
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return problems
    if isinstance(value, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if props is not None and key in props:
                problems += unknown_fields(props[key], item, f"{path}.{key}")
            elif isinstance(additional, dict):
                problems += unknown_fields(additional, item, f"{path}.{key}")
            elif props is not None and additional is not True:
                problems.append(f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problems += unknown_fields(schema["items"], item, f"{path}[{i}]")
    return problems


@dataclass(frozen=True)
class CrdVersion:
    group: str
    kind: str
    version: str
    schema: Mapping[str, Any]


def crd_versions(path: Path) -> list[CrdVersion]:
    """Every served version's openAPIV3Schema in a CRD YAML file."""
    out = []
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        for v in spec["versions"]:
            out.append(
                CrdVersion(
                    spec["group"], spec["names"]["kind"], v["name"], v["schema"]["openAPIV3Schema"]
                )
            )
    return out
