"""The real Prometheus Operator reconciles the chart's ServiceMonitors and PrometheusRule.

prometheus-operator v0.93.0 (built from the Go module proxy by
tools/k8s/build-monitoring.sh) runs as a host process against a real
kube-apiserver with every CRD of its module installed, under the identity and
RBAC of tests/cluster/monitoring/operator.yaml. It watches the ``Prometheus``
of tests/cluster/monitoring/prometheus.yaml, which selects by the label
``release: kube-prometheus-stack`` as kube-prometheus-stack does. With the chart
installed by helm (monitoring on), the operator must turn our objects into a
Prometheus configuration (its Secret) and a rules ConfigMap; promtool of the
Prometheus the Prometheus resource names (3.13.1, built by the same script
with its Kubernetes discovery) checks both, and a release label the selector
does not match must drop every job.

Debian's promtool 2.42 refuses that configuration ("field
kubernetes_sd_configs not found"): Debian builds Prometheus without the
Kubernetes discovery, so its package cannot serve the Prometheus Operator.

No pod runs here (no node): scraping and alerts firing need the one-node
cluster (tests/cluster/test_monitoring.py, issue 19). This part runs wherever
kube-apiserver does.
"""

from __future__ import annotations

import base64
import gzip
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chartkit import CHART, ROOT, of_kind, parse, run, tool

from ticklake.devstack import kubeapi, ports, process

MONITORING = ROOT / "tests/cluster/monitoring"
BUILD = ROOT / "tools/k8s/build-monitoring.sh"
VERSION = "v0.93.0"
RELEASE_NS = "ticklake"
OPERATOR_USER = "system:serviceaccount:monitoring:prometheus-operator"
TEST_VALUES = MONITORING / "ticklake-values.yaml"


