"""/ticks: lake history merged with the Redis tail, paginated, in four formats."""

from __future__ import annotations

import io
import time

import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from query.ingest_like import NS, IngestLike, make_ticks, new_symbol

DAY0 = 1_735_800_000 * NS  # 2025-01-02T06:40:00Z


async def _all_pages(client: httpx.AsyncClient, symbol: str, **params: object) -> list[list[dict]]:
    pages, cursor = [], None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = await client.get(f"/ticks/{symbol}", params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append(body["ticks"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def test_pages_walk_every_tick_once_in_order_across_days_and_files(
    client: httpx.AsyncClient, ingest: IngestLike
) -> None:
    symbol = new_symbol()
    # 3 flushes, crossing midnight UTC, plus another symbol interleaved
    ticks = make_ticks(symbol, 90, start_ns=DAY0 + 17 * 3600 * NS, step_ns=600 * NS)
    rows = []
    for chunk in (ticks[:30], ticks[30:61], ticks[61:]):
        part = ingest.process(chunk)
        ingest.to_lake(part)
        rows += part
    ingest.ingest(make_ticks(new_symbol(), 10, start_ns=DAY0 + 20 * 3600 * NS), redis_=False)
    pages = await _all_pages(client, symbol, start=DAY0, end=DAY0 + 2 * 86_400 * NS, limit=25)
    assert [len(p) for p in pages] == [25, 25, 25, 15]
    got = [t["kafka_offset"] for p in pages for t in p]
    assert got == [r["kafka_offset"] for r in sorted(rows, key=lambda r: r["ts_ns"])]
    assert {t["symbol"] for p in pages for t in p} == {symbol}


async def test_window_is_start_inclusive_end_exclusive(
    client: httpx.AsyncClient, ingest: IngestLike
) -> None:
    symbol = new_symbol()
    rows = ingest.ingest(make_ticks(symbol, 10, start_ns=DAY0, step_ns=NS), redis_=False)
    ts = sorted(r["ts_ns"] for r in rows)
    r = await client.get(f"/ticks/{symbol}", params={"start": ts[2], "end": ts[7]})
    assert [t["ts_ns"] for t in r.json()["ticks"]] == ts[2:7]


async def test_iso_times_are_accepted(client: httpx.AsyncClient, ingest: IngestLike) -> None:
    symbol = new_symbol()
    ingest.ingest(make_ticks(symbol, 8, start_ns=DAY0, step_ns=NS), redis_=False)
    r = await client.get(
        f"/ticks/{symbol}",
        params={"start": "2025-01-02T06:40:00Z", "end": "2025-01-02T06:40:04.000000001"},
    )
    assert r.status_code == 200
    assert 3 <= r.json()["count"] <= 5


async def test_a_tick_in_redis_is_in_history_before_it_reaches_parquet(
    client: httpx.AsyncClient, ingest: IngestLike
) -> None:
    symbol = new_symbol()
    now = time.time_ns()
    rows = ingest.process(make_ticks(symbol, 12, start_ns=now - 30 * NS, step_ns=NS))
    ingest.to_lake(rows[:8])  # flushed
    ingest.to_redis(rows)  # every tick went to the tail; the last 4 are only there
    r = await client.get(f"/ticks/{symbol}", params={"start": now - 60 * NS})
    body = r.json()
    assert [t["kafka_offset"] for t in body["ticks"]] == [row["kafka_offset"] for row in rows]
    assert body["ticks"][-1]["price"] == rows[-1]["price"]
    # the tail's typed values match the lake's
    assert body["ticks"][-1]["seq"] == rows[-1]["seq"]
    latest = (await client.get(f"/latest/{symbol}")).json()
    assert latest["tick"]["kafka_offset"] == body["ticks"][-1]["kafka_offset"]

    # once flushed, still exactly once
    ingest.to_lake(rows[8:])
    again = (await client.get(f"/ticks/{symbol}", params={"start": now - 60 * NS})).json()
    assert [t["kafka_offset"] for t in again["ticks"]] == [row["kafka_offset"] for row in rows]


async def test_tail_rows_page_with_lake_rows(client: httpx.AsyncClient, ingest: IngestLike) -> None:
    symbol = new_symbol()
    now = time.time_ns()
    rows = ingest.process(make_ticks(symbol, 20, start_ns=now - 40 * NS, step_ns=NS))
    ingest.to_lake(rows[:11])
    ingest.to_redis(rows[5:])
    pages = await _all_pages(client, symbol, start=now - 60 * NS, limit=6)
    assert [len(p) for p in pages] == [6, 6, 6, 2]
    assert [t["kafka_offset"] for p in pages for t in p] == [r["kafka_offset"] for r in rows]


@pytest.mark.parametrize(
    ("fmt", "accept", "media"),
    [
        ("csv", None, "text/csv"),
        ("parquet", None, "application/vnd.apache.parquet"),
        ("arrow", None, "application/vnd.apache.arrow.stream"),
        (None, "text/csv", "text/csv"),
        (None, "application/vnd.apache.parquet", "application/vnd.apache.parquet"),
        (
            None,
            "application/vnd.apache.arrow.stream;q=0.9, */*",
            "application/vnd.apache.arrow.stream",
        ),
        (None, "text/html, */*", "application/json"),
    ],
)
async def test_formats_by_parameter_or_accept_header(
    client: httpx.AsyncClient, ingest: IngestLike, fmt: str | None, accept: str | None, media: str
) -> None:
    symbol = new_symbol()
    rows = ingest.ingest(make_ticks(symbol, 7, start_ns=DAY0, step_ns=NS), redis_=False)
    params: dict[str, object] = {"start": DAY0, "end": DAY0 + 60 * NS, "limit": 5}
    if fmt:
        params["format"] = fmt
    r = await client.get(
        f"/ticks/{symbol}", params=params, headers={"accept": accept} if accept else {}
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(media)
    if media == "application/json":
        assert r.json()["count"] == 5
        return
    assert r.headers["x-next-cursor"]
    if media == "text/csv":
        table = pacsv.read_csv(io.BytesIO(r.content))
    elif media.endswith("parquet"):
        table = pq.read_table(io.BytesIO(r.content))
    else:
        table = pa.ipc.open_stream(r.content).read_all()
    assert table.num_rows == 5
    assert table.column("kafka_offset").to_pylist() == [x["kafka_offset"] for x in rows[:5]]
    assert table.column("price").to_pylist() == [x["price"] for x in rows[:5]]
    if not media.endswith("csv"):
        assert table.schema.field("ts_ns").type == pa.int64()
        assert "ema_fast" in table.column_names


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": 10**9}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WzEsMiwzXQ"}, "cursor"),  # valid base64 JSON, wrong shape
        ({"start": "yesterday"}, "start"),
        ({"start": "1735800000"}, "start"),  # seconds, not ns
        ({"end": "2025-13-01"}, "end"),
        ({"start": "2025-01-03", "end": "2025-01-02"}, "start"),
        ({"start": "2025-01-01", "end": "2025-03-01"}, "end"),  # over the span cap
        ({"format": "xml"}, "format"),
    ],
)
async def test_bad_parameters_are_422_naming_the_parameter(
    client: httpx.AsyncClient, ingest: IngestLike, params: dict[str, object], name: str
) -> None:
    symbol = new_symbol()
    ingest.ingest(make_ticks(symbol, 2, start_ns=DAY0), redis_=False)
    r = await client.get(f"/ticks/{symbol}", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-1] == name


