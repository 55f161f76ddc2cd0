"""Run-time facts of the chart's pods on the real node: non-root, read-only root
filesystems, and ingest's replicas splitting the topic's partitions as Kafka
itself reports them."""

from __future__ import annotations

import pytest
from chartrun import KAFKA_PARTITIONS, Release, group_members, splits_partitions
from nodekit import eventually

pytestmark = pytest.mark.usefixtures("release")


def test_every_container_runs_non_root_with_a_read_only_root_fs(release: Release) -> None:
    checked = []
    for pod in release.pods():
        if pod["status"]["phase"] != "Running":
            continue
        for container in pod["spec"]["containers"]:
            out = release.kubectl(
                "exec", pod["metadata"]["name"], "-c", container["name"], "--",
                "sh", "-c", "id -u; touch /ro-probe 2>&1; echo rc=$?",
            )  # fmt: skip
            uid, *rest = out.strip().splitlines()
            assert int(uid) != 0, (pod["metadata"]["name"], out)
            assert rest[-1] != "rc=0" and "Read-only file system" in out, out
            checked.append(f"{pod['metadata']['name']}/{container['name']}")
    assert len(checked) >= 6, checked


def test_ingest_replicas_split_the_partitions_in_kafkas_group_description(
    release: Release,
) -> None:
    members = eventually(
        lambda: group_members(release),
        lambda m: len(m) == 2 and sum(len(p) for p in m.values()) == KAFKA_PARTITIONS,
        what="two ingest members sharing the 6 partitions",
        timeout_s=180,
    )
    assert splits_partitions(members, 2), members
