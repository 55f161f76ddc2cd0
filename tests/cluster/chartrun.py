"""The chart on the real node, for the tests: the release handle, Kafka's and
the lake's view of the ticks. Installing is ``ticklake.devstack.cluster.release``
(shared with ``ticklake-stack cluster install``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from nodekit import require

from ticklake.devstack.cluster import release as node_release
from ticklake.devstack.cluster.cluster import Cluster
from ticklake.devstack.cluster.release import (  # noqa: F401 (used by other test files)
    KAFKA_PARTITIONS,
    VALUES_FILE,
    create_topics,
    helm,
    kafka_manifests,
    load_into_node,
    remove_namespace,
)

try:
    from ticklake.devstack import images
except ImportError:  # the images module lands separately (issue 12's image part)
    images = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ticklake"
NAMESPACE = "tl-e2e"
RELEASE = "tl"


@dataclass(frozen=True)
class Release:
    cluster: Cluster
    namespace: str
    name: str
    kafka_bootstrap: str
    api_token: str = ""
    """Token of the API key the release's query API accepts (every symbol)."""

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_token}"}

    def svc(self, component: str) -> str:
        return f"svc/{self.name}-ticklake-{component}"

    def kubectl(self, *args: str, **kw: Any) -> str:
        return self.cluster.kubectl("-n", self.namespace, *args, **kw)

    def pods(self, selector: str = "") -> list[dict[str, Any]]:
        args = ["get", "pods", "-o", "json"] + (["-l", selector] if selector else [])
        items: list[dict[str, Any]] = json.loads(self.kubectl(*args))["items"]
        return items


def require_images() -> None:
    if images is None:
        require(["ticklake.devstack.images (the podman image builder) in this checkout"])


def build_and_load(
    cluster: Cluster, archive_dir: Path, names: list[str] | None = None, *, tag: str | None = None
) -> list[Any]:
    """Build (or find) the images (default: all), import those the node lacks."""
    return node_release.build_and_load(cluster, archive_dir, names, tag=tag)


def release_values(namespace: str, built: list[Any], cluster: Cluster) -> dict[str, Any]:
    return node_release.release_values(namespace, built, cluster)


# ---------------------------------------------------------------- Kafka's view


def kafka_tool(release: Release, main_class: str, *args: str, timeout: float = 120) -> str:
    """Run one of Kafka's own command-line tools inside the Kafka pod."""
    return release.kubectl(
        "exec", "deploy/kafka", "--", "java", "-Xmx128m", "-cp", "/opt/kafka/libs/*",
        main_class, "--bootstrap-server", "localhost:9092", *args, timeout=timeout,
    )  # fmt: skip


def group_members(release: Release, group: str = "ticklake-ingest") -> dict[str, set[int]]:
    """Consumer id -> partitions of ``market.ticks``, from Kafka's group description."""
    out = kafka_tool(
        release, "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        "--describe", "--group", group,
    )  # fmt: skip
    members: dict[str, set[int]] = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 7 and cols[1] == "market.ticks" and cols[2].isdigit():
            consumer = cols[6]
            if consumer != "-":
                members.setdefault(consumer, set()).add(int(cols[2]))
    return members


def splits_partitions(members: dict[str, set[int]], count: int) -> bool:
    """``count`` members holding disjoint sets that together are every partition."""
    owned = [p for parts in members.values() for p in parts]
    return (
        len(members) == count
        and all(members.values())
        and sorted(owned) == list(range(KAFKA_PARTITIONS))
    )


def end_offsets(release: Release, topic: str = "market.ticks") -> dict[int, int]:
    """Partition -> log end offset (the next offset to be written)."""
    out = kafka_tool(release, "org.apache.kafka.tools.GetOffsetShell",
                     "--topic", topic, "--time", "-1")  # fmt: skip
    ends = {}
    for line in out.splitlines():
        name, partition, offset = line.rsplit(":", 2)
        if name == topic:
            ends[int(partition)] = int(offset)
    if len(ends) != KAFKA_PARTITIONS:
        raise AssertionError(f"end offsets of {topic}: {out}")
    return ends


# ---------------------------------------------------------------- the lake's view


@dataclass(frozen=True)
class LakeCount:
    """Rows of the lake's ticks dataset for a window of Kafka offsets."""

    expected: int  #: offsets in the window
    rows: int  #: rows in the lake with an offset in the window
    distinct: int  #: distinct (partition, offset) among them
    duplicated_anywhere: int  #: rows minus distinct (partition, offset) in the whole lake

    @property
    def lost(self) -> int:
        return self.expected - self.distinct

    @property
    def duplicated(self) -> int:
        return self.rows - self.distinct


def lake_count(release: Release, start: dict[int, int], end: dict[int, int]) -> LakeCount:
    """Count the lake's ticks by (partition, offset) for offsets in [start, end).

    The lake is the release's hostPath volume, read on the host with DuckDB.
    """
    # the date=D folders only: the table log's checkpoints are Parquet files too
    ticks = release.cluster.layout.volumes / f"lake-{release.namespace}" / "ticks"
    glob = ticks / "date=*" / "*.parquet"
    window = " or ".join(
        f"(kafka_partition = {p} and kafka_offset >= {start[p]} and kafka_offset < {end[p]})"
        for p in sorted(end)
    )
    con = duckdb.connect()
    con.execute(
        f"create view ticks as select kafka_partition, kafka_offset from read_parquet('{glob}')"
    )
    counts = "select count(*), count(distinct (kafka_partition, kafka_offset)) from ticks"
    rows, distinct = con.execute(f"{counts} where {window}").fetchone() or (0, 0)
    everything, everything_distinct = con.execute(counts).fetchone() or (0, 0)
    return LakeCount(
        expected=sum(end[p] - start[p] for p in end),
        rows=rows,
        distinct=distinct,
        duplicated_anywhere=everything - everything_distinct,
    )