async def test_unknown_symbol_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get(f"/ticks/{new_symbol('NOPE')}", params={"start": DAY0, "end": DAY0 + NS})
    assert r.status_code == 404


async def test_known_symbol_with_nothing_in_the_window_is_an_empty_page(
    client: httpx.AsyncClient, ingest: IngestLike
) -> None:
    symbol = new_symbol()
    ingest.ingest(make_ticks(symbol, 2, start_ns=DAY0))
    r = await client.get(f"/ticks/{symbol}", params={"start": DAY0 - 86_400 * NS, "end": DAY0})
    assert r.status_code == 200
    assert r.json() | {"ticks": None} == r.json() | {"count": 0, "next_cursor": None, "ticks": None}


async def test_tail_entries_added_long_before_the_window_are_not_read(
    client: httpx.AsyncClient, ingest: IngestLike
) -> None:
    """Stream ids are when Redis added an entry; one added more than
    tail_clock_skew_s (300 s) before the window cannot hold a tick inside it,
    so it is not even read (here: a forged id from 1970)."""
    from ticklake.core.hot_cache import tail_key

    symbol = new_symbol()
    now = time.time_ns()
    rows = ingest.process(make_ticks(symbol, 2, start_ns=now - 10 * NS, step_ns=NS))
    assert ingest.redis is not None
    ingest.to_redis(rows[:1])
    # ingest's entry for rows[0], moved back to 1970 (what no writer would do)
    [(_, fields)] = ingest.redis.xrange(tail_key(symbol))
    ingest.redis.delete(tail_key(symbol))
    ingest.redis.xadd(tail_key(symbol), fields, id="1000-0")
    ingest.to_redis(rows[1:])
    body = (await client.get(f"/ticks/{symbol}", params={"start": now - 60 * NS})).json()
    assert [t["kafka_offset"] for t in body["ticks"]] == [rows[1]["kafka_offset"]]
