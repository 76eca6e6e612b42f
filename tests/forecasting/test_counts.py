"""forecasting.counts: which series are low counts, their count quantiles, and the backtests' choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from forecasting import EngineConfig
from forecasting.artifact import load_model
from forecasting.counts import LOW_COUNT_MEAN, CountBand, count_quantiles, count_series
from forecasting.data import Panel
from forecasting.engine import train

from .conftest import split_context

LEVELS = np.array([0.1, 0.5, 0.9])


def _panel(series: list) -> Panel:
    lengths = [len(s) for s in series]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    rows = int(indptr[-1])
    return Panel(
        np.array([f"s{i}" for i in range(len(series))]),
        indptr,
        np.arange(rows).astype("datetime64[D]").astype("datetime64[ns]"),
        np.concatenate([np.asarray(s, float) for s in series]),
        np.zeros((rows, 0)),
        [],
        pd.DataFrame(index=[f"s{i}" for i in range(len(series))]),
    )


def test_given_integer_float_large_and_negative_series_then_only_low_integer_counts_are_count_series():
    rng = np.random.default_rng(0)
    low = rng.poisson(3.0, 60)
    panel = _panel([low, low + 0.5, rng.poisson(LOW_COUNT_MEAN * 3, 60), low - 5, np.zeros(60)])
    assert count_series(panel, season_length=7).tolist() == [True, False, False, False, True]


def test_given_a_series_that_grew_then_the_recent_level_decides():
    grown = np.concatenate([np.full(100, 2.0), np.full(14, 60.0)])  # the last two weeks: 60 a day
    assert count_series(_panel([grown]), season_length=7).tolist() == [False]
    # judged on the history a backtest window sees (its last 14 rows cut off): still 2 a day
    assert count_series(_panel([grown]), season_length=7, n_tail=14).tolist() == [True]


def test_given_a_backtest_cut_then_the_rows_are_the_series_the_window_keeps():
    panel = _panel([np.ones(30), np.ones(5), np.full(30, 100.0)])
    head, _ = panel.split_tail(7, 7)  # the 5-point series is dropped by the window
    assert head.n_series == 2
    assert count_series(panel, 7, n_tail=7).tolist() == [True, False]


def test_given_a_mean_then_the_count_quantiles_are_whole_units_of_that_distribution():
    q = count_quantiles(np.array([2.0, 0.0]), LEVELS, 1.0)
    assert q[0].tolist() == stats.poisson.ppf(LEVELS, 2.0).tolist() == [0.0, 2.0, 4.0]
    assert q[1].tolist() == [0.0, 0.0, 0.0]
    wide = count_quantiles(np.array([8.0]), LEVELS, 3.0)[0]
    narrow = count_quantiles(np.array([8.0]), LEVELS, 1.0)[0]
    assert wide[2] - wide[0] > narrow[2] - narrow[0]  # more dispersion, a wider band
    assert np.all(np.diff(wide) >= 0) and np.all(wide == np.round(wide))


def _band_around(centre: np.ndarray, half_width: float) -> np.ndarray:
    """(n, H, 4) continuous forecasts: p10, p50, p90 = centre -/+ half_width, mean = centre."""
    return np.stack([np.maximum(centre - half_width, 0), centre, centre + half_width, centre], axis=-1)


def test_given_poisson_actuals_and_a_too_wide_band_then_the_backtests_choose_the_count_distribution():
    rng = np.random.default_rng(1)
    lam = rng.uniform(1, 6, size=(40, 7))
    actual = rng.poisson(lam).astype(float)
    band = CountBand.learn(_band_around(lam, 6.0), actual, np.ones(40, bool), LEVELS)
    assert band is not None and band.median_dispersion <= 1.5 and band.gain > 0
    assert band.mean_dispersion is None  # every p50 is at least one unit: no period in the other regime


def test_given_intermittent_actuals_whose_p50_is_zero_then_the_distribution_is_centred_on_the_mean():
    rng = np.random.default_rng(4)
    mean = np.full((60, 7), 0.6)  # nothing on ~70% of days, bursts on the others: variance 4 x mean
    actual = rng.negative_binomial(0.6 / 3.0, 1 / 4.0, size=mean.shape).astype(float)
    values = np.stack([np.zeros_like(mean), np.zeros_like(mean), mean * 15, mean], axis=-1)  # p50 0, p90 far out
    band = CountBand.learn(values, actual, np.ones(60, bool), LEVELS)
    assert band is not None and band.median_dispersion is None and band.mean_dispersion is not None
    out = band.apply(values, np.ones(60, bool), LEVELS)
    assert np.allclose(out[..., 3], 0.6) and np.all(out[..., 2] >= 1)  # the rate kept, a p90 of whole units


def test_given_overdispersed_actuals_then_a_larger_dispersion_is_chosen():
    rng = np.random.default_rng(2)
    lam = np.full((60, 7), 5.0)
    actual = rng.negative_binomial(5.0 / 2.0, 1 / 3.0, size=lam.shape).astype(float)  # variance 3 x mean
    band = CountBand.learn(_band_around(lam, 1.0), actual, np.ones(60, bool), LEVELS)
    assert band is not None and band.median_dispersion >= 2.0


def test_given_a_band_the_backtests_bear_out_or_no_count_rows_then_nothing_is_replaced():
    rng = np.random.default_rng(3)
    lam = np.full((40, 7), 4.0)
    actual = rng.poisson(lam).astype(float)
    exact = np.stack([stats.poisson.ppf(0.1, lam), lam, stats.poisson.ppf(0.9, lam), lam], axis=-1)
    exact[..., 1] = stats.poisson.ppf(0.5, lam)  # the exact Poisson quantiles: nothing to gain
    assert CountBand.learn(exact, actual, np.ones(40, bool), LEVELS) is None
    assert CountBand.learn(_band_around(lam, 6.0), actual, np.zeros(40, bool), LEVELS) is None
    # no p50 among the levels (p10, p90; or p90 alone): nothing tells the regimes apart, the band stays
    assert CountBand.learn(_band_around(lam, 6.0)[..., [0, 2, 3]], actual, np.ones(40, bool), [0.1, 0.9]) is None
    assert CountBand.learn(_band_around(lam, 6.0)[..., [2, 3]], actual, np.ones(40, bool), [0.9]) is None


def test_given_count_rows_when_applied_then_only_those_rows_change_and_mean_is_the_distributions():
    values = _band_around(np.array([[3.0, 3.0], [300.0, 300.0]]), 2.0)
    out = CountBand(1.0, None).apply(values, np.array([True, False]), LEVELS)
    assert out[0, :, :3].tolist() == [stats.poisson.ppf(LEVELS, 3.0).tolist()] * 2
    assert out[0, :, 3].tolist() == [3.0, 3.0]
    assert np.array_equal(out[1], values[1])


def _mixed_frame(n_days=210, seed=0) -> pd.DataFrame:
    """Four slow items selling a few units a day (weekly pattern, Poisson) and one fast item."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", periods=n_days, freq="D")
    weekly = 1 + 0.5 * np.sin(2 * np.pi * np.arange(n_days) / 7)
    frames = []
    for i, level in enumerate([1.5, 2.5, 4.0, 6.0]):
        y = rng.poisson(level * weekly).astype(float)
        frames.append(pd.DataFrame({"item_id": f"slow_{i}", "timestamp": dates, "target_value": y}))
    fast = 500 * weekly + rng.normal(0, 10, n_days)
    frames.append(pd.DataFrame({"item_id": "fast", "timestamp": dates, "target_value": fast.round(2)}))
    frame = pd.concat(frames, ignore_index=True)
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d")
    return frame


