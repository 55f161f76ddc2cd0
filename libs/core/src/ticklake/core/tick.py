"""The tick contract: one typed schema, one encoder and one decoder.

Wire format (schema version 1) is a JSON object::

    {"v": 1, "symbol": "AAPL", "ts_ns": 1735828200123456000, "price": 189.1,
     "size": 100.0, "exchange": "XNAS", "seq": 42,
     "bid": 189.09, "ask": 189.11, "bid_size": 300.0, "ask_size": 200.0}

``bid``/``ask``/``bid_size``/``ask_size`` are optional (absent or ``null``).
The decoder also accepts the legacy shape existing feeds send::

    {"symbol": "AAPL", "price": 189.1, "size": 100, "exchange": "XNAS",
     "ts": "2025-01-02T14:30:00.123456+00:00"}

which has an ISO-8601 time and no sequence number (``seq`` is then ``None``).

Prototype-era producers are accepted unchanged (``docs/from-the-prototype.md``):
without ``ts_ns``, the time may be ``ts`` or ``timestamp``, either ISO-8601
with ``Z`` or an offset, or an epoch number (or numeric string) whose unit is
told by its magnitude (:func:`epoch_to_ns`); and a few field aliases a
migrating user would send are read (:data:`ALIASES`). Two names of one field
with different values are rejected (``conflicting_fields``), and so is an
epoch number no unit places in [2000, 2100) (``ambiguous_timestamp``).

Decoding is msgspec (typed, C speed) followed by range checks written out as
plain comparisons: the whole path stays around a microsecond per tick, less when
:func:`decode_ticks` takes a batch in one msgspec call (``bench/bench_decode.py``).
Every rejection is a :class:`TickDecodeError` whose :class:`DecodeReason` names the
problem.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

import msgspec

from ticklake.core.errors import DecodeReason, TickDecodeError

SCHEMA_VERSION: Final = 1
SUPPORTED_VERSIONS: Final = frozenset({1})

MIN_TS_NS: Final = 946_684_800_000_000_000
"""2000-01-01T00:00:00Z. Earlier event times are rejected as out of range."""
MAX_TS_NS: Final = 4_102_444_800_000_000_000
"""2100-01-01T00:00:00Z. Later event times are rejected as out of range."""

SYMBOL_PATTERN: Final = re.compile(r"[A-Z0-9][A-Z0-9.\-/_^=]{0,19}")
"""Upper-case letters and digits, then a few separators used by real tickers
(``BRK.B``, ``BTC-USD``, ``EUR/USD``, ``ES=F``), 1-20 characters. A leading
separator is refused, so index names are sent as ``SPX``, not ``^SPX``."""
EXCHANGE_PATTERN: Final = re.compile(r"[A-Z0-9_]{1,12}")


class Tick(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One market event for one symbol.

    ``gc=False``: a tick holds only numbers and strings, so it can never be part of a
    reference cycle; untracked, the millions decoded per minute cost the garbage
    collector nothing (and decoding is faster).

    Units: ``ts_ns`` is UTC nanoseconds since the epoch; ``price``/``bid``/``ask``
    are in the instrument's quote currency; sizes are in units (shares, coins).
    ``seq`` increases by one per symbol at the source; ``None`` for legacy feeds.
    """

    symbol: str
    ts_ns: int
    price: float
    size: float
    exchange: str
    seq: int | None = None
    bid: float | None = None
    ask: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    v: int = SCHEMA_VERSION


class _LooseTick(msgspec.Struct, frozen=True):
    """Every name a producer may use; resolved to a :class:`Tick` by :func:`_from_loose`."""

    symbol: str | None = None
    sym: str | None = None
    ticker: str | None = None
    price: float | None = None
    last: float | None = None
    size: float | None = None
    qty: float | None = None
    quantity: float | None = None
    exchange: str | None = None
    ts_ns: int | None = None
    ts: str | int | float | None = None
    timestamp: str | int | float | None = None
    seq: int | None = None
    bid: float | None = None
    ask: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    v: int = SCHEMA_VERSION


