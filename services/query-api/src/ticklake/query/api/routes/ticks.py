"""``/ticks/{symbol}``: history from the lake merged with the Redis tail, paginated."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ticklake.query.api.deps import LookupsDep, SettingsDep, Symbol
from ticklake.query.api.models import AUTH, FORBIDDEN, NOT_FOUND, UNAVAILABLE, TicksPage
from ticklake.query.api.responses import OrjsonResponse
from ticklake.query.api.routes._tables import TABLE_CONTENT, FormatParam, table_response
from ticklake.query.cursor import decode_cursor
from ticklake.query.formats import OutputFormat, negotiate
from ticklake.query.params import NS_PER_S, check_limit, time_window
from ticklake.query.tick_rows import BASE_COLUMNS

router = APIRouter(prefix="/ticks", tags=["ticks"], responses={**AUTH, **FORBIDDEN})

TIME_HELP = "ISO-8601 (UTC if no offset), integer ns since the epoch, or 'now'."


@router.get(
    "/{symbol:path}",
    response_model=TicksPage,
    responses={**TABLE_CONTENT, **NOT_FOUND, **UNAVAILABLE},
)
async def tick_history(
    request: Request,
    symbol: Symbol,
    lookups: LookupsDep,
    settings: SettingsDep,
    start: Annotated[str | None, Query(description=f"Inclusive start. {TIME_HELP}")] = None,
    end: Annotated[
        str | None, Query(description=f"Exclusive end (default now). {TIME_HELP}")
    ] = None,
    limit: Annotated[int | None, Query(ge=1, description="Rows per page (capped).")] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    format: FormatParam = None,
) -> Response:
    """Ticks of ``symbol`` in ``[start, end)``, oldest first.

    Rows come from the lake and from the Redis recent-ticks tail (ticks not
    flushed to Parquet yet), de-duplicated by Kafka position. For CSV, Parquet
    and Arrow the next page's cursor is in the ``X-Next-Cursor`` header.
    """
    start_ns, end_ns = time_window(
        start,
        end,
        default_span_ns=int(settings.default_tick_span_s * NS_PER_S),
        max_span_ns=int(settings.max_tick_span_s * NS_PER_S),
    )
    page_size = check_limit(
        limit if limit is not None else settings.default_rows, settings.max_rows
    )
    after = decode_cursor(cursor) if cursor is not None else None
    fmt = negotiate(format, request.headers.get("accept"))
    page = await lookups.ticks(symbol, start_ns, end_ns, after, page_size)
    if fmt is OutputFormat.JSON:
        return OrjsonResponse(
            {
                "symbol": symbol,
                "start_ns": start_ns,
                "end_ns": end_ns,
                "count": len(page.rows),
                "next_cursor": page.next_cursor,
                "ticks": page.rows,
            }
        )
    headers = {"X-Next-Cursor": page.next_cursor} if page.next_cursor else {}
    return table_response(page.rows, BASE_COLUMNS, fmt, headers)
