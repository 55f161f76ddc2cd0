"""The operator against a real kube-apiserver and a real Kafka.

Each test gets its own namespace, topic and consumer group; one operator
process (running as a user with only operator/deploy/rbac.yaml's rights)
serves them all, reconciling every second.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from aiokafka.structs import OffsetAndMetadata
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from opkit import (
    RECONCILE_INTERVAL_S,
    OperatorProcess,
    create_scaler,
    deployment,
    events_for,
    eventually,
    get_scaler,
    ready,
    replicas_of,
    scaler,
    wait_replicas,
)

NewTopic = Callable[..., Awaitable[str]]
ROOT = Path(__file__).resolve().parents[2]


async def _setup(
    api: client.ApiClient, namespace: str, kafka_bootstrap: str, topic: str, **spec: Any
) -> tuple[str, str]:
    """An ingest Deployment with 1 replica and an IngestScaler for it; (scaler, group)."""
    group = f"g-{uuid.uuid4().hex[:8]}"
    await client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment("ingest"))
    await create_scaler(
        api, namespace, scaler("ingest", "ingest", kafka_bootstrap, topic, group, **spec)
    )
    return "ingest", group


async def _produce(kafka_bootstrap: str, topic: str, per_partition: dict[int, int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=b"tick", partition=p)
            for p, n in per_partition.items()
            for _ in range(n)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _commit_to_end(kafka_bootstrap: str, topic: str, group: str) -> None:
    """What a caught-up ingest consumer leaves behind: committed == end offsets."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        (meta,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    tps = [TopicPartition(topic, p["partition"]) for p in meta["partitions"]]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        await consumer.commit({tp: OffsetAndMetadata(off, "") for tp, off in end.items()})
    finally:
        await consumer.stop()


async def _status_after_scale(
    api: client.ApiClient, namespace: str, name: str, replicas: int
) -> dict[str, Any]:
    """The status of the reconcile that scaled to ``replicas`` (written just after the scale)."""
    obj = await eventually(
        lambda: get_scaler(api, namespace, name),
        lambda o: (
            (o.get("status") or {}).get("currentReplicas") == replicas
            and "lastScaleTime" in o["status"]
        ),
        what=f"status after scaling to {replicas}",
    )
    status: dict[str, Any] = obj["status"]
    return status


