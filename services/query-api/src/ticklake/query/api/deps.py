"""Dependencies as ``Annotated`` aliases: a handler names what it needs by type."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from ticklake.query.lookups import Lookups
from ticklake.query.params import (
    SYMBOL_LIST_PATTERN,
    SYMBOL_PARAM_PATTERN,
    InvalidParameter,
    parse_symbol,
)
from ticklake.query.runtime import QueryRuntime
from ticklake.query.settings import QuerySettings


def get_runtime(request: Request) -> QueryRuntime:
    runtime: QueryRuntime = request.app.state.runtime
    return runtime


def get_lookups(request: Request) -> Lookups:
    return get_runtime(request).lookups


def get_settings(request: Request) -> QuerySettings:
    return get_runtime(request).settings


def symbol_from_path(
    symbol: Annotated[
        str,
        Path(
            description="Ticker, 1-20 of A-Z 0-9 . - / _ ^ = (case-insensitive).",
            examples=["AAPL"],
            pattern=SYMBOL_PARAM_PATTERN,
        ),
    ],
) -> str:
    return parse_symbol(symbol)


Runtime = Annotated[QueryRuntime, Depends(get_runtime)]
LookupsDep = Annotated[Lookups, Depends(get_lookups)]
SettingsDep = Annotated[QuerySettings, Depends(get_settings)]
Symbol = Annotated[str, Depends(symbol_from_path)]
SymbolList = Annotated[
    str,
    Query(
        description="Comma-separated symbols (no spaces, at most 200), e.g. AAPL,MSFT.",
        pattern=SYMBOL_LIST_PATTERN,
        examples=["AAPL,MSFT"],
    ),
]
OptionalSymbolList = Annotated[
    str | None,
    Query(
        description="Comma-separated symbols (no spaces, at most 200); all when omitted.",
        pattern=SYMBOL_LIST_PATTERN,
    ),
]

__all__ = [
    "InvalidParameter",
    "LookupsDep",
    "OptionalSymbolList",
    "Runtime",
    "SettingsDep",
    "Symbol",
    "SymbolList",
]
