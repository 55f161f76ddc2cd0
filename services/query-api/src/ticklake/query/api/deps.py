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

# The dependencies are ``async def`` although none awaits anything: FastAPI runs a
# plain ``def`` dependency in a worker thread, a thread hop per dependency and request
# for what is a few attribute reads (a profile of /latest showed the hops).


def _runtime(request: Request) -> QueryRuntime:
    runtime: QueryRuntime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> QueryRuntime:
    return _runtime(request)


async def get_lookups(request: Request) -> Lookups:
    return _runtime(request).lookups


async def get_settings(request: Request) -> QuerySettings:
    return _runtime(request).settings


async def get_caller(request: Request) -> Caller:
    return caller_of(request.scope)


def entitled(caller: Caller, symbols: list[str]) -> list[str]:
    """``symbols`` if the caller may read them all, else 403 naming those it may not."""
    denied = caller.entitlements.denied(symbols)
    if denied:
        raise NotEntitled(caller.key_id, denied)
    return symbols


async def symbol_from_path(
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
    return entitled(caller_of(request.scope), [parse_symbol(symbol)])[0]


async def symbols_from_query(
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
    return entitled(caller_of(request.scope), parse_symbol_list(symbols))


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