ALIASES: Final = {
    "symbol": ("symbol", "sym", "ticker"),
    "price": ("price", "last"),
    "size": ("size", "qty", "quantity"),
    "time": ("ts_ns", "ts", "timestamp"),
}
"""Names accepted for a field, canonical first. Only names with one meaning are here:
``volume`` is not (in most feeds it is the day's running volume, not the trade size)."""

EPOCH_UNITS: Final = (
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
)
"""Units an epoch number may be in. Each unit's valid range, [2000, 2100) in that unit,
is at least 200 times apart from the next, so a valid time fits exactly one."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Tick)
_loose_decoder = msgspec.json.Decoder(_LooseTick)

# Symbols seen before skip the regex: a feed has few distinct symbols and the
# regex is the single most expensive check. Bounded so hostile input cannot
# grow it without limit.
_KNOWN_SYMBOLS: dict[str, str] = {}
_KNOWN_SYMBOLS_MAX: Final = 100_000
_KNOWN_EXCHANGES: dict[str, str] = {}
_KNOWN_EXCHANGES_MAX: Final = 10_000
_INF: Final = math.inf


def encode_tick(tick: Tick) -> bytes:
    """Serialise a tick to its wire bytes (JSON, schema version 1)."""
    return _encoder.encode(tick)


def encode_ticks(ticks: list[Tick]) -> list[bytes]:
    """Serialise many ticks; same bytes as calling :func:`encode_tick` on each."""
    enc = _encoder.encode
    return [enc(t) for t in ticks]


def decode_tick(payload: bytes | bytearray | memoryview) -> Tick:
    """Decode, validate and normalise one payload (canonical or legacy shape).

    Normalising upper-cases the symbol and the exchange. Raises
    :class:`TickDecodeError` for anything that is not a valid tick.
    """
    if not payload:
        raise TickDecodeError(DecodeReason.EMPTY_PAYLOAD, "payload is empty")
    raw = payload if type(payload) is bytes else bytes(payload)
    if b'"ts_ns"' not in raw:
        return _decode_loose(raw)
    try:
        tick = _decoder.decode(raw)
    except msgspec.ValidationError as e:
        error = _classify_validation_error(str(e))
        if error.reason is DecodeReason.MISSING_FIELD:
            # canonical time with an aliased name elsewhere (``sym``, ``qty``, ...)
            return _decode_loose(raw)
        raise error from e
    except msgspec.DecodeError as e:
        raise _classify_decode_error(raw, e) from e
    return _validated(tick)


def decode_ticks(
    payloads: Sequence[bytes | bytearray | memoryview | None],
) -> list[Tick | TickDecodeError]:
    """Decode and validate many payloads: each one's :class:`Tick`, or the error of
    :func:`decode_tick` for it, in order. Same results as calling that on each.

    A batch of canonical ticks is parsed by one msgspec call over the payloads joined
    by newlines (their count must come back, so a payload can neither hide inside
    another nor split in two), which saves most of a call's overhead per tick. Any
    payload the batch cannot take (not canonical, not JSON, holding a newline, empty)
    sends the whole batch through :func:`decode_tick` one by one, and so to its
    precise errors.
    """
    count = len(payloads)
    if count > 1:
        try:
            joined = b"\n".join(payloads)  # type: ignore[arg-type]  # None: TypeError
        except TypeError:
            joined = b""
        if joined.count(b"\n") == count - 1:
            try:
                ticks = _decoder.decode_lines(joined)
            except msgspec.DecodeError:  # ValidationError too
                ticks = []
            if len(ticks) == count:
                results: list[Tick | TickDecodeError] = []
                append = results.append
                for tick in ticks:  # a loop, not a call per tick: this is the hot path
                    try:
                        append(_validated(tick))
                    except TickDecodeError as e:
                        append(e)
                return results
    return [_decoded_or_error(payload) for payload in payloads]


def _decoded_or_error(payload: bytes | bytearray | memoryview | None) -> Tick | TickDecodeError:
    try:
        return decode_tick(payload or b"")
    except TickDecodeError as e:
        return e


def _decode_loose(raw: bytes) -> Tick:
    try:
        loose = _loose_decoder.decode(raw)
    except msgspec.ValidationError as e:
        raise _classify_validation_error(str(e)) from e
    except msgspec.DecodeError as e:
        raise _classify_decode_error(raw, e) from e
    return _validated(_from_loose(loose))


def _one_of(
    loose: _LooseTick, field: str, convert: Callable[[str, Any], Any] = lambda _, v: v
) -> Any:
    """The value given under one of ``field``'s names, converted; several names must agree."""
    found = [
        (n, convert(n, getattr(loose, n))) for n in ALIASES[field] if getattr(loose, n) is not None
    ]
    if not found:
        names = " or ".join(repr(n) for n in ALIASES[field])
        raise TickDecodeError(DecodeReason.MISSING_FIELD, f"required field {names} is missing")
    name, value = found[0]
    for other, other_value in found[1:]:
        if other_value != value:
            raise TickDecodeError(
                DecodeReason.CONFLICTING_FIELDS,
                f"{name!r} ({value!r}) and {other!r} ({other_value!r}) disagree",
            )
    return value


