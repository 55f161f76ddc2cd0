"""The simulated market: reproducible, valid ticks that move like correlated GBM."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticklake.core.tick import decode_tick, encode_tick, tick_to_dict
from ticklake.producer.simulator import (
    DEFAULT_SYMBOLS,
    NS_PER_YEAR,
    MarketModel,
    MarketSimulator,
    SymbolModel,
    build_market,
)

T0 = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z
MS = 1_000_000


def windows(sim: MarketSimulator, count: int, n: int, span_ns: int = 10 * MS) -> list:
    return [sim.generate(count, T0 + i * span_ns, T0 + (i + 1) * span_ns) for i in range(n)]


def all_ticks(sim: MarketSimulator, count: int, n: int) -> list:
    return [t for w in windows(sim, count, n) for t in w.to_ticks()]


def test_default_market_has_well_known_tickers() -> None:
    assert len(DEFAULT_SYMBOLS) >= 8
    assert "AAPL" in DEFAULT_SYMBOLS
    assert build_market().names == DEFAULT_SYMBOLS


def test_same_seed_same_ticks_other_seed_other_ticks() -> None:
    a = all_ticks(MarketSimulator(build_market(), seed=7), 500, 4)
    b = all_ticks(MarketSimulator(build_market(), seed=7), 500, 4)
    c = all_ticks(MarketSimulator(build_market(), seed=8), 500, 4)
    assert a == b
    assert a != c


def test_every_tick_passes_the_contract_unchanged() -> None:
    for tick in all_ticks(MarketSimulator(build_market(), seed=1), 2000, 3):
        assert decode_tick(encode_tick(tick)) == tick


def test_sequence_numbers_start_at_one_and_step_by_one_per_symbol() -> None:
    ticks = all_ticks(MarketSimulator(build_market(["AAPL", "MSFT", "TSLA"]), seed=3), 997, 5)
    by_symbol: dict[str, list[int]] = {}
    for t in ticks:
        by_symbol.setdefault(t.symbol, []).append(t.seq)
    assert set(by_symbol) == {"AAPL", "MSFT", "TSLA"}
    for seqs in by_symbol.values():
        assert seqs == list(range(1, len(seqs) + 1))


def test_event_times_are_utc_ns_inside_their_window_and_ordered() -> None:
    sim = MarketSimulator(build_market(), seed=2)
    for i, w in enumerate(windows(sim, 300, 5)):
        ts = w.ts_ns
        assert ts.min() >= T0 + i * 10 * MS
        assert ts.max() < T0 + (i + 1) * 10 * MS
        assert np.all(np.diff(ts) >= 0)


def test_quotes_bracket_trades_on_a_cent_grid() -> None:
    w = MarketSimulator(build_market(), seed=4).generate(20_000, T0, T0 + 60_000 * MS)
    assert np.all(w.bid < w.ask)
    assert np.all((w.bid <= w.price) & (w.price <= w.ask))
    for column in (w.bid, w.ask, w.price):
        cents = column * 100
        assert np.allclose(cents, np.round(cents), atol=1e-6)
    spread_bps = (w.ask - w.bid) / w.price * 1e4
    assert 1.0 < float(np.median(spread_bps)) < 10.0


def test_sizes_are_heavy_tailed() -> None:
    w = MarketSimulator(build_market(), seed=5).generate(100_000, T0, T0 + 600_000 * MS)
    assert w.size.min() >= 10
    # A Pareto(1.6) tail: the biggest prints dwarf the typical one.
    assert w.size.max() / np.median(w.size) > 100
    assert np.all(w.bid_size >= 100) and np.all(w.bid_size % 100 == 0)
    assert set(np.unique(w.exchange_index)) == set(range(6))


def _grid_log_prices(w, k: int, points: int) -> np.ndarray:
    """Last mid (bid/ask midpoint) of each symbol at ``points`` regular times."""
    grid = np.linspace(w.ts_ns[0], w.ts_ns[-1], points)
    out = np.empty((points, k))
    mid = (w.bid + w.ask) / 2
    for s in range(k):
        mask = w.symbol_index == s
        idx = np.searchsorted(w.ts_ns[mask], grid, side="right") - 1
        out[:, s] = np.log(mid[mask][np.maximum(idx, 0)])
    return out


def test_returns_are_correlated_as_configured() -> None:
    market = build_market(["AAPL", "MSFT"], volatility=1.0, correlation=0.8)
    w = MarketSimulator(market, seed=6).generate(200_000, T0, T0 + 100 * 86_400_000 * MS)
    returns = np.diff(_grid_log_prices(w, 2, 2001), axis=0)
    rho = np.corrcoef(returns.T)[0, 1]
    assert rho == pytest.approx(0.8, abs=0.05)


def test_volatility_and_drift_match_the_model() -> None:
    model = MarketModel(
        symbols=(SymbolModel("AAPL", 100.0, drift=0.0, volatility=0.4, spread_bps=0.5),)
    )
    span = 365 * 86_400_000 * MS
    w = MarketSimulator(model, seed=9).generate(200_000, T0, T0 + span)
    returns = np.diff(_grid_log_prices(w, 1, 5001)[:, 0])
    dt_years = span / NS_PER_YEAR / 5000
    assert returns.std() / np.sqrt(dt_years) == pytest.approx(0.4, rel=0.06)


def test_windows_cannot_go_back_in_time() -> None:
    sim = MarketSimulator(build_market(), seed=1)
    sim.generate(10, T0, T0 + MS)
    with pytest.raises(ValueError, match="before the last event"):
        sim.generate(10, T0, T0 + MS)


def test_empty_window_changes_nothing() -> None:
    sim = MarketSimulator(build_market(), seed=1)
    assert len(sim.generate(0, T0, T0 + MS)) == 0
    assert sim.generate(1, T0, T0 + MS).seq.tolist() == [1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"symbols": ["AAPL", "AAPL"]}, "duplicate"),
        ({"symbols": ["AAPL", "MSFT"], "correlation": 1.0}, "correlation"),
        ({"symbols": ["A", "B", "C"], "correlation": -0.6}, "correlation"),
    ],
)
def test_bad_market_parameters_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_market(**kwargs)


def test_arrow_table_matches_the_ticks() -> None:
    w = MarketSimulator(build_market(), seed=11).generate(100, T0, T0 + MS)
    expected = []
    for tick in w.to_ticks():
        row = tick_to_dict(tick)
        del row["v"]
        expected.append(row)
    assert w.to_arrow().to_pylist() == expected


@settings(max_examples=50, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=12),
    symbols=st.integers(min_value=1, max_value=12),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_any_window_sizes_keep_seq_gap_free_and_ticks_valid(
    counts: list[int], symbols: int, seed: int
) -> None:
    names = [f"S{i}" for i in range(symbols)]
    sim = MarketSimulator(build_market(names), seed=seed)
    seen: dict[str, list[int]] = {}
    for i, n in enumerate(counts):
        for tick in sim.generate(n, T0 + i * MS, T0 + (i + 1) * MS).to_ticks():
            assert decode_tick(encode_tick(tick)) == tick
            seen.setdefault(tick.symbol, []).append(tick.seq)
    assert sum(len(v) for v in seen.values()) == sum(counts) == sim.ticks_generated
    for seqs in seen.values():
        assert seqs == list(range(1, len(seqs) + 1))
