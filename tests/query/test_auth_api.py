"""Authentication, entitlements and rate limits on the running API (real Redis, a real lake).

Keys are made with the CLI's own code into a key file the API reads. Symbols
starting ``ENT`` are granted to the restricted key, those starting ``DEN`` are not.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from query.conftest import Keys, api_settings
from query.ingest_like import NS, IngestLike, make_ticks, new_symbol
from query.running_api import RunningApi
from ticklake.query.auth import api_keys
from ticklake.query.auth.entitlements import Entitlements
from ticklake.query.cli import main as cli_main


@pytest.fixture(scope="module")
def symbols(ingest: IngestLike) -> tuple[str, str]:
    """An entitled and a denied symbol, each with ticks in Redis and the lake."""
    ent, den = new_symbol("ENT"), new_symbol("DEN")
    start = time.time_ns() - 300 * NS
    ingest.ingest(make_ticks(ent, 20, start_ns=start, step_ns=NS) +
                  make_ticks(den, 20, start_ns=start, step_ns=NS))  # fmt: skip
    return ent, den


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def data_paths(symbol: str) -> list[str]:
    return [
        f"/latest/{symbol}",
        f"/latest?symbols={symbol}",
        f"/ticks/{symbol}",
        f"/bars/{symbol}?interval=1m",
        f"/asof/{symbol}?ts=now",
        f"/asof?symbols={symbol}&ts=now",
    ]


def test_every_data_route_needs_a_known_key(
    secure_api: RunningApi, keys: Keys, symbols: tuple[str, str]
) -> None:
    ent, _ = symbols
    wrong = api_keys.new_token()[2]
    with httpx.Client(base_url=secure_api.url, timeout=10) as c:
        for path in [*data_paths(ent), "/symbols", "/stream"]:
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "missing bearer token" in r.json()["detail"]
            r = c.get(path, headers=bearer(wrong))
            assert r.status_code == 401, path
            assert r.json() == {"detail": "unknown or revoked API key"}
            assert c.get(path, headers={"Authorization": "Basic dTpw"}).status_code == 401
        # Probes, metrics, the live page's files and the API's description stay open.
        for path in ["/healthz", "/readyz", "/metrics", "/", "/static/board.js", "/openapi.json"]:
            assert c.get(path).status_code == 200, path


def test_entitled_symbols_are_served_and_others_are_403_naming_them(
    secure_api: RunningApi, keys: Keys, symbols: tuple[str, str]
) -> None:
    ent, den = symbols
    with httpx.Client(base_url=secure_api.url, timeout=10, headers=bearer(keys.ent)) as c:
        for path in data_paths(ent):
            assert c.get(path).status_code == 200, path
        for path in data_paths(den):
            r = c.get(path)
            assert r.status_code == 403, path
            assert r.json()["symbols"] == [den]
            assert den in r.json()["detail"] and ent not in r.json()["detail"]
        # Lower case is the same symbol, and the /latest fast path is gated too.
        assert c.get(f"/latest/{den.lower()}").status_code == 403
        r = c.get(f"/latest?symbols={ent},{den}")
        assert r.status_code == 403 and r.json()["symbols"] == [den]
        # The list of symbols shows only what the key may read.
        listed = c.get("/symbols").json()["symbols"]
        assert ent in listed and den not in listed
        assert all(s.startswith("ENT") for s in listed)
    with httpx.Client(base_url=secure_api.url, timeout=10, headers=bearer(keys.all)) as c:
        listed = c.get("/symbols").json()["symbols"]
        assert {ent, den} <= set(listed)
        for path in data_paths(den):
            assert c.get(path).status_code == 200, path


async def _stream_symbols(url: str, token: str, params: dict[str, str]) -> set[str]:
    """Symbols in the first ``ticks`` events of /stream (2 s or 5 events)."""
    seen: set[str] = set()
    async with (
        httpx.AsyncClient(base_url=url, timeout=10, headers=bearer(token)) as c,
        c.stream("GET", "/stream", params=params) as r,
    ):
        assert r.status_code == 200
        events = 0
        event = ""

        async def read() -> None:
            nonlocal events, event
            async for line in r.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "ticks":
                    seen.update(t["symbol"] for t in json.loads(line[5:]))
                    events += 1
                    if events >= 5:
                        return

        try:
            await asyncio.wait_for(read(), 2.0)
        except TimeoutError:
            pass
    return seen


async def test_a_stream_of_everything_carries_only_entitled_symbols(
    secure_api: RunningApi, keys: Keys, ingest: IngestLike
) -> None:
    ent, den = new_symbol("ENT"), new_symbol("DEN")

    async def publish() -> None:
        await asyncio.sleep(0.3)
        for _ in range(5):
            now = time.time_ns()
            ingest.to_redis(ingest.process(make_ticks(ent, 1, start_ns=now) +
                                           make_ticks(den, 1, start_ns=now)))  # fmt: skip
            await asyncio.sleep(0.1)

    restricted, _ = await asyncio.gather(_stream_symbols(secure_api.url, keys.ent, {}), publish())
    assert ent in restricted and den not in restricted
    everything, _ = await asyncio.gather(_stream_symbols(secure_api.url, keys.all, {}), publish())
    assert {ent, den} <= everything


async def test_streams_asking_for_a_denied_symbol_are_refused(
    secure_api: RunningApi, keys: Keys
) -> None:
    den = new_symbol("DEN")
    async with httpx.AsyncClient(base_url=secure_api.url, timeout=10) as c:
        r = await c.get("/stream", params={"symbols": den}, headers=bearer(keys.ent))
        assert r.status_code == 403 and r.json()["symbols"] == [den]
    # A WebSocket gets the same answers in place of its handshake.
    ws_url = secure_api.url.replace("http://", "ws://")
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"{ws_url}/ws?symbols={den}",
                                      additional_headers=bearer(keys.ent)):  # fmt: skip
            pass
    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body)["symbols"] == [den]
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"{ws_url}/ws"):
            pass
    assert refused.value.response.status_code == 401
    # An entitled key opens it.
    async with websockets.connect(f"{ws_url}/ws?symbols={new_symbol('ENT')}",
                                  additional_headers=bearer(keys.ent)) as ws:  # fmt: skip
        assert ws.response is not None and ws.response.status_code == 101


def test_a_key_over_its_rate_gets_429_with_retry_after(secure_api: RunningApi, keys: Keys) -> None:
    before = secure_api.metrics.registry.get_sample_value(
        "ticklake_query_auth_denied_total", {"reason": "rate_limited"}
    )
    with httpx.Client(base_url=secure_api.url, timeout=10, headers=bearer(keys.slow)) as c:
        statuses = [c.get("/symbols") for _ in range(4)]
    assert [r.status_code for r in statuses[:2]] == [200, 200]  # the burst
    limited = [r for r in statuses if r.status_code == 429]
    assert limited, [r.status_code for r in statuses]
    assert int(limited[0].headers["retry-after"]) >= 1
    assert "over its rate (1 requests/s, burst 2)" in limited[0].json()["detail"]
    after = secure_api.metrics.registry.get_sample_value(
        "ticklake_query_auth_denied_total", {"reason": "rate_limited"}
    )
    assert after is not None and after - (before or 0) == len(limited)


def test_a_revoked_key_is_refused_without_a_restart(
    secure_api: RunningApi, keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["keys", "--file", str(keys.path), "create", "--name", "temp",
                     "--symbols", "ENT*", "--json"]) == 0  # fmt: skip
    made = json.loads(capsys.readouterr().out)

    def becomes(c: httpx.Client, status: int, what: str) -> None:
        deadline = time.monotonic() + 5  # the API re-reads the file every 0.05 s here
        while c.get("/symbols").status_code != status:
            assert time.monotonic() < deadline, f"{what} after 5 s"
            time.sleep(0.05)

    with httpx.Client(base_url=secure_api.url, timeout=10, headers=bearer(made["token"])) as c:
        becomes(c, 200, "a new key is still refused")  # no restart needed
        assert cli_main(["keys", "--file", str(keys.path), "revoke", made["id"]]) == 0
        becomes(c, 401, "a revoked key is still accepted")
    assert cli_main(["keys", "--file", str(keys.path), "list"]) == 0
    listing = capsys.readouterr().out
    assert f"{made['id']}  temp  ENT*  revoked" in listing
    assert made["token"] not in listing


def test_tokens_never_reach_logs_metrics_or_error_bodies(
    secure_api: RunningApi, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    den = new_symbol("DEN")
    bodies = []
    with caplog.at_level(logging.DEBUG), httpx.Client(base_url=secure_api.url, timeout=10) as c:
        bodies.append(c.get(f"/latest/{den}", headers=bearer(keys.ent)).text)  # 403
        bodies.append(c.get("/symbols", headers=bearer(keys.ent + "x")).text)  # 401
        bodies.append(c.get("/ticks/not%20a%20symbol", headers=bearer(keys.ent)).text)  # 422
        metrics = c.get("/metrics").text
    secret = keys.ent.rsplit("_", 1)[1]
    for text in [*bodies, metrics, caplog.text, keys.path.read_text()]:
        assert keys.ent not in text and secret not in text
    assert 'ticklake_query_auth_denied_total{reason="forbidden"}' in metrics


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_whatever_is_asked_every_returned_symbol_is_entitled(
    secure_api: RunningApi, keys: Keys, symbols: tuple[str, str], data: st.DataObject
) -> None:
    token = data.draw(st.sampled_from(sorted(keys.pool)), label="key")
    rights = keys.pool[token]
    known = [*symbols, "ENTA1", "DENB2", "ZZZ"]
    asked = data.draw(st.lists(st.sampled_from(known), min_size=1, max_size=4, unique=True))
    path = data.draw(st.sampled_from(["/latest", "/asof"]))
    params = {"symbols": ",".join(asked)} | ({"ts": "now"} if path == "/asof" else {})
    allowed = Entitlements.of(rights)
    with httpx.Client(base_url=secure_api.url, timeout=10, headers=bearer(token)) as c:
        r = c.get(path, params=params)
        listed = c.get("/symbols")
    denied = [s for s in asked if not allowed.allows(s)]
    if denied:
        assert r.status_code == 403 and r.json()["symbols"] == denied
    else:
        assert r.status_code == 200
        body = r.json()
        rows = body.get("ticks", body.get("results", []))
        assert all(allowed.allows(row["symbol"]) for row in rows)
    assert listed.status_code == 200
    assert all(allowed.allows(s) for s in listed.json()["symbols"])


def test_the_latest_fast_path_and_the_routes_spend_from_one_bucket_per_key(
    ingest: IngestLike, query_redis_url: str, redis_password: str, lake_root: Path, tmp_path: Path
) -> None:
    # A key of three requests (its rate refills one in 1,000 s) and a mirror that keeps
    # entries for an hour, so the fast path surely answers what the mirror holds.
    key_file = tmp_path / "keys.json"
    _, token = api_keys.create(key_file, "three", ["ENT*"], rate_per_s=0.001, burst=3)
    settings_ = api_settings(
        redis_url=query_redis_url, redis_password=redis_password, lake_uri=str(lake_root),
        auth_enabled=True, auth_keys_file=key_file, latest_mirror_ttl_s=3600,
    )  # fmt: skip
    symbol = new_symbol("ENT")
    ingest.ingest(make_ticks(symbol, 2, start_ns=time.time_ns() - 5 * NS))
    with RunningApi(settings_) as api, httpx.Client(base_url=api.url, timeout=10) as c:
        mirror = api.app.state.runtime.mirror
        for _ in range(250):  # the stream hub subscribes just after the start
            if mirror.live:
                break
            time.sleep(0.02)
        assert mirror.live
        by_route = c.get(f"/latest/{symbol}", headers=bearer(token))  # miss: read from Redis
        assert mirror.body(symbol) is not None  # ... and kept: the next one is the fast path
        by_fast_path = c.get(f"/latest/{symbol}", headers=bearer(token))
        listed = c.get("/symbols", headers=bearer(token))
        over = [c.get(path, headers=bearer(token)) for path in (f"/latest/{symbol}", "/symbols")]
        unkeyed = c.get(f"/latest/{symbol}")
        metrics = api.metrics.registry
    assert [r.status_code for r in (by_route, by_fast_path, listed, *over, unkeyed)] == [
        200, 200, 200, 429, 429, 401,
    ]  # fmt: skip
    assert by_fast_path.content == by_route.content
    assert over[0].json() == over[1].json()  # the same refusal, from either side

    def requests(route: str, status: str) -> float | None:
        labels = {"route": route, "method": "GET", "status": status}
        return metrics.get_sample_value("ticklake_query_requests_total", labels)

    assert requests("/latest/{symbol:path}", "200") == 2
    assert requests("unmatched", "429") == 2
    assert requests("unmatched", "401") == 1
