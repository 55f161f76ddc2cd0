"""A seeded market simulator: correlated geometric Brownian motion sampled at tick times.

Pure: no clock, no I/O. Given the same :class:`MarketModel`, seed and sequence of
time windows it produces the same ticks, bit for bit, so a run can be
reproduced exactly (the pacing in :mod:`ticklake.producer.pacing` makes the
windows deterministic too).

The model, per generated window of ``n`` ticks:

* event times are ``n`` sorted uniform draws inside the window (a Poisson
  process conditioned on its count);
* between two consecutive events *all* symbols' log mid prices move by a
  correlated Brownian increment, ``(mu - sigma^2/2) dt + sigma sqrt(dt) L z``
  with ``L`` the Cholesky factor of the correlation matrix, so correlation
  holds exactly at every time scale; each event reports the mid of one symbol,
  picked by activity weight. Cost is O(n * symbols), fine for tens of symbols;
* bid/ask sit around the mid at a per-symbol spread (in basis points, with
  exponential noise) on a one-cent grid, the trade prints at the bid, the ask
  or the mid;
* trade and quote sizes are Pareto distributed (heavy tailed, like real
  prints: many odd lots, the occasional block);
* ``seq`` increases by one per symbol, ``ts_ns`` is UTC nanoseconds.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ticklake.core.lake_layout import TICK_BASE_FIELDS
from ticklake.core.tick import Tick

NS_PER_YEAR: float = 365.25 * 24 * 3600 * 1e9
"""Drift and volatility are annualised over calendar time (nanoseconds per year)."""

DEFAULT_SYMBOLS: tuple[str, ...] = (
    "AAPL",
    "MSFT",
    "AMZN",
    "GOOGL",
    "META",
    "NVDA",
    "TSLA",
    "JPM",
    "V",
    "XOM",
)

# Plausible opening mids and annual volatilities for the default tickers, so a
# demo looks familiar; other symbols get a stable pseudo-random price.
_KNOWN_START_PRICES: dict[str, float] = {
    "AAPL": 190.0,
    "MSFT": 420.0,
    "AMZN": 180.0,
    "GOOGL": 165.0,
    "META": 500.0,
    "NVDA": 120.0,
    "TSLA": 250.0,
    "JPM": 200.0,
    "V": 280.0,
    "XOM": 115.0,
}
_KNOWN_VOLATILITIES: dict[str, float] = {"TSLA": 0.6, "NVDA": 0.5, "META": 0.4}

EXCHANGES: tuple[str, ...] = ("XNAS", "XNYS", "ARCX", "BATS", "EDGX", "IEXG")
"""ISO 10383 MIC codes of US venues."""
EXCHANGE_WEIGHTS: tuple[float, ...] = (0.32, 0.22, 0.16, 0.14, 0.1, 0.06)

CENTS_PER_UNIT: float = 100.0
"""Quotes and trades sit on a one-cent grid."""


@dataclass(frozen=True, slots=True)
class SymbolModel:
    """One instrument's parameters. ``drift``/``volatility`` are annualised fractions."""

    symbol: str
    start_price: float
    drift: float = 0.05
    volatility: float = 0.3
    spread_bps: float = 2.0
    """Mean quoted spread in basis points of the mid."""
    activity: float = 1.0
    """Relative share of the tick flow."""


@dataclass(frozen=True, slots=True)
class MarketModel:
    """The whole simulated market. ``correlation`` is symbols x symbols (or None)."""

    symbols: tuple[SymbolModel, ...]
    correlation: tuple[tuple[float, ...], ...] | None = None
    size_alpha: float = 1.6
    """Pareto tail index of trade sizes (smaller = heavier tail)."""
    size_min: float = 10.0
    """Smallest trade size in shares (the Pareto scale)."""
    quote_size_lot: float = 100.0
    size_cap: float = 5_000_000.0
    """Trade and quote sizes are clipped here so the tail stays finite."""

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("a market needs at least one symbol")
        names = [s.symbol for s in self.symbols]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate symbols in {names}")
        for s in self.symbols:
            if not s.start_price > 0:
                raise ValueError(f"{s.symbol}: start_price must be > 0, got {s.start_price}")
            if s.volatility < 0 or s.spread_bps < 0 or not s.activity > 0:
                raise ValueError(f"{s.symbol}: volatility, spread >= 0 and activity > 0 required")
        if self.correlation is not None:
            k = len(self.symbols)
            m = np.asarray(self.correlation, dtype=float)
            if m.shape != (k, k) or not np.allclose(m, m.T) or not np.allclose(np.diag(m), 1):
                raise ValueError(
                    f"correlation must be a symmetric {k}x{k} matrix with unit diagonal"
                )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.symbol for s in self.symbols)


