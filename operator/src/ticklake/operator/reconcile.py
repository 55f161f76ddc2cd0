"""One reconcile of one IngestScaler: gather the inputs, decide, apply, report.

The handlers in ``handlers.py`` call :func:`reconcile` from a timer and when
a KafkaTopic's partitions change. Everything here is sequencing and error
translation; the rules are in ``decision.py``, the status shape in
:func:`status_patch` (pure, tested without a cluster).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, cast

import kopf

from ticklake.operator import decision, kube, lag, metrics
from ticklake.operator import spec as crd
from ticklake.operator.settings import OperatorSettings


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _age_s(now: dt.datetime, then: dt.datetime | None) -> float | None:
    return None if then is None else max(0.0, (now - then).total_seconds())


def condition(
    old_status: Mapping[str, Any],
    *,
    ok: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """The Ready condition; its transition time moves only when its status flips."""
    status = "True" if ok else "False"
    old = next((c for c in old_status.get("conditions") or [] if c.get("type") == "Ready"), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    cond: dict[str, Any] = {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message[:1000],
        "lastTransitionTime": since or _iso(now),
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return [cond]


def status_patch(
    *,
    old_status: Mapping[str, Any],
    generation: int | None,
    topic: lag.TopicLag,
    partitions: int,
    current: int,
    d: decision.Decision,
    scaled: bool,
    suspended: bool,
    now: dt.datetime,
) -> dict[str, Any]:
    """The status after a successful reconcile (a merge patch of ``.status``)."""
    pending_since = _parse_time(old_status.get("scaleDownPendingSince"))
    if not d.scale_down_pending or scaled:
        pending_since = None
    elif pending_since is None:
        pending_since = now
    patch: dict[str, Any] = {
        "observedGeneration": generation,
        "topic": topic.topic,
        "partitions": partitions,
        "totalLag": topic.total,
        "lagPerPartition": [
            {
                "partition": p,
                "lag": topic.per_partition[p],
                "end": o.end,
                **({"committed": o.committed} if o.committed is not None else {}),
            }
            for p, o in sorted(topic.offsets.items())
        ],
        "targetReplicas": d.target,
        "desiredReplicas": d.desired,
        "currentReplicas": d.desired if scaled else current,
        "scaleDownPendingSince": _iso(pending_since) if pending_since else None,
        "lastReconcileTime": _iso(now),
        "conditions": condition(
            old_status,
            ok=True,
            reason="Suspended" if suspended else "Reconciled",
            message=d.message,
            generation=generation,
            now=now,
        ),
    }
    if scaled:
        patch["lastScaleTime"] = _iso(now)
        patch["lastScaleReason"] = d.reason.value
        patch["lastScaleMessage"] = d.message
    return patch


async def _fail(
    k: kube.Kube,
    body: Mapping[str, Any],
    *,
    reason: str,
    message: str,
    now: dt.datetime,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    meta = body["metadata"]
    try:
        await k.patch_status(
            meta["namespace"],
            meta["name"],
            {
                "lastReconcileTime": _iso(now),
                "conditions": condition(
                    body.get("status") or {},
                    ok=False,
                    reason=reason,
                    message=message,
                    generation=meta.get("generation"),
                    now=now,
                ),
            },
        )
    except kube.KubeUnavailable as e:
        # The original failure is what the caller reports; this one only logs.
        logger.warning(f"could not record the failure in status: {e}")


async def reconcile(
    *,
    k: kube.Kube,
    settings: OperatorSettings,
    body: Mapping[str, Any],
    logger: logging.Logger | logging.LoggerAdapter[Any],
    now: dt.datetime | None = None,
) -> decision.Decision:
    """Reconcile one IngestScaler. Raises kopf's Temporary/PermanentError on failure."""
    now = now or dt.datetime.now(dt.UTC)
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    old_status: Mapping[str, Any] = body.get("status") or {}

    async def fail(kind: str, reason: str, message: str) -> None:
        metrics.RECONCILE_ERRORS.labels(namespace, name, kind).inc()
        await _fail(k, body, reason=reason, message=message, now=now, logger=logger)

    try:
        s = crd.parse(body.get("spec") or {})
        policy = s.policy()
    except (crd.InvalidSpec, ValueError) as e:
        await fail("spec", "InvalidSpec", str(e))
        raise kopf.PermanentError(f"invalid spec: {e}") from e

    topic_name, topic_partitions = s.kafka.topic, 0
    try:
        if s.kafka.topic_ref is not None:
            kt = await k.get_kafka_topic(
                namespace, s.kafka.topic_ref.name, settings.kafka_topic_version
            )
            topic_name = (kt.get("spec") or {}).get("topicName") or kt["metadata"]["name"]
            topic_partitions = int((kt.get("spec") or {}).get("partitions") or 0)
        observed = await lag.read_topic_lag(
            s.kafka.bootstrap_servers,
            topic_name,
            s.kafka.consumer_group,
            timeout_s=settings.kafka_timeout_s,
            client_options=settings.kafka_client_options(),
        )
        scale = await k.get_scale(namespace, s.target_ref)
    except lag.TopicNotFound as e:
        # Strimzi or a setup job may still be creating it: retry, and say so.
        await fail("kafka", "TopicNotFound", str(e))
        raise kopf.TemporaryError(str(e), delay=settings.retry_delay_s) from e
    except lag.KafkaUnavailable as e:
        await fail("kafka", "KafkaUnavailable", str(e))
        raise kopf.TemporaryError(str(e), delay=settings.retry_delay_s) from e
    except kube.NotFound as e:
        await fail("kube", "NotFound", str(e))
        raise kopf.TemporaryError(str(e), delay=settings.retry_delay_s) from e
    except kube.KubeUnavailable as e:
        await fail("kube", "KubernetesUnavailable", str(e))
        raise kopf.TemporaryError(str(e), delay=settings.retry_delay_s) from e

    # A KafkaTopic whose partitions grew is applied by Strimzi's topic operator
    # a little later; scaling up now costs at most a few idle seconds.
    partitions = max(observed.partitions, topic_partitions)
    obs = decision.Observation(
        partitions=partitions,
        current_replicas=scale.spec_replicas,
        lag=observed.per_partition,
        since_last_scale_s=_age_s(now, _parse_time(old_status.get("lastScaleTime"))),
        scale_down_wanted_for_s=_age_s(now, _parse_time(old_status.get("scaleDownPendingSince"))),
    )
    d = decision.decide(obs, policy)

    scaled = False
    if d.desired != scale.spec_replicas and not s.suspend:
        try:
            await k.set_replicas(namespace, s.target_ref, d.desired)
        except kube.KubeUnavailable as e:
            await fail("kube", "ScaleFailed", str(e))
            raise kopf.TemporaryError(str(e), delay=settings.retry_delay_s) from e
        scaled = True
        direction = "up" if d.desired > scale.spec_replicas else "down"
        metrics.SCALES.labels(namespace, name, direction).inc()
        kopf.event(
            # kopf reads only apiVersion/kind/metadata; a plain dict from the
            # API (the KafkaTopic path) has them as well as a kopf.Body.
            cast(kopf.Body, body),
            type="Normal",
            reason=d.reason.value,
            message=f"{s.target_ref.kind} {s.target_ref.name}: {d.message}",
        )
        logger.info(f"scaled {s.target_ref.kind} {s.target_ref.name}: {d.message}")

    metrics.DESIRED.labels(namespace, name).set(d.desired)
    metrics.TARGET.labels(namespace, name).set(d.target)
    metrics.CURRENT.labels(namespace, name).set(d.desired if scaled else scale.spec_replicas)
    metrics.PARTITIONS.labels(namespace, name).set(partitions)
    metrics.LAG.labels(namespace, name).set(observed.total)
    for p, v in observed.per_partition.items():
        metrics.PARTITION_LAG.labels(namespace, name, str(p)).set(v)

    try:
        await k.patch_status(
            namespace,
            name,
            status_patch(
                old_status=old_status,
                generation=meta.get("generation"),
                topic=observed,
                partitions=partitions,
                current=scale.spec_replicas,
                d=d,
                scaled=scaled,
                suspended=s.suspend,
                now=now,
            ),
        )
    except kube.KubeUnavailable as e:
        metrics.RECONCILE_ERRORS.labels(namespace, name, "kube").inc()
        raise kopf.TemporaryError(str(e), delay=settings.retry_delay_s) from e
    return d
