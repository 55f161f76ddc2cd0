"""Schemathesis against the API with authentication on: with a valid key every answer
keeps the documented contract (no 5xx, documented statuses and schemas), and without
one every data route answers a documented 401.

The key used is entitled to ``ENT*`` only, so fuzzed symbols are mostly denied (a
documented 403) and some, the example ``ENTAAPL`` among them, are served: no answer
may carry a symbol outside the key's entitlements.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from query.conftest import Keys
from query.ingest_like import NS, IngestLike, make_ticks
from query.running_api import RunningApi
from query.test_openapi_fuzz import OPERATIONS
from ticklake.query.auth.gate import OPEN_PATHS

DATA_OPERATIONS = [(m, p) for m, p in OPERATIONS if p not in OPEN_PATHS]
"""The fuzzed operations (tests/query/test_openapi_fuzz.py) that need a key."""


@pytest.fixture(scope="module")
def secure_schema(secure_api: RunningApi, ingest: IngestLike):
    now = time.time_ns()
    ingest.ingest(make_ticks("ENTAAPL", 50, start_ns=now - 3600 * NS, step_ns=60 * NS))
    return schemathesis.openapi.from_url(f"{secure_api.url}/openapi.json")


def _symbols_in(body: Any) -> list[str]:
    """Every ``symbol`` value anywhere in a JSON answer."""
    if isinstance(body, dict):
        found = [body["symbol"]] if isinstance(body.get("symbol"), str) else []
        return found + [s for v in body.values() for s in _symbols_in(v)]
    if isinstance(body, list):
        return [s for v in body for s in _symbols_in(v)]
    return []


def test_every_data_operation_is_fuzzed_here(secure_schema) -> None:
    operations = {(op.ok().method.upper(), op.ok().path)
                  for op in secure_schema.get_all_operations()}  # fmt: skip
    gated = {(m, p) for m, p in operations if "security" in secure_schema.raw_schema[
        "paths"][p][m.lower()]}  # fmt: skip
    # /stream is endless by design; tests/query/test_auth_api.py covers it.
    assert gated == {*DATA_OPERATIONS, ("GET", "/stream")}


def test_the_document_says_data_routes_take_a_bearer_token(secure_schema) -> None:
    raw = secure_schema.raw_schema
    assert raw["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    for method, path in DATA_OPERATIONS:
        operation = raw["paths"][path][method.lower()]
        assert operation["security"] == [{"apiKey": []}]
        assert {"401", "429"} <= set(operation["responses"])
    assert "security" not in raw["paths"]["/healthz"]["get"]


@pytest.mark.parametrize(("method", "path"), DATA_OPERATIONS)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_with_a_key_the_contract_holds_and_nothing_unentitled_returns(
    secure_schema, keys: Keys, method: str, path: str, mode
) -> None:
    operation = secure_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=30, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {keys.ent}"},
            timeout=30,
            excluded_checks=[positive_data_acceptance],
        )
        if mode == GenerationMode.POSITIVE:  # negative cases may spoil the header itself
            assert response.status_code != 401
        if response.status_code == 200 and "json" in response.headers.get("content-type", ""):
            leaked = [s for s in _symbols_in(response.json()) if not s.startswith("ENT")]
            assert not leaked, f"{case.path}: symbols outside the key's entitlements: {leaked}"

    check()


@pytest.mark.parametrize(("method", "path"), DATA_OPERATIONS)
def test_without_a_key_every_data_route_answers_a_documented_401(
    secure_schema, method: str, path: str
) -> None:
    operation = secure_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(max_examples=10, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(timeout=30)
        assert response.status_code == 401

    check()
