"""Fuzz the API with schemathesis against its own OpenAPI document.

Real Redis, a small real lake and the real server: no request may cause a 5xx,
and every answer must match the documented status codes, content types and
schemas. ``/stream`` is left out (an endless response by design; it has its own
tests). Each operation is driven by hypothesis directly, one test per
operation, both valid and invalid inputs.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from query.ingest_like import NS, IngestLike, make_ticks
from query.running_api import RunningApi

OPERATIONS = [
    ("GET", "/latest/{symbol}"),
    ("GET", "/latest"),
    ("GET", "/symbols"),
    ("GET", "/ticks/{symbol}"),
    ("GET", "/bars/{symbol}"),
    ("GET", "/asof/{symbol}"),
    ("GET", "/asof"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]


@pytest.fixture(scope="module")
def api_schema(api: RunningApi, ingest: IngestLike):
    # AAPL is the documented example symbol, so fuzzing reaches real 200 answers too.
    now = time.time_ns()
    ingest.ingest(make_ticks("AAPL", 200, start_ns=now - 3600 * NS, step_ns=15 * NS))
    ingest.ingest(make_ticks("MSFT", 50, start_ns=now - 3600 * NS, step_ns=60 * NS), redis_=False)
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json")


def test_every_operation_is_fuzzed(api_schema) -> None:
    documented = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert documented == {*OPERATIONS, ("GET", "/stream")}


WITHOUT_PARAMETERS = {"/symbols", "/healthz", "/readyz", "/metrics"}
"""Nothing invalid can be sent to these, so they are fuzzed with valid requests only."""
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if not (mode == GenerationMode.NEGATIVE and path in WITHOUT_PARAMETERS)
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_operation_keeps_its_contract(api_schema, method: str, path: str, mode) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        # Not "positive data acceptance": a schema cannot say that start must be
        # before end or that a window has a cap, so some schema-valid requests
        # rightly get a 422. Every other check (no 5xx, documented statuses,
        # content types, headers and schemas, invalid input rejected) applies.
        case.call_and_validate(timeout=30, excluded_checks=[positive_data_acceptance])

    check()