async def test_replicas_follow_partitions_at_start(
    api: client.ApiClient, operator: Any, namespace: str, kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(6)
    name, _ = await _setup(api, namespace, kafka_bootstrap, topic, partitionsPerReplica=2)

    await wait_replicas(
        api, namespace, "ingest", 3, what="3 replicas for 6 partitions at 2 per replica"
    )
    obj = await eventually(
        lambda: get_scaler(api, namespace, name),
        lambda o: (o.get("status") or {}).get("currentReplicas") == 3,
        what="status",
    )
    st = obj["status"]
    assert st["partitions"] == 6
    assert st["desiredReplicas"] == 3
    assert st["lastScaleReason"] == "ScaleUp"
    assert st["observedGeneration"] == obj["metadata"]["generation"]
    assert [p["partition"] for p in st["lagPerPartition"]] == list(range(6))
    assert ready(obj)["status"] == "True"

    evs = await eventually(
        lambda: events_for(api, namespace, name),
        lambda es: any(e.reason == "ScaleUp" for e in es),
        what="ScaleUp event",
    )
    up = next(e for e in evs if e.reason == "ScaleUp")
    assert up.involved_object.kind == "IngestScaler"
    assert "1 -> 3" in up.message


async def test_partition_increase_on_the_topic_scales_up_at_once(
    api: client.ApiClient, operator: Any, namespace: str, kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(4)
    # A long window: the increase must not wait for it.
    await _setup(api, namespace, kafka_bootstrap, topic, scaleDownStabilizationSeconds=3600)
    await wait_replicas(api, namespace, "ingest", 4, what="4 replicas")

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_partitions({topic: NewPartitions(total_count=8)})
    finally:
        await admin.close()
    await wait_replicas(
        api, namespace, "ingest", 8, within_s=20, what="8 replicas after the partition increase"
    )


async def test_partition_increase_on_the_kafkatopic_object(
    api: client.ApiClient, operator: Any, namespace: str, kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(4)
    custom = client.CustomObjectsApi(api)
    await custom.create_namespaced_custom_object(
        "kafka.strimzi.io",
        "v1beta2",
        namespace,
        "kafkatopics",
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaTopic",
            "metadata": {"name": "ticks"},
            "spec": {"topicName": topic, "partitions": 4, "replicas": 1},
        },
    )
    # `topic` in the spec is a decoy: the KafkaTopic's topicName must win.
    await client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment("ingest"))
    await create_scaler(
        api,
        namespace,
        scaler(
            "ingest", "ingest", kafka_bootstrap, "not.this.topic", "g", topicRef={"name": "ticks"}
        ),
    )
    await wait_replicas(api, namespace, "ingest", 4, what="4 replicas")

    # Strimzi's topic operator would now grow the real topic; before it does,
    # the operator already scales for the partitions the KafkaTopic asks for.
    await custom.patch_namespaced_custom_object(
        "kafka.strimzi.io",
        "v1beta2",
        namespace,
        "kafkatopics",
        "ticks",
        {"spec": {"partitions": 10}},
        _content_type="application/merge-patch+json",
    )
    await wait_replicas(
        api, namespace, "ingest", 10, within_s=20, what="10 replicas after the KafkaTopic grew"
    )
    # The field handler (not only the timer) saw the change.
    await eventually(
        lambda: asyncio.to_thread(operator.logs),
        lambda log: "KafkaTopic ticks partitions 4 -> 10" in log,
        within_s=10,
        what="field handler log line",
    )


async def test_lag_scales_up_and_down_after_the_window(
    api: client.ApiClient, operator: Any, namespace: str, kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(6)
    window = 6
    name, group = await _setup(
        api,
        namespace,
        kafka_bootstrap,
        topic,
        mode="lag",
        lagThreshold=100,
        minReplicas=1,
        maxReplicas=6,
        scaleDownStabilizationSeconds=window,
    )
    # Nothing produced: no lag, minReplicas.
    obj = await eventually(
        lambda: get_scaler(api, namespace, name),
        lambda o: (ready(o) or {}).get("status") == "True",
        what="first reconcile",
    )
    assert obj["status"]["totalLag"] == 0
    assert await replicas_of(api, namespace, "ingest") == 1

    # Ingest is paused (no consumer commits): 350 messages of lag -> 4 replicas.
    await _produce(kafka_bootstrap, topic, {0: 150, 1: 100, 2: 100})
    await wait_replicas(api, namespace, "ingest", 4, what="4 replicas for 350 messages of lag")
    # The scale is patched before the status: wait for the status of that round.
    obj = await eventually(
        lambda: get_scaler(api, namespace, name),
        lambda o: o["status"].get("currentReplicas") == 4,
        what="status after the scale-up",
    )
    assert obj["status"]["totalLag"] == 350
    assert {p["partition"]: p["lag"] for p in obj["status"]["lagPerPartition"]}[0] == 150

    # Ingest catches up: the lower count is wanted, but only applied after the window.
    caught_up = time.monotonic()
    await _commit_to_end(kafka_bootstrap, topic, group)
    obj = await eventually(
        lambda: get_scaler(api, namespace, name),
        lambda o: o["status"].get("scaleDownPendingSince") is not None,
        what="scale-down pending",
    )
    assert obj["status"]["targetReplicas"] == 1
    assert obj["status"]["desiredReplicas"] == 4
    assert await replicas_of(api, namespace, "ingest") == 4

    await wait_replicas(
        api, namespace, "ingest", 1, within_s=window + 15, what="scale down after the window"
    )
    assert time.monotonic() - caught_up >= window - 1  # 1 s of timestamp rounding in status
    evs = await eventually(
        lambda: events_for(api, namespace, name),
        lambda es: any(e.reason == "ScaleDown" for e in es),
        what="ScaleDown event",
    )
    assert any("4 -> 1" in e.message for e in evs if e.reason == "ScaleDown")


async def test_steady_state_does_not_flap(
    api: client.ApiClient, operator: Any, namespace: str, kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(3)
    name, _ = await _setup(api, namespace, kafka_bootstrap, topic)
    await wait_replicas(api, namespace, "ingest", 3, what="3 replicas")
    first = (await _status_after_scale(api, namespace, name, 3))["lastScaleTime"]
    await asyncio.sleep(4)  # four reconciles
    obj = await get_scaler(api, namespace, name)
    assert obj["status"]["lastScaleTime"] == first
    assert (
        len([e for e in await events_for(api, namespace, name) if e.reason.startswith("Scale")])
        == 1
    )


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ({"minReplicas": 5, "maxReplicas": 2}, "minReplicas must not exceed maxReplicas"),
        ({"mode": "turbo"}, "spec.mode"),
        ({"partitionsPerReplica": 0}, "spec.partitionsPerReplica"),
        ({"lagThreshold": -5}, "spec.lagThreshold"),
        ({"targetRef": {"kind": "Pod", "name": "x"}}, "spec.targetRef.kind"),
        ({"kafka": {"topic": "t"}}, "spec.kafka.bootstrapServers"),
    ],
)
async def test_invalid_resource_is_refused_by_the_schema(
    api: client.ApiClient, namespace: str, spec: dict[str, Any], complaint: str
) -> None:
    body = scaler("bad", "ingest", "127.0.0.1:9", "t", "g")
    body["spec"].update(spec)
    with pytest.raises(ApiException) as e:
        await create_scaler(api, namespace, body)
    assert e.value.status == 422
    assert complaint in e.value.body


async def test_missing_target_is_reported_then_scaled_when_it_appears(
    api: client.ApiClient, operator: Any, namespace: str, kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    """A target that does not exist is temporary; the status says why."""
    topic = await new_topic(2)
    await create_scaler(
        api, namespace, scaler("orphan", "no-such-deployment", kafka_bootstrap, topic, "g")
    )
    obj = await eventually(
        lambda: get_scaler(api, namespace, "orphan"),
        lambda o: ready(o) is not None,
        what="a Ready condition",
    )
    cond = ready(obj)
    assert cond["status"] == "False"
    assert cond["reason"] == "NotFound"
    # The Deployment appears: the next reconciles pick it up.
    await client.AppsV1Api(api).create_namespaced_deployment(
        namespace, deployment("no-such-deployment")
    )
    await wait_replicas(
        api, namespace, "no-such-deployment", 2, what="scaled once the target exists"
    )


async def test_operator_restart_picks_up_where_it_left_off(
    api: client.ApiClient, operator: Any, namespace: str, kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(6)
    name, group = await _setup(
        api,
        namespace,
        kafka_bootstrap,
        topic,
        mode="lag",
        lagThreshold=10,
        scaleDownStabilizationSeconds=3600,
    )
    await _produce(kafka_bootstrap, topic, {0: 25, 1: 25})
    await wait_replicas(api, namespace, "ingest", 5, what="5 replicas")
    scaled_at = (await _status_after_scale(api, namespace, name, 5))["lastScaleTime"]

    operator.stop()
    # While it is down, ingest catches up: the lower count must still wait
    # for the window, which counts from the last scale stored in status.
    await _commit_to_end(kafka_bootstrap, topic, group)
    operator.start()

    obj = await eventually(
        lambda: get_scaler(api, namespace, name),
        lambda o: (
            o["status"].get("scaleDownPendingSince") is not None and o["status"]["totalLag"] == 0
        ),
        what="reconciled after restart",
    )
    assert obj["status"]["lastScaleTime"] == scaled_at
    assert await replicas_of(api, namespace, "ingest") == 5
    # And it reacts again: more lag than before scales up past 5.
    await _produce(kafka_bootstrap, topic, {p: 11 for p in range(6)})
    await wait_replicas(api, namespace, "ingest", 6, what="6 replicas")


async def test_liveness_and_metrics(
    api: client.ApiClient, operator: Any, namespace: str, kafka_bootstrap: str, new_topic: NewTopic
) -> None:
    topic = await new_topic(2)
    await _setup(api, namespace, kafka_bootstrap, topic)
    await wait_replicas(api, namespace, "ingest", 2, what="2 replicas")

    def healthz() -> int:
        url = f"http://127.0.0.1:{operator.liveness_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status)

    assert await asyncio.to_thread(healthz) == 200

    def scrape() -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=5
        ) as r:
            return r.read().decode()

    text = await eventually(
        lambda: asyncio.to_thread(scrape),
        lambda t: (
            f'ticklake_operator_current_replicas{{name="ingest",namespace="{namespace}"}} 2.0' in t
        ),
        what="current replicas metric",
    )
    assert f'ticklake_operator_partitions{{name="ingest",namespace="{namespace}"}} 2.0' in text
    assert (
        f'ticklake_operator_scale_total{{direction="up",name="ingest",namespace="{namespace}"}} 1.0'
        in text
    )
    assert "ticklake_operator_reconcile_errors_total" in text


async def test_pods_follow_the_replicas(
    api: client.ApiClient,
    operator: Any,
    kube_server: Any,
    namespace: str,
    kafka_bootstrap: str,
    new_topic: NewTopic,
) -> None:
    """With controller-manager, scheduler and kwok, the scale reaches running Pods."""
    if not kube_server.workloads:
        pytest.fail("kube-controller-manager, kube-scheduler or kwok did not build")
    topic = await new_topic(3)
    await _setup(api, namespace, kafka_bootstrap, topic)
    core = client.CoreV1Api(api)

    async def running() -> int:
        pods = await core.list_namespaced_pod(
            namespace, label_selector="app.kubernetes.io/instance=ingest"
        )
        return sum(
            1
            for p in pods.items
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
        )

    await eventually(running, lambda n: n == 3, what="3 running ingest Pods")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_partitions({topic: NewPartitions(total_count=5)})
    finally:
        await admin.close()
    await eventually(running, lambda n: n == 5, what="5 running ingest Pods")
    await eventually(
        lambda: client.AppsV1Api(api).read_namespaced_deployment_status("ingest", namespace),
        lambda d: d.status.ready_replicas == 5,
        what="the Deployment reports 5 ready replicas",
    )


async def test_namespaced_operator_runs_with_a_role_and_kafkatopic_v1(
    api: client.ApiClient,
    operator: Any,
    kube_server: Any,
    namespace: str,
    kafka_bootstrap: str,
    new_topic: NewTopic,
    tmp_path: Path,
) -> None:
    """The chart's default shape: one namespace, a Role there, discovery cluster-wide."""
    user = f"ns-operator-{namespace}"
    rules = yaml.safe_load((ROOT / "operator" / "deploy" / "rbac.yaml").read_text())["rules"]
    cluster_scoped = {"customresourcedefinitions", "namespaces"}
    in_ns = [r for r in rules if not cluster_scoped & set(r["resources"])]
    discovery = [r for r in rules if cluster_scoped & set(r["resources"])]
    rbac = client.RbacAuthorizationV1Api(api)
    subject = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
    await rbac.create_namespaced_role(namespace, {"metadata": {"name": "op"}, "rules": in_ns})
    await rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "op"}, "subjects": subject,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "op"},
    })  # fmt: skip
    await rbac.create_cluster_role({"metadata": {"name": f"{user}-discovery"}, "rules": discovery})
    await rbac.create_cluster_role_binding({
        "metadata": {"name": f"{user}-discovery"}, "subjects": subject,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": f"{user}-discovery"},
    })  # fmt: skip

    topic = await new_topic(4)
    custom = client.CustomObjectsApi(api)
    kafka_topic = {
        "apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
        "metadata": {"name": "ticks"},
        "spec": {"topicName": topic, "partitions": 4, "replicas": 1},
    }  # fmt: skip
    await custom.create_namespaced_custom_object(
        "kafka.strimzi.io", "v1", namespace, "kafkatopics", kafka_topic
    )
    await client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment("ingest"))
    await create_scaler(api, namespace, scaler(
        "ingest", "ingest", kafka_bootstrap, "unused", "g", topicRef={"name": "ticks"},
    ))  # fmt: skip

    # Only one operator may scale a namespace; the cluster-wide one pauses.
    operator.stop()
    ns_op = OperatorProcess(
        kube_server.user_kubeconfig(user),
        tmp_path,
        env={
            "TICKLAKE_OPERATOR_NAMESPACES": json.dumps([namespace]),
            "TICKLAKE_OPERATOR_KAFKA_TOPIC_VERSION": "v1",
        },
    )
    try:
        ns_op.start()
        await wait_replicas(api, namespace, "ingest", 4, what="4 replicas")
        await custom.patch_namespaced_custom_object(
            "kafka.strimzi.io", "v1", namespace, "kafkatopics", "ticks",
            {"spec": {"partitions": 6}}, _content_type="application/merge-patch+json",
        )  # fmt: skip
        await eventually(
            lambda: asyncio.to_thread(ns_op.logs),
            lambda log: "KafkaTopic ticks partitions 4 -> 6" in log,
            what="the v1 KafkaTopic field handler",
        )
        await wait_replicas(api, namespace, "ingest", 6, what="6 replicas")
        # kopf logs a denied call as APIForbiddenError / "... is forbidden";
        # a bare 403 would also match timestamps (",403]") and ports.
        denied = re.search(r"[Ff]orbidden", ns_op.logs())
        assert denied is None, ns_op.logs()[-3000:]
    finally:
        ns_op.stop()
        operator.start()


