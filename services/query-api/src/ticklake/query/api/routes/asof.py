"""``/asof``: the last tick at or before a time (kdb+'s ``aj``, QuestDB's ASOF JOIN)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from ticklake.query.api.deps import LookupsDep, Symbol, SymbolList
from ticklake.query.api.models import AUTH, FORBIDDEN, NOT_FOUND, UNAVAILABLE, AsOf, AsOfMany
from ticklake.query.api.responses import OrjsonResponse
from ticklake.query.api.routes.ticks import TIME_HELP
from ticklake.query.lookups import Lookups, UnknownSymbol
from ticklake.query.params import parse_time

router = APIRouter(prefix="/asof", tags=["asof"], responses={**AUTH, **FORBIDDEN})

TsParam = Annotated[str, Query(description=f"The time to look up. {TIME_HELP}")]
VersionParam = Annotated[
    int | None,
    Query(
        ge=0,
        description="Time travel: answer from the lake's ticks table as it was at this "
        "version (a Delta table version: each ingest flush is one), not from the hot "
        "cache. 404 when the lake does not have that version (any more).",
    ),
]


async def _one(
    lookups: Lookups, symbol: str, ts_ns: int, version: int | None = None
) -> dict[str, Any]:
    row, source = await lookups.asof(symbol, ts_ns, version)
    return {"symbol": symbol, "ts_ns": ts_ns, "source": source, "version": version, "tick": row}


@router.get("", response_model=AsOfMany, responses=UNAVAILABLE)
async def asof_many(
    lookups: LookupsDep,
    ts: TsParam,
    symbols: SymbolList,
    version: VersionParam = None,
) -> Response:
    """As-of for several symbols at one time; unknown symbols are listed in ``missing``."""
    ts_ns = parse_time("ts", ts)
    wanted = symbols
    outcomes = await asyncio.gather(
        *(_one(lookups, s, ts_ns, version) for s in wanted), return_exceptions=True
    )
    results, missing = [], []
    for symbol, outcome in zip(wanted, outcomes, strict=True):
        if isinstance(outcome, UnknownSymbol):
            missing.append(symbol)
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            results.append(outcome)
    return OrjsonResponse({"ts_ns": ts_ns, "results": results, "missing": missing})


@router.get("/{symbol:path}", response_model=AsOf, responses={**NOT_FOUND, **UNAVAILABLE})
async def asof_one(
    symbol: Symbol, lookups: LookupsDep, ts: TsParam, version: VersionParam = None
) -> Response:
    """The last tick of ``symbol`` at or before ``ts`` (``tick`` is null if there is none);
    with ``version``, in the lake as it was at that table version."""
    return OrjsonResponse(await _one(lookups, symbol, parse_time("ts", ts), version))
