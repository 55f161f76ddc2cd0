"""Parameter parsing: times, windows, symbols, limits; every failure names its parameter."""

from __future__ import annotations

import pytest

from ticklake.query.params import (
    NS_PER_S,
    InvalidParameter,
    check_limit,
    iso_from_ns,
    parse_symbol,
    parse_symbol_list,
    parse_time,
    time_window,
)

T0 = 1_735_828_200 * NS_PER_S  # 2025-01-02T14:30:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-02T14:30:00Z", T0),
        ("2025-01-02T14:30:00+00:00", T0),
        ("2025-01-02T15:30:00+01:00", T0),
        ("2025-01-02T14:30:00", T0),  # no offset: UTC
        ("2025-01-02T14:30:00.123456789Z", T0 + 123_456_789),
        ("2025-01-02T14:30:00.5Z", T0 + 500_000_000),
        ("2025-01-02", T0 - (14 * 3600 + 30 * 60) * NS_PER_S),
        (str(T0), T0),
        (f" {T0} ", T0),
    ],
)
def test_times_parse_to_utc_nanoseconds(text: str, expected: int) -> None:
    assert parse_time("start", text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "1735828200", "2025-02-30", "2025-01-02T25:00:00Z", "-5", "9" * 30, "1e18"],
)
def test_bad_times_name_the_parameter(text: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        parse_time("ts", text)
    assert e.value.name == "ts"


def test_now_is_now() -> None:
    import time

    assert abs(parse_time("end", "now") - time.time_ns()) < 5 * NS_PER_S


def test_window_defaults_and_caps() -> None:
    assert time_window(None, str(T0), default_span_ns=10, max_span_ns=100) == (T0 - 10, T0)
    assert time_window(str(T0), None, default_span_ns=10, max_span_ns=10**20, now_ns=T0 + 5) == (
        T0,
        T0 + 5,
    )
    with pytest.raises(InvalidParameter, match="before end") as e:
        time_window(str(T0), str(T0), default_span_ns=10, max_span_ns=100)
    assert e.value.name == "start"
    with pytest.raises(InvalidParameter, match="cap") as e:
        time_window(str(T0), str(T0 + 101), default_span_ns=10, max_span_ns=100)
    assert e.value.name == "end"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AAPL", "AAPL"),
        ("brk.b", "BRK.B"),
        ("EUR/USD", "EUR/USD"),
        ("btc-usd", "BTC-USD"),
        ("A" * 20, "A" * 20),
    ],
)
def test_symbols_are_upper_cased(text: str, expected: str) -> None:
    assert parse_symbol(text) == expected


@pytest.mark.parametrize("text", ["", " AAPL", "-X", "A" * 21, "AA PL", "ÄPFEL", "a\nb"])
def test_bad_symbols(text: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        parse_symbol(text)
    assert (e.value.location, e.value.name) == ("path", "symbol")


def test_symbol_lists_keep_order_and_drop_repeats() -> None:
    assert parse_symbol_list("msft,AAPL,MSFT") == ["MSFT", "AAPL"]
    for bad in ["", "AAPL,", "AAPL, MSFT", ",".join(["A"] * 201)]:
        with pytest.raises(InvalidParameter) as e:
            parse_symbol_list(bad)
        assert (e.value.location, e.value.name) == ("query", "symbols")


def test_limits() -> None:
    assert check_limit(10, 10) == 10
    for bad in (0, -1, 11):
        with pytest.raises(InvalidParameter, match="limit"):
            check_limit(bad, 10)


def test_iso_keeps_nanoseconds_and_round_trips() -> None:
    assert iso_from_ns(T0 + 7) == "2025-01-02T14:30:00.000000007Z"
    assert parse_time("ts", iso_from_ns(T0 + 123_456_789)) == T0 + 123_456_789
