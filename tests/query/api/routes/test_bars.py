"""/bars: OHLCV + VWAP + tick count, checked against pandas on the same ticks."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest

from query.conftest import api_settings
from query.ingest_like import NS, IngestLike, make_ticks, new_symbol
from query.running_api import RunningApi

START = 1_736_000_000 * NS  # 2025-01-04T14:13:20Z
WIDTH = {"1s": NS, "1m": 60 * NS, "5m": 300 * NS, "1h": 3600 * NS}


def pandas_bars(rows: list[dict], width_ns: int, lo: int, hi: int) -> pd.DataFrame:
    """The reference: group ticks by bar start; open/close first/last in source order."""
    df = pd.DataFrame(rows).sort_values(["kafka_partition", "kafka_offset"])
    df["start_ns"] = df["ts_ns"] // width_ns * width_ns
    df["notional"] = df["price"] * df["size"]
    g = df.groupby("start_ns")
    ref = pd.DataFrame(
        {
            "open": g["price"].first(),
            "high": g["price"].max(),
            "low": g["price"].min(),
            "close": g["price"].last(),
            "volume": g["size"].sum(),
            "notional": g["notional"].sum(),
            "tick_count": g.size(),
        }
    )
    ref["vwap"] = ref["notional"] / ref["volume"]
    ref = ref.reset_index()
    return ref[(ref.start_ns >= lo - lo % width_ns) & (ref.start_ns < hi)].reset_index(drop=True)


def assert_same_bars(got: list[dict], ref: pd.DataFrame) -> None:
    assert len(got) == len(ref) > 0
    frame = pd.DataFrame(got)
    assert frame["start_ns"].tolist() == ref["start_ns"].tolist()
    assert frame["tick_count"].tolist() == ref["tick_count"].tolist()
    for col in ("open", "high", "low", "close"):
        assert frame[col].tolist() == ref[col].tolist(), col
    for col in ("volume", "notional", "vwap"):
        assert frame[col].tolist() == pytest.approx(ref[col].tolist(), rel=1e-12), col


@pytest.fixture(scope="module")
def bar_data(ingest: IngestLike) -> tuple[str, list[dict]]:
    """Two hours of ticks in 7 uneven flushes, so many bars come as partial rows."""
    symbol = new_symbol()
    ticks = make_ticks(symbol, 2400, start_ns=START, step_ns=3 * NS, seed=7)
    rows: list[dict] = []
    for lo, hi in [
        (0, 100),
        (100, 101),
        (101, 700),
        (700, 1333),
        (1333, 1900),
        (1900, 2399),
        (2399, 2400),
    ]:
        part = ingest.process(ticks[lo:hi])
        ingest.to_lake(part)
        rows += part
    ingest.to_redis(rows[-1:])
    return symbol, rows


@pytest.mark.parametrize("interval", ["1s", "1m", "5m", "1h"])
async def test_bars_match_pandas(
    client: httpx.AsyncClient, bar_data: tuple[str, list[dict]], interval: str
) -> None:
    symbol, rows = bar_data
    lo, hi = START + 17 * NS, START + 7200 * NS
    r = await client.get(f"/bars/{symbol}", params={"interval": interval, "start": lo, "end": hi})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == ("bars_1s" if interval == "1s" else "bars_1m")
    assert_same_bars(body["bars"], pandas_bars(rows, WIDTH[interval], lo, hi))
    assert body["bars"][0]["start"].endswith("Z")


async def test_bars_from_ticks_when_the_lake_has_no_bar_files(
    tmp_path: Path,
    bar_data: tuple[str, list[dict]],
    ingest: IngestLike,
    query_redis_url: str,
    redis_password: str,
) -> None:
    symbol, rows = bar_data
    ticks_only = tmp_path / "lake"
    shutil.copytree(Path(ingest.lake.base) / "ticks", ticks_only / "ticks")
    settings = api_settings(
        lake_uri=str(ticks_only), redis_url=query_redis_url, redis_password=redis_password
    )
    with RunningApi(settings) as api:
        async with httpx.AsyncClient(base_url=api.url) as c:
            for interval in ("1s", "1m", "1h"):
                lo, hi = START, START + 3000 * NS
                r = await c.get(
                    f"/bars/{symbol}", params={"interval": interval, "start": lo, "end": hi}
                )
                body = r.json()
                assert body["source"] == "ticks"
                assert_same_bars(body["bars"], pandas_bars(rows, WIDTH[interval], lo, hi))


async def test_bars_as_parquet(client: httpx.AsyncClient, bar_data: tuple[str, list[dict]]) -> None:
    symbol, rows = bar_data
    r = await client.get(
        f"/bars/{symbol}",
        params={"interval": "5m", "start": START, "end": START + 7200 * NS, "format": "parquet"},
    )
    table = pq.read_table(io.BytesIO(r.content))
    assert table.column_names[:3] == ["start_ns", "start", "open"]
    assert sum(table.column("tick_count").to_pylist()) == len(rows)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"interval": "2m"}, "interval"),
        ({"interval": "1s", "start": "2025-01-01", "end": "2025-01-03"}, "end"),  # > max bars
        ({"start": "2025-01-04T25:00:00Z"}, "start"),
        ({"end": "-5"}, "end"),
    ],
)
async def test_bad_bar_parameters_are_422(
    client: httpx.AsyncClient, bar_data: tuple[str, list[dict]], params: dict, name: str
) -> None:
    symbol, _ = bar_data
    r = await client.get(f"/bars/{symbol}", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-1] == name


async def test_unknown_symbol_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"/bars/{new_symbol('NOPE')}")).status_code == 404
