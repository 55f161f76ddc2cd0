"""kopf wiring: which events call :func:`reconcile.reconcile`. Nothing else lives here.

- a timer per IngestScaler reconciles every ``reconcile_interval_s``;
- a field handler on Strimzi ``KafkaTopic.spec.partitions`` reconciles the
  IngestScalers that reference that topic at once;
- with ``scaler_labels`` set, every IngestScaler handler (and the topic index)
  sees only the IngestScalers carrying those labels;
- startup/cleanup own the Kubernetes client and the metrics server.

Run with ``ticklake-operator run`` (or ``kopf run -m ticklake.operator.handlers``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
import prometheus_client

from ticklake.operator import kube, metrics, reconcile
from ticklake.operator import spec as crd
from ticklake.operator.settings import OperatorSettings

# Read once at import: kopf fixes timer intervals when the decorators run.
SETTINGS = OperatorSettings()
# kopf's label filter for every IngestScaler handler (None: no filter).
SCALER_LABELS = dict(SETTINGS.scaler_labels) or None


def _lock(memo: Any, namespace: str | None, name: str) -> asyncio.Lock:
    # The timer and the KafkaTopic handler may fire together for one object;
    # two reconciles racing would both scale and both post an Event.
    locks: dict[tuple[str, str], asyncio.Lock] = memo.locks
    return locks.setdefault((namespace or "", name), asyncio.Lock())


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    # Scale Events are posted explicitly with kopf.event; the per-reconcile
    # info logs would flood the namespace's Events, so only warnings go there.
    settings.posting.level = logging.WARNING
    # Keep kopf's own bookkeeping out of the Strimzi objects' status, which
    # belongs to the topic operator.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="ticklake.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="ticklake.dev", key="last-handled-configuration"
    )
    settings.watching.server_timeout = 300
    memo.kube = await kube.Kube.connect(SETTINGS.kubeconfig)
    memo.locks = {}
    memo.closing = False
    if SETTINGS.metrics_port:
        prometheus_client.start_http_server(SETTINGS.metrics_port, addr=SETTINGS.metrics_host)
        logger.info(f"metrics on {SETTINGS.metrics_host}:{SETTINGS.metrics_port}/metrics")


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    # kopf may run this while a timer is still mid-reconcile: taking every
    # object's lock waits for those to finish, and `closing` turns away any
    # that start later, so none of them meets a closed client.
    memo.closing = True
    for lock in list(getattr(memo, "locks", {}).values()):
        await lock.acquire()
    k: kube.Kube | None = getattr(memo, "kube", None)
    if k is not None:
        await k.close()


@kopf.on.probe(id="kubernetes")
async def kube_reachable(memo: Any, **_: Any) -> bool:
    # Reported by /healthz. A hung event loop stops answering /healthz at all,
    # which the kubelet's liveness probe turns into a restart.
    return hasattr(memo, "kube")


@kopf.timer(
    crd.GROUP,
    crd.VERSION,
    crd.PLURAL,
    id="reconcile",
    interval=SETTINGS.reconcile_interval_s,
    initial_delay=0,
    labels=SCALER_LABELS,
)
async def reconcile_timer(
    body: kopf.Body, namespace: str | None, name: str, memo: Any, logger: kopf.Logger, **_: Any
) -> None:
    async with _lock(memo, namespace, name):
        if memo.closing:
            return
        await reconcile.reconcile(k=memo.kube, settings=SETTINGS, body=body, logger=logger)


@kopf.on.delete(crd.GROUP, crd.VERSION, crd.PLURAL, optional=True, labels=SCALER_LABELS)
async def forget_metrics(namespace: str | None, name: str, **_: Any) -> None:
    metrics.forget(namespace or "", name)


@kopf.index(crd.GROUP, crd.VERSION, crd.PLURAL, labels=SCALER_LABELS)
async def scalers_by_topic(
    namespace: str | None, name: str, spec: kopf.Spec, **_: Any
) -> dict[Any, str] | None:
    """(namespace, KafkaTopic name) -> names of the IngestScalers that reference it."""
    ref = ((spec.get("kafka") or {}).get("topicRef") or {}).get("name")
    return {(namespace, ref): name} if ref else None


if SETTINGS.watch_kafka_topics:

    @kopf.on.field(
        crd.STRIMZI_GROUP,
        SETTINGS.kafka_topic_version,
        crd.KAFKA_TOPICS,
        field="spec.partitions",
    )
    async def kafka_topic_partitions(
        *,
        old: Any,
        new: Any,
        namespace: str | None,
        name: str,
        memo: Any,
        scalers_by_topic: kopf.Index[Any, str] | None = None,
        logger: kopf.Logger,
        **_: Any,
    ) -> None:
        # kopf always passes the index; the default only satisfies kopf's typing.
        scalers = list(scalers_by_topic.get((namespace, name), [])) if scalers_by_topic else []
        if not scalers:
            return
        logger.info(f"KafkaTopic {name} partitions {old} -> {new}: reconciling {scalers}")
        errors = []
        for scaler in scalers:
            async with _lock(memo, namespace, scaler):
                if memo.closing:
                    return
                try:
                    body = await memo.kube.get_scaler(namespace, scaler)
                    await reconcile.reconcile(
                        k=memo.kube, settings=SETTINGS, body=body, logger=logger
                    )
                except kube.NotFound:
                    continue  # deleted meanwhile; the index catches up
                except kube.KubeUnavailable as e:
                    errors.append(str(e))
                except kopf.PermanentError as e:
                    # That scaler's own timer reports it; other scalers go on.
                    logger.warning(f"{scaler}: {e}")
                except kopf.TemporaryError as e:
                    errors.append(str(e))
        if errors:
            raise kopf.TemporaryError("; ".join(errors), delay=SETTINGS.retry_delay_s)
