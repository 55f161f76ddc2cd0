"""The tick contract: round trips, the legacy shape, and typed rejections."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ticklake.core.errors import DecodeReason, TickDecodeError
from ticklake.core.tick import (
    MAX_TS_NS,
    MIN_TS_NS,
    Tick,
    decode_tick,
    decode_ticks,
    encode_tick,
    parse_iso_ns,
)

GOOD = (
    b'{"v":1,"symbol":"AAPL","ts_ns":1735828200123456789,"price":189.1,"size":100.0,'
    b'"exchange":"XNAS","seq":7,"bid":189.09,"ask":189.11,"bid_size":300.0,"ask_size":200.0}'
)


def _with(**changes: object) -> bytes:
    obj = msgspec.json.decode(GOOD)
    for key, value in changes.items():
        if value is _DROP:
            obj.pop(key)
        else:
            obj[key] = value
    return msgspec.json.encode(obj)


_DROP = object()


def test_canonical_payload_decodes_to_every_field() -> None:
    tick = decode_tick(GOOD)
    assert tick == Tick(
        symbol="AAPL",
        ts_ns=1735828200123456789,
        price=189.1,
        size=100.0,
        exchange="XNAS",
        seq=7,
        bid=189.09,
        ask=189.11,
        bid_size=300.0,
        ask_size=200.0,
    )


def test_legacy_shape_is_accepted_and_normalised() -> None:
    legacy = (
        b'{"symbol": "aapl", "price": 189.1, "size": 100, "exchange": "XNAS",'
        b' "ts": "2025-01-02T14:30:00.123456+00:00"}'
    )
    tick = decode_tick(legacy)
    assert tick.symbol == "AAPL"
    assert tick.ts_ns == 1_735_828_200_123_456_000
    assert tick.seq is None
    assert tick.size == 100.0
    assert tick.bid is None


def test_legacy_time_with_offset_is_converted_to_utc() -> None:
    assert parse_iso_ns("2025-01-02T15:30:00.5+01:00") == 1_735_828_200_500_000_000
    assert parse_iso_ns("2025-01-02T14:30:00.000000001Z") == 1_735_828_200_000_000_001


def test_lower_case_symbol_and_exchange_are_upper_cased() -> None:
    tick = decode_tick(_with(symbol="msft", exchange="xnas"))
    assert (tick.symbol, tick.exchange) == ("MSFT", "XNAS")


def test_optional_book_may_be_absent_or_null() -> None:
    absent = decode_tick(_with(bid=_DROP, ask=_DROP, bid_size=_DROP, ask_size=_DROP))
    null = decode_tick(_with(bid=None, ask=None, bid_size=None, ask_size=None))
    assert absent == null
    assert absent.bid is None and absent.ask_size is None


def test_unknown_fields_from_newer_writers_are_ignored() -> None:
    assert decode_tick(_with(venue_flags="X")) == decode_tick(GOOD)


MALFORMED: list[tuple[str, bytes, DecodeReason]] = [
    ("empty payload", b"", DecodeReason.EMPTY_PAYLOAD),
    ("not utf-8", b"\xff\xfe\x00garbage", DecodeReason.NOT_UTF8),
    ("truncated json", GOOD[:40], DecodeReason.BAD_JSON),
    ("plain text", b"hello world", DecodeReason.BAD_JSON),
    ("json array", b"[1, 2, 3]", DecodeReason.NOT_AN_OBJECT),
    ("json number", b"42", DecodeReason.NOT_AN_OBJECT),
    ("json null", b"null", DecodeReason.NOT_AN_OBJECT),
    ("missing price", _with(price=_DROP), DecodeReason.MISSING_FIELD),
    ("missing symbol", _with(symbol=_DROP), DecodeReason.MISSING_FIELD),
    ("missing exchange", _with(exchange=_DROP), DecodeReason.MISSING_FIELD),
    ("missing time", _with(ts_ns=_DROP), DecodeReason.MISSING_FIELD),
    ("price as string", _with(price="189.1"), DecodeReason.WRONG_TYPE),
    ("ts_ns as float", _with(ts_ns=1.5e18), DecodeReason.WRONG_TYPE),
    ("seq as string", _with(seq="7"), DecodeReason.WRONG_TYPE),
    ("symbol as number", _with(symbol=123), DecodeReason.WRONG_TYPE),
    ("negative price", _with(price=-1.0), DecodeReason.NON_POSITIVE_PRICE),
    ("zero price", _with(price=0.0), DecodeReason.NON_POSITIVE_PRICE),
    ("negative size", _with(size=-5.0), DecodeReason.NEGATIVE_SIZE),
    ("empty symbol", _with(symbol=""), DecodeReason.BAD_SYMBOL),
    ("symbol with space", _with(symbol="AA PL"), DecodeReason.BAD_SYMBOL),
    ("symbol too long", _with(symbol="A" * 21), DecodeReason.BAD_SYMBOL),
    ("symbol with emoji", _with(symbol="AAPL\U0001f680"), DecodeReason.BAD_SYMBOL),
    ("exchange with dash", _with(exchange="X-NAS"), DecodeReason.BAD_EXCHANGE),
    ("timestamp in seconds", _with(ts_ns=1_735_828_200), DecodeReason.TIMESTAMP_OUT_OF_RANGE),
    ("timestamp far future", _with(ts_ns=MAX_TS_NS), DecodeReason.TIMESTAMP_OUT_OF_RANGE),
    ("timestamp before 2000", _with(ts_ns=MIN_TS_NS - 1), DecodeReason.TIMESTAMP_OUT_OF_RANGE),
    ("negative sequence", _with(seq=-1), DecodeReason.NEGATIVE_SEQUENCE),
    ("crossed book", _with(bid=190.0, ask=189.0), DecodeReason.CROSSED_BOOK),
    ("zero bid", _with(bid=0.0), DecodeReason.NON_POSITIVE_QUOTE),
    ("negative ask size", _with(ask_size=-3.0), DecodeReason.NEGATIVE_QUOTE_SIZE),
    ("future schema version", _with(v=2), DecodeReason.UNSUPPORTED_VERSION),
    (
        "price overflows a double",
        GOOD.replace(b"189.1,", b"1e999,"),
        DecodeReason.NON_FINITE_NUMBER,
    ),
    ("nan price (non-standard json)", GOOD.replace(b"189.1,", b"NaN,"), DecodeReason.BAD_JSON),
    (
        "legacy with unparseable time",
        b'{"symbol":"AAPL","price":1.0,"size":1,"exchange":"XNAS","ts":"yesterday"}',
        DecodeReason.BAD_TIMESTAMP,
    ),
    (
        "legacy without utc offset",
        b'{"symbol":"AAPL","price":1.0,"size":1,"exchange":"XNAS","ts":"2025-01-02T14:30:00"}',
        DecodeReason.NAIVE_TIMESTAMP,
    ),
    (
        "legacy missing size",
        b'{"symbol":"AAPL","price":1.0,"exchange":"XNAS","ts":"2025-01-02T14:30:00Z"}',
        DecodeReason.MISSING_FIELD,
    ),
    (
        "legacy negative price",
        b'{"symbol":"AAPL","price":-1.0,"size":1,"exchange":"XNAS","ts":"2025-01-02T14:30:00Z"}',
        DecodeReason.NON_POSITIVE_PRICE,
    ),
]


@pytest.mark.parametrize(
    ("payload", "reason"), [(p, r) for _, p, r in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_malformed_payload_yields_typed_error_with_reason(
    payload: bytes, reason: DecodeReason
) -> None:
    with pytest.raises(TickDecodeError) as caught:
        decode_tick(payload)
    assert caught.value.reason is reason
    assert caught.value.detail, "the error must say what was wrong"
    assert str(caught.value).startswith(reason.value)


def test_there_are_at_least_twenty_kinds_of_malformed_payload() -> None:
    assert len({reason for _, _, reason in MALFORMED}) >= 17
    assert len(MALFORMED) >= 20


finite_prices = st.floats(min_value=1e-6, max_value=1e7, allow_nan=False, allow_infinity=False)
symbols = st.from_regex(r"[A-Z][A-Z0-9.]{0,7}", fullmatch=True)


@given(
    symbol=symbols,
    ts_ns=st.integers(MIN_TS_NS, MAX_TS_NS - 1),
    price=finite_prices,
    size=st.floats(0, 1e9, allow_nan=False),
    seq=st.integers(0, 2**62),
    spread=st.one_of(st.none(), st.floats(0, 10, allow_nan=False)),
)
def test_every_valid_tick_round_trips_exactly(
    symbol: str, ts_ns: int, price: float, size: float, seq: int, spread: float | None
) -> None:
    bid = None if spread is None else price
    ask = None if spread is None else price + spread
    tick = Tick(
        symbol=symbol, ts_ns=ts_ns, price=price, size=size, exchange="XNYS", seq=seq,
        bid=bid, ask=ask,
    )  # fmt: skip
    assert decode_tick(encode_tick(tick)) == tick


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_decoder(payload: bytes) -> None:
    try:
        tick = decode_tick(payload)
    except TickDecodeError as e:
        assert isinstance(e.reason, DecodeReason)
    else:
        assert tick.price > 0 and math.isfinite(tick.price)


# --- what prototype-era producers send ---------------------------------------------------

T_NS = 1_735_828_200_123_456_000  # 2025-01-02T14:30:00.123456Z
PROTOTYPE_BASE = '"symbol":"AAPL","price":189.1,"size":100,"exchange":"XNAS"'

PROTOTYPE: list[tuple[str, str, int]] = [
    ("ts iso with Z", '"ts":"2025-01-02T14:30:00.123456Z"', T_NS),
    ("ts iso with offset", '"ts":"2025-01-02T15:30:00.123456+01:00"', T_NS),
    ("timestamp iso with Z", '"timestamp":"2025-01-02T14:30:00.123456Z"', T_NS),
    ("timestamp iso nanoseconds", '"timestamp":"2025-01-02T14:30:00.123456789Z"', T_NS + 789),
    ("ts epoch seconds int", '"ts":1735828200', 1_735_828_200 * 10**9),
    ("ts epoch seconds float", '"ts":1735828200.5', 1_735_828_200_500_000_000),
    ("timestamp epoch ms", '"timestamp":1735828200123', 1_735_828_200_123_000_000),
    ("timestamp epoch us", '"timestamp":1735828200123456', T_NS),
    ("timestamp epoch ns", '"timestamp":1735828200123456000', T_NS),
    ("ts epoch ms as text", '"ts":"1735828200123"', 1_735_828_200_123_000_000),
    ("ts epoch s as text", '"ts":"1735828200.25"', 1_735_828_200_250_000_000),
    ("ts and timestamp agree", '"ts":1735828200123,"timestamp":"2025-01-02T14:30:00.123Z"',
     1_735_828_200_123_000_000),
]  # fmt: skip


@pytest.mark.parametrize(
    ("time_field", "ts_ns"), [(f, t) for _, f, t in PROTOTYPE], ids=[n for n, _, _ in PROTOTYPE]
)
def test_prototype_time_fields_and_formats_are_accepted(time_field: str, ts_ns: int) -> None:
    tick = decode_tick(f"{{{PROTOTYPE_BASE},{time_field}}}".encode())
    assert tick.ts_ns == ts_ns
    assert (tick.symbol, tick.price, tick.size, tick.exchange) == ("AAPL", 189.1, 100.0, "XNAS")
    assert tick.seq is None


ALIASED: list[tuple[str, str]] = [
    ("sym for symbol", '"sym":"aapl","price":189.1,"size":100'),
    ("ticker for symbol", '"ticker":"AAPL","price":189.1,"size":100'),
    ("last for price", '"symbol":"AAPL","last":189.1,"size":100'),
    ("qty for size", '"symbol":"AAPL","price":189.1,"qty":100'),
    ("quantity for size", '"symbol":"AAPL","price":189.1,"quantity":100'),
    ("both names, same value", '"symbol":"AAPL","sym":"AAPL","price":189.1,"size":100'),
]


@pytest.mark.parametrize("fields", [f for _, f in ALIASED], ids=[n for n, _ in ALIASED])
@pytest.mark.parametrize(
    "time_field", ['"ts":"2025-01-02T14:30:00Z"', '"ts_ns":1735828200000000000']
)
def test_field_aliases_give_the_same_tick(fields: str, time_field: str) -> None:
    tick = decode_tick(f'{{{fields},"exchange":"XNAS",{time_field}}}'.encode())
    assert tick == Tick(
        symbol="AAPL", ts_ns=1_735_828_200 * 10**9, price=189.1, size=100.0, exchange="XNAS"
    )


PROTOTYPE_REJECTED: list[tuple[str, str, DecodeReason]] = [
    ("epoch between units", '"ts":50000000000', DecodeReason.AMBIGUOUS_TIMESTAMP),
    ("epoch before 2000 in every unit", '"ts":12345', DecodeReason.AMBIGUOUS_TIMESTAMP),
    ("epoch zero", '"timestamp":0', DecodeReason.AMBIGUOUS_TIMESTAMP),
    ("negative epoch", '"timestamp":-1735828200', DecodeReason.AMBIGUOUS_TIMESTAMP),
    ("epoch past 2100 in ns", '"timestamp":9000000000000000000', DecodeReason.AMBIGUOUS_TIMESTAMP),
    ("iso without offset", '"timestamp":"2025-01-02T14:30:00"', DecodeReason.NAIVE_TIMESTAMP),
    ("words", '"timestamp":"yesterday"', DecodeReason.BAD_TIMESTAMP),
    ("boolean time", '"ts":true', DecodeReason.WRONG_TYPE),
    ("ts and timestamp disagree", '"ts":1735828200,"timestamp":1735828201',
     DecodeReason.CONFLICTING_FIELDS),
    ("no time at all", '"seq":1', DecodeReason.MISSING_FIELD),
]  # fmt: skip


@pytest.mark.parametrize(
    ("time_field", "reason"),
    [(f, r) for _, f, r in PROTOTYPE_REJECTED],
    ids=[n for n, _, _ in PROTOTYPE_REJECTED],
)
def test_prototype_times_that_cannot_be_told_are_rejected_by_name(
    time_field: str, reason: DecodeReason
) -> None:
    with pytest.raises(TickDecodeError) as caught:
        decode_tick(f"{{{PROTOTYPE_BASE},{time_field}}}".encode())
    assert caught.value.reason is reason


def test_aliases_that_disagree_are_rejected() -> None:
    payload = b'{"symbol":"AAPL","sym":"MSFT","price":1.0,"size":1,"exchange":"X","ts":1735828200}'
    with pytest.raises(TickDecodeError) as caught:
        decode_tick(payload)
    assert caught.value.reason is DecodeReason.CONFLICTING_FIELDS


LEGACY = b'{"symbol":"AAPL","price":1.0,"size":1,"exchange":"XNAS","ts":"2025-01-02T14:30:00Z"}'


def _one_by_one(payloads: list) -> list:
    """What decode_ticks must give: decode_tick's tick or error for each payload."""
    results = []
    for payload in payloads:
        try:
            results.append(decode_tick(payload or b""))
        except TickDecodeError as e:
            results.append((e.reason, e.detail))
    return results


