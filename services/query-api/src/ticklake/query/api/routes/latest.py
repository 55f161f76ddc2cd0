"""``/latest``: the newest tick per symbol, from Redis or (fallback) the lake."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from ticklake.query.api.deps import LookupsDep, Symbol, SymbolList
from ticklake.query.api.models import AUTH, FORBIDDEN, NOT_FOUND, UNAVAILABLE, Latest, LatestMany
from ticklake.query.api.responses import OrjsonResponse
from ticklake.query.latest_mirror import latest_body, latest_item

router = APIRouter(prefix="/latest", tags=["latest"], responses={**AUTH, **FORBIDDEN})


@router.get("", response_model=LatestMany, responses=UNAVAILABLE)
async def latest_many(
    lookups: LookupsDep,
    symbols: SymbolList,
) -> Response:
    """Latest ticks of several symbols; symbols found nowhere are listed in ``missing``."""
    found, missing = await lookups.latest_many(symbols)
    return OrjsonResponse(
        {
            "ticks": [latest_item(s, row, src) for s, row, src in found],
            "missing": missing,
        }
    )


@router.get("/{symbol:path}", response_model=Latest, responses={**NOT_FOUND, **UNAVAILABLE})
async def latest_one(symbol: Symbol, lookups: LookupsDep) -> Response:
    """The newest tick of one symbol. ``source`` says whether Redis or the lake answered."""
    row, source = await lookups.latest(symbol)
    # the same bytes the fast path (api/fast_latest.py) sends for a mirrored row
    return Response(latest_body(symbol, row, source), media_type="application/json")
