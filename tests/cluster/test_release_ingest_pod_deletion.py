"""``kubectl delete pod`` of an ingest replica while ticks flow: the lake ends
up with every Kafka offset of the window exactly once.

First a graceful delete (SIGTERM: ingest flushes and commits within its grace
period), then a forced one (``--grace-period=0 --force``: the container is
killed at once, its unflushed rows are replayed by the partition's next owner).
The check reads the lake's files on the volume by (partition, offset), not
ingest's own metrics or state.
"""

from __future__ import annotations

import json

from chartrun import Release, end_offsets, group_members, lake_count, splits_partitions
from nodekit import eventually

INGEST = "app.kubernetes.io/component=ingest"


def _replicas(release: Release) -> int:
    deployment = json.loads(release.kubectl("get", "deployment", "-l", INGEST, "-o", "json"))
    return int(deployment["items"][0]["spec"]["replicas"])


def _delete_one_and_recover(release: Release, *flags: str) -> str:
    before = {p["metadata"]["name"] for p in release.pods(INGEST)}
    victim = sorted(before)[0]
    release.kubectl("delete", "pod", victim, "--wait=true", *flags, timeout=120)
    replicas = _replicas(release)
    eventually(
        lambda: [
            p
            for p in release.pods(INGEST)
            if p["metadata"]["name"] not in before and p["status"].get("phase") == "Running"
        ],
        lambda new: len(new) >= 1,
        what=f"a new ingest pod after deleting {victim}",
        timeout_s=120,
    )
    # The group has healed when Kafka reports every partition owned again.
    eventually(
        lambda: group_members(release),
        lambda m: splits_partitions(m, replicas) and not any(victim in c for c in m),
        what=f"{replicas} ingest members owning the partitions again, {victim} gone",
        timeout_s=120,
    )
    return victim


def test_deleting_ingest_pods_loses_and_duplicates_no_tick(release: Release) -> None:
    start = end_offsets(release)
    graceful = _delete_one_and_recover(release)
    forced = _delete_one_and_recover(release, "--grace-period=0", "--force")
    end = end_offsets(release)
    assert sum(end.values()) > sum(start.values()), "no ticks flowed during the test"
    count = eventually(
        lambda: lake_count(release, start, end),
        lambda c: c.lost <= 0,
        what=f"every offset of the window in the lake (deleted {graceful}, then {forced})",
        timeout_s=120,
    )
    assert count.lost == 0, count
    assert count.duplicated == 0, count
    assert count.duplicated_anywhere == 0, count