def default_start_price(symbol: str) -> float:
    """A realistic opening mid for ``symbol``: known tickers, else stable in [20, 500)."""
    known = _KNOWN_START_PRICES.get(symbol)
    if known is not None:
        return known
    return 20.0 + (zlib.crc32(symbol.encode()) % 48_000) / 100.0


def build_market(
    symbols: Sequence[str] = DEFAULT_SYMBOLS,
    *,
    drift: float = 0.05,
    volatility: float | None = None,
    correlation: float = 0.3,
    spread_bps: float = 2.0,
) -> MarketModel:
    """A market of ``symbols`` with one pairwise ``correlation`` between all of them.

    ``volatility=None`` uses per-ticker defaults (0.3, higher for a few known
    volatile names).
    """
    if not -1.0 / max(len(symbols) - 1, 1) < correlation < 1.0 and len(symbols) > 1:
        raise ValueError(
            f"correlation {correlation} must be in (-1/(n-1), 1) for n={len(symbols)} symbols"
        )
    models = tuple(
        SymbolModel(
            symbol=s,
            start_price=default_start_price(s),
            drift=drift,
            volatility=_KNOWN_VOLATILITIES.get(s, 0.3) if volatility is None else volatility,
            spread_bps=spread_bps,
        )
        for s in symbols
    )
    k = len(models)
    matrix = tuple(tuple(1.0 if i == j else correlation for j in range(k)) for i in range(k))
    return MarketModel(symbols=models, correlation=matrix if k > 1 else None)


@dataclass(slots=True)
class TickColumns:
    """A window of ticks as columns (numpy arrays); ``symbol_index`` points into ``names``."""

    names: tuple[str, ...]
    symbol_index: np.ndarray
    ts_ns: np.ndarray
    price: np.ndarray
    size: np.ndarray
    exchange_index: np.ndarray
    seq: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ns)

    def symbols(self) -> list[str]:
        """The symbol of each tick, as Python strings."""
        lookup = np.asarray(self.names, dtype=object)
        return lookup[self.symbol_index].tolist()  # type: ignore[no-any-return]

    def to_ticks(self) -> list[Tick]:
        """The window as :class:`Tick` objects, in event order."""
        exchanges = np.asarray(EXCHANGES, dtype=object)[self.exchange_index].tolist()
        return [
            Tick(
                symbol=sym,
                ts_ns=ts,
                price=px,
                size=sz,
                exchange=ex,
                seq=sq,
                bid=bd,
                ask=ak,
                bid_size=bs,
                ask_size=az,
            )
            for sym, ts, px, sz, ex, sq, bd, ak, bs, az in zip(
                self.symbols(),
                self.ts_ns.tolist(),
                self.price.tolist(),
                self.size.tolist(),
                exchanges,
                self.seq.tolist(),
                self.bid.tolist(),
                self.ask.tolist(),
                self.bid_size.tolist(),
                self.ask_size.tolist(),
                strict=True,
            )
        ]

    def to_arrow(self) -> pa.Table:
        """The window as a table with the lake's tick columns (:data:`TICK_BASE_FIELDS`)."""
        schema = pa.schema(list(TICK_BASE_FIELDS))
        exchanges = np.asarray(EXCHANGES, dtype=object)[self.exchange_index]
        return pa.table(
            [
                pa.array(self.symbols(), pa.string()),
                pa.array(self.ts_ns, pa.int64()),
                pa.array(self.price, pa.float64()),
                pa.array(self.size, pa.float64()),
                pa.array(exchanges, pa.string()),
                pa.array(self.seq, pa.int64()),
                pa.array(self.bid, pa.float64()),
                pa.array(self.ask, pa.float64()),
                pa.array(self.bid_size, pa.float64()),
                pa.array(self.ask_size, pa.float64()),
            ],
            schema=schema,
        )


