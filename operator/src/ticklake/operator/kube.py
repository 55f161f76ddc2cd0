"""The few Kubernetes calls the operator makes, each wrapped to say what failed.

The workload is scaled through its ``scale`` subresource (the same path
``kubectl scale`` and the HPA use), so the operator needs no write access to
the Deployment itself and works for any kind that serves ``/scale``.
Events are posted by kopf (``kopf.event``); status is merge-patched here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from ticklake.operator import spec as crd

MERGE_PATCH = "application/merge-patch+json"


class KubeUnavailable(RuntimeError):
    """A Kubernetes call failed in a way a retry may fix (network, 5xx, 429)."""


class NotFound(KubeUnavailable):
    """The object does not exist (yet)."""


def _wrap(what: str, e: ApiException) -> KubeUnavailable:
    if e.status == 404:
        return NotFound(f"{what}: not found")
    return KubeUnavailable(f"{what}: HTTP {e.status} {e.reason}")


@dataclass(frozen=True)
class Scale:
    spec_replicas: int
    status_replicas: int


class Kube:
    """A kubernetes_asyncio client for the calls the glue needs."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._custom = client.CustomObjectsApi(api)

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> Kube:
        """Explicit kubeconfig, then $KUBECONFIG, then the pod's service account."""
        cfg = client.Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG")
        if path:
            await config.load_kube_config(config_file=path, client_configuration=cfg)
        else:
            config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        return cls(client.ApiClient(configuration=cfg))

    async def close(self) -> None:
        await self._api.close()

    async def get_scale(self, namespace: str, ref: crd.TargetRef) -> Scale:
        group, version = ref.api_version.split("/")
        try:
            s = await self._custom.get_namespaced_custom_object_scale(
                group, version, namespace, ref.plural, ref.name
            )
        except ApiException as e:
            raise _wrap(f"{ref.kind} {namespace}/{ref.name} scale", e) from e
        return Scale(
            spec_replicas=int(s.get("spec", {}).get("replicas", 0)),
            status_replicas=int(s.get("status", {}).get("replicas", 0)),
        )

    async def set_replicas(self, namespace: str, ref: crd.TargetRef, replicas: int) -> None:
        group, version = ref.api_version.split("/")
        try:
            # _content_type is accepted through the generated **kwargs; the stubs omit it.
            await self._custom.patch_namespaced_custom_object_scale(  # type: ignore[call-arg]
                group,
                version,
                namespace,
                ref.plural,
                ref.name,
                {"spec": {"replicas": replicas}},
                _content_type=MERGE_PATCH,
            )
        except ApiException as e:
            raise _wrap(f"scale {ref.kind} {namespace}/{ref.name}", e) from e

    async def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        try:
            await self._custom.patch_namespaced_custom_object_status(  # type: ignore[call-arg]
                crd.GROUP,
                crd.VERSION,
                namespace,
                crd.PLURAL,
                name,
                {"status": dict(status)},
                _content_type=MERGE_PATCH,
            )
        except ApiException as e:
            raise _wrap(f"status of {crd.KIND} {namespace}/{name}", e) from e

    async def get_scaler(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = await self._custom.get_namespaced_custom_object(
                crd.GROUP, crd.VERSION, namespace, crd.PLURAL, name
            )
        except ApiException as e:
            raise _wrap(f"{crd.KIND} {namespace}/{name}", e) from e
        return obj

    async def get_kafka_topic(self, namespace: str, name: str, version: str) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = await self._custom.get_namespaced_custom_object(
                crd.STRIMZI_GROUP, version, namespace, crd.KAFKA_TOPICS, name
            )
        except ApiException as e:
            raise _wrap(f"KafkaTopic {namespace}/{name}", e) from e
        return obj
