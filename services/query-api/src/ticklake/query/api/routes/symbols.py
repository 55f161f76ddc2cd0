"""``/symbols``: every symbol ingest has seen."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from ticklake.query.api.deps import CallerDep, LookupsDep
from ticklake.query.api.models import AUTH, UNAVAILABLE, Symbols
from ticklake.query.api.responses import OrjsonResponse

router = APIRouter(prefix="/symbols", tags=["symbols"], responses=AUTH)


@router.get("", response_model=Symbols, responses=UNAVAILABLE)
async def list_symbols(lookups: LookupsDep, caller: CallerDep) -> Response:
    """Known symbols the caller may read, sorted: Redis's set, or the lake's when Redis is
    down or empty."""
    found, source = await lookups.symbols()
    if not caller.entitlements.everything:
        found = [s for s in found if caller.entitlements.allows(s)]
    return OrjsonResponse({"symbols": found, "source": source})