def _from_loose(loose: _LooseTick) -> Tick:
    if loose.exchange is None:
        raise TickDecodeError(DecodeReason.MISSING_FIELD, "required field 'exchange' is missing")
    symbol = _one_of(loose, "symbol")
    price = _one_of(loose, "price")
    size = _one_of(loose, "size")
    # ts_ns keeps its one unit (ns); only ts/timestamp are read by magnitude
    ts_ns = _one_of(loose, "time", lambda name, v: v if name == "ts_ns" else time_to_ns(v))
    return Tick(
        symbol=symbol,
        ts_ns=ts_ns,
        price=price,
        size=size,
        exchange=loose.exchange,
        seq=loose.seq,
        bid=loose.bid,
        ask=loose.ask,
        bid_size=loose.bid_size,
        ask_size=loose.ask_size,
        v=loose.v,
    )


def time_to_ns(value: str | int | float) -> int:
    """A ``ts``/``timestamp`` value as UTC ns: ISO-8601 text, or an epoch number/string."""
    if isinstance(value, str):
        text = value.strip()
        try:
            number: int | float = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return parse_iso_ns(text)
        return epoch_to_ns(number)
    return epoch_to_ns(value)


def epoch_to_ns(value: int | float) -> int:
    """Epoch seconds, ms, µs or ns (told by magnitude) as UTC nanoseconds.

    The unit is the one that puts the value in [2000-01-01, 2100-01-01); none
    does for, e.g., ``5e10`` (year 3554 in seconds, 1971 in ms): rejected as
    ``ambiguous_timestamp`` rather than guessed.
    """
    if isinstance(value, bool) or not math.isfinite(value):
        raise TickDecodeError(DecodeReason.BAD_TIMESTAMP, f"time {value!r} is not a finite number")
    for _unit, ns_per_unit in EPOCH_UNITS:
        if MIN_TS_NS <= value * ns_per_unit < MAX_TS_NS:
            if isinstance(value, int):
                return value * ns_per_unit
            # floats: whole units exactly, the fraction rounded to the nearest ns
            whole = math.floor(value)
            return int(whole) * ns_per_unit + round((value - whole) * ns_per_unit)
    raise TickDecodeError(
        DecodeReason.AMBIGUOUS_TIMESTAMP,
        f"epoch time {value!r} is in [2000, 2100) in none of s, ms, us, ns",
    )


