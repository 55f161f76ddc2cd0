"""Features: equal to an independent pandas computation, and identical however
the stream is cut into batches or checkpointed in between."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_kit import reference_features, tick_stream

from ticklake.ingest.features import FEATURES, FeatureParams, TickInput, compute_features
from ticklake.ingest.state import PartitionState

PARAMS = FeatureParams(ema_fast_span=5, ema_slow_span=20, vol_span=30)
DAY_NS = 86_400_000_000_000


def frame_of(ticks) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": [t.symbol for t in ticks],
            "ts_ns": [t.ts_ns for t in ticks],
            "price": [t.price for t in ticks],
            "size": [t.size for t in ticks],
            "bid": [np.nan if t.bid is None else t.bid for t in ticks],
            "ask": [np.nan if t.ask is None else t.ask for t in ticks],
        }
    )


def run(
    df: pd.DataFrame, cuts: list[int], checkpoint: bool = False, late: np.ndarray | None = None
) -> pd.DataFrame:
    """Compute features over ``df`` cut at ``cuts``; optionally through a checkpoint."""
    state = PartitionState(0)
    parts = []
    bounds = [0, *sorted(set(cuts)), len(df)]
    for start, end in itertools.pairwise(bounds):
        chunk = df.iloc[start:end]
        codes = np.array([state.code_of(s) for s in chunk["symbol"]], dtype=np.int64)
        out = compute_features(
            TickInput(
                codes=codes,
                ts_ns=chunk["ts_ns"].to_numpy(np.int64),
                price=chunk["price"].to_numpy(np.float64),
                size=chunk["size"].to_numpy(np.float64),
                bid=chunk["bid"].to_numpy(np.float64),
                ask=chunk["ask"].to_numpy(np.float64),
                late=None if late is None else late[start:end],
            ),
            state.carry,
            PARAMS,
        )
        parts.append(pd.DataFrame(out, index=chunk.index))
        if checkpoint:
            state, _ = PartitionState.from_json(state.to_json(end))
    return pd.concat(parts)


def assert_bitwise_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    for name in a.columns:
        x, y = a[name].to_numpy(), b[name].to_numpy()
        same = (x == y) | (pd.isna(x) & pd.isna(y))
        assert same.all(), f"{name} differs at rows {np.flatnonzero(~same)[:5]}"


@pytest.fixture(scope="module")
def stream() -> pd.DataFrame:
    ticks = tick_stream(["AAA", "BBB", "CCC", "DDD"], 3_000, seed=3, step_ns=60_000_000_000)
    df = frame_of(ticks)
    # one symbol without quotes, to cover null mid/spread
    no_quote = df["symbol"] == "DDD"
    df.loc[no_quote, ["bid", "ask"]] = np.nan
    return df


def test_every_feature_matches_the_pandas_reference(stream: pd.DataFrame) -> None:
    ours = run(stream, cuts=[])
    ref = reference_features(stream, PARAMS.ema_fast_span, PARAMS.ema_slow_span, PARAMS.vol_span)
    assert set(ours.columns) == {f.name for f in FEATURES}
    for name in ours.columns:
        np.testing.assert_allclose(
            ours[name].to_numpy(np.float64),
            ref[name].to_numpy(np.float64),
            rtol=1e-10,
            atol=1e-12,
            err_msg=name,
        )


def test_daily_sums_restart_on_each_symbols_first_tick_of_a_utc_day(
    stream: pd.DataFrame,
) -> None:
    day = stream["ts_ns"] // DAY_NS
    assert day.nunique() >= 2, "the stream must cross midnight"
    ours = run(stream, cuts=[500, 1500])
    first_of_day = day.groupby(stream["symbol"]).diff().fillna(1) > 0
    assert (ours.loc[first_of_day, "ticks_day"] == 1).all()
    assert (ours.loc[first_of_day, "volume_day"] == stream.loc[first_of_day, "size"]).all()
    assert (ours.loc[~first_of_day, "ticks_day"] > 1).all()


def test_batch_boundaries_do_not_change_a_single_bit(stream: pd.DataFrame) -> None:
    whole = run(stream, cuts=[])
    assert_bitwise_equal(whole, run(stream, cuts=list(range(1, len(stream), 1))[:200:7]))
    assert_bitwise_equal(whole, run(stream, cuts=list(range(0, len(stream), 113))))


def test_a_checkpoint_between_batches_continues_the_series_exactly(stream: pd.DataFrame) -> None:
    whole = run(stream, cuts=[])
    assert_bitwise_equal(whole, run(stream, cuts=[10, 999, 1000, 2500], checkpoint=True))


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=399), max_size=12),
    checkpoint=st.booleans(),
)
def test_any_cutting_of_the_stream_gives_identical_features(
    cuts: list[int], checkpoint: bool
) -> None:
    df = frame_of(tick_stream(["X", "Y", "Z"], 400, seed=11, step_ns=900_000_000_000))
    assert_bitwise_equal(run(df, []), run(df, cuts, checkpoint))


def test_a_late_tick_from_the_previous_day_counts_towards_the_running_day() -> None:
    day2 = 20_000 * DAY_NS
    df = pd.DataFrame(
        {
            "symbol": ["A", "A", "A"],
            "ts_ns": [day2 + 10, day2 - 10, day2 + 20],
            "price": [10.0, 20.0, 30.0],
            "size": [1.0, 1.0, 2.0],
            "bid": [np.nan] * 3,
            "ask": [np.nan] * 3,
        }
    )
    out = run(df, [])
    assert out["ticks_day"].tolist() == [1, 2, 3]
    assert out["volume_day"].tolist() == [1.0, 2.0, 4.0]
    assert out["vwap_day"].iloc[-1] == pytest.approx((10 + 20 + 60) / 4)


def test_returns_and_volatility_start_undefined_and_vwap_with_zero_volume_is_null() -> None:
    df = pd.DataFrame(
        {
            "symbol": ["A", "A"],
            "ts_ns": [DAY_NS * 20_000, DAY_NS * 20_000 + 1],
            "price": [10.0, 11.0],
            "size": [0.0, 0.0],
            "bid": [np.nan, 10.9],
            "ask": [np.nan, 11.1],
        }
    )
    out = run(df, [])
    assert np.isnan(out["ret_simple"].iloc[0]) and np.isnan(out["vol_ewma"].iloc[0])
    assert out["ret_simple"].iloc[1] == pytest.approx(0.1)
    assert out["vol_ewma"].iloc[1] == pytest.approx(abs(np.log(1.1)))
    assert np.isnan(out["vwap_day"]).all()
    assert np.isnan(out["mid"].iloc[0]) and out["mid"].iloc[1] == pytest.approx(11.0)
    assert out["ema_fast"].iloc[0] == 10.0


PATH_FEATURES = ["prev_price", "ret_simple", "ret_log", "ema_fast", "ema_slow", "vol_ewma"]


def test_late_ticks_do_not_rewind_the_series_and_count_in_the_day(stream: pd.DataFrame) -> None:
    rng = np.random.default_rng(5)
    late = rng.random(len(stream)) < 0.05
    late[:4] = False
    cuts = sorted(rng.choice(np.arange(1, len(stream)), 25, replace=False).tolist())
    ours = run(stream, cuts=cuts, late=late)
    on_time = stream[~late]
    ref = reference_features(on_time, PARAMS.ema_fast_span, PARAMS.ema_slow_span, PARAMS.vol_span)
    # on-time ticks: as if the late ones were never there
    for name in PATH_FEATURES:
        np.testing.assert_allclose(
            ours.loc[~late, name].to_numpy(np.float64),
            ref[name].to_numpy(np.float64),
            rtol=1e-12,
            equal_nan=True,
            err_msg=name,
        )
    # late ticks: no path value, but row-wise features and the day's sums include them
    assert ours.loc[late, PATH_FEATURES].isna().all().all()
    np.testing.assert_allclose(ours.loc[late, "mid"], (stream["bid"] + stream["ask"])[late] / 2)
    full = reference_features(stream, PARAMS.ema_fast_span, PARAMS.ema_slow_span, PARAMS.vol_span)
    np.testing.assert_allclose(ours["volume_day"], full["volume_day"], rtol=1e-12)
    np.testing.assert_array_equal(ours["ticks_day"], full["ticks_day"])
