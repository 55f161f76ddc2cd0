"""The dev loop's files: kind-config.yaml, skaffold.yaml, compose.yaml.

* kind-config.yaml goes through kind's own config loader: the real ``kind``
  (built from the Go proxy) runs ``create cluster`` with a stand-in ``docker``
  that answers ``info`` and ``ps`` and refuses everything else. kind decodes
  the file strictly and validates it before it touches a container, so a bad
  config fails with kind's own message, and a good one gets as far as pulling
  the node image (which the stand-in refuses).
* skaffold.yaml: skaffold is not served by the Go proxy and no registry ships
  its JSON schema, so structural assertions: every artifact's Dockerfile
  and target exist, every ``setValueTemplates`` key is a chart value that changes the
  image of the right Deployment, port-forwards name Services the chart
  renders, the profiles' patches point at existing paths.
* compose.yaml: the compose-spec JSON schema vendored in check-jsonschema,
  plus its paths, env var names and Prometheus config (promtool).
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartkit import (
    ROOT,
    component_name,
    helm_template,
    named,
    of_kind,
    parse,
    render,
    run,
    tool,
)

from ticklake.devstack.images import dockerfile_stages

DOCKER_INFO = (
    '{"CgroupDriver":"systemd","CgroupVersion":"2","MemoryLimit":true,"PidsLimit":true,'
    '"CPUShares":true,"SecurityOptions":["name=seccomp,profile=builtin","name=cgroupns"],'
    '"Rootless":false}'
)
FAKE_DOCKER = f"""#!/bin/sh
# Stand-in for docker: enough for kind to get past its provider checks.
case "$1" in
  info) echo '{DOCKER_INFO}'; exit 0;;
  ps) exit 0;;
