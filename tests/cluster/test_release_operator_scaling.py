"""The operator on real pods: a backlog scales ingest up, the new pods join the
consumer group and split the 6 partitions (as Kafka's own group description
shows), and once the backlog has drained ingest scales back down.

The release's IngestScaler is switched to lag mode for the test (and restored
after it): a low ``lagThreshold`` so a burst of ticks asks for more replicas,
a short ``scaleDownStabilizationSeconds`` so the way down fits in the test.
The burst is the producer's own simulator, run once more inside the producer
pod as fast as Kafka takes it, under symbols the running feed does not use.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from chartrun import Release, group_members, splits_partitions
from nodekit import eventually

INGEST = "app.kubernetes.io/component=ingest"
BASELINE = 2  # minReplicas during the test: what the release runs before it
BURST_TICKS = 150_000
LAG_SPEC = {
    "mode": "lag",
    # Replicas wanted = ceil(total lag / lagThreshold), lag counted from committed offsets,
    # which trail the log by a lake flush or two: steady traffic (200 ticks/s) leaves about
    # 1,400 in all, 2 replicas (the baseline) up to 2,400. A burst then needs only ~800
    # ticks/s to ask for 3. At 2,000 (4,000 for 3 replicas) a burst slowed by a busy
    # machine asked for no more (one CI rehearsal).
    "lagThreshold": 1_200,
    "minReplicas": BASELINE,
    "maxReplicas": 6,
    # Long enough to see the new members settle, short enough for the way down.
    "scaleDownStabilizationSeconds": 40,
}


def _scaler(release: Release) -> dict[str, Any]:
    items: list[dict[str, Any]] = json.loads(release.kubectl("get", "ingestscalers", "-o", "json"))[
        "items"
    ]
    assert len(items) == 1, items
    return items[0]


def _replicas(release: Release) -> tuple[int, int]:
    """(spec.replicas, readyReplicas) of the ingest Deployment."""
    d = json.loads(release.kubectl("get", "deployment", "-l", INGEST, "-o", "json"))["items"][0]
    return int(d["spec"]["replicas"]), int(d["status"].get("readyReplicas") or 0)


def _events(release: Release, name: str) -> list[tuple[str, str]]:
    out = release.kubectl(
        "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
    )
    return [(e["reason"], e.get("message", "")) for e in json.loads(out)["items"]]


def _burst(release: Release) -> subprocess.Popen[str]:
    """The producer's simulator, unpaced, in the producer pod (runs in the background)."""
    symbols = ",".join(f"BKLG{i}" for i in range(12))
    return subprocess.Popen(
        [str(release.cluster.bin_dir / "kubectl"), f"--kubeconfig={release.cluster.kubeconfig}",
         "-n", release.namespace, "exec", release.svc("producer").replace("svc/", "deploy/"),
         "--", "ticklake-producer", "simulate", "--as-fast-as-possible",
         "--count", str(BURST_TICKS), "--symbols", symbols, "--seed", "7",
         "--bootstrap-servers", release.kafka_bootstrap, "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def test_a_backlog_scales_ingest_up_and_the_drain_scales_it_down(release: Release) -> None:
    scaler = _scaler(release)
    name = scaler["metadata"]["name"]
    original = {k: scaler["spec"][k] for k in LAG_SPEC}
    patch = json.dumps({"spec": LAG_SPEC})
    release.kubectl("patch", "ingestscaler", name, "--type=merge", "-p", patch)
    burst = None
    try:
        eventually(
            lambda: _replicas(release),
            lambda r: r == (BASELINE, BASELINE),
            what=f"ingest steady at {BASELINE} replicas in lag mode",
            timeout_s=60,
        )
        burst = _burst(release)
        try:
            peak, _ = eventually(
                lambda: _replicas(release),
                lambda r: r[0] > BASELINE,
                what="the operator scaling ingest up for the backlog",
                # a burst slowed by a busy machine builds its backlog later (one
                # rehearsal saw no scale-up within 120 s)
                timeout_s=240,
            )
        except AssertionError as e:
            # What the burst and the operator saw, to tell a slow burst from a deaf operator.
            if burst.poll() is None:
                burst.kill()
            output = burst.communicate(timeout=30)[0]
            status = _scaler(release).get("status")
            raise AssertionError(
                f"{e}\nburst (exit {burst.returncode}): {output[-2000:]}\nscaler status: {status}"
            ) from e
        # Every new pod joins the group and takes its share of the partitions.
        members = eventually(
            lambda: group_members(release),
            lambda m: splits_partitions(m, _replicas(release)[0]) and len(m) > BASELINE,
            what=f"more than {BASELINE} ingest members splitting the partitions",
            timeout_s=150,
        )
        output, _ = burst.communicate(timeout=300)
        assert burst.returncode == 0, output
        # Drained: back to the baseline, and Kafka's group has that many members.
        eventually(
            lambda: _replicas(release),
            lambda r: r == (BASELINE, BASELINE),
            what=f"ingest scaled back down to {BASELINE} after the backlog drained",
            timeout_s=240,
        )
        after = eventually(
            lambda: group_members(release),
            lambda m: splits_partitions(m, BASELINE),
            what=f"{BASELINE} ingest members owning all partitions again",
            timeout_s=120,
        )
        reasons = [reason for reason, _ in _events(release, name)]
        assert "ScaleUp" in reasons and "ScaleDown" in reasons, _events(release, name)
        status = _scaler(release).get("status") or {}
        assert status["lastScaleReason"] == "ScaleDown", status
        # Drained: no more lag than the baseline's replicas are for.
        assert status["totalLag"] <= BASELINE * LAG_SPEC["lagThreshold"], status
        print(f"scaled {BASELINE} -> {peak} -> {BASELINE}: {members} then {after}")
    finally:
        if burst is not None and burst.poll() is None:
            burst.kill()
        release.kubectl("patch", "ingestscaler", name, "--type=merge",
                        "-p", json.dumps({"spec": original}))  # fmt: skip
