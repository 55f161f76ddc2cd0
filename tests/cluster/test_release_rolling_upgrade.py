"""``helm upgrade`` with a new image tag rolls every Deployment, while ticks
flow and clients query, with no tick lost or duplicated and no failed query.

The new tag names the same builds, tagged in the node's containerd (``ctr
images tag``), which is what a release pipeline re-tagging an image in a
registry does; the pods' image references change, so every Deployment rolls.

Queries: a client pod in the namespace asks ``/latest/AAPL`` through the
query API's Service every 0.2 s during the upgrade and logs each answer. (Not
through ``kubectl port-forward``: a port-forward to a Service is bound to the
one pod it picked when it started and ends with that pod, so during a rollout
it fails whatever the chart does; clients reach the API through the Service,
as this pod does.) ``/latest`` is checked through port-forward after the
upgrade.
"""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from chartrun import (
    CHART,
    Release,
    end_offsets,
    helm,
    lake_count,
    release_values,
)
from nodekit import eventually, port_forward

from ticklake.devstack import images
from ticklake.devstack.images import BuiltImage

NEW_TAG = "rolled-1"
COMPONENTS = ("producer", "ingest", "query-api", "operator")
CLIENT = "latest-client"
CLIENT_SCRIPT = """
import json, os, sys, time, urllib.request
request = urllib.request.Request(
    sys.argv[1], headers={"Authorization": "Bearer " + os.environ["TICKLAKE_API_KEY"]})
while True:
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            body = json.load(r)
            print("ok", r.status, body["symbol"], flush=True)
    except Exception as e:
        print("fail", type(e).__name__, str(e)[:200].replace(chr(10), " "), flush=True)
    time.sleep(0.2)
"""


def _client_pod(release: Release, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": CLIENT,
            "namespace": release.namespace,
            "labels": {"app.kubernetes.io/name": CLIENT},
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001},
            "containers": [
                {
                    "name": "client",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": [
                        "python3",
                        "-c",
                        CLIENT_SCRIPT,
                        f"http://{release.name}-ticklake-query-api:8000/latest/AAPL",
                    ],
                    "env": [{"name": "TICKLAKE_API_KEY", "value": release.api_token}],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def _client_log(release: Release) -> list[str]:
    return release.kubectl("logs", CLIENT).splitlines()


def _images_by_deployment(release: Release) -> dict[str, set[str]]:
    """Component -> images of its Running pods (old and new during a rollout)."""
    found: dict[str, set[str]] = {}
    for pod in release.pods():
        component = pod["metadata"]["labels"].get("app.kubernetes.io/component")
        if component in COMPONENTS and pod["status"].get("phase") == "Running":
            found.setdefault(component, set()).update(c["image"] for c in pod["spec"]["containers"])
    return found


def test_helm_upgrade_to_a_new_tag_rolls_everything_without_loss_or_failed_query(
    release: Release, node_images: list[BuiltImage], tmp_path: Path
) -> None:
    before = _images_by_deployment(release)
    assert set(before) == set(COMPONENTS), before
    assert not any(NEW_TAG in i for imgs in before.values() for i in imgs), before
    # Re-tag in the node's image store, as a pipeline re-tags in a registry.
    retagged = []
    for image in node_images:
        if image.name in images.SERVICE_NAMES:
            new = dataclasses.replace(image, ref=f"{image.repository}:{NEW_TAG}")
            release.cluster.ctr("images", "tag", "--force", image.ref, new.ref)
            retagged.append(new)
    others = [b for b in node_images if b.name not in images.SERVICE_NAMES]
    values = tmp_path / "values.yaml"
    values.write_text(
        yaml.safe_dump(release_values(release.namespace, [*retagged, *others], release.cluster))
    )

    query_api = next(b.ref for b in node_images if b.name == "query-api")
    release.cluster.apply([_client_pod(release, query_api)])
    try:
        eventually(
            lambda: _client_log(release),
            lambda lines: sum(line.startswith("ok") for line in lines) >= 3,
            what="the client pod answered by the query API",
            timeout_s=90,
        )
        start = end_offsets(release)
        started = time.monotonic()
        helm(release.cluster, "upgrade", release.name, str(CHART), "-n", release.namespace,
             "-f", str(values), "--wait", "--timeout", "8m", timeout=500)  # fmt: skip
        for component in COMPONENTS:
            release.kubectl("rollout", "status", f"deployment/{release.name}-ticklake-{component}",
                            "--timeout=180s", timeout=190)  # fmt: skip
        rolled = eventually(
            lambda: _images_by_deployment(release),
            lambda found: (
                all(
                    len(imgs) == 1 and next(iter(imgs)).endswith(f":{NEW_TAG}")
                    for imgs in found.values()
                )
                and set(found) == set(COMPONENTS)
            ),
            what="every Deployment's pods on the new tag, none left on the old one",
            timeout_s=180,
        )
        print(f"helm upgrade rolled {sorted(rolled)} in {time.monotonic() - started:.1f}s")
        time.sleep(3)  # a few more queries against the new pods
        log = _client_log(release)
    finally:
        release.kubectl("delete", "pod", CLIENT, "--grace-period=0", "--force", check=False)
    end = end_offsets(release)
    count = eventually(
        lambda: lake_count(release, start, end),
        lambda c: c.lost <= 0,
        what="every offset produced during the upgrade in the lake",
        timeout_s=120,
    )
    assert (count.lost, count.duplicated, count.duplicated_anywhere) == (0, 0, 0), count

    with port_forward(release.cluster, release.svc("query-api"), "http",
                      namespace=release.namespace) as port:  # fmt: skip
        body = eventually(
            lambda: json.load(
                urllib.request.urlopen(
                    urllib.request.Request(
                        f"http://127.0.0.1:{port}/latest/AAPL", headers=release.auth_header
                    )
                )
            ),
            lambda b: time.time_ns() - b["tick"]["ts_ns"] < 10 * 1_000_000_000,
            what="a fresh AAPL tick from the upgraded release",
            timeout_s=60,
        )
    assert body["symbol"] == "AAPL"

    failures = [line for line in log if not line.startswith("ok")]
    answered = len(log) - len(failures)
    print(f"{len(log)} queries through the Service during the upgrade, {len(failures)} failed")
    assert answered >= 20, log
    # The query API's old pod sleeps (preStopSleepSeconds) before SIGTERM, so
    # kube-proxy drops its endpoint while it still answers: no query refused.
    assert not failures, f"{len(failures)} of {len(log)} queries failed: {failures[:5]}"