esac
echo "stand-in docker refuses: $*" >&2
exit 1
"""


def kind_create(config: Path, tmp_path: Path) -> str:
    shim = tmp_path / "bin"
    shim.mkdir(exist_ok=True)
    docker = shim / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{shim}:{os.environ['PATH']}",
        "KIND_EXPERIMENTAL_PROVIDER": "docker",
        "KUBECONFIG": str(tmp_path / "kubeconfig"),
    }

    result = subprocess.run(
        [tool("kind"), "create", "cluster", "--config", str(config), "--name", "ticklake-check"],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0  # the stand-in never lets a cluster start
    return result.stdout + result.stderr


def test_kind_accepts_kind_config(tmp_path: Path) -> None:
    out = kind_create(ROOT / "kind-config.yaml", tmp_path)
    assert "Ensuring node image" in out, out
    assert "invalid configuration" not in out and "unable to decode" not in out, out


@pytest.mark.parametrize(
    ("mutation", "complaint"),
    [
        (lambda c: c["nodes"].__setitem__(1, {"role": "workr"}), "not a valid node role"),
        (lambda c: c.__setitem__("nodez", []), "field nodez not found"),
    ],
)
def test_kind_rejects_a_broken_config(mutation: Any, complaint: str, tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    mutation(config)
    bad = tmp_path / "bad-kind.yaml"
    bad.write_text(yaml.safe_dump(config))
    assert complaint in kind_create(bad, tmp_path)


def test_kind_config_shape() -> None:
    config = yaml.safe_load((ROOT / "kind-config.yaml").read_text())
    roles = [n["role"] for n in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker"]
    mappings = {m["containerPort"]: m["hostPort"] for m in config["nodes"][0]["extraPortMappings"]}
    assert mappings[30800] == 18000  # the query API's NodePort in skaffold.yaml
    # Host ports of kind's mappings and skaffold's port-forwards never meet
    # each other nor `make run`'s query API (8000) and Prometheus (9090).
    skaffold = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    forwarded = [f["localPort"] for f in skaffold["portForward"]]
    taken = [*mappings.values(), *forwarded, 8000, 9090]
    assert len(taken) == len(set(taken)), taken
    assert 'config_path = "/etc/containerd/certs.d"' in config["containerdConfigPatches"][0]


# ---------------------------------------------------------------- skaffold


@pytest.fixture(scope="module")
def skaffold() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "skaffold.yaml").read_text())


def test_skaffold_builds_the_four_images(skaffold: dict[str, Any]) -> None:
    assert skaffold["apiVersion"].startswith("skaffold/v4")
    artifacts = {a["image"]: a for a in skaffold["build"]["artifacts"]}
    assert set(artifacts) == {"ticklake-producer", "ticklake-ingest", "ticklake-query-api",
                              "ticklake-operator"}  # fmt: skip
    for a in artifacts.values():
        assert a["context"] == "."
        assert (ROOT / a["docker"]["dockerfile"]).is_file()
        assert a["docker"]["target"] == a["image"].removeprefix("ticklake-")
        assert a["docker"]["target"] in dockerfile_stages((ROOT / "Dockerfile").read_text())


def test_skaffold_value_templates_wire_each_image(skaffold: dict[str, Any]) -> None:
    (release,) = skaffold["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
    templates = release["setValueTemplates"]
    # Fill skaffold's template variables the way skaffold would.
    sets = []
    for key, template in templates.items():
        m = re.fullmatch(r"\{\{\.IMAGE_(REPO|TAG)_(\w+)\}\}", template)
        assert m, template
        sets.append(
            f"{key}=built/{m.group(2)}" if m.group(1) == "REPO" else f"{key}=t-{m.group(2)}"
        )
    sets += [f"{k}={v}" for k, v in release["setValues"].items()]
    objects = parse(helm_template(sets=sets))
    expected = {
        "producer": "built/ticklake_producer:t-ticklake_producer",
        "ingest": "built/ticklake_ingest:t-ticklake_ingest",
        "query-api": "built/ticklake_query_api:t-ticklake_query_api",
        "operator": "built/ticklake_operator:t-ticklake_operator",
    }
    for component, image in expected.items():
        d = named(objects, "Deployment", component_name(component))
        assert d["spec"]["template"]["spec"]["containers"][0]["image"] == image
    svc = named(objects, "Service", component_name("query-api"))
    assert svc["spec"]["ports"][0]["nodePort"] == 30800
    artifact_vars = {a["image"].replace("-", "_") for a in skaffold["build"]["artifacts"]}
    used = {re.search(r"IMAGE_\w+?_(ticklake_\w+)", t).group(1) for t in templates.values()}  # type: ignore[union-attr]
    assert used == artifact_vars


def test_skaffold_port_forwards_reach_real_services(skaffold: dict[str, Any]) -> None:
    (release,) = skaffold["deploy"]["helm"]["releases"]
    assert release["name"] == "ticklake" and release["namespace"] == "ticklake"
    services = {s["metadata"]["name"]: s for s in of_kind(render("defaults"), "Service")}
    forwards = {f["resourceName"]: f for f in skaffold["portForward"]}
    query = forwards[component_name("query-api")]
    assert query["port"] in [p["port"] for p in services[query["resourceName"]]["spec"]["ports"]]
    assert forwards["kube-prometheus-stack-grafana"]["namespace"] == "monitoring"


def resolve(document: Any, pointer: str) -> Any:
    for part in pointer.strip("/").split("/")[:-1]:
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def test_skaffold_profiles_patch_existing_paths(skaffold: dict[str, Any]) -> None:
    profiles = {p["name"]: p for p in skaffold["profiles"]}
    assert set(profiles) == {"dev", "ci"}
    assert profiles["dev"]["activation"] == [{"command": "dev"}]
    for profile in profiles.values():
        for patch in profile.get("patches", []):
            parent = resolve(skaffold, patch["path"])
            assert isinstance(parent, dict | list), patch
            for values_file in (
                patch.get("value", []) if patch["path"].endswith("valuesFiles") else []
            ):
                assert (ROOT / values_file).is_file()


# ----------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_matches_the_compose_spec(tmp_path: Path) -> None:
    check = [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec"]
    result = run([*check, str(ROOT / "compose.yaml")])
    assert result.returncode == 0, result.stdout + result.stderr
    broken = yaml.safe_load((ROOT / "compose.yaml").read_text())
    broken["services"]["redis"]["helthcheck"] = broken["services"]["redis"].pop("healthcheck")
    bad = tmp_path / "compose.yaml"
    bad.write_text(yaml.safe_dump(broken))
    assert run([*check, str(bad)]).returncode != 0


def test_compose_mirrors_the_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "kafka",
        "redis",
        "producer",
        "ingest",
        "query-api",
        "prometheus",
        "grafana",
    }
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    for name in ("producer", "ingest", "query-api"):
        assert (ROOT / services[name]["build"]["dockerfile"]).is_file()
        assert services[name]["build"]["target"] == name
        assert services[name]["read_only"] is True and services[name]["user"] == "10001:10001"
    for svc in services.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


def test_compose_uses_the_charts_alerts_and_dashboard(compose: dict[str, Any]) -> None:
    prom_volumes = " ".join(compose["services"]["prometheus"]["volumes"])
    assert "./charts/ticklake/files/alerts.yaml" in prom_volumes
    grafana_volumes = " ".join(compose["services"]["grafana"]["volumes"])
    assert "./charts/ticklake/dashboards:/var/lib/grafana/dashboards/ticklake" in grafana_volumes
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/ticklake.yaml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/ticklake"


def test_compose_prometheus_config_is_valid_and_scrapes_each_service(
    compose: dict[str, Any],
) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: apt-get install prometheus"
    result = run(
        [
            promtool,
            "check",
            "config",
            "--syntax-only",
            str(ROOT / "deploy/prometheus/prometheus.yml"),
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    ports = {name: compose["services"][name]["environment"]["TICKLAKE_HTTP_PORT"]
             for name in ("producer", "ingest", "query-api")}  # fmt: skip
    assert targets == {f"{name}:{port}" for name, port in ports.items()}


def test_compose_env_vars_are_settings(compose: dict[str, Any]) -> None:
    classes = {
        "producer": "ticklake.producer.settings:ProducerSettings",
        "ingest": "ticklake.ingest.settings:IngestSettings",
        "query-api": "ticklake.query.settings:QuerySettings",
    }
    for name, ref in classes.items():
        module, cls = ref.split(":")
        fields = {
            "TICKLAKE_" + f.upper()
            for f in getattr(importlib.import_module(module), cls).model_fields
        }
        env = compose["services"][name]["environment"]
        unknown = {k for k in env if k.startswith("TICKLAKE_") and k not in fields}
        assert not unknown, (name, unknown)