async def test_an_operator_with_scaler_labels_leaves_other_scalers_alone(
    api: client.ApiClient,
    operator: Any,
    kube_server: Any,
    namespace: str,
    kafka_bootstrap: str,
    new_topic: NewTopic,
    tmp_path: Path,
) -> None:
    """Two chart releases in one namespace: each operator scales only the
    IngestScalers labelled with its release (TICKLAKE_OPERATOR_SCALER_LABELS)."""
    # The session's unfiltered operator would scale both: it pauses first.
    operator.stop()
    topic = await new_topic(4)
    apps = client.AppsV1Api(api)
    for name, label in (("mine", "ns.release-a"), ("theirs", "ns.release-b")):
        await apps.create_namespaced_deployment(namespace, deployment(name))
        body = scaler(name, name, kafka_bootstrap, topic, f"g-{name}")
        body["metadata"]["labels"] = {"ticklake.dev/operator": label}
        await create_scaler(api, namespace, body)

    selector = json.dumps({"ticklake.dev/operator": "ns.release-a"})
    labelled = OperatorProcess(
        kube_server.kubeconfig,
        tmp_path,
        env={
            "TICKLAKE_OPERATOR_NAMESPACES": json.dumps([namespace]),
            "TICKLAKE_OPERATOR_SCALER_LABELS": selector,
        },
    )
    try:
        labelled.start()
        await wait_replicas(api, namespace, "mine", 4, what="4 replicas")
        # A few reconcile intervals later the other release's scaler is untouched.
        await asyncio.sleep(5 * RECONCILE_INTERVAL_S)
        assert await replicas_of(api, namespace, "theirs") == 1
        theirs = await get_scaler(api, namespace, "theirs")
        assert "status" not in theirs, theirs.get("status")
    finally:
        labelled.stop()
        operator.start()