def parse_iso_ns(text: str) -> int:
    """Parse an ISO-8601 time with an explicit offset into UTC nanoseconds.

    Keeps sub-microsecond digits (``.123456789``) that :mod:`datetime` drops.
    """
    frac_ns = 0
    body = text
    match = _FRACTION.search(text)
    if match is not None:
        digits = match.group(1)
        frac_ns = int(digits[:9].ljust(9, "0"))
        body = text[: match.start()] + text[match.end() :]
    try:
        when = datetime.fromisoformat(body)
    except ValueError as e:
        raise TickDecodeError(DecodeReason.BAD_TIMESTAMP, f"ts {text!r} is not ISO-8601") from e
    if when.tzinfo is None or when.utcoffset() is None:
        raise TickDecodeError(
            DecodeReason.NAIVE_TIMESTAMP, f"ts {text!r} has no UTC offset; add +00:00 or Z"
        )
    seconds = int(when.timestamp())
    return seconds * 1_000_000_000 + frac_ns


_FRACTION: Final = re.compile(r"\.(\d+)(?=(?:[+-]\d|Z|z)|$)")


def _validated(tick: Tick) -> Tick:
    """Range checks msgspec's types cannot express; returns the normalised tick.

    The common case, a valid tick, is one chained comparison per field; only a tick
    that fails one goes through :func:`_reject`, which finds the first failing check
    and names it. Both test the same conditions (NaN fails every comparison).
    """
    if tick.v != SCHEMA_VERSION and tick.v not in SUPPORTED_VERSIONS:
        raise TickDecodeError(
            DecodeReason.UNSUPPORTED_VERSION,
            f"schema version {tick.v} is not one of {sorted(SUPPORTED_VERSIONS)}",
        )
    symbol = _KNOWN_SYMBOLS.get(tick.symbol)
    if symbol is None:
        symbol = _normalise_symbol(tick.symbol)
    seq = tick.seq
    if not (
        0.0 < tick.price < _INF
        and 0.0 <= tick.size < _INF
        and MIN_TS_NS <= tick.ts_ns < MAX_TS_NS
        and (seq is None or seq >= 0)
    ):
        _reject(tick)
    bid, ask, bid_size, ask_size = tick.bid, tick.ask, tick.bid_size, tick.ask_size
    if (
        bid is not None or ask is not None or bid_size is not None or ask_size is not None
    ) and not (
        (bid is None or 0.0 < bid < _INF)
        and (ask is None or 0.0 < ask < _INF)
        and (bid_size is None or 0.0 <= bid_size < _INF)
        and (ask_size is None or 0.0 <= ask_size < _INF)
        and (bid is None or ask is None or bid <= ask)
    ):
        _check_book(bid, ask, bid_size, ask_size)
    exchange = _KNOWN_EXCHANGES.get(tick.exchange)
    if exchange is None:
        exchange = _normalise_exchange(tick.exchange)
    # compared by value: the memos hand back equal but distinct str objects, and a
    # rebuilt struct per tick would cost more than the comparison
    if symbol != tick.symbol or exchange != tick.exchange:
        return msgspec.structs.replace(tick, symbol=symbol, exchange=exchange)
    return tick


def _reject(tick: Tick) -> None:
    """Raise the error of the first core field check ``tick`` fails."""
    price = tick.price
    if not price > 0.0:  # also catches NaN
        if math.isnan(price):
            raise TickDecodeError(DecodeReason.NON_FINITE_NUMBER, "price is NaN")
        raise TickDecodeError(DecodeReason.NON_POSITIVE_PRICE, f"price {price} must be > 0")
    if price == math.inf:
        raise TickDecodeError(DecodeReason.NON_FINITE_NUMBER, "price is infinite")
    size = tick.size
    if not size >= 0.0 or size == math.inf:
        if size != size or size == math.inf:
            raise TickDecodeError(DecodeReason.NON_FINITE_NUMBER, f"size {size} is not finite")
        raise TickDecodeError(DecodeReason.NEGATIVE_SIZE, f"size {size} must be >= 0")
    ts_ns = tick.ts_ns
    if not MIN_TS_NS <= ts_ns < MAX_TS_NS:
        raise TickDecodeError(
            DecodeReason.TIMESTAMP_OUT_OF_RANGE,
            f"ts_ns {ts_ns} is outside [2000-01-01, 2100-01-01) UTC nanoseconds",
        )
    seq = tick.seq
    if seq is not None and seq < 0:
        raise TickDecodeError(DecodeReason.NEGATIVE_SEQUENCE, f"seq {seq} must be >= 0")


