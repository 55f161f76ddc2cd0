"""Shared by the row-returning routes: the ``format=`` parameter and non-JSON bodies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Query
from starlette.responses import Response

from ticklake.query.formats import MEDIA_TYPES, OutputFormat, render_table, rows_to_table

FormatParam = Annotated[
    OutputFormat | None,
    Query(
        description=(
            "json (default), csv, parquet or arrow (IPC stream). Without it the Accept "
            "header decides."
        )
    ),
]

TABLE_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            MEDIA_TYPES[fmt]: {"schema": {"type": "string", "format": "binary"}}
            for fmt in (OutputFormat.CSV, OutputFormat.PARQUET, OutputFormat.ARROW)
        }
    }
}
"""OpenAPI: the non-JSON bodies a row route may return."""


def table_response(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    fmt: OutputFormat,
    headers: dict[str, str],
) -> Response:
    body = render_table(rows_to_table(rows, columns), fmt)
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=headers)
