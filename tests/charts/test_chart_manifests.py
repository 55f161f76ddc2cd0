"""Unit assertions over the rendered manifests: what a reviewer would check by eye."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

import pytest
import yaml
from chartkit import (
    RELEASE,
    ROOT,
    SERVICES,
    VALUE_SETS,
    Manifest,
    component_name,
    container_env,
    helm_template,
    matches,
    named,
    of_kind,
    parse,
    pod_labels,
    pod_templates,
    render,
    run,
    tool,
)

ALL_SETS = sorted(VALUE_SETS)
STANDARD_LABELS = (
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
)
SELECTOR_KEYS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
}

SETTINGS_CLASSES: Mapping[str, tuple[str, str, str]] = {
    "producer": ("ticklake.producer.settings", "ProducerSettings", "TICKLAKE_"),
    "ingest": ("ticklake.ingest.settings", "IngestSettings", "TICKLAKE_"),
    "query-api": ("ticklake.query.settings", "QuerySettings", "TICKLAKE_"),
    "operator": ("ticklake.operator.settings", "OperatorSettings", "TICKLAKE_OPERATOR_"),
}
"""Component -> (module, class, env prefix) of its one settings object."""

MUST_SET: Mapping[str, set[str]] = {
    "producer": {"kafka_bootstrap_servers", "http_host", "http_port", "shutdown_timeout_s"},
    "ingest": {
        "kafka_bootstrap_servers", "redis_url", "redis_password", "lake_uri", "http_host",
        "http_port", "consumer_group", "shutdown_grace_seconds",
    },
    "query-api": {"redis_url", "redis_password", "lake_uri", "http_host", "http_port",
                  "shutdown_grace_s"},
    "operator": {"namespaces", "metrics_port", "liveness_port", "watch_kafka_topics",
                 "kafka_topic_version"},
}  # fmt: skip
"""Fields whose defaults are wrong in a pod (they point at 127.0.0.1, a local
path, or a deadline that must follow the pod's grace period)."""


def workloads(objects: tuple[Manifest, ...]) -> list[Manifest]:
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]


# ---------------------------------------------------------------- labels


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_every_chart_object_has_the_standard_labels(value_set: str) -> None:
    for o in render(value_set):
        labels = o["metadata"].get("labels", {})
        if o["apiVersion"].startswith("kafka.strimzi.io"):
            # Strimzi copies these onto its pods: no name/instance (see _helpers.tpl).
            assert labels["strimzi.io/cluster"], o["metadata"]
            assert "app.kubernetes.io/instance" not in labels
            continue
        missing = [k for k in STANDARD_LABELS if k not in labels]
        assert not missing, f"{o['kind']}/{o['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == RELEASE


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_selectors_use_only_stable_labels_and_match_their_pods(value_set: str) -> None:
    objects = render(value_set)
    for w in workloads(objects):
        selector = w["spec"]["selector"]["matchLabels"]
        assert set(selector) <= SELECTOR_KEYS, selector
        assert matches(selector, pod_labels(w)), w["metadata"]["name"]
    for svc in of_kind(objects, "Service"):
        selected = [
            w for w in workloads(objects) if matches(svc["spec"]["selector"], pod_labels(w))
        ]
        assert len(selected) == 1, f"Service {svc['metadata']['name']} selects {len(selected)}"
    for pdb in of_kind(objects, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert [w for w in workloads(objects) if matches(selector, pod_labels(w))], pdb


# ----------------------------------------------------------------- pods


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_every_container_is_locked_down(value_set: str) -> None:
    for owner, pod in pod_templates(render(value_set)):
        where = f"{owner['kind']}/{owner['metadata']['name']}"
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert pod.get("automountServiceAccountToken", True) is False or (
            owner["metadata"]["name"] == component_name("operator")
        ), f"{where}: only the operator talks to the API server"
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if owner["kind"] != "Pod":
                assert "/tmp" in mounts, f"{where}: read-only root needs a writable /tmp"


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_probes_hit_the_services_own_endpoints_on_named_ports(value_set: str) -> None:
    expected = {
        "producer": ("/healthz", "/healthz"),
        "ingest": ("/healthz", "/readyz"),
        "query-api": ("/healthz", "/readyz"),
        "operator": ("/healthz", "/healthz"),
    }
    objects = render(value_set)
    for component, (live, ready) in expected.items():
        deployment = named(objects, "Deployment", component_name(component))
        c = deployment["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"] for p in c["ports"]}
        for probe, path in (
            ("startupProbe", live),
            ("livenessProbe", live),
            ("readinessProbe", ready),
        ):
            get = c[probe]["httpGet"]
            assert get["path"] == path, (component, probe)
            assert get["port"] in ports, (component, probe, "names a port the container has")
    for sts in of_kind(objects, "StatefulSet"):
        c = sts["spec"]["template"]["spec"]["containers"][0]
        assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(c)