def _comparable(results: list) -> list:
    return [r if isinstance(r, Tick) else (r.reason, r.detail) for r in results]


def test_a_batch_decodes_like_each_payload_alone_invalid_ticks_included() -> None:
    """Canonical payloads, some failing only the range checks: the one-call batch path,
    whose errors must still be decode_tick's, by reason and detail."""
    payloads = [GOOD, _with(price=-1.0), _with(symbol="msft", seq=9), _with(bid=190.0, ask=189.0)]
    results = decode_ticks(payloads)
    assert _comparable(results) == _one_by_one(payloads)
    assert [type(r) is Tick for r in results] == [True, False, True, False]
    assert decode_ticks([]) == []
    assert _comparable(decode_ticks([GOOD])) == _one_by_one([GOOD])


@pytest.mark.parametrize(
    "odd",
    [
        pytest.param(payload, id=name)
        for name, payload in [
            *[(name, payload) for name, payload, _ in MALFORMED],
            ("none", None),
            ("whitespace", b"   "),
            ("pretty-printed over lines", GOOD.replace(b",", b",\n")),
            ("two ticks in one payload", GOOD + b" " + GOOD),
            ("two ticks on two lines", GOOD + b"\n" + GOOD),
            ("legacy shape", LEGACY),
            ("an alias beside ts_ns", _with(symbol=_DROP, sym="AAPL")),
        ]
    ],
)
def test_a_batch_with_any_odd_payload_anywhere_decodes_like_each_payload_alone(odd) -> None:
    for position in range(3):
        payloads = [GOOD, _with(seq=8), _with(seq=9)]
        payloads.insert(position, odd)
        assert _comparable(decode_ticks(payloads)) == _one_by_one(payloads)


def test_payloads_that_only_join_into_valid_json_are_not_merged() -> None:
    """Neither payload is a tick; joined by the batch's separator they would read as one
    (an open string swallowing it). The count check must send them one by one."""
    head = GOOD[:-1] + b',"note":"'
    tail = b'"}'
    payloads = [GOOD, head, tail]
    results = decode_ticks(payloads)
    assert _comparable(results) == _one_by_one(payloads)
    assert [type(r) is Tick for r in results] == [True, False, False]


@given(st.lists(st.one_of(st.just(GOOD), st.binary(max_size=60)), max_size=6))
def test_any_batch_decodes_like_each_payload_alone(payloads: list[bytes]) -> None:
    assert _comparable(decode_ticks(payloads)) == _one_by_one(payloads)
