"""/asof: the last tick at or before a time, checked against pandas.merge_asof."""

from __future__ import annotations

import random
import time

import httpx
import pandas as pd
import pytest

from query.ingest_like import NS, IngestLike, make_ticks, new_symbol

START = 1_736_100_000 * NS  # 2025-01-05T18:00:00Z


@pytest.fixture(scope="module")
def asof_data(ingest: IngestLike) -> tuple[list[str], pd.DataFrame]:
    """Two symbols over a UTC midnight, in several flushes, with gaps between ticks."""
    symbols = [new_symbol(), new_symbol()]
    rows: list[dict] = []
    for i, symbol in enumerate(symbols):
        ticks = make_ticks(symbol, 300, start_ns=START + i * 7 * NS, step_ns=97 * NS, seed=i)
        for lo in range(0, 300, 70):
            part = ingest.process(ticks[lo : lo + 70])
            ingest.to_lake(part)
            rows += part
    return symbols, pd.DataFrame(rows)


def reference(df: pd.DataFrame, symbol: str, ts: list[int]) -> list[int | None]:
    """Kafka offsets of the as-of rows that pandas picks (None: nothing before)."""
    left = pd.DataFrame({"ts_ns": sorted(ts)})
    right = df[df.symbol == symbol].sort_values("ts_ns")[["ts_ns", "kafka_offset"]]
    merged = pd.merge_asof(left, right, on="ts_ns", direction="backward")
    by_ts = dict(zip(merged.ts_ns, merged.kafka_offset, strict=True))
    return [None if pd.isna(by_ts[t]) else int(by_ts[t]) for t in ts]


async def test_asof_matches_pandas_merge_asof(
    client: httpx.AsyncClient, asof_data: tuple[list[str], pd.DataFrame]
) -> None:
    symbols, df = asof_data
    rng = random.Random(3)
    exact = df.ts_ns.sample(10, random_state=1).tolist()  # exactly on a tick: that tick
    probes = exact + [
        rng.randrange(START - 600 * NS, START + 300 * 97 * NS + 600 * NS) for _ in range(30)
    ]
    for symbol in symbols:
        want = reference(df, symbol, probes)
        for ts, expected in zip(probes, want, strict=True):
            r = await client.get(f"/asof/{symbol}", params={"ts": ts})
            assert r.status_code == 200, r.text
            body = r.json()
            got = body["tick"]["kafka_offset"] if body["tick"] else None
            assert got == expected, (symbol, ts)
            if body["tick"]:
                assert body["tick"]["ts_ns"] <= ts
                assert body["source"] == "lake"


async def test_asof_for_several_symbols(
    client: httpx.AsyncClient, asof_data: tuple[list[str], pd.DataFrame]
) -> None:
    symbols, df = asof_data
    ts = START + 5_000 * NS
    unknown = new_symbol("NOPE")
    r = await client.get("/asof", params={"symbols": ",".join([*symbols, unknown]), "ts": ts})
    body = r.json()
    assert body["missing"] == [unknown]
    assert [x["symbol"] for x in body["results"]] == symbols
    for item, symbol in zip(body["results"], symbols, strict=True):
        assert item["tick"]["kafka_offset"] == reference(df, symbol, [ts])[0]


async def test_asof_sees_ticks_still_only_in_redis(
    client: httpx.AsyncClient, ingest: IngestLike
) -> None:
    symbol = new_symbol()
    now = time.time_ns()
    rows = ingest.process(make_ticks(symbol, 10, start_ns=now - 20 * NS, step_ns=NS))
    ingest.to_lake(rows[:5])
    ingest.to_redis(rows)
    body = (await client.get(f"/asof/{symbol}", params={"ts": rows[7]["ts_ns"]})).json()
    assert body["source"] == "redis"
    assert body["tick"]["kafka_offset"] == rows[7]["kafka_offset"]
    body = (await client.get(f"/asof/{symbol}", params={"ts": rows[3]["ts_ns"] + 1})).json()
    assert body["tick"]["kafka_offset"] == rows[3]["kafka_offset"]


async def test_before_the_first_tick_there_is_no_tick(
    client: httpx.AsyncClient, asof_data: tuple[list[str], pd.DataFrame]
) -> None:
    symbols, _ = asof_data
    body = (await client.get(f"/asof/{symbols[0]}", params={"ts": START - NS})).json()
    assert body["tick"] is None and body["source"] is None


@pytest.mark.parametrize("params", [{}, {"ts": "noon"}, {"ts": "99999999999999999999"}])
async def test_bad_ts_is_422(
    client: httpx.AsyncClient, asof_data: tuple[list[str], pd.DataFrame], params: dict
) -> None:
    r = await client.get(f"/asof/{asof_data[0][0]}", params=params)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", "ts"]


async def test_unknown_symbol_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/asof/{new_symbol('NOPE')}", params={"ts": START})
    assert r.status_code == 404


async def test_asof_can_name_a_table_version(
    client: httpx.AsyncClient, ingest: IngestLike, lake_root
) -> None:
    """Time travel: at the version before a flush, as-of answers what the lake held then."""
    from deltalake import DeltaTable

    symbol = new_symbol()
    first = ingest.process(make_ticks(symbol, 20, start_ns=START, step_ns=NS, seed=5))
    ingest.to_lake(first)
    before = DeltaTable(str(lake_root / "ticks")).version()
    later = ingest.process(make_ticks(symbol, 20, start_ns=START + 20 * NS, step_ns=NS, seed=6))
    ingest.to_lake(later)
    ts = START + 60 * NS
    now = (await client.get(f"/asof/{symbol}", params={"ts": ts})).json()
    assert now["tick"]["kafka_offset"] == later[-1]["kafka_offset"]
    r = await client.get(f"/asof/{symbol}", params={"ts": ts, "version": before})
    assert r.status_code == 200, r.text
    then = r.json()
    assert then["tick"]["kafka_offset"] == first[-1]["kafka_offset"]
    assert (then["source"], then["version"]) == ("lake", before)
    many = await client.get("/asof", params={"ts": ts, "symbols": symbol, "version": before})
    assert many.json()["results"][0]["tick"]["kafka_offset"] == first[-1]["kafka_offset"]
    # a version the table never had: 404 naming it; not a number: 422
    missing = await client.get(f"/asof/{symbol}", params={"ts": ts, "version": 10**9})
    assert missing.status_code == 404 and "no version 1000000000" in missing.json()["detail"]
    bad = await client.get(f"/asof/{symbol}", params={"ts": ts, "version": "x"})
    assert bad.status_code == 422
