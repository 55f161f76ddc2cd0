"""Response shapes, for OpenAPI (``/docs``) and the schemathesis contract test."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Tick(BaseModel):
    """One tick with the lake's column names; feature columns follow as extra keys."""

    model_config = ConfigDict(extra="allow")

    symbol: str
    ts_ns: int = Field(description="Event time, UTC nanoseconds since the epoch.")
    timestamp: str | None = Field(None, description="Event time as ISO-8601 UTC.")
    price: float
    size: float
    exchange: str | None = None
    seq: int | None = None
    bid: float | None = None
    ask: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    kafka_partition: int | None = None
    kafka_offset: int | None = None
    ingest_ns: int | None = Field(None, description="When ingest handled it, UTC ns.")


class Latest(BaseModel):
    symbol: str
    source: Literal["redis", "lake"] = Field(description="Which store answered.")
    tick: Tick


class LatestMany(BaseModel):
    ticks: list[Latest]
    missing: list[str] = Field(description="Requested symbols found nowhere.")


class Symbols(BaseModel):
    symbols: list[str]
    source: Literal["redis", "lake"]


class TicksPage(BaseModel):
    symbol: str
    start_ns: int
    end_ns: int
    count: int
    next_cursor: str | None = Field(
        description="Pass as cursor= to get the next page; null on the last page."
    )
    ticks: list[Tick]


class Bar(BaseModel):
    start_ns: int = Field(description="Bar start, UTC ns.")
    start: str = Field(description="Bar start, ISO-8601 UTC.")
    open: float
    high: float
    low: float
    close: float
    volume: float
    notional: float = Field(description="Sum of price * size.")
    vwap: float | None = Field(description="notional / volume; null when volume is 0.")
    tick_count: int


class Bars(BaseModel):
    symbol: str
    interval: Literal["1s", "1m", "5m", "1h"]
    start_ns: int
    end_ns: int
    source: str = Field(description="Lake dataset the bars were computed from.")
    bars: list[Bar]


class AsOf(BaseModel):
    symbol: str
    ts_ns: int = Field(description="The requested time, UTC ns.")
    source: Literal["redis", "lake"] | None
    version: int | None = Field(
        None, description="The ticks table version asked for (time travel); null: now."
    )
    tick: Tick | None = Field(description="Last tick at or before ts; null if none.")


class AsOfMany(BaseModel):
    ts_ns: int
    results: list[AsOf]
    missing: list[str] = Field(description="Requested symbols found nowhere.")


class Health(BaseModel):
    status: Literal["ok"]
    version: str = Field(description="Version of the running ticklake-query-api distribution.")


class Ready(BaseModel):
    status: Literal["ready", "degraded", "unready"]
    redis: bool
    lake: bool
    stream: bool = Field(description="Subscribed to the Redis tick channel.")
    stream_error: str | None = Field(
        None, description="Present when the stream hub's task died (then unready)."
    )


class ErrorMessage(BaseModel):
    detail: str


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorMessage, "description": "Unknown symbol."}
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorMessage, "description": "The lake could not be read."}
}


class Forbidden(BaseModel):
    detail: str
    symbols: list[str] = Field(description="The symbols asked for that the key may not read.")


AUTH: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorMessage,
        "description": "No API key, or an unknown or revoked one (authentication on).",
    },
    429: {
        "model": ErrorMessage,
        "description": "The key is over its request rate.",
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before the next request.",
                "schema": {"type": "integer"},
            }
        },
    },
}
"""Answers of every data route while authentication is on (docs/security.md)."""
FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": Forbidden, "description": "The key may not read these symbols."}
}
