"""helm lint and helm template with the real Helm, for every value set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from chartkit import (
    CHART,
    NAMESPACE,
    RELEASE,
    ROOT,
    VALUE_SETS,
    component_name,
    helm_template,
    named,
    parse,
    render,
    run,
    tool,
)


def test_every_ci_values_file_is_a_rendered_value_set() -> None:
    on_disk = {f"ci/{p.name}" for p in (CHART / "ci").glob("*-values.yaml")}
    covered = {f for files in VALUE_SETS.values() for f in files}
    assert on_disk == covered
    assert len(VALUE_SETS) >= 4  # the defaults and at least three others


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_lint_strict(value_set: str) -> None:
    args = [tool("helm"), "lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    for f in VALUE_SETS[value_set]:
        args += ["-f", str(CHART / f)]
    result = run(args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_helm_template_renders_objects(value_set: str) -> None:
    objects = render(value_set)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount"} <= kinds
    for o in objects:
        assert o["metadata"]["name"], o
        if o["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert o["metadata"]["namespace"] == NAMESPACE, o["metadata"]


def test_value_sets_switch_the_optional_parts() -> None:
    defaults = {o["apiVersion"].split("/")[0] for o in render("defaults")}
    assert {"kafka.strimzi.io", "monitoring.coreos.com", "ticklake.dev"} <= defaults
    external = {o["kind"] for o in render("external-kafka-redis")}
    assert not {"Kafka", "KafkaNodePool", "KafkaTopic", "StatefulSet"} & external
    assert "PersistentVolumeClaim" in external  # the lake is still a PVC
    s3 = {o["kind"] for o in render("s3-lake")}
    assert "PersistentVolumeClaim" not in s3
    off = {o["apiVersion"].split("/")[0] for o in render("monitoring-off")}
    assert "monitoring.coreos.com" not in off
    assert "NetworkPolicy" not in {o["kind"] for o in render("monitoring-off")}


def test_installable_without_any_crd_but_its_own() -> None:
    """What the operator's e2e test installs into a bare API server."""
    text = helm_template(
        sets=[
            "kafka.strimzi.enabled=false",
            "kafka.external.bootstrapServers=kafka:9092",
            "monitoring.enabled=false",
        ]
    )
    groups = {
        line.split(":", 1)[1].strip().split("/")[0]
        for line in text.splitlines()
        if line.startswith("apiVersion:")
    }
    assert not {"kafka.strimzi.io", "monitoring.coreos.com"} & groups


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (["lake.mode=nfs"], "/lake/mode"),
        (["kafka.strimzi.enabled=false"], "allOf"),
        (["redis.enabled=false"], "allOf"),
        (["producer.extraSettings.BROKERS=x"], "propertyName"),
        (["ingest.replicaCount=-1"], "/ingest/replicaCount"),
        (["operator.ingestScaler.mode=cpu"], "/operator/ingestScaler/mode"),
        (["queryApi.servce.port=1"], "servce"),
        (["fullnameOverride=" + "a" * 64], "/fullnameOverride"),
        (["kafka.strimzi.clusterName=" + "c" * 33], "/kafka/strimzi/clusterName"),
        (["kafka.strimzi.nodePool.name=" + "p" * 13], "/kafka/strimzi/nodePool/name"),
        (["kafka.strimzi.listenerPort=9000"], "minimum"),
        (["kafka.strimzi.nodePool.persistence.size=10"], "want string"),
        (["kafka.external.ports={9092}"], "ports"),
        # Messages from the templates ("ticklake.validate"): what to set instead.
        (["kafka.strimzi.listenerPort=9404"], "use 9092 or another port"),
        (["kafka.strimzi.listenerPort=9999"], "reserved by Strimzi"),
        (["kafka.strimzi.nodePool.roles={broker}"], "set roles to [controller, broker]"),
        (["kafka.strimzi.nodePool.roles={controller}"], "needs both roles"),
        (["kafka.strimzi.topics.ticks.replicas=3"], "or raise nodePool.replicas"),
        (["kafka.strimzi.topics.deadLetter.replicas=2"], "deadLetter.replicas 2 is more than"),
        (
            ["ingest.ordering=sequence", "kafka.strimzi.topics.sequenced.replicas=2"],
            "sequenced.replicas 2 is more than",
        ),
        (["operator.ingestScaler.minReplicas=7"], "raise maxReplicas or lower minReplicas"),
        (["monitoring.serviceMonitor.scrapeTimeout=20s"], "set scrapeTimeout to 15s or less"),
        (
            ["queryApi.terminationGracePeriodSeconds=10"],
            "queryApi.preStopSleepSeconds 5 leaves less than 6 s",
        ),
        (["ingest.preStopSleepSeconds=-1"], "minimum"),
        (["lake.s3.sse=rot13"], "/lake/s3/sse"),
        (["lake.s3.sseKmsKeyId=alias/k"], "set lake.s3.sse=aws:kms"),
    ],
)
def test_schema_rejects_bad_values(sets: list[str], complaint: str) -> None:
    args = [tool("helm"), "template", RELEASE, str(CHART)]
    for s in sets:
        args += ["--set", s]
    result = run(args)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


