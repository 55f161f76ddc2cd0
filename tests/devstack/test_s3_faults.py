"""The fault suite's S3: moto's server that answers S3 errors while its switch is on."""

from __future__ import annotations

from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import pytest

from ticklake.devstack.s3 import S3Server


def test_s3_errors_can_be_switched_on_and_off_and_data_survives(tmp_path: Path) -> None:
    with S3Server(tmp_path, faults=True) as server:
        s3 = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
            config=botocore.config.Config(retries={"total_max_attempts": 1}),
        )
        s3.create_bucket(Bucket="lake")
        s3.put_object(Bucket="lake", Key="a", Body=b"kept")
        assert server.fail_requests(True) == 0
        codes = set()
        for _ in range(2):
            with pytest.raises(botocore.exceptions.ClientError) as failed:
                s3.put_object(Bucket="lake", Key="b", Body=b"refused")
            codes.add(failed.value.response["Error"]["Code"])
        assert codes == {"SlowDown", "InternalError"}
        assert server.fail_requests(False) == 2
        assert s3.get_object(Bucket="lake", Key="a")["Body"].read() == b"kept"
        assert "b" not in [o["Key"] for o in s3.list_objects_v2(Bucket="lake")["Contents"]]


def test_the_switch_needs_a_faulty_server(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="faults=True"):
        S3Server(tmp_path).fail_requests(True)
