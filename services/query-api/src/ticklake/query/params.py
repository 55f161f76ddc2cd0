"""Parse and check request parameters; every failure names the parameter.

Raising :class:`InvalidParameter` turns into a 422 with FastAPI's usual body
(``{"detail": [{"loc": ["query", "<name>"], "msg": ...}]}``), so hand-checked
parameters look exactly like the ones FastAPI checks itself.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Final, Literal

from ticklake.core.tick import MAX_TS_NS, MIN_TS_NS, SYMBOL_PATTERN

NS_PER_S: Final = 1_000_000_000

Interval = Literal["1s", "1m", "5m", "1h"]
INTERVAL_NS: Final[dict[str, int]] = {
    "1s": NS_PER_S,
    "1m": 60 * NS_PER_S,
    "5m": 300 * NS_PER_S,
    "1h": 3_600 * NS_PER_S,
}
"""Bar width of each interval, in nanoseconds."""

MAX_SYMBOLS_PER_REQUEST: Final = 200
"""Cap on ``symbols=`` lists (each symbol costs a Redis or lake lookup)."""


class InvalidParameter(ValueError):
    """A request parameter is malformed or out of bounds (HTTP 422)."""

    def __init__(self, name: str, message: str, *, location: str = "query") -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.location = location


_FRACTION: Final = re.compile(r"\.(\d+)")
_DIGITS: Final = re.compile(r"\d{1,19}")


def parse_time(name: str, text: str) -> int:
    """A time parameter as UTC nanoseconds since the epoch.

    Accepts ``now``, an integer count of nanoseconds since the epoch, or an
    ISO-8601 time (``2025-01-02T14:30:00.123456789Z``, ``2025-01-02``); an
    ISO time without an offset is taken as UTC. Digits past microseconds are
    kept. Must lie in [2000-01-01, 2100-01-01), the range ticks may have.
    """
    raw = text.strip()
    if raw == "":
        raise InvalidParameter(name, "empty time; give ISO-8601 or nanoseconds since the epoch")
    if raw.lower() == "now":
        return time.time_ns()
    if _DIGITS.fullmatch(raw):
        value = int(raw)
    else:
        value = _parse_iso(name, raw)
    if not MIN_TS_NS <= value < MAX_TS_NS:
        raise InvalidParameter(
            name,
            f"{text!r} is outside [2000-01-01, 2100-01-01); integers are nanoseconds since "
            "the epoch, not seconds or milliseconds",
        )
    return value


def _parse_iso(name: str, raw: str) -> int:
    frac_ns = 0
    body = raw
    match = _FRACTION.search(raw)
    if match is not None:
        digits = match.group(1)
        frac_ns = int(digits[:9].ljust(9, "0"))
        body = raw[: match.start()] + raw[match.end() :]
    try:
        when = datetime.fromisoformat(body)
    except ValueError:
        raise InvalidParameter(
            name, f"{raw!r} is not ISO-8601 (e.g. 2025-01-02T14:30:00Z) nor nanoseconds"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        seconds = int(when.timestamp())
    except (OverflowError, ValueError):
        raise InvalidParameter(name, f"{raw!r} is out of range") from None
    # The fraction was cut out of ``body`` above, so ``seconds`` is exact.
    return seconds * NS_PER_S + frac_ns


SYMBOL_ANY_CASE: Final = re.compile(SYMBOL_PATTERN.pattern.replace("A-Z", "A-Za-z"))
"""What a symbol parameter may be: the tick contract's symbol shape in any case."""
SYMBOL_PARAM_PATTERN: Final = f"^{SYMBOL_ANY_CASE.pattern}$"
"""The same, anchored, for OpenAPI (a client sees exactly what is accepted)."""
SYMBOL_LIST_PATTERN: Final = (
    f"^{SYMBOL_ANY_CASE.pattern}(,{SYMBOL_ANY_CASE.pattern}){{0,{MAX_SYMBOLS_PER_REQUEST - 1}}}$"
)
"""``symbols=`` lists: comma-separated, no spaces, at most :data:`MAX_SYMBOLS_PER_REQUEST`."""


def parse_symbol(text: str, *, name: str = "symbol", location: str = "path") -> str:
    """A symbol parameter, upper-cased; 422 unless it has the shape ticks allow."""
    if SYMBOL_ANY_CASE.fullmatch(text) is None:
        raise InvalidParameter(
            name,
            f"{text!r} is not a symbol: 1-20 of A-Z 0-9 . - / _ ^ = starting with a letter "
            "or digit",
            location=location,
        )
    return text.upper()


def parse_symbol_list(text: str, *, name: str = "symbols") -> list[str]:
    """``AAPL,msft`` -> ``["AAPL", "MSFT"]``: upper-cased, de-duplicated, order kept."""
    parts = text.split(",")
    if len(parts) > MAX_SYMBOLS_PER_REQUEST:
        raise InvalidParameter(
            name, f"{len(parts)} symbols; at most {MAX_SYMBOLS_PER_REQUEST} per request"
        )
    seen: dict[str, None] = {}
    for part in parts:
        seen.setdefault(parse_symbol(part, name=name, location="query"), None)
    return list(seen)


def check_limit(limit: int, max_rows: int) -> int:
    if limit < 1:
        raise InvalidParameter("limit", f"{limit} must be >= 1")
    if limit > max_rows:
        raise InvalidParameter("limit", f"{limit} is above the cap of {max_rows} rows per page")
    return limit


def time_window(
    start: str | None,
    end: str | None,
    *,
    default_span_ns: int,
    max_span_ns: int,
    now_ns: int | None = None,
) -> tuple[int, int]:
    """``[start, end)`` in ns from optional parameters; end defaults to now.

    A missing start is ``end - default_span_ns``. The window must be non-empty
    and at most ``max_span_ns`` long.
    """
    end_ns = parse_time("end", end) if end is not None else (now_ns or time.time_ns())
    start_ns = (
        parse_time("start", start)
        if start is not None
        else max(end_ns - default_span_ns, MIN_TS_NS)
    )
    if start_ns >= end_ns:
        raise InvalidParameter("start", f"start ({start_ns} ns) must be before end ({end_ns} ns)")
    if end_ns - start_ns > max_span_ns:
        raise InvalidParameter(
            "end",
            f"window of {(end_ns - start_ns) / NS_PER_S:.0f} s is above the cap of "
            f"{max_span_ns / NS_PER_S:.0f} s per request; page through smaller windows",
        )
    return start_ns, end_ns


def iso_from_ns(ts_ns: int) -> str:
    """UTC ISO-8601 with all nine fraction digits: ``2025-01-02T14:30:00.123456789Z``."""
    seconds, frac = divmod(ts_ns, NS_PER_S)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{frac:09d}Z"
