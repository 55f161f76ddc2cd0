"""``/symbols``: every symbol ingest has seen."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from ticklake.query.api.deps import LookupsDep
from ticklake.query.api.models import UNAVAILABLE, Symbols
from ticklake.query.api.responses import OrjsonResponse

router = APIRouter(prefix="/symbols", tags=["symbols"])


@router.get("", response_model=Symbols, responses=UNAVAILABLE)
async def list_symbols(lookups: LookupsDep) -> Response:
    """Known symbols, sorted: Redis's set, or the lake's when Redis is down or empty."""
    found, source = await lookups.symbols()
    return OrjsonResponse({"symbols": found, "source": source})
