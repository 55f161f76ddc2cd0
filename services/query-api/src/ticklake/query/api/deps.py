"""Dependencies as ``Annotated`` aliases: a handler names what it needs by type."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from ticklake.query.auth.api_keys import Caller
from ticklake.query.auth.entitlements import NotEntitled
from ticklake.query.auth.gate import caller_of
from ticklake.query.lookups import Lookups
from ticklake.query.params import (
    SYMBOL_LIST_PATTERN,
    SYMBOL_PARAM_PATTERN,
    InvalidParameter,
    parse_symbol,
    parse_symbol_list,
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


def get_caller(request: Request) -> Caller:
    return caller_of(request.scope)


def entitled(caller: Caller, symbols: list[str]) -> list[str]:
    """``symbols`` if the caller may read them all, else 403 naming those it may not."""
    denied = caller.entitlements.denied(symbols)
    if denied:
        raise NotEntitled(caller.key_id, denied)
    return symbols


def symbol_from_path(
    request: Request,
    symbol: Annotated[
        str,
        Path(
            description="Ticker, 1-20 of A-Z 0-9 . - / _ ^ = (case-insensitive).",
            examples=["AAPL"],
            pattern=SYMBOL_PARAM_PATTERN,
        ),
    ],
) -> str:
    return entitled(get_caller(request), [parse_symbol(symbol)])[0]


def symbols_from_query(
    request: Request,
    symbols: Annotated[
        str,
        Query(
            description="Comma-separated symbols (no spaces, at most 200), e.g. AAPL,MSFT.",
            pattern=SYMBOL_LIST_PATTERN,
            examples=["AAPL,MSFT"],
        ),
    ],
) -> list[str]:
    return entitled(get_caller(request), parse_symbol_list(symbols))


Runtime = Annotated[QueryRuntime, Depends(get_runtime)]
LookupsDep = Annotated[Lookups, Depends(get_lookups)]
SettingsDep = Annotated[QuerySettings, Depends(get_settings)]
CallerDep = Annotated[Caller, Depends(get_caller)]
Symbol = Annotated[str, Depends(symbol_from_path)]
"""A path symbol, upper-cased, that the caller may read (else 422 or 403)."""
SymbolList = Annotated[list[str], Depends(symbols_from_query)]
"""``symbols=``, parsed, every one of which the caller may read (else 422 or 403)."""
OptionalSymbolList = Annotated[
    str | None,
    Query(
        description="Comma-separated symbols (no spaces, at most 200); all when omitted.",
        pattern=SYMBOL_LIST_PATTERN,
    ),
]

__all__ = [
    "CallerDep",
    "InvalidParameter",
    "LookupsDep",
    "OptionalSymbolList",
    "Runtime",
    "SettingsDep",
    "Symbol",
    "SymbolList",
]