def _normalise_exchange(raw: str) -> str:
    exchange = raw
    if EXCHANGE_PATTERN.fullmatch(exchange) is None:
        exchange = raw.strip().upper()
        if EXCHANGE_PATTERN.fullmatch(exchange) is None:
            raise TickDecodeError(
                DecodeReason.BAD_EXCHANGE, f"exchange {raw!r} must match [A-Z0-9_]{{1,12}}"
            )
    if len(_KNOWN_EXCHANGES) < _KNOWN_EXCHANGES_MAX:
        _KNOWN_EXCHANGES[raw] = exchange
    return exchange


def _normalise_symbol(raw: str) -> str:
    upper = raw.strip().upper()
    if SYMBOL_PATTERN.fullmatch(upper) is None:
        raise TickDecodeError(
            DecodeReason.BAD_SYMBOL,
            f"symbol {raw!r} must be 1-20 of A-Z 0-9 . - / _ ^ = starting with a letter or digit",
        )
    if len(_KNOWN_SYMBOLS) < _KNOWN_SYMBOLS_MAX:
        _KNOWN_SYMBOLS[raw] = upper
    return upper


def _check_book(
    bid: float | None, ask: float | None, bid_size: float | None, ask_size: float | None
) -> None:
    for name, value in (("bid", bid), ("ask", ask)):
        if value is None:
            continue
        if not math.isfinite(value):
            raise TickDecodeError(DecodeReason.NON_FINITE_NUMBER, f"{name} {value} is not finite")
        if value <= 0.0:
            raise TickDecodeError(DecodeReason.NON_POSITIVE_QUOTE, f"{name} {value} must be > 0")
    for name, value in (("bid_size", bid_size), ("ask_size", ask_size)):
        if value is None:
            continue
        if not math.isfinite(value):
            raise TickDecodeError(DecodeReason.NON_FINITE_NUMBER, f"{name} {value} is not finite")
        if value < 0.0:
            raise TickDecodeError(DecodeReason.NEGATIVE_QUOTE_SIZE, f"{name} {value} must be >= 0")
    if bid is not None and ask is not None and bid > ask:
        raise TickDecodeError(DecodeReason.CROSSED_BOOK, f"bid {bid} is above ask {ask}")


_MISSING = re.compile(r"missing required field `([^`]+)`")


def _classify_validation_error(message: str) -> TickDecodeError:
    if message.startswith("Object missing required field"):
        m = _MISSING.search(message)
        field = m.group(1) if m else "?"
        return TickDecodeError(DecodeReason.MISSING_FIELD, f"required field {field!r} is missing")
    if message.startswith("Number out of range"):
        return TickDecodeError(DecodeReason.NON_FINITE_NUMBER, message)
    if message.startswith("Expected `object`"):
        return TickDecodeError(
            DecodeReason.NOT_AN_OBJECT, f"payload is not a JSON object ({message})"
        )
    return TickDecodeError(DecodeReason.WRONG_TYPE, message)


def _classify_decode_error(raw: bytes, error: msgspec.DecodeError) -> TickDecodeError:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return TickDecodeError(DecodeReason.NOT_UTF8, "payload is not valid UTF-8")
    return TickDecodeError(DecodeReason.BAD_JSON, f"payload is not valid JSON ({error})")


def tick_to_dict(tick: Tick) -> dict[str, Any]:
    """A plain dict of the tick's fields (for CSV/Parquet writers and tests)."""
    return msgspec.structs.asdict(tick)