async def test_kafka_problems_are_reported_and_retried(
    api: client.ApiClient,
    operator: Any,
    namespace: str,
    kafka_bootstrap: str,
    new_topic: NewTopic,
) -> None:
    """No broker, no topic: Ready=False with the reason; the topic appears: it scales."""
    from ticklake.devstack.kubeapi import free_port

    await client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment("ingest"))
    await create_scaler(
        api, namespace, scaler("down", "ingest", f"127.0.0.1:{free_port()}", "t", "g")
    )
    obj = await eventually(
        lambda: get_scaler(api, namespace, "down"),
        lambda o: (ready(o) or {}).get("reason") == "KafkaUnavailable",
        what="KafkaUnavailable",
    )
    assert ready(obj)["status"] == "False"

    topic = f"later.{uuid.uuid4().hex[:8]}"
    await client.AppsV1Api(api).create_namespaced_deployment(namespace, deployment("ingest2"))
    await create_scaler(api, namespace, scaler("later", "ingest2", kafka_bootstrap, topic, "g"))
    await eventually(
        lambda: get_scaler(api, namespace, "later"),
        lambda o: (ready(o) or {}).get("reason") == "TopicNotFound",
        what="TopicNotFound",
    )
    await new_topic(3, name=topic)
    await wait_replicas(api, namespace, "ingest2", 3, what="3 replicas")
    assert (ready(await get_scaler(api, namespace, "later")) or {}).get("status") == "True"


