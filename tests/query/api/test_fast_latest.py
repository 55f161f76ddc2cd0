"""The /latest fast path as an ASGI layer: what it answers itself and what it passes on.

Real parts (a key file made with the CLI's code, the gate and its admission, a mirror,
the app's metrics, token buckets on a clock that stands still); behind the gate a
stand-in records what reached it, where FastAPI's route would be. The same layer inside the running
API, against the FastAPI route: ``tests/query/api/routes/test_latest.py`` and
``test_fast_latest_api.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from ticklake.query.api.fast_latest import ROUTE, FastLatest
from ticklake.query.auth import api_keys
from ticklake.query.auth.api_keys import Caller, KeyRing
from ticklake.query.auth.gate import CALLER_KEY, Admission, AuthGate
from ticklake.query.auth.rate_limit import TokenBuckets
from ticklake.query.latest_mirror import LatestMirror, latest_body
from ticklake.query.metrics import QueryMetrics

ROW = {"symbol": "ENTA", "ts_ns": 1_700_000_000_000_000_000, "price": 101.5, "seq": 7}


class FrozenClock:
    """Rate buckets that never refill: every spent token stays spent."""

    def __call__(self) -> float:
        return 100.0


@dataclass
class Behind:
    """Stands in for FastAPI behind the fast path and the gate: records the scopes that
    reach it."""

    scopes: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(scope)


@dataclass
class Layer:
    fast: FastLatest
    behind: Behind
    metrics: QueryMetrics
    mirror: LatestMirror
    tokens: dict[str, str]

    async def get(
        self, path: str, token: str | None = None, query: bytes = b""
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``(messages sent, scope)`` of one GET."""
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        scope = {"type": "http", "method": "GET", "path": path, "query_string": query,
                 "headers": headers}  # fmt: skip
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.fast(scope, receive, send)
        return sent, scope

    def count(self, route: str, status: int) -> float:
        value = self.metrics.registry.get_sample_value(
            "ticklake_query_requests_total",
            {"route": route, "method": "GET", "status": str(status)},
        )
        return value or 0.0

    def denied(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "ticklake_query_auth_denied_total", {"reason": reason}
        )
        return value or 0.0


def make_layer(tmp_path: Path, *, auth: bool) -> Layer:
    tokens: dict[str, str] = {}
    keys = None
    if auth:
        path = tmp_path / "keys.json"
        tokens["ent"] = api_keys.create(path, "ent desk", ["ENT*"], rate_per_s=1, burst=2)[1]
        tokens["two"] = api_keys.create(path, "two", ["*"], rate_per_s=1, burst=2)[1]
        keys = KeyRing(path)
    metrics = QueryMetrics()
    admission = Admission(
        keys=keys, default_rate_per_s=1000, default_burst=1000,
        on_denied=lambda reason: metrics.auth_denied.labels(reason).inc(),
        buckets=TokenBuckets(FrozenClock()),
    )  # fmt: skip
    behind = Behind()
    fast = FastLatest(AuthGate(behind, admission=admission), admission=admission, metrics=metrics)
    mirror = LatestMirror(ttl_s=3600)
    mirror.go_live()
    mirror.apply([ROW, ROW | {"symbol": "DENB"}])
    fast.mirror = mirror
    return Layer(fast, behind, metrics, mirror, tokens)


def response(sent: list[dict[str, Any]]) -> tuple[int, dict[bytes, bytes], bytes]:
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


async def test_a_mirrored_symbol_is_answered_with_the_routes_bytes_and_counted(
    tmp_path: Path,
) -> None:
    layer = make_layer(tmp_path, auth=False)
    sent, _ = await layer.get("/latest/enta")  # any case, as the route takes it
    status, headers, body = response(sent)
    assert status == 200
    assert body == latest_body("ENTA", ROW)  # what the route sends for this row
    assert headers == {b"content-type": b"application/json",
                       b"content-length": str(len(body)).encode()}  # fmt: skip
    assert layer.behind.scopes == []
    assert layer.count(ROUTE, 200) == 1
    assert (
        layer.metrics.registry.get_sample_value(
            "ticklake_query_request_duration_seconds_count", {"route": ROUTE, "method": "GET"}
        )
        == 1
    )


