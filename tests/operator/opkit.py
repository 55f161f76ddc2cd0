"""Helpers for the operator tests on the real API server (imported by the tests).

Named ``opkit`` rather than ``helpers`` because pytest puts each test folder on
sys.path and a generic name would clash with another folder's module.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio import client

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    ok: Callable[[T], bool],
    *,
    within_s: float = 30,
    what: str = "",
) -> T:
    """Poll ``probe`` until ``ok`` holds; fail with the last value seen."""
    deadline = time.monotonic() + within_s
    value = await probe()
    while not ok(value):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within_s}s waiting for {what}: last value {value!r}")
        await asyncio.sleep(0.25)
        value = await probe()
    return value


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    """A minimal ingest Deployment (no Pods will run: there is no kubelet)."""
    labels = {"app.kubernetes.io/name": "ticklake-ingest", "app.kubernetes.io/instance": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "ingest", "image": "ticklake/ingest:test"}]},
            },
        },
    }


async def replicas_of(api: client.ApiClient, namespace: str, name: str) -> int:
    d = await client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
    return int(d.spec.replicas)


async def get_scaler(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = await client.CustomObjectsApi(api).get_namespaced_custom_object(
        "ticklake.dev", "v1alpha1", namespace, "ingestscalers", name
    )
    return obj


async def events_for(api: client.ApiClient, namespace: str, name: str) -> list[Any]:
    evs = await client.CoreV1Api(api).list_namespaced_event(namespace)
    return [e for e in evs.items if e.involved_object.name == name]


def scaler(
    name: str, target: str, bootstrap: str, topic: str, group: str, **spec: Any
) -> dict[str, Any]:
    """An IngestScaler for Deployment ``target`` (extra camelCase spec fields as kwargs)."""
    kafka = {"bootstrapServers": bootstrap, "topic": topic, "consumerGroup": group}
    if "topicRef" in spec:
        kafka["topicRef"] = spec.pop("topicRef")
    return {
        "apiVersion": "ticklake.dev/v1alpha1",
        "kind": "IngestScaler",
        "metadata": {"name": name},
        "spec": {"targetRef": {"kind": "Deployment", "name": target}, "kafka": kafka, **spec},
    }


async def create_scaler(
    api: client.ApiClient, namespace: str, body: dict[str, Any]
) -> dict[str, Any]:
    obj: dict[str, Any] = await client.CustomObjectsApi(api).create_namespaced_custom_object(
        "ticklake.dev", "v1alpha1", namespace, "ingestscalers", body
    )
    return obj


def ready(obj: dict[str, Any]) -> dict[str, Any] | None:
    conds = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == "Ready"), None)
