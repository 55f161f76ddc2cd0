"""The chart on the real node, the way a user meets it.

``helm install`` of charts/ticklake with the images built by
``ticklake.devstack.images`` (imported into the node's containerd), Kafka from
a single-node KRaft pod (external-Kafka mode), Redis from the chart and the
lake on a hostPath PersistentVolume. Then the user's path: every pod Running
and Ready, ``helm test``, ticks from the producer in Redis and the lake,
``kubectl port-forward`` to the query API for /latest, /bars and the live
stream, and every pod's /metrics through its Service's named port.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.request
from typing import Any

from chartrun import (
    Release,
    helm,
)
from nodekit import eventually, port_forward


def _get(port: int, path: str, release: Release) -> Any:
    """GET with the release's API key (the chart turns keys on)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=release.auth_header)
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.load(r)


def test_every_pod_is_running_and_ready(release: Release) -> None:
    pods = release.pods()
    components = {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods}
    assert {"producer", "ingest", "query-api", "operator", "redis"} <= components
    for pod in pods:
        if pod["metadata"]["labels"].get("app.kubernetes.io/component") == "test":
            continue
        conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert pod["status"]["phase"] == "Running", pod["metadata"]["name"]
        assert conditions["Ready"] == "True", pod["metadata"]["name"]


def test_helm_test_passes(release: Release) -> None:
    # (No --logs: the chart's hook-delete-policy removes the pod once it succeeded.)
    out = helm(release.cluster, "test", release.name, "-n", release.namespace)
    phases = [line.split()[-1] for line in out.splitlines() if line.startswith("Phase:")]
    assert phases == ["Succeeded"], out


def test_latest_tick_through_port_forward_is_seconds_old(release: Release) -> None:
    with port_forward(release.cluster, release.svc("query-api"), "http",
                      namespace=release.namespace) as port:  # fmt: skip

        def fresh() -> dict[str, Any]:
            body: dict[str, Any] = _get(port, "/latest/AAPL", release)
            return body

        body = eventually(
            fresh,
            lambda b: time.time_ns() - b["tick"]["ts_ns"] < 10 * 1_000_000_000,
            what="a tick of AAPL produced seconds ago",
            timeout_s=180,
        )
        # Redis answers (source "redis" below): ingest wrote as Redis user "ingest" and the
        # API reads as "query", the chart's per-service users (redis.acl).
        ready = _get(port, "/readyz", release)
        assert ready["redis"] is True, ready
        assert body["symbol"] == "AAPL"
        assert body["source"] == "redis"
        bars = eventually(
            lambda: _get(port, "/bars/AAPL?interval=1s", release),
            lambda b: len(b.get("bars", [])) > 0,
            what="1 s bars of AAPL from the lake",
            timeout_s=180,
        )
        assert all(bar["tick_count"] > 0 for bar in bars["bars"])


def test_live_stream_delivers_ticks(release: Release) -> None:
    with port_forward(release.cluster, release.svc("query-api"), "http",
                      namespace=release.namespace) as port:  # fmt: skip
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/stream?symbols=AAPL", headers=release.auth_header)
        resp = conn.getresponse()
        assert resp.status == 200
        events: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "event: ticks" not in events:
            events.append(resp.readline().decode().strip())
        events.append(resp.readline().decode().strip())  # its data line
        conn.close()
    assert "event: ticks" in events, events[-10:]
    data = events[events.index("event: ticks") + 1]
    assert data.startswith("data: ")
    ticks = json.loads(data.removeprefix("data: "))
    assert ticks and all(t["symbol"] == "AAPL" for t in ticks)


def test_ticks_reach_the_lake_on_the_volume(release: Release) -> None:
    lake = release.cluster.layout.volumes / f"lake-{release.namespace}"
    files = eventually(
        lambda: sorted(lake.rglob("*.parquet")),
        lambda f: len(f) > 0,
        what="Parquet files on the PersistentVolume",
        timeout_s=180,
    )
    assert all(f.stat().st_uid == 10001 for f in files[:20])


def test_the_lake_maintenance_job_runs_against_the_volume(release: Release) -> None:
    """One run of the chart's CronJob, started now: ingest's image has ``ticklake-lake``,
    the pod can write the lake PVC, and the tables ingest made are there to maintain."""
    lake = release.cluster.layout.volumes / f"lake-{release.namespace}"
    eventually(
        lambda: (lake / "ticks" / "_delta_log").exists(),
        bool,
        what="the ticks table's log on the PersistentVolume",
        timeout_s=180,
    )
    cronjob = f"{release.name}-ticklake-lake-maintenance"
    release.kubectl("create", "job", "--from", f"cronjob/{cronjob}", "lake-maintenance-now")
    release.kubectl("wait", "--for=condition=complete", "job/lake-maintenance-now",
                    "--timeout=180s", timeout=200)  # fmt: skip
    logs = release.kubectl("logs", "job/lake-maintenance-now").splitlines()
    report = json.loads("\n".join(logs[logs.index("{") :]))  # the JSON after any log line
    # today's ticks are not a finished day: nothing compacted, every table vacuumed
    assert report["compacted"] == []
    assert set(report["vacuumed"]) == {"ticks", "bars_1s", "bars_1m"}


def test_every_pods_metrics_scrape_through_the_services_named_port(release: Release) -> None:
    services = json.loads(release.kubectl("get", "services", "-o", "json"))["items"]
    scraped = {}
    for svc in services:
        ports = [p["name"] for p in svc["spec"]["ports"] if p.get("name") in ("metrics", "http")]
        component = svc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        if not ports or component not in ("producer", "ingest", "query-api", "operator"):
            continue
        port_name = "metrics" if "metrics" in ports else "http"
        with port_forward(release.cluster, f"svc/{svc['metadata']['name']}", port_name,
                          namespace=release.namespace) as port:  # fmt: skip
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                text = r.read().decode()
        assert "# TYPE" in text
        scraped[component] = len(text)
    assert set(scraped) >= {"producer", "ingest", "query-api", "operator"}, scraped