def test_given_slow_integer_items_when_trained_and_predicted_then_their_forecasts_are_one_count_distribution(
    tmp_path,
):
    config = EngineConfig(frequency="D", horizon=7, quantiles=("p10", "p50", "p90"), backtest_windows=4)
    frame = _mixed_frame()
    history, context, _ = split_context(frame, 7)
    lines: list = []
    result = train(history, config, tmp_path, candidates=["SeasonalNaive", "NPTS", "Theta"], log=lines.append)
    model = load_model(result.model_dir)
    assert model.count_band is not None, "\n".join(lines)
    assert any("4 of 5 series are low-count integers" in line for line in lines)
    out = model.predict(context)
    slow = out[out["item_id"].str.startswith("slow")]
    quantiles = slow[["p10", "p50", "p90"]].to_numpy()
    assert model.count_band.median_dispersion is not None
    steady = quantiles[:, 1] >= 1  # the periods whose distribution is centred on a p50 of a unit or more
    assert steady.mean() > 0.8
    assert np.array_equal(quantiles[steady], np.round(quantiles[steady]))  # whole units
    assert (slow["p10"] <= slow["p50"]).all() and (slow["p50"] <= slow["p90"]).all()
    assert ((slow["p10"] <= slow["mean"]) & (slow["mean"] <= slow["p90"])).all()
    fast = out[out["item_id"] == "fast"][["p10", "p50", "p90"]].to_numpy()
    assert not np.array_equal(fast, np.round(fast))  # the fast item keeps the continuous band


def test_given_a_rate_whose_count_quantiles_are_all_zero_then_that_period_keeps_its_band_and_its_mean():
    # 0.05 a day: Poisson p10 = p50 = p90 = 0, and a mean of 0.05 would have to be clipped to 0 to lie
    # inside them, so 14 days of a slow mover would add up to no expected demand at all
    values = np.stack([np.zeros((1, 2)), np.zeros((1, 2)), np.array([[0.3, 3.0]]), np.array([[0.05, 0.9]])], axis=-1)
    out = CountBand(None, 1.0).apply(values, np.array([True]), LEVELS)
    assert out[0, 0].tolist() == values[0, 0].tolist()  # kept: band 0 / 0 / 0.3, mean 0.05
    assert out[0, 1].tolist() == [*stats.poisson.ppf(LEVELS, 0.9).tolist(), 0.9]  # 0.9 a day: counted


def test_given_thousands_of_backtest_rows_then_a_seeded_sample_makes_the_same_choice(monkeypatch):
    from forecasting import counts

    rng = np.random.default_rng(5)
    lam = rng.uniform(1, 8, size=(3000, 7))
    actual = rng.poisson(lam).astype(float)
    values, rows = _band_around(lam, 5.0), np.ones(3000, bool)
    sampled = CountBand.learn(values, actual, rows, LEVELS)
    assert sampled == CountBand.learn(values, actual, rows, LEVELS)  # seeded: the same sample every time
    monkeypatch.setattr(counts, "MAX_ROWS", 10_000)
    full = CountBand.learn(values, actual, rows, LEVELS)
    assert sampled.median_dispersion == full.median_dispersion and sampled.gain == pytest.approx(full.gain, abs=0.02)
