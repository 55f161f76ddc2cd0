"""The query API on an ``s3://`` lake: a real S3-compatible server (moto in server
mode) on loopback, the same data written to it and to a local lake by ingest's
own lake writer, and the API's HTTP answers from both compared.

Redis is either down (nothing listens on its port) or up without the symbol,
so every answer has to come from the lake.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest

from query.conftest import api_settings
from query.ingest_like import NS, IngestLike, make_ticks, new_symbol
from query.running_api import RunningApi
from ticklake.core.lake_fs import open_lake
from ticklake.core.settings import LakeFields
from ticklake.core.topics import TICKS_TOPIC
from ticklake.devstack.ports import free_port
from ticklake.devstack.s3 import S3Server
from ticklake.ingest.sinks.lake import FlushJob, LakeOptions, LakeWriter

BUCKET = "query-lake"
S3_KEYS = {"s3_access_key_id": "test", "s3_secret_access_key": "test"}
START = 1_736_204_400 * NS  # 2025-01-06T23:00:00Z: the data crosses midnight
STEP = 30 * NS
N_TICKS = 240  # two hours, two ticks per minute bar


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on a free loopback port, with :data:`BUCKET` created."""
    with S3Server(tmp_path_factory.mktemp("moto")) as server:
        endpoint = server.endpoint
        s3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEYS["s3_access_key_id"],
        aws_secret_access_key=S3_KEYS["s3_secret_access_key"],
        region_name="us-east-1",
    )


class _BothLakes:
    """Stands in for ingest's lake writer: every flush goes to both lakes, so the
    two hold byte-for-byte the same rows (one processing pass, one ingest time)."""

    def __init__(self, *writers: LakeWriter) -> None:
        self.writers = writers

    def write(self, job: FlushJob) -> None:
        for writer in self.writers:
            writer.write(job)


@dataclass(frozen=True)
class TwoLakes:
    local_uri: str
    s3_fields: dict[str, str]
    symbol: str
    rows: list[dict[str, Any]]
    """The symbol's lake rows, in source order."""


@pytest.fixture(scope="module")
def two_lakes(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> TwoLakes:
    local_root = tmp_path_factory.mktemp("local-lake")
    s3_fields = {
        "lake_uri": f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}/lake",
        "s3_endpoint_url": s3_endpoint,
        **S3_KEYS,
    }
    ingest = IngestLike(local_root, None)
    s3_writer = LakeWriter(open_lake(LakeFields(**s3_fields)), TICKS_TOPIC, LakeOptions())
    ingest.writer = _BothLakes(ingest.writer, s3_writer)  # type: ignore[assignment]

    symbol, other = new_symbol("S3"), new_symbol("S3")
    ticks = make_ticks(symbol, N_TICKS, start_ns=START, step_ns=STEP, seed=3)
    rows: list[dict[str, Any]] = []
    # uneven flushes with another symbol mixed in: bars split over files, days split
    for lo, hi in ((0, 37), (37, 101), (101, 170), (170, N_TICKS)):
        noise = make_ticks(other, 5, start_ns=START + lo * STEP, step_ns=STEP, seed=lo)
        part = ingest.process(ticks[lo:hi] + noise)
        ingest.to_lake(part)
        rows += [r for r in part if r["symbol"] == symbol]
    return TwoLakes(str(local_root), s3_fields, symbol, rows)


