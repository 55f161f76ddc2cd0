"""Helpers for the operator tests on the real API server (imported by the tests).

Named ``opkit`` rather than ``helpers`` because pytest puts each test folder on
sys.path and a generic name would clash with another folder's module.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio import client

from ticklake.devstack import kubeapi

T = TypeVar("T")
RECONCILE_INTERVAL_S = 1.0
"""The tests' operators reconcile every second, so waits stay short."""


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


async def wait_replicas(
    api: client.ApiClient,
    namespace: str,
    name: str,
    count: int,
    *,
    within_s: float = 30,
    what: str = "",
) -> None:
    """Until the workload ``name`` is scaled to ``count`` replicas."""
    await eventually(
        lambda: replicas_of(api, namespace, name),
        lambda r: r == count,
        within_s=within_s,
        what=what or f"{count} replicas",
    )


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


class OperatorProcess:
    """``ticklake-operator run`` as a child process, restartable."""

    def __init__(self, kubeconfig: Path, logdir: Path, env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.logdir = logdir
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = kubeapi.free_port()
        self.liveness_port = kubeapi.free_port()
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.logdir / f"operator-{self.starts}.log"

    def logs(self) -> str:
        return "".join(
            (self.logdir / f"operator-{i}.log").read_text(errors="replace")
            for i in range(1, self.starts + 1)
        )

    def start(self) -> None:
        self.starts += 1
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "TICKLAKE_OPERATOR_RECONCILE_INTERVAL_S": str(RECONCILE_INTERVAL_S),
            "TICKLAKE_OPERATOR_RETRY_DELAY_S": "1",
            "TICKLAKE_OPERATOR_KAFKA_TIMEOUT_S": "10",
            "TICKLAKE_OPERATOR_METRICS_HOST": "127.0.0.1",
            "TICKLAKE_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "TICKLAKE_OPERATOR_LIVENESS_HOST": "127.0.0.1",
            "TICKLAKE_OPERATOR_LIVENESS_PORT": str(self.liveness_port),
            **self.extra_env,
        }
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ticklake.operator.cli", "run", "--verbose"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"operator exited {self.proc.returncode}:\n{self.logs()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2
                ):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"operator not live after 60s:\n{self.logs()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # SIGINT/SIGTERM make kopf stop its watchers and exit cleanly.
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()
