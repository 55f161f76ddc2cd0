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


async def _one(lookups: Lookups, symbol: str, ts_ns: int) -> dict[str, Any]:
    row, source = await lookups.asof(symbol, ts_ns)
    return {"symbol": symbol, "ts_ns": ts_ns, "source": source, "tick": row}


@router.get("", response_model=AsOfMany, responses=UNAVAILABLE)
async def asof_many(
    lookups: LookupsDep,
    ts: TsParam,
    symbols: SymbolList,
) -> Response:
    """As-of for several symbols at one time; unknown symbols are listed in ``missing``."""
    ts_ns = parse_time("ts", ts)
    wanted = symbols
    outcomes = await asyncio.gather(
        *(_one(lookups, s, ts_ns) for s in wanted), return_exceptions=True
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
async def asof_one(symbol: Symbol, lookups: LookupsDep, ts: TsParam) -> Response:
    """The last tick of ``symbol`` at or before ``ts`` (``tick`` is null if there is none)."""
    return OrjsonResponse(await _one(lookups, symbol, parse_time("ts", ts)))