def test_the_s3_lake_is_on_the_s3_server(s3_endpoint: str, two_lakes: TwoLakes) -> None:
    prefix = two_lakes.s3_fields["lake_uri"].removeprefix(f"s3://{BUCKET}/")
    listed = s3_client(s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    keys = [o["Key"] for o in listed.get("Contents", [])]
    for dataset in ("ticks", "bars_1s", "bars_1m"):
        days = {k.split("/date=")[1][:10] for k in keys if f"/lake/{dataset}/date=" in k}
        assert days == {"2025-01-06", "2025-01-07"}, dataset


@pytest.fixture(scope="module")
def apis(
    two_lakes: TwoLakes, query_redis_url: str, redis_password: str
) -> Iterator[dict[str, RunningApi]]:
    """Three APIs over the same data: local lake and S3 lake with Redis down, and
    the S3 lake with Redis up but without the symbol."""
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = {
        "local, redis down": api_settings(
            lake_uri=two_lakes.local_uri, redis_url=dead_redis, redis_timeout_s=0.3
        ),
        "s3, redis down": api_settings(
            **two_lakes.s3_fields, redis_url=dead_redis, redis_timeout_s=0.3
        ),
        "s3, redis without the symbol": api_settings(
            **two_lakes.s3_fields, redis_url=query_redis_url, redis_password=redis_password
        ),
    }
    running: dict[str, RunningApi] = {}
    try:
        for name, s in settings.items():
            running[name] = RunningApi(s).start()
        yield running
    finally:
        for api in running.values():
            api.stop()


async def _get_all(api: RunningApi, requests: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    bodies = []
    async with httpx.AsyncClient(base_url=api.url, timeout=20) as client:
        for path, params in requests:
            r = await client.get(path, params=params)
            assert r.status_code == 200, (api.settings.lake_uri, path, r.text)
            bodies.append(r.json())
    return bodies


def assert_same_json(a: Any, b: Any, where: str = "$") -> None:
    """Equal JSON, except floats only to rounding: sums may add up in another order."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, int | float) and isinstance(b, int | float), where
        assert math.isclose(a, b, rel_tol=1e-12), (where, a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), (where, a, b)
        for key in a:
            assert_same_json(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), (where, len(a), b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_json(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


async def test_s3_lake_answers_like_the_local_lake(
    two_lakes: TwoLakes, apis: dict[str, RunningApi]
) -> None:
    symbol, rows = two_lakes.symbol, two_lakes.rows
    ts = sorted(r["ts_ns"] for r in rows)
    window = {"start": START, "end": START + 3 * 3600 * NS}
    requests: list[tuple[str, dict[str, Any]]] = [
        (f"/ticks/{symbol}", {**window, "limit": 1000}),
        (f"/ticks/{symbol}", {**window, "limit": 50}),  # the first page of several
        (f"/ticks/{symbol}", {"start": ts[100], "end": ts[200]}),  # across midnight
        (f"/bars/{symbol}", {**window, "interval": "1m"}),
        (f"/bars/{symbol}", {**window, "interval": "1h"}),
        (f"/asof/{symbol}", {"ts": ts[150] + 1}),
        (f"/asof/{symbol}", {"ts": START - 1}),  # before the first tick: tick is null
        (f"/latest/{symbol}", {}),
        ("/latest", {"symbols": f"{symbol},{new_symbol('NOPE')}"}),
    ]
    answers = {name: await _get_all(api, requests) for name, api in apis.items()}

    ticks, page, inner, bars_1m, bars_1h, asof, before, latest, many = answers["s3, redis down"]
    assert [t["kafka_offset"] for t in ticks["ticks"]] == [r["kafka_offset"] for r in rows]
    assert ticks["ticks"][0]["ema_fast"] is not None  # ingest's feature columns come along
    assert page["count"] == 50 and page["next_cursor"]
    assert [t["ts_ns"] for t in inner["ticks"]] == ts[100:200]
    assert bars_1m["source"] == "bars_1m" and bars_1h["source"] == "bars_1m"
    assert sum(b["tick_count"] for b in bars_1m["bars"]) == N_TICKS
    assert [b["tick_count"] for b in bars_1h["bars"]] == [120, 120]
    assert bars_1m["bars"][0]["open"] == rows[0]["price"]
    assert bars_1h["bars"][-1]["close"] == rows[-1]["price"]
    assert asof["source"] == "lake" and asof["tick"]["ts_ns"] == ts[150]
    assert before["tick"] is None
    assert latest["source"] == "lake" and latest["tick"]["ts_ns"] == ts[-1]
    assert latest["tick"]["timestamp"].startswith("2025-01-07T00:59")
    assert [(t["symbol"], t["source"]) for t in many["ticks"]] == [(symbol, "lake")]
    assert len(many["missing"]) == 1

    # Same bodies from the local lake and with Redis up but ignorant of the symbol.
    # No field names the lake's location (``source`` is "lake" or a dataset name).
    reference = answers["local, redis down"]
    for name, bodies in answers.items():
        for request, got, want in zip(requests, bodies, reference, strict=True):
            assert_same_json(got, want, f"{name} {request}")


async def test_following_cursors_on_s3_gives_every_tick_once(
    two_lakes: TwoLakes, apis: dict[str, RunningApi]
) -> None:
    params: dict[str, Any] = {"start": START, "end": START + 3 * 3600 * NS, "limit": 33}
    seen: list[int] = []
    async with httpx.AsyncClient(base_url=apis["s3, redis down"].url, timeout=20) as client:
        while True:
            body = (await client.get(f"/ticks/{two_lakes.symbol}", params=params)).json()
            seen += [t["kafka_offset"] for t in body["ticks"]]
            if not body["next_cursor"]:
                break
            params["cursor"] = body["next_cursor"]
    assert seen == [r["kafka_offset"] for r in two_lakes.rows]


async def test_symbols_and_unknown_symbols_on_s3_with_redis_down(
    two_lakes: TwoLakes, apis: dict[str, RunningApi]
) -> None:
    async with httpx.AsyncClient(base_url=apis["s3, redis down"].url, timeout=20) as client:
        listed = (await client.get("/symbols")).json()
        assert listed["source"] == "lake" and two_lakes.symbol in listed["symbols"]
        r = await client.get(f"/latest/{new_symbol('NOPE')}")
        assert r.status_code == 404 and "unknown symbol" in r.json()["detail"]