def test_service_routes_match_the_probe_paths() -> None:
    """The probe paths exist in each service's FastAPI code."""
    sources = {
        "producer": "services/producer/src/ticklake/producer/http_api.py",
        "ingest": "services/ingest/src/ticklake/ingest/http.py",
        "query-api": "services/query-api/src/ticklake/query/api/routes/health.py",
    }
    for component, path in sources.items():
        text = (ROOT / path).read_text()
        assert '"/healthz"' in text, component
        if component != "producer":
            assert '"/readyz"' in text, component


def test_resources_are_unset_by_default_and_settable() -> None:
    for owner, pod in pod_templates(render("defaults")):
        if owner["kind"] != "Pod":
            assert "resources" not in pod["containers"][0], owner["metadata"]["name"]
    ingest = named(render("s3-lake"), "Deployment", component_name("ingest"))
    assert (
        ingest["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
        == "2Gi"
    )


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_services_target_named_container_ports(value_set: str) -> None:
    objects = render(value_set)
    for svc in of_kind(objects, "Service"):
        (w,) = [w for w in workloads(objects) if matches(svc["spec"]["selector"], pod_labels(w))]
        names = {p["name"] for c in w["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in names, (svc["metadata"]["name"], port)


@pytest.mark.parametrize("value_set", ["defaults", "monitoring-off"])
def test_every_servicemonitor_port_exists_on_its_service(value_set: str) -> None:
    objects = render(value_set)
    monitors = of_kind(objects, "ServiceMonitor")
    if value_set == "monitoring-off":
        assert monitors == []
        return
    assert {m["metadata"]["name"] for m in monitors} >= {
        component_name(c) for c in ("producer", "ingest", "query-api", "operator")
    }
    for m in monitors:
        assert m["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        services = [
            s
            for s in of_kind(objects, "Service")
            if matches(m["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]
        assert len(services) == 1, m["metadata"]["name"]
        port_names = {p["name"] for p in services[0]["spec"]["ports"]}
        for endpoint in m["spec"]["endpoints"]:
            assert endpoint["port"] in port_names, (m["metadata"]["name"], endpoint["port"])
            assert endpoint["path"] == "/metrics"


def test_topology_spread_and_pdbs_for_the_three_services() -> None:
    objects = render("defaults")
    for component in SERVICES:
        d = named(objects, "Deployment", component_name(component))
        spread = d["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {s["topologyKey"] for s in spread} == {
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
        }
        assert all(s["whenUnsatisfiable"] == "ScheduleAnyway" for s in spread)
        pdb = named(objects, "PodDisruptionBudget", component_name(component))
        assert pdb["spec"]["maxUnavailable"] == 1


# -------------------------------------------------------------- settings


def settings_class(component: str) -> tuple[type[Any], str]:
    module, cls, prefix = SETTINGS_CLASSES[component]
    return getattr(importlib.import_module(module), cls), prefix


def rendered_env(value_set: str, component: str) -> dict[str, str | None]:
    objects = render(value_set)
    deployment = named(objects, "Deployment", component_name(component))
    return container_env(objects, deployment)


@pytest.mark.parametrize("component", sorted(SETTINGS_CLASSES))
@pytest.mark.parametrize("value_set", ALL_SETS)
def test_every_env_var_the_chart_sets_is_a_setting(value_set: str, component: str) -> None:
    """No typos: each TICKLAKE_* variable names a field of the service's settings."""
    cls, prefix = settings_class(component)
    fields = {prefix + name.upper() for name in cls.model_fields}
    env = rendered_env(value_set, component)
    unknown = {k for k in env if k.startswith("TICKLAKE_") and k not in fields}
    assert not unknown, f"{component}: {sorted(unknown)} are not settings of {cls.__name__}"


@pytest.mark.parametrize("component", sorted(SETTINGS_CLASSES))
@pytest.mark.parametrize("value_set", ALL_SETS)
def test_the_settings_a_pod_needs_are_set(value_set: str, component: str) -> None:
    cls, prefix = settings_class(component)
    env = rendered_env(value_set, component)
    required = {n for n, f in cls.model_fields.items() if f.is_required()}
    local_defaults = {
        n for n, f in cls.model_fields.items()
        if isinstance(f.default, str) and ("127.0.0.1" in f.default or f.default.startswith("./"))
    }  # fmt: skip
    must = MUST_SET[component] | required | local_defaults
    missing = {n for n in must if prefix + n.upper() not in env}
    assert not missing, f"{component} ({value_set}): {sorted(missing)} not set"


@pytest.mark.parametrize("component", sorted(SETTINGS_CLASSES))
@pytest.mark.parametrize("value_set", ALL_SETS)
def test_the_rendered_env_loads_into_the_settings_object(
    value_set: str, component: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service would start with these values (types, ranges, validators)."""
    cls, _ = settings_class(component)
    for key in list(os.environ):
        if key.startswith("TICKLAKE_"):
            monkeypatch.delenv(key)
    for key, value in rendered_env(value_set, component).items():
        monkeypatch.setenv(key, "from-a-secret" if value is None else value)
    settings = cls()
    if component != "operator":
        assert settings.http_host == "0.0.0.0"
        assert (
            settings.http_port
            == named(render(value_set), "Deployment", component_name(component))["spec"][
                "template"
            ]["spec"]["containers"][0]["ports"][0]["containerPort"]
        )


@pytest.mark.parametrize("value_set", ALL_SETS)
def test_shutdown_deadlines_end_before_the_kubelet_kills(value_set: str) -> None:
    deadline_field = {
        "producer": "TICKLAKE_SHUTDOWN_TIMEOUT_S",
        "ingest": "TICKLAKE_SHUTDOWN_GRACE_SECONDS",
        "query-api": "TICKLAKE_SHUTDOWN_GRACE_S",
    }
    for component, field in deadline_field.items():
        d = named(render(value_set), "Deployment", component_name(component))
        grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        deadline = float(rendered_env(value_set, component)[field] or "nan")
        assert 0 < deadline < grace, (component, deadline, grace)


def test_services_reach_kafka_at_the_strimzi_bootstrap_service() -> None:
    kafka = of_kind(render("defaults"), "Kafka")[0]
    # The one listener: TLS with SCRAM (kafka.strimzi.auth, on by default).
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert (listener["tls"], listener["authentication"]["type"]) == (True, "scram-sha-512")
    assert kafka["spec"]["kafka"]["authorization"] == {"type": "simple"}
    expected = f"{kafka['metadata']['name']}-kafka-bootstrap:{listener['port']}"
    for component in ("producer", "ingest"):
        assert rendered_env("defaults", component)["TICKLAKE_KAFKA_BOOTSTRAP_SERVERS"] == expected
    external = rendered_env("external-kafka-redis", "ingest")
    assert external["TICKLAKE_KAFKA_BOOTSTRAP_SERVERS"].startswith("kafka-0.kafka.data.svc:9092")
    assert external["TICKLAKE_REDIS_URL"] == "redis://redis-master.data.svc:6379/0"


def test_redis_password_comes_from_the_generated_or_existing_secret() -> None:
    objects = render("defaults")
    secret = named(objects, "Secret", component_name("redis"))
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(secret["data"]["redis-password"]) > 32
    # Each Redis client's password is its own user's (redis.acl, on by default).
    own_key = {component_name("ingest"): "ingest-password",
               component_name("query-api"): "query-password"}  # fmt: skip
    for owner, pod in pod_templates(objects):
        for c in pod["containers"]:
            for e in c.get("env", []):
                if e["name"] in ("TICKLAKE_REDIS_PASSWORD", "REDISCLI_AUTH"):
                    ref = e["valueFrom"]["secretKeyRef"]
                    key = own_key.get(owner["metadata"]["name"], "redis-password")
                    assert (ref["name"], ref["key"]) == (component_name("redis"), key)
    redis = named(objects, "StatefulSet", component_name("redis"))
    (volume,) = [v for v in redis["spec"]["template"]["spec"]["volumes"] if v["name"] == "password"]
    assert volume["secret"]["secretName"] == component_name("redis")
    assert "env" not in redis["spec"]["template"]["spec"]["containers"][0], "password as a file"
    external = render("external-kafka-redis")
    assert not [s for s in of_kind(external, "Secret") if "redis" in s["metadata"]["name"]]
    ingest = named(external, "Deployment", component_name("ingest"))
    (password,) = [
        e
        for e in ingest["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"] == "TICKLAKE_REDIS_PASSWORD"
    ]
    assert password["valueFrom"]["secretKeyRef"] == {"name": "shared-redis", "key": "password"}


def test_the_lake_is_a_shared_pvc_or_s3() -> None:
    objects = render("defaults")
    claim = of_kind(objects, "PersistentVolumeClaim")[0]["metadata"]["name"]
    for component, read_only in (("ingest", False), ("query-api", True)):
        d = named(objects, "Deployment", component_name(component))
        (volume,) = [v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"] == "lake"]
        assert volume["persistentVolumeClaim"]["claimName"] == claim
        assert volume["persistentVolumeClaim"].get("readOnly", False) is read_only
        assert rendered_env("defaults", component)["TICKLAKE_LAKE_URI"] == "/var/lib/ticklake/lake"
    s3 = render("s3-lake")
    for component in ("ingest", "query-api"):
        env = rendered_env("s3-lake", component)
        assert env["TICKLAKE_LAKE_URI"] == "s3://ticklake-lake/prod"
        assert env["TICKLAKE_S3_ENDPOINT_URL"] == "http://minio.storage.svc:9000"
        assert "TICKLAKE_S3_SECRET_ACCESS_KEY" in env
        d = named(s3, "Deployment", component_name(component))
        assert "lake" not in {v["name"] for v in d["spec"]["template"]["spec"]["volumes"]}


# -------------------------------------------------------------- operator


def test_operator_runs_once_and_scales_ingest() -> None:
    objects = render("defaults")
    operator = named(objects, "Deployment", component_name("operator"))
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    assert operator["spec"]["template"]["spec"]["serviceAccountName"] == component_name("operator")
    ingest = named(objects, "Deployment", component_name("ingest"))
    assert "replicas" not in ingest["spec"], "the operator owns the replica count"
    (scaler,) = of_kind(objects, "IngestScaler")
    assert scaler["spec"]["targetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": ingest["metadata"]["name"],
    }  # fmt: skip
    ticks = [t for t in of_kind(objects, "KafkaTopic") if t["spec"]["topicName"] == "market.ticks"]
    assert scaler["spec"]["kafka"]["topicRef"]["name"] == ticks[0]["metadata"]["name"]
    assert (
        scaler["spec"]["kafka"]["consumerGroup"]
        == rendered_env("defaults", "ingest")["TICKLAKE_CONSUMER_GROUP"]
    )
    no_scaler = named(render("monitoring-off"), "Deployment", component_name("ingest"))
    assert no_scaler["spec"]["replicas"] == 2


def rules_of(objects: tuple[Manifest, ...]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) granted to the operator by any role."""
    granted = set()
    for role in of_kind(objects, "Role") + of_kind(objects, "ClusterRole"):
        if role["metadata"]["labels"].get("app.kubernetes.io/component") != "operator":
            continue
        for rule in role["rules"]:
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    for v in rule["verbs"]:
                        granted.add((g, r, v))
    return granted


@pytest.mark.parametrize("value_set", ["defaults", "monitoring-off"])
def test_operator_rbac_is_exactly_what_its_e2e_tests_run_with(value_set: str) -> None:
    """operator/deploy/rbac.yaml is the set the operator's tests prove enough."""
    reference = yaml.safe_load((ROOT / "operator" / "deploy" / "rbac.yaml").read_text())
    wanted = {
        (g, r, v)
        for rule in reference["rules"]
        for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }  # fmt: skip
    assert rules_of(render(value_set)) == wanted
    assert not any("*" in part for grant in rules_of(render(value_set)) for part in grant)


def test_operator_role_is_namespaced_unless_watching_all() -> None:
    objects = render("defaults")
    assert [r["metadata"]["name"] for r in of_kind(objects, "Role")] == [component_name("operator")]
    env = rendered_env("defaults", "operator")
    assert env["TICKLAKE_OPERATOR_NAMESPACES"] == '["ticklake"]'
    assert rendered_env("monitoring-off", "operator")["TICKLAKE_OPERATOR_NAMESPACES"] == "[]"
    assert of_kind(render("monitoring-off"), "Role") == []


# ------------------------------------------------------- network policies


def test_network_policies_deny_by_default_and_cover_every_pod() -> None:
    objects = render("defaults")
    policies = of_kind(objects, "NetworkPolicy")
    deny = named(objects, "NetworkPolicy", f"{RELEASE}-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    for owner, _ in pod_templates(objects):
        labels = pod_labels(owner)
        assert matches(deny["spec"]["podSelector"]["matchLabels"], labels), owner["metadata"]
        own = [
            p
            for p in policies
            if p is not deny and matches(p["spec"]["podSelector"]["matchLabels"], labels)
        ]
        assert len(own) == 1, f"{owner['metadata']['name']}: {len(own)} policies allow its flows"


def egress_ports(policy: Manifest) -> set[int]:
    return {p["port"] for rule in policy["spec"].get("egress", []) for p in rule.get("ports", [])}


def test_network_policies_allow_exactly_the_flows_that_exist() -> None:
    objects = render("defaults")
    policy = {c: named(objects, "NetworkPolicy", component_name(c))
              for c in ("producer", "ingest", "query-api", "redis", "operator")}  # fmt: skip
    assert egress_ports(policy["producer"]) == {53, 9092}
    assert egress_ports(policy["ingest"]) == {53, 9092, 6379}
    assert egress_ports(policy["query-api"]) == {53, 6379}
    assert egress_ports(policy["redis"]) == set()
    assert egress_ports(policy["operator"]) == {53, 9092, 443, 6443}
    redis_from = policy["redis"]["spec"]["ingress"][0]["from"]
    components = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for peer in redis_from
    }
    assert components == {"ingest", "query-api"}
    s3 = {
        c: named(render("s3-lake"), "NetworkPolicy", component_name(c))
        for c in ("ingest", "query-api")
    }
    # The S3 port is the endpoint's own (ci/s3-lake-values.yaml: MinIO on 9000).
    assert egress_ports(s3["ingest"]) == {53, 9092, 6379, 9000}
    assert egress_ports(s3["query-api"]) == {53, 6379, 9000}


# ------------------------------------------------------------ monitoring


def test_dashboard_configmap_carries_the_dashboard() -> None:
    (cm,) = [
        c for c in of_kind(render("defaults"), "ConfigMap") if "dashboard" in c["metadata"]["name"]
    ]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    committed = (ROOT / "charts/ticklake/dashboards/ticklake.json").read_text()
    assert cm["data"]["ticklake.json"].strip() == committed.strip()


def test_prometheus_rule_is_the_alerts_file() -> None:
    (rule,) = of_kind(render("defaults"), "PrometheusRule")
    alerts = yaml.safe_load((ROOT / "charts/ticklake/files/alerts.yaml").read_text())
    assert rule["spec"] == alerts
    names = {r["alert"] for g in alerts["groups"] for r in g["rules"]}
    assert names == {
        "TicklakeConsumerLagHigh", "TicklakeDeadLettersArriving", "TicklakeNoTicks",
        "TicklakeEndToEndLatencyHigh", "TicklakeLakeWriteErrors",
    }  # fmt: skip


def test_prometheus_rule_for_overrides_replace_only_the_named_alerts() -> None:
    text = helm_template(sets=["monitoring.prometheusRule.forOverrides.TicklakeNoTicks=15s"],
                         show_only="templates/monitoring/prometheusrule.yaml")  # fmt: skip
    (rule,) = parse(text)
    durations = {r["alert"]: r.get("for") for g in rule["spec"]["groups"] for r in g["rules"]}
    assert durations["TicklakeNoTicks"] == "15s"
    assert durations["TicklakeConsumerLagHigh"] == "5m"  # untouched
    typo = run([tool("helm"), "template", "t", str(ROOT / "charts/ticklake"), "--set",
                "monitoring.prometheusRule.forOverrides.TicklakeNoTick=15s"])  # fmt: skip
    assert typo.returncode != 0 and 'no alert "TicklakeNoTick"' in typo.stderr


def test_every_value_has_a_comment() -> None:
    """helm-docs style: every leaf value has a "# --" comment right above it,
    or sits inside a free-form value (a map or list) whose key has one."""
    lines = (ROOT / "charts/ticklake/values.yaml").read_text().splitlines()

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip(" -"))

    def documented(i: int) -> bool:
        j = i - 1
        while (
            j >= 0 and lines[j].strip().startswith("#") and not lines[j].strip().startswith("# --")
        ):
            j -= 1
        return j >= 0 and lines[j].strip().startswith("# --")

    undocumented = []
    for i, line in enumerate(lines):
        text = line.strip().lstrip("- ").strip()
        if not text or text.startswith("#") or ":" not in text:
            continue
        if text.partition(":")[2].strip() == "":
            continue  # a section: its leaves carry the comments
        ancestors_documented = False
        level = indent(line)
        for j in range(i - 1, -1, -1):
            if (
                lines[j].strip()
                and not lines[j].strip().startswith("#")
                and indent(lines[j]) < level
            ):
                level = indent(lines[j])
                if documented(j):
                    ancestors_documented = True
                    break
        if not documented(i) and not ancestors_documented:
            undocumented.append(f"values.yaml:{i + 1}: {line.strip()}")
    assert not undocumented, "\n".join(undocumented)


def test_pods_roll_when_their_settings_change() -> None:
    def checksum(*sets: str) -> str:
        d = named(parse(helm_template(sets=sets)), "Deployment", component_name("producer"))
        return str(d["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    base = checksum()
    assert checksum("producer.extraSettings.TICKLAKE_FEED_RATE=5") != base
    assert checksum("logLevel=DEBUG") != base
    assert checksum("queryApi.replicaCount=3") == base