async def test_statefulset_target_and_suspend(
    api: client.ApiClient,
    operator: Any,
    namespace: str,
    kafka_bootstrap: str,
    new_topic: NewTopic,
) -> None:
    """A StatefulSet scales through its /scale the same way; suspend only reports."""
    topic = await new_topic(4)
    apps = client.AppsV1Api(api)
    sts = deployment("ingest-sts")
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = "ingest-sts"
    await apps.create_namespaced_stateful_set(namespace, sts)
    body = scaler("sts", "ingest-sts", kafka_bootstrap, topic, "g", suspend=True)
    body["spec"]["targetRef"]["kind"] = "StatefulSet"
    await create_scaler(api, namespace, body)

    obj = await eventually(
        lambda: get_scaler(api, namespace, "sts"),
        lambda o: (ready(o) or {}).get("reason") == "Suspended",
        what="a suspended reconcile",
    )
    assert obj["status"]["desiredReplicas"] == 4
    assert obj["status"]["currentReplicas"] == 1
    await asyncio.sleep(2)
    assert (await apps.read_namespaced_stateful_set("ingest-sts", namespace)).spec.replicas == 1

    await client.CustomObjectsApi(api).patch_namespaced_custom_object(
        "ticklake.dev", "v1alpha1", namespace, "ingestscalers", "sts",
        {"spec": {"suspend": False}}, _content_type="application/merge-patch+json",
    )  # fmt: skip
    await eventually(
        lambda: apps.read_namespaced_stateful_set("ingest-sts", namespace),
        lambda s: s.spec.replicas == 4,
        what="StatefulSet scaled to 4",
    )
