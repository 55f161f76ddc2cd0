"""The lake on S3: a real S3-compatible server (moto in server mode) on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import boto3
import pyarrow.dataset as ds
import pytest
import redis.asyncio as aioredis
from deltalake import DeltaTable
from ingest_kit import (
    DAY0_NS,
    RunningIngest,
    create_topic,
    produce,
    records,
    settings_for,
    three_days,
    tick_messages,
    tick_stream,
    unique_prefix,
    unique_topic,
    wait_until,
)

from ticklake.core.lake_fs import open_lake
from ticklake.core.lake_layout import utc_date
from ticklake.core.settings import LakeFields
from ticklake.devstack.s3 import S3Server
from ticklake.ingest import lake_maintenance as maintenance
from ticklake.ingest.features import FeatureParams
from ticklake.ingest.partition import PartitionProcessor
from ticklake.ingest.sinks.lake import LakeOptions, LakeSink, LakeWriter, WrittenFile

BUCKET = "lake"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with S3Server(tmp_path_factory.mktemp("moto")) as server:
        endpoint = server.endpoint
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        ).create_bucket(Bucket=BUCKET)
        yield endpoint


def s3_fields(endpoint: str, prefix: str) -> dict[str, str]:
    return {
        "lake_uri": f"s3://{BUCKET}/{prefix}",
        "s3_endpoint_url": endpoint,
        "s3_access_key_id": "test",
        "s3_secret_access_key": "test",
    }


async def test_ingest_writes_an_exactly_once_lake_to_s3(
    s3_endpoint: str,
    kafka_bootstrap: str,
    ingest_redis: str,
    redis_password: str,
    redis_client: aioredis.Redis,
) -> None:
    topic = unique_topic()
    await create_topic(kafka_bootstrap, topic, 2)
    ticks = tick_stream([f"{unique_prefix()}{i}" for i in range(4)], 1_500, seed=9)
    fields = s3_fields(s3_endpoint, topic)
    settings = settings_for(
        kafka_bootstrap, topic, "unused", ingest_redis, redis_password, **fields
    )
    lake = open_lake(settings)

    def rows() -> int:
        try:
            return ds.dataset(
                lake.path("ticks"), filesystem=lake.fs, partitioning="hive"
            ).count_rows()
        except (FileNotFoundError, OSError):
            return 0

    async with RunningIngest(settings):
        await produce(kafka_bootstrap, topic, tick_messages(ticks))
        await wait_until(lambda: rows() >= 1_500, 60, "ticks on S3")
    # a second run of the same group replays nothing and duplicates nothing
    async with RunningIngest(settings) as again:
        await wait_until(lambda: again.service.consumer.group_joined, 30, "group joined")
    table = ds.dataset(lake.path("ticks"), filesystem=lake.fs, partitioning="hive").to_table()
    assert table.num_rows == 1_500
    pairs = set(
        zip(table.column("symbol").to_pylist(), table.column("seq").to_pylist(), strict=True)
    )
    assert len(pairs) == 1_500
    # the ticks table on S3 holds each file once, and reads back the same rows
    delta = DeltaTable(f"{lake.uri}/ticks", storage_options=lake.storage_options)
    in_table = delta.file_uris()
    on_s3 = ds.dataset(lake.path("ticks"), filesystem=lake.fs, partitioning="hive").files
    assert sorted(u.removeprefix("s3://") for u in in_table) == sorted(on_s3)
    assert delta.to_pyarrow_dataset().count_rows() == 1_500


def write_one_flush(writer: LakeWriter, ticks: int) -> list[WrittenFile]:
    """One flush of partition 0 (``ticks`` records from offset 0), as ingest writes it."""
    processor = PartitionProcessor(0, FeatureParams(), 4096)
    sink = LakeSink(writer, lambda p: processor.state.to_json(sink.buffers[p].next_offset))
    sink.open_partition(0, 0)
    sink.add(processor.process(records(ticks), 1))
    return writer.write(sink.take(0))  # type: ignore[arg-type]


def test_recovery_on_s3_removes_an_interrupted_flush(s3_endpoint: str) -> None:
    lake = open_lake(LakeFields(**s3_fields(s3_endpoint, "recovery")))
    writer = LakeWriter(lake, "topic", LakeOptions())
    written = write_one_flush(writer, 50)
    lake.fs.delete_file(lake.path(written[-1].relative_path))  # crash before the last file
    recovery = writer.recover(0, committed=None)
    assert recovery.state is None and recovery.resume_offset is None
    assert writer.checkpoints(0) == []
    for w in written:
        info = lake.fs.get_file_info(lake.path(w.relative_path))
        assert info.type.name == "NotFound"


@pytest.mark.parametrize(("sse", "kms_key"), [("AES256", None), ("aws:kms", "alias/ticklake-lake")])
def test_every_object_ingest_writes_carries_the_server_side_encryption_asked_for(
    s3_endpoint: str, sse: str, kms_key: str | None
) -> None:
    prefix = f"sse-{sse.replace(':', '-')}"
    fields = LakeFields(**s3_fields(s3_endpoint, prefix), s3_sse=sse, s3_sse_kms_key_id=kms_key)
    lake = open_lake(fields)
    written = write_one_flush(LakeWriter(lake, "topic", LakeOptions()), 300)
    assert written
    client = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")  # fmt: skip
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]]
    # the data files and the checkpoints beside them: every object, none forgotten
    assert len(keys) > len(written)
    for key in keys:
        head = client.head_object(Bucket=BUCKET, Key=key)
        assert head.get("ServerSideEncryption") == sse, key
        assert head.get("SSEKMSKeyId") == kms_key, key
    # readers need nothing special: pyarrow reads the encrypted lake back whole
    table = ds.dataset(lake.path("ticks"), filesystem=lake.fs, partitioning="hive").to_table()
    assert table.num_rows == 300


def test_an_unencrypted_lake_is_written_as_before(s3_endpoint: str) -> None:
    lake = open_lake(LakeFields(**s3_fields(s3_endpoint, "plain")))
    assert lake.encrypted_put is None


def test_encryption_settings_that_cannot_work_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="TICKLAKE_S3_SSE=AES256 needs an s3:// lake"):
        LakeFields(lake_uri=str(tmp_path), s3_sse="AES256")
    with pytest.raises(ValueError, match="TICKLAKE_S3_SSE_KMS_KEY_ID is set"):
        LakeFields(lake_uri="s3://lake/x", s3_sse="AES256", s3_sse_kms_key_id="k")
    with pytest.raises(ValueError, match="s3_sse"):
        LakeFields(lake_uri="s3://lake/x", s3_sse="rot13")  # type: ignore[arg-type]


def test_a_failed_encrypted_put_is_an_os_error_naming_the_object(s3_endpoint: str) -> None:
    # a bucket that does not exist: the PUT fails, and the writer's error handling
    # (which expects OSError) sees it
    fields = LakeFields(
        **(s3_fields(s3_endpoint, "x") | {"lake_uri": "s3://no-such-bucket/x"}), s3_sse="AES256"
    )
    lake = open_lake(fields)
    assert lake.encrypted_put is not None
    with pytest.raises(OSError, match=r"s3://no-such-bucket/x/probe \(AES256\)"):
        lake.encrypted_put(lake.path("probe"), b"x")


async def test_compaction_expiry_and_vacuum_work_on_s3(s3_endpoint: str) -> None:
    """ticklake-lake's table maintenance on the S3 lake: the swap, then retention and
    vacuum deleting the removed objects."""
    lake = open_lake(LakeFields(**s3_fields(s3_endpoint, "maintenance")))
    await three_days(lake)
    day0 = utc_date(DAY0_NS)

    def table() -> DeltaTable:
        return DeltaTable(f"{lake.uri}/ticks", storage_options=lake.storage_options)

    rows = table().to_pyarrow_dataset().count_rows()
    result = maintenance.compact_day(lake, "ticks", day0)
    assert (result.files_before, result.files_after, result.rows) == (3, 1, 360)
    assert table().to_pyarrow_dataset().count_rows() == rows == 1080
    today = date.fromisoformat(day0) + timedelta(days=2)
    assert maintenance.expire(lake, "ticks", 1, today) == [day0]
    assert len(maintenance.vacuum(lake, "ticks", 0)) == 4  # 3 compacted away, then the 1
    listed = ds.dataset(lake.path("ticks"), filesystem=lake.fs, partitioning="hive").files
    assert listed and not [f for f in listed if f"date={day0}" in f]
