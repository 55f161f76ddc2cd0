"""``/bars/{symbol}``: OHLCV bars with VWAP and tick count."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ticklake.query.api.deps import LookupsDep, SettingsDep, Symbol
from ticklake.query.api.models import AUTH, FORBIDDEN, NOT_FOUND, UNAVAILABLE, Bars
from ticklake.query.api.responses import OrjsonResponse
from ticklake.query.api.routes._tables import TABLE_CONTENT, FormatParam, table_response
from ticklake.query.api.routes.ticks import TIME_HELP
from ticklake.query.formats import OutputFormat, negotiate
from ticklake.query.params import INTERVAL_NS, NS_PER_S, Interval, time_window

router = APIRouter(prefix="/bars", tags=["bars"], responses={**AUTH, **FORBIDDEN})

BAR_COLUMNS = (
    "start_ns", "start", "open", "high", "low", "close", "volume", "notional", "vwap", "tick_count",
)  # fmt: skip
DEFAULT_BAR_SPAN_NS = 86_400 * NS_PER_S


@router.get(
    "/{symbol:path}",
    response_model=Bars,
    responses={**TABLE_CONTENT, **NOT_FOUND, **UNAVAILABLE},
)
async def bars(
    request: Request,
    symbol: Symbol,
    lookups: LookupsDep,
    settings: SettingsDep,
    interval: Annotated[Interval, Query(description="Bar width.")] = "1m",
    start: Annotated[str | None, Query(description=f"Default end - 1 day. {TIME_HELP}")] = None,
    end: Annotated[
        str | None, Query(description=f"Exclusive end (default now). {TIME_HELP}")
    ] = None,
    format: FormatParam = None,
) -> Response:
    """Bars whose start lies in ``[start rounded down to the interval, end)``.

    Built from the bar datasets ingest writes (partial rows of one bar are
    merged), or from the ticks when there are none. The window may cover at
    most ``max_bars`` bars.
    """
    width_ns = INTERVAL_NS[interval]
    start_ns, end_ns = time_window(
        start,
        end,
        default_span_ns=DEFAULT_BAR_SPAN_NS,
        max_span_ns=settings.max_bars * width_ns,
    )
    fmt = negotiate(format, request.headers.get("accept"))
    rows, source = await lookups.bars(symbol, width_ns, start_ns, end_ns)
    if fmt is OutputFormat.JSON:
        return OrjsonResponse(
            {
                "symbol": symbol,
                "interval": interval,
                "start_ns": start_ns,
                "end_ns": end_ns,
                "source": source,
                "bars": rows,
            }
        )
    return table_response(rows, BAR_COLUMNS, fmt, {"X-Bars-Source": source})