def monitoring_binary(name: str) -> Path:
    """A binary tools/k8s/build-monitoring.sh builds (it runs if one is missing)."""
    path = kubeapi.cache_bin_dir() / name
    if not path.exists():
        result = subprocess.run(["bash", str(BUILD)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            pytest.fail(f"{BUILD} failed: {result.stderr[-2000:]}")
    return path


def operator_binaries() -> tuple[Path, Path]:
    """The operator binary and its module's CRD folder."""
    binary = monitoring_binary("prometheus-operator")
    crds = monitoring_binary(f"prometheus-operator-{VERSION}-crds.path")
    return binary, Path(crds.read_text().strip())


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return run([str(monitoring_binary("promtool-kubernetes")), *args])


def kubectl(kubeconfig: Path, *args: str, input: str | None = None) -> str:
    result = subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True, text=True, input=input, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def get(kubeconfig: Path, *args: str) -> dict[str, Any] | None:
    result = subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(kubeconfig), "get", *args, "-o", "yaml"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return yaml.safe_load(result.stdout) if result.returncode == 0 else None


def helm(kubeconfig: Path, *args: str) -> str:
    result = run([tool("helm"), "--kubeconfig", str(kubeconfig), *args], timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def reconciled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(admin kubeconfig, work dir) of an API server where the operator runs."""
    if shutil.which("kubectl", path=str(kubeapi.cache_bin_dir())) is None:
        pytest.fail("kubectl missing in the tool cache: run tools/k8s/build.sh")
    binary, crd_dir = operator_binaries()
    work = tmp_path_factory.mktemp("prometheus-operator")
    with kubeapi.KubeAPIServer() as server:
        admin = server.kubeconfig
        # The Prometheus CRD is larger than client-side apply's annotation allows.
        kubectl(admin, "apply", "--server-side", "-f", str(crd_dir))
        kubectl(admin, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        kubectl(admin, "apply", "-f", str(MONITORING / "operator.yaml"))
        kubectl(admin, "apply", "-f", str(MONITORING / "prometheus.yaml"))
        # The operator under its ServiceAccount's name, so operator.yaml's RBAC is what
        # it is allowed (a client certificate stands in for the token).
        identity = server.user_kubeconfig(
            OPERATOR_USER, groups=("system:serviceaccounts", "system:serviceaccounts:monitoring")
        )
        user = yaml.safe_load(identity.read_text())["users"][0]["user"]
        reloader = next(
            a.split("=", 1)[1]
            for d in yaml.safe_load_all((MONITORING / "operator.yaml").read_text())
            if d and d["kind"] == "Deployment"
            for a in d["spec"]["template"]["spec"]["containers"][0]["args"]
            if a.startswith("--prometheus-config-reloader=")
        )
        port = ports.free_port()
        proc = process.spawn(
            [
                str(binary),
                f"--apiserver={server.url}",
                f"--ca-file={server.ca_file}",
                f"--cert-file={user['client-certificate']}",
                f"--key-file={user['client-key']}",
                f"--prometheus-config-reloader={reloader}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            work / "operator.log",
        )
        try:
            ports.wait_until(lambda: ports.port_open(port), 60, "prometheus-operator's web port")
            helm(admin, "install", "ticklake", str(CHART), "-n", RELEASE_NS, "--create-namespace",
                 "-f", str(CHART / "ci/external-kafka-redis-values.yaml"),
                 "-f", str(TEST_VALUES))  # fmt: skip
            yield admin, work
        finally:
            process.stop(proc, 15)


def generated_config(kubeconfig: Path) -> dict[str, Any] | None:
    secret = get(kubeconfig, "secret", "-n", "monitoring", "prometheus-ticklake-test")
    if not secret or "prometheus.yaml.gz" not in secret.get("data", {}):
        return None
    text = gzip.decompress(base64.b64decode(secret["data"]["prometheus.yaml.gz"])).decode()
    config: dict[str, Any] = yaml.safe_load(text)
    return config


def ticklake_jobs(config: dict[str, Any] | None) -> set[str]:
    return {
        job["job_name"]
        for job in (config or {}).get("scrape_configs") or []
        if job["job_name"].startswith(f"serviceMonitor/{RELEASE_NS}/")
    }


def chart_service_monitors() -> list[dict[str, Any]]:
    text = run([tool("helm"), "template", "ticklake", str(CHART), "-n", RELEASE_NS,
                "-f", str(CHART / "ci/external-kafka-redis-values.yaml"),
                "-f", str(TEST_VALUES)]).stdout  # fmt: skip
    return of_kind(parse(text), "ServiceMonitor")


def test_operator_turns_every_service_monitor_into_a_scrape_job(
    reconciled: tuple[Path, Path],
) -> None:
    kubeconfig, work = reconciled
    monitors = chart_service_monitors()
    assert len(monitors) >= 4
    expected = {
        f"serviceMonitor/{RELEASE_NS}/{m['metadata']['name']}/{i}"
        for m in monitors
        for i, _ in enumerate(m["spec"]["endpoints"])
    }
    ports.wait_until(
        lambda: ticklake_jobs(generated_config(kubeconfig)) == expected,
        90,
        f"the operator's config with jobs {sorted(expected)} (log: {work / 'operator.log'})",
    )
    config = generated_config(kubeconfig)
    assert config is not None
    for job in config["scrape_configs"]:
        if job["job_name"] not in expected:
            continue
        # The port is kept by its name: the relabelling the operator writes
        # keeps only endpoints whose port name is the ServiceMonitor's.
        kept = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
        assert any("__meta_kubernetes_endpoint_port_name" in r.get("source_labels", [])
                   or "__meta_kubernetes_endpointslice_port_name" in r.get("source_labels", [])
                   for r in kept), job["job_name"]  # fmt: skip
        assert job["scrape_interval"] == "5s"  # the test values' interval
    # The Prometheus the resource names accepts the configuration the
    # operator wrote for that version.
    path = work / "prometheus.yaml"
    path.write_text(yaml.safe_dump(config))
    check = promtool("check", "config", "--syntax-only", str(path))
    assert check.returncode == 0, check.stdout + check.stderr


def test_operator_loads_the_prometheus_rule_with_shortened_for(
    reconciled: tuple[Path, Path], tmp_path: Path
) -> None:
    kubeconfig, work = reconciled

    def rule_files() -> dict[str, str]:
        cm = get(kubeconfig, "configmap", "-n", "monitoring",
                 "prometheus-ticklake-test-rulefiles-0")  # fmt: skip
        return (cm or {}).get("data") or {}

    ports.wait_until(
        lambda: any(RELEASE_NS in name for name in rule_files()),
        90,
        f"the rules ConfigMap with the chart's PrometheusRule (log: {work / 'operator.log'})",
    )
    ((name, text),) = [(n, t) for n, t in rule_files().items() if RELEASE_NS in n]
    rules = {r["alert"]: r for g in yaml.safe_load(text)["groups"] for r in g["rules"]}
    overrides = yaml.safe_load(TEST_VALUES.read_text())["monitoring"]["prometheusRule"][
        "forOverrides"
    ]
    assert {a: rules[a].get("for") for a in overrides} == overrides
    path = tmp_path / name
    path.write_text(text)
    check = promtool("check", "rules", str(path))
    assert check.returncode == 0, check.stdout + check.stderr


def test_statefulset_runs_our_images(reconciled: tuple[Path, Path]) -> None:
    kubeconfig, _ = reconciled

    def statefulset() -> dict[str, Any] | None:
        return get(kubeconfig, "statefulset", "-n", "monitoring", "prometheus-ticklake-test")

    ports.wait_until(lambda: statefulset() is not None, 90, "the Prometheus StatefulSet")
    sts = statefulset()
    assert sts is not None
    spec = sts["spec"]["template"]["spec"]
    images = {c["name"]: c["image"] for c in spec["containers"] + spec.get("initContainers", [])}
    prom = next(d for d in yaml.safe_load_all((MONITORING / "prometheus.yaml").read_text())
                if d and d["kind"] == "Prometheus")  # fmt: skip
    assert images["prometheus"] == prom["spec"]["image"]
    assert images["config-reloader"].startswith("ticklake.test/prometheus-config-reloader:")
    assert all(c.get("imagePullPolicy") == "Never" for c in spec["containers"])


def test_a_release_label_the_selector_does_not_match_drops_every_job(
    reconciled: tuple[Path, Path],
) -> None:
    """The selector is what decides: relabel the chart's objects and they are gone."""
    kubeconfig, work = reconciled
    ports.wait_until(lambda: bool(ticklake_jobs(generated_config(kubeconfig))), 90,
                     "ticklake jobs in the generated config")  # fmt: skip
    helm(kubeconfig, "upgrade", "ticklake", str(CHART), "-n", RELEASE_NS, "--reuse-values",
         "--set", "monitoring.labels.release=someone-else")  # fmt: skip
    try:
        ports.wait_until(
            lambda: not ticklake_jobs(generated_config(kubeconfig)),
            90,
            f"jobs dropped after relabelling (log: {work / 'operator.log'})",
        )
    finally:
        helm(kubeconfig, "upgrade", "ticklake", str(CHART), "-n", RELEASE_NS, "--reuse-values",
             "--set", "monitoring.labels.release=kube-prometheus-stack")  # fmt: skip
    ports.wait_until(lambda: bool(ticklake_jobs(generated_config(kubeconfig))), 90,
                     "ticklake jobs back after restoring the label")  # fmt: skip
