"""Per-symbol features, continuous across batches, defined in one table.

Pure: numpy in, numpy out, plus the partition's :class:`~ticklake.ingest.state.FeatureCarry`.

A batch is sorted by symbol (stably, so each symbol keeps offset order) into
contiguous segments. Row-wise features are plain vectorised expressions;
"previous tick of the same symbol" is a shift within each segment seeded from
the carry; running sums are a ``cumsum`` per (symbol, day) segment seeded from
the carry; exponential averages are a short sequential kernel per segment.

The invariant (tested): the values are bit-for-bit the same however the stream
is cut into batches, and whether or not the carry went through a checkpoint in
between. Every recursion therefore runs in tick order starting from the carried
value (never "sum of the batch + carry", which rounds differently).

Adding a feature: write a function of :class:`FeatureFrame` and add one
:class:`Feature` row to :data:`FEATURES`. A feature that needs memory asks the
frame for :meth:`FeatureFrame.ewm` or :meth:`FeatureFrame.day_sum` with a new
slot name; the carry and the checkpoint pick the slot up by themselves.

Late ticks (event time below the latest already seen for the symbol, see
:mod:`~ticklake.ingest.normalise`) never move a series backwards: the
"previous tick" and exponential averages skip them (their ``prev_price``,
returns, EMAs and volatility are null, and the next on-time tick continues
from the last on-time one), while the day's running sums count them (the
volume happened; it is added to the day under way, as below). Row-wise
features (mid, spread) are computed as for any tick.

UTC day: a symbol's running day is the latest UTC day its ticks have shown
(a running maximum), so a late tick stamped just before midnight counts
towards the day already under way instead of re-opening the previous one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ticklake.ingest.state import NO_DAY, FeatureCarry

DAY_NS: Final = 86_400_000_000_000


@dataclass(frozen=True, slots=True)
class FeatureParams:
    """Spans in ticks; alpha = 2 / (span + 1), as pandas ``ewm(span=..., adjust=False)``."""

    ema_fast_span: int = 12
    ema_slow_span: int = 48
    vol_span: int = 100


@dataclass(slots=True)
class TickInput:
    """The columns features are computed from (one partition's batch, offset order)."""

    codes: np.ndarray
    ts_ns: np.ndarray
    price: np.ndarray
    size: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    late: np.ndarray | None = None
    """Per tick, True if it is late (see the module doc); ``None``: none is."""


class FeatureFrame:
    """One batch sorted into per-symbol segments, plus the carry it reads and updates.

    Feature functions read inputs as attributes (``price``, ``bid`` ...) and
    earlier features by name (``frame["mid"]``); all arrays are in sorted order.
    """

    def __init__(self, ticks: TickInput, carry: FeatureCarry, params: FeatureParams) -> None:
        self.params = params
        self.carry = carry
        self.order = np.argsort(ticks.codes, kind="stable")
        self.codes: npt.NDArray[np.int64] = ticks.codes[self.order]
        self.ts_ns: npt.NDArray[np.int64] = ticks.ts_ns[self.order]
        self.price: npt.NDArray[np.float64] = ticks.price[self.order]
        self.size: npt.NDArray[np.float64] = ticks.size[self.order]
        self.bid: npt.NDArray[np.float64] = ticks.bid[self.order]
        self.ask: npt.NDArray[np.float64] = ticks.ask[self.order]
        late = ticks.late[self.order] if ticks.late is not None else None
        self.late = late if late is not None and late.any() else None
        """Late ticks in sorted order, or ``None`` when the batch has none (the fast path)."""
        n = len(self.codes)
        starts = np.flatnonzero(np.diff(self.codes, prepend=-1)) if n else np.zeros(0, np.int64)
        self.seg_starts = starts
        self.seg_ends = np.append(starts[1:], n).astype(np.int64) if n else starts
        self.seg_codes = self.codes[starts]
        self.is_start = np.zeros(n, dtype=bool)
        self.is_start[starts] = True
        self.features: dict[str, np.ndarray] = {}
        self._day_run: np.ndarray | None = None
        self._day_segs: list[tuple[int, int, int, int, bool]] | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.features[name]

    # --- building blocks for stateful features -------------------------------------

    def previous(self, values: np.ndarray, slot: str) -> np.ndarray:
        """The previous tick's ``values`` of the same symbol (carried over batches).

        Late ticks are skipped: theirs is NaN, and they are nobody's previous tick.
        """
        if self.late is not None:
            return self._previous_on_time(values, slot)
        prev = np.empty_like(values)
        if len(values):
            prev[1:] = values[:-1]
            carried = self.carry.slot(slot)
            prev[self.seg_starts] = carried[self.seg_codes]
            carried[self.seg_codes] = values[self.seg_ends - 1]
        return prev

    def _previous_on_time(self, values: np.ndarray, slot: str) -> np.ndarray:
        assert self.late is not None
        on_time = ~self.late
        sub = values[on_time]
        codes = self.codes[on_time]
        prev = np.full(len(values), np.nan, dtype=np.float64)
        if len(sub):
            starts = np.flatnonzero(np.diff(codes, prepend=-1))
            ends = np.append(starts[1:], len(sub))
            sub_prev = np.empty_like(sub)
            sub_prev[1:] = sub[:-1]
            carried = self.carry.slot(slot)
            sub_prev[starts] = carried[codes[starts]]
            carried[codes[starts]] = sub[ends - 1]
            prev[on_time] = sub_prev
        return prev

    def ewm(self, values: np.ndarray, slot: str, span: int) -> np.ndarray:
        """Exponentially weighted mean, alpha = 2/(span+1), per symbol, never reset.

        Starts at the first non-NaN value; a NaN input leaves the mean unchanged.
        A late tick leaves it unchanged too, and gets NaN.
        """
        alpha = 2.0 / (span + 1.0)
        carried = self.carry.slot(slot)
        out = np.empty(len(values), dtype=np.float64)
        late = self.late
        vals = values.tolist() if late is None else np.where(late, np.nan, values).tolist()
        result: list[float] = [0.0] * len(vals)
        for start, end, code in zip(
            self.seg_starts.tolist(), self.seg_ends.tolist(), self.seg_codes.tolist(), strict=True
        ):
            mean = float(carried[code])
            for i in range(start, end):
                v = vals[i]
                if v == v:  # not NaN
                    if mean == mean:
                        mean += alpha * (v - mean)
                    else:
                        mean = v
                result[i] = mean
            carried[code] = mean
        out[:] = result
        if late is not None:
            out[late] = np.nan
        return out

    def day_run(self) -> np.ndarray:
        """Running UTC day (days since epoch) per tick, carried in slot ``day``."""
        if self._day_run is None:
            day = self.ts_ns // DAY_NS
            carried = self.carry.slot("day")
            if len(day):
                # A running maximum within each segment only: offset each segment by a
                # multiple of 2**32 (days stay far below) so one global accumulate
                # never carries a maximum across symbols.
                seg_id = np.cumsum(self.is_start) - 1
                shifted = (seg_id << 32) + day
                run = np.maximum.accumulate(shifted) - (seg_id << 32)
                run = np.maximum(run, carried[self.seg_codes][seg_id])
                carried[self.seg_codes] = run[self.seg_ends - 1]
            else:
                run = day
            self._day_run = run
        return self._day_run

    def _day_segments(self) -> list[tuple[int, int, int, int, bool]]:
        """(start, end, symbol code, running day, starts a symbol) of each run of one
        symbol and one day, in sorted order; computed once per batch."""
        if self._day_segs is None:
            run = self.day_run()
            if not len(run):
                self._day_segs = []
                return self._day_segs
            new_day = np.ones(len(run), dtype=bool)
            new_day[1:] = run[1:] != run[:-1]
            bounds = np.flatnonzero(new_day | self.is_start)
            ends = np.append(bounds[1:], len(run))
            self._day_segs = list(
                zip(
                    bounds.tolist(),
                    ends.tolist(),
                    self.codes[bounds].tolist(),
                    run[bounds].tolist(),
                    self.is_start[bounds].tolist(),
                    strict=True,
                )
            )
        return self._day_segs

    def day_sum(self, values: np.ndarray, slot: str) -> np.ndarray:
        """Running sum of ``values`` per symbol and UTC day (see :meth:`day_run`).

        The carry holds the day's sum so far in ``slot`` and its day in
        ``day_of_<slot>``; the sum continues only while the day is the same.
        """
        carried = self.carry.slot(slot)
        prior_day = self.carry.slot("day_of_" + slot)
        out = np.empty(len(values), dtype=values.dtype if values.dtype.kind == "i" else np.float64)
        if not len(values):
            return out
        zero = values.dtype.type(0)
        as_list = values.tolist()
        for start, end, code, day, is_start in self._day_segments():
            seed = carried[code] if is_start and prior_day[code] == day else zero
            if seed != seed:  # NaN carry: first tick ever of this symbol
                seed = zero
            if end - start > 32:
                acc = np.cumsum(np.concatenate(([seed], values[start:end])))[1:]
                out[start:end] = acc
                total = acc[-1]
            else:
                # Short runs (the low-latency case): a plain loop beats numpy's call
                # overhead, and adds in the same order, so the bits are the same.
                total = seed.item() if hasattr(seed, "item") else seed
                for i in range(start, end):
                    total += as_list[i]
                    out[i] = total
            carried[code] = total
            prior_day[code] = day
        return out


FeatureFn = Callable[[FeatureFrame], np.ndarray]


@dataclass(frozen=True, slots=True)
class Feature:
    """One output column: its name, Arrow type, meaning (with units) and formula."""

    name: str
    type: pa.DataType
    doc: str
    compute: FeatureFn


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _mid(f: FeatureFrame) -> np.ndarray:
    return (f.bid + f.ask) * 0.5


def _spread(f: FeatureFrame) -> np.ndarray:
    return f.ask - f.bid


def _spread_bps(f: FeatureFrame) -> np.ndarray:
    return _ratio(f["spread"], f["mid"]) * 10_000.0


def _prev_price(f: FeatureFrame) -> np.ndarray:
    return f.previous(f.price, "last_price")


def _ret_simple(f: FeatureFrame) -> np.ndarray:
    out: np.ndarray = f.price / f["prev_price"] - 1.0
    return out


def _ret_log(f: FeatureFrame) -> np.ndarray:
    out: np.ndarray = np.log(f.price / f["prev_price"])
    return out


def _ema_fast(f: FeatureFrame) -> np.ndarray:
    return f.ewm(f.price, "ema_fast", f.params.ema_fast_span)


def _ema_slow(f: FeatureFrame) -> np.ndarray:
    return f.ewm(f.price, "ema_slow", f.params.ema_slow_span)


def _vol_ewma(f: FeatureFrame) -> np.ndarray:
    out: np.ndarray = np.sqrt(f.ewm(f["ret_log"] ** 2, "var_ewma", f.params.vol_span))
    return out


def _volume_day(f: FeatureFrame) -> np.ndarray:
    return f.day_sum(f.size, "volume_day")


def _notional_day(f: FeatureFrame) -> np.ndarray:
    return f.day_sum(f.price * f.size, "notional_day")


def _vwap_day(f: FeatureFrame) -> np.ndarray:
    return _ratio(f["notional_day"], f["volume_day"])


def _ticks_day(f: FeatureFrame) -> np.ndarray:
    return f.day_sum(np.ones(len(f.price), dtype=np.int64), "n_ticks_day")


FEATURES: Final[tuple[Feature, ...]] = (
    Feature("mid", pa.float64(), "(bid + ask) / 2; null without a two-sided quote", _mid),
    Feature("spread", pa.float64(), "ask - bid (quote currency); null without a quote", _spread),
    Feature("spread_bps", pa.float64(), "spread / mid in basis points", _spread_bps),
    Feature("prev_price", pa.float64(), "price of the symbol's previous tick", _prev_price),
    Feature("ret_simple", pa.float64(), "price / prev_price - 1", _ret_simple),
    Feature("ret_log", pa.float64(), "ln(price / prev_price)", _ret_log),
    Feature("ema_fast", pa.float64(), "EMA of price, span ema_fast_span ticks", _ema_fast),
    Feature("ema_slow", pa.float64(), "EMA of price, span ema_slow_span ticks", _ema_slow),
    Feature(
        "vol_ewma",
        pa.float64(),
        "sqrt of the EWMA (span vol_span) of squared log returns; per tick, not annualised",
        _vol_ewma,
    ),
    Feature("volume_day", pa.float64(), "cumulative size of the UTC day", _volume_day),
    Feature("notional_day", pa.float64(), "cumulative price*size of the UTC day", _notional_day),
    Feature("vwap_day", pa.float64(), "notional_day / volume_day (VWAP of the day)", _vwap_day),
    Feature("ticks_day", pa.int64(), "number of ticks of the symbol in the UTC day", _ticks_day),
)
"""Every feature column, in the order it is computed and written."""

FEATURE_FIELDS: Final = tuple(pa.field(f.name, f.type) for f in FEATURES)


def compute_features(
    ticks: TickInput, carry: FeatureCarry, params: FeatureParams
) -> dict[str, np.ndarray]:
    """All :data:`FEATURES` for one batch, in the batch's (offset) order. Updates ``carry``."""
    frame = FeatureFrame(ticks, carry, params)
    for feature in FEATURES:
        frame.features[feature.name] = feature.compute(frame)
    inverse = np.empty_like(frame.order)
    inverse[frame.order] = np.arange(len(frame.order))
    return {name: values[inverse] for name, values in frame.features.items()}


__all__ = [
    "DAY_NS",
    "FEATURES",
    "FEATURE_FIELDS",
    "NO_DAY",
    "Feature",
    "FeatureFrame",
    "FeatureParams",
    "TickInput",
    "compute_features",
]