@dataclass(slots=True)
class MarketSimulator:
    """Generates ticks window by window. Deterministic for a given model, seed and windows."""

    model: MarketModel
    seed: int = 0
    first_seq: int = 1
    _rng: np.random.Generator = field(init=False, repr=False)
    _log_mid: np.ndarray = field(init=False, repr=False)
    _next_seq: np.ndarray = field(init=False, repr=False)
    _last_ns: int | None = field(init=False, default=None, repr=False)
    _chol: np.ndarray | None = field(init=False, repr=False)
    _mu: np.ndarray = field(init=False, repr=False)
    _sigma: np.ndarray = field(init=False, repr=False)
    _activity: np.ndarray = field(init=False, repr=False)
    _spread: np.ndarray = field(init=False, repr=False)
    _exchange_cdf: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        syms = self.model.symbols
        self._rng = np.random.default_rng(self.seed)
        self._log_mid = np.log([s.start_price for s in syms])
        self._next_seq = np.full(len(syms), self.first_seq, dtype=np.int64)
        self._mu = np.array([s.drift for s in syms])
        self._sigma = np.array([s.volatility for s in syms])
        weights = np.array([s.activity for s in syms])
        self._activity = np.cumsum(weights / weights.sum())
        self._spread = np.array([s.spread_bps for s in syms]) * 1e-4
        self._chol = (
            np.linalg.cholesky(np.asarray(self.model.correlation, dtype=float))
            if self.model.correlation is not None
            else None
        )
        ex = np.asarray(EXCHANGE_WEIGHTS)
        self._exchange_cdf = np.cumsum(ex / ex.sum())

    @property
    def ticks_generated(self) -> int:
        """Ticks produced so far (all symbols)."""
        return int((self._next_seq - self.first_seq).sum())

    def generate(self, count: int, start_ns: int, end_ns: int) -> TickColumns:
        """``count`` ticks with event times in ``[start_ns, end_ns)`` (UTC ns), in time order.

        Windows must not go back in time: ``start_ns`` must not be before the
        previous window's last event.
        """
        if count < 0 or end_ns < start_ns:
            raise ValueError(f"bad window: count={count}, [{start_ns}, {end_ns})")
        if self._last_ns is not None and start_ns < self._last_ns:
            raise ValueError(f"window start {start_ns} is before the last event {self._last_ns}")
        rng = self._rng
        k = len(self.model.symbols)
        span = end_ns - start_ns
        ts = np.sort(start_ns + (rng.random(count) * span).astype(np.int64))
        previous = self._last_ns if self._last_ns is not None else start_ns
        dt_years = np.diff(ts, prepend=previous).astype(np.float64) / NS_PER_YEAR

        # Correlated Brownian increments of every symbol between consecutive events.
        z = rng.standard_normal((count, k))
        if self._chol is not None:
            z = z @ self._chol.T
        step = (self._mu - 0.5 * self._sigma**2) * dt_years[:, None] + (
            self._sigma * np.sqrt(dt_years)[:, None]
        ) * z
        path = self._log_mid + np.cumsum(step, axis=0)
        sym = np.searchsorted(self._activity, rng.random(count), side="right")
        np.minimum(sym, k - 1, out=sym)
        mid = np.exp(path[np.arange(count), sym])

        # Work in integer cents so printed prices are exact two-decimal numbers.
        half_cents = mid * self._spread[sym] * 50.0 * (0.5 + rng.exponential(0.5, count))
        mid_cents = mid * CENTS_PER_UNIT
        bid_cents = np.maximum(np.floor(mid_cents - half_cents), 1.0)
        ask_cents = np.maximum(np.ceil(mid_cents + half_cents), bid_cents + 1.0)
        side = rng.random(count)
        inside_cents = np.round((bid_cents + ask_cents) * 0.5)
        trade_cents = np.where(
            side < 0.45, bid_cents, np.where(side < 0.9, ask_cents, inside_cents)
        )
        bid = bid_cents / CENTS_PER_UNIT
        ask = ask_cents / CENTS_PER_UNIT
        price = trade_cents / CENTS_PER_UNIT

        m = self.model
        size = np.floor(m.size_min * (1.0 + rng.pareto(m.size_alpha, count)))
        np.minimum(size, m.size_cap, out=size)
        quote_lots = np.ceil(1.0 + rng.pareto(m.size_alpha, (2, count)))
        quote = np.minimum(quote_lots * m.quote_size_lot, m.size_cap)
        exchange = np.searchsorted(self._exchange_cdf, rng.random(count), side="right")
        np.minimum(exchange, len(EXCHANGES) - 1, out=exchange)

        seq = self._sequence_numbers(sym)
        if count:
            self._log_mid = path[-1].copy()
            self._last_ns = int(ts[-1])
        return TickColumns(
            names=m.names,
            symbol_index=sym,
            ts_ns=ts,
            price=price,
            size=size,
            exchange_index=exchange,
            seq=seq,
            bid=bid,
            ask=ask,
            bid_size=quote[0],
            ask_size=quote[1],
        )

    def _sequence_numbers(self, sym: np.ndarray) -> np.ndarray:
        """Per-symbol running sequence numbers for the window; advances the counters."""
        count = len(sym)
        order = np.argsort(sym, kind="stable")
        sorted_sym = sym[order]
        group_start = np.searchsorted(sorted_sym, sorted_sym, side="left")
        rank = np.arange(count) - group_start
        seq = np.empty(count, dtype=np.int64)
        seq[order] = self._next_seq[sorted_sym] + rank
        self._next_seq += np.bincount(sym, minlength=len(self._next_seq))
        return seq