def test_redis_password_is_generated_once_per_install() -> None:
    """helm template has no cluster, so lookup finds nothing: each render is a
    first install with its own random password (upgrades keep the stored one)."""
    first = helm_template(show_only="templates/redis/secret.yaml")
    second = helm_template(show_only="templates/redis/secret.yaml")
    assert "redis-password:" in first
    assert first != second


def rendered_notes(tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as helm install prints it. helm template skips NOTES.txt, so a
    copy of the chart renders it through tpl as an ordinary template."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "notes.txt")
    (chart / "templates" / "notes-as-yaml.yaml").write_text(
        'notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n'
    )
    args = [tool("helm"), "template", RELEASE, str(chart), "--namespace", NAMESPACE]
    args += [a for s in sets for a in ("--set", s)]
    args += ["--show-only", "templates/notes-as-yaml.yaml"]
    result = run(args)
    assert result.returncode == 0, result.stderr
    return str(yaml.safe_load(result.stdout)["notes"])


def test_notes_print_the_exact_port_forward_command(tmp_path: Path) -> None:
    notes = rendered_notes(tmp_path)
    # The local ports are skaffold.yaml's port-forwards (8000 is `make run`'s).
    skaffold = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    forwards = {f["resourceName"]: f["localPort"] for f in skaffold["portForward"]}
    api, grafana = forwards["ticklake-query-api"], forwards["kube-prometheus-stack-grafana"]
    assert f"kubectl -n ticklake port-forward svc/ticklake-query-api {api}:8000" in notes, notes
    assert f"curl http://127.0.0.1:{api}/readyz" in notes
    assert f"svc/kube-prometheus-stack-grafana {grafana}:80" in notes
    assert f"http://127.0.0.1:{grafana}/d/ticklake-pipeline" in notes
    assert "kubectl -n ticklake wait kafka/ticklake --for=condition=Ready" in notes
    assert "helm test ticklake -n ticklake" in notes
    services = {o["metadata"]["name"] for o in render("defaults") if o["kind"] == "Service"}
    assert "ticklake-query-api" in services
    external = rendered_notes(
        tmp_path / "external",
        "kafka.strimzi.enabled=false",
        "kafka.external.bootstrapServers=k:9092",
    )
    assert "external, k:9092" in external


@pytest.mark.parametrize(
    "sets",
    [
        ["producer.enabled=false", "queryApi.enabled=false"],
        ["operator.enabled=false"],
        ["ingest.enabled=false"],
        ["redis.enabled=false", "redis.external.url=redis://r:6379/0"],
        [
            "lake.mode=s3",
            "lake.s3.uri=s3://bkt/p",
            "lake.s3.accessKeyId=a",
            "lake.s3.secretAccessKey=s",
        ],
        [
            "lake.pvc.existingClaim=shared-lake",
            "networkPolicy.enabled=false",
            "tests.enabled=false",
        ],
        ["fullnameOverride=a-long-release-name-that-keeps-going-right-up-to-the-dns-limit"],
    ],
)
def test_other_combinations_render_with_unique_valid_names(sets: list[str]) -> None:
    objects = parse(helm_template(sets=sets))
    keys = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "two objects of one kind share a name"
    for kind, name in keys:
        # RBAC names are path segments (253); everything else here is a DNS label.
        limit = 253 if kind in ("ClusterRole", "ClusterRoleBinding") else 63
        assert len(name) <= limit and name == name.lower(), name


def test_stopping_pods_drain_before_sigterm_and_producers_never_overlap() -> None:
    """The query API sleeps before SIGTERM (its Service drops it first) and its
    own shutdown fits in what is left of the grace period; the producer is
    replaced by Recreate, so two pods never publish the same symbols at once."""
    objects = render("defaults")
    deployment = named(objects, "Deployment", component_name("query-api"))
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    config = named(objects, "ConfigMap", component_name("query-api"))
    grace = int(config["data"]["TICKLAKE_SHUTDOWN_GRACE_S"])
    assert grace + 5 + 5 == pod["terminationGracePeriodSeconds"], (grace, pod)
    for component in ("producer", "ingest"):
        spec = named(objects, "Deployment", component_name(component))["spec"]["template"]["spec"]
        assert "lifecycle" not in spec["containers"][0], component
    producer = named(objects, "Deployment", component_name("producer"))
    assert producer["spec"]["strategy"] == {"type": "Recreate"}