@pytest.mark.parametrize(
    "path, query",
    [
        ("/latest/NOPE", b""),  # not mirrored: the route reads Redis or the lake
        ("/latest/ENTA", b"x=1"),  # a query string: the route decides what it means
        ("/latest/not a symbol", b""),  # malformed: the route answers 422
        ("/latest", b"symbols=ENTA"),
        ("/symbols", b""),
    ],
)
async def test_everything_else_is_passed_on_untouched_and_uncounted(
    tmp_path: Path, path: str, query: bytes
) -> None:
    layer = make_layer(tmp_path, auth=True)
    sent, scope = await layer.get(path, layer.tokens["two"], query)
    assert sent == []
    assert layer.behind.scopes == [scope]
    assert scope[CALLER_KEY].name == "two"  # admitted by the gate behind
    assert layer.count(ROUTE, 200) == 0
    # one token of the burst of two spent, by the gate alone
    assert [response((await layer.get("/latest/ENTA", layer.tokens["two"]))[0])[0]
            for _ in range(2)] == [200, 429]  # fmt: skip


async def test_without_a_key_401_as_the_gate_sends_it_counted_unmatched(tmp_path: Path) -> None:
    layer = make_layer(tmp_path, auth=True)
    for token in (None, api_keys.new_token()[2]):
        sent, _ = await layer.get("/latest/ENTA", token)
        status, headers, body = response(sent)
        assert status == 401
        assert headers[b"www-authenticate"] == b'Bearer realm="ticklake"'
        assert headers[b"content-length"] == str(len(body)).encode()
        assert orjson.loads(body)["detail"] in (
            "missing bearer token: send 'Authorization: Bearer <API key>'",
            "unknown or revoked API key",
        )
    assert layer.behind.scopes == []
    assert layer.count("unmatched", 401) == 2  # as the metrics layer counts a refusal
    assert layer.count(ROUTE, 200) == 0
    assert layer.denied("unauthenticated") == 2


async def test_a_key_over_its_rate_gets_429_and_spends_one_token_per_request(
    tmp_path: Path,
) -> None:
    layer = make_layer(tmp_path, auth=True)
    statuses = [response((await layer.get("/latest/ENTA", layer.tokens["two"]))[0])[0]
                for _ in range(3)]  # fmt: skip
    assert statuses == [200, 200, 429]
    sent, _ = await layer.get("/latest/DENB", layer.tokens["two"])
    status, headers, body = response(sent)
    assert status == 429
    assert int(headers[b"retry-after"]) >= 1
    assert "over its rate (1 requests/s, burst 2)" in orjson.loads(body)["detail"]
    assert layer.count(ROUTE, 200) == 2
    assert layer.count("unmatched", 429) == 2
    assert layer.denied("rate_limited") == 2


async def test_a_symbol_the_key_may_not_read_goes_to_the_route_admitted_once(
    tmp_path: Path,
) -> None:
    layer = make_layer(tmp_path, auth=True)
    sent, scope = await layer.get("/latest/denb", layer.tokens["ent"])
    assert sent == []  # the route answers the 403, naming the symbol
    assert layer.behind.scopes == [scope]
    caller = scope[CALLER_KEY]
    assert isinstance(caller, Caller) and caller.name == "ent desk"
    assert layer.count(ROUTE, 200) == 0 and layer.count("unmatched", 403) == 0
    # one token of the burst of two spent: the gate behind let the admitted caller by
    assert [response((await layer.get("/latest/ENTA", layer.tokens["ent"]))[0])[0]
            for _ in range(2)] == [200, 429]  # fmt: skip


async def test_with_keys_off_the_caller_is_anonymous_and_nothing_is_refused(
    tmp_path: Path,
) -> None:
    layer = make_layer(tmp_path, auth=False)
    for _ in range(3):
        assert response((await layer.get("/latest/DENB"))[0])[0] == 200
    assert layer.behind.scopes == []
    assert layer.count(ROUTE, 200) == 3


async def test_before_the_lifespan_opens_the_runtime_everything_is_passed_on(
    tmp_path: Path,
) -> None:
    layer = make_layer(tmp_path, auth=False)
    layer.fast.mirror = None
    sent, scope = await layer.get("/latest/ENTA")
    assert sent == [] and layer.behind.scopes == [scope]


async def test_an_entry_past_its_ttl_is_left_to_the_route(tmp_path: Path) -> None:
    layer = make_layer(tmp_path, auth=False)
    layer.mirror.ttl_s = -1.0  # every entry is older than this
    sent, scope = await layer.get("/latest/ENTA")
    assert sent == [] and layer.behind.scopes == [scope]
