"""The recursive LightGBM member on synthetic series whose right forecast is known."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from forecasting import EngineConfig
from forecasting.models import create, default_members
from forecasting.models.lightgbm_recursive import (
    LightGBMRecursive,
    difference_lag,
    differenced,
    recursive_lags,
    standardise,
)

from .conftest import make_frame
from .test_models import _panels

PHI = 0.8
H = 12


def _monthly_ar(n_items=30, n_months=240, seed=0, noise=1.0) -> tuple[pd.DataFrame, np.ndarray]:
    """y[t] = y[t-12] + d[t] with d an AR(1) (phi 0.8) around a per-series drift: a seasonal random
    walk whose seasonal differences are predictable. Returns the frame and, per series, the
    optimal mean forecast of the last H months given everything before them."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2000-01-01", periods=n_months, freq="MS")
    frames, oracle = [], []
    for i in range(n_items):
        drift = rng.uniform(0.5, 2.0)
        season = 20 * np.sin(2 * np.pi * np.arange(12) / 12 + i)
        d = np.zeros(n_months)
        d[0] = rng.normal(0, 5)
        for t in range(1, n_months):
            d[t] = drift + PHI * (d[t - 1] - drift) + rng.normal(0, noise)
        y = np.empty(n_months)
        y[:12] = 1000 + 100 * i + season
        for t in range(12, n_months):
            y[t] = y[t - 12] + d[t]
        T = n_months - H  # the last observed row is T - 1
        best = np.empty(H)
        for j in range(H):
            expected_d = drift + PHI ** (j + 1) * (d[T - 1] - drift)
            base = y[T + j - 12] if j < 12 else best[j - 12]
            best[j] = base + expected_d
        oracle.append(best)
        frames.append(
            pd.DataFrame({"item_id": f"s{i:02d}", "timestamp": dates.strftime("%Y-%m-%d"), "target_value": y})
        )
    return pd.concat(frames, ignore_index=True), np.array(oracle)


@pytest.fixture
def monthly():
    return EngineConfig(frequency="M", horizon=H, quantiles=("p10", "p50", "p90"))


def test_given_a_seasonal_ar_process_when_forecast_recursively_then_the_mean_follows_the_optimal_forecast(monthly):
    frame, oracle = _monthly_ar()
    train, hist, fut, truth = _panels(frame, monthly)
    model = create("LightGBMRecursive", monthly).fit(train)
    mean = model.predict(hist, fut)[:, :, -1]
    # seasonal naive repeats last year: it misses the AR part of d (and its drift)
    naive = hist.y[hist.indptr[1:, None] - 12 + np.arange(H)[None, :]]
    error, naive_error = np.mean(np.abs(mean - oracle)), np.mean(np.abs(naive - oracle))
    assert error < 0.35 * naive_error, f"recursive {error:.2f} vs seasonal naive {naive_error:.2f} from the optimum"
    # the recursion carries the AR decay: step 1 is closest to the optimum, as it should be
    assert np.mean(np.abs(mean[:, 0] - oracle[:, 0])) < 1.5


def test_given_noisy_series_when_forecast_then_quantiles_are_ordered_the_mean_is_the_median_and_bands_widen(monthly):
    frame, _ = _monthly_ar(n_items=12, noise=4.0, seed=1)
    train, hist, fut, _ = _panels(frame, monthly)
    values = create("LightGBMRecursive", monthly).fit(train).predict(hist, fut)
    p10, p50, p90, mean = (values[:, :, k] for k in range(4))
    assert np.all(p10 < p50) and np.all(p50 < p90)
    assert np.all((mean >= p10) & (mean <= p90))
    np.testing.assert_allclose(mean, p50)  # a normal distribution around the booster's mean
    width = p90 - p10
    np.testing.assert_allclose(width / width[:, :1], np.broadcast_to(np.sqrt(np.arange(1, H + 1)), width.shape))


def test_given_a_panel_when_differenced_and_standardised_then_undoing_both_returns_every_value():
    rng = np.random.default_rng(2)
    parts = [rng.normal(100, 10, 40), rng.normal(5, 1, 30), np.full(20, 7.0)]
    y = np.concatenate(parts)
    indptr = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    for lag in (1, 12):
        d = differenced(y, indptr, lag)
        mean, std = standardise(d, indptr)
        series = np.repeat(np.arange(3), np.diff(indptr))
        z = (d - mean[series]) / std[series]
        pos = np.arange(len(y)) - indptr[series]
        assert np.all(np.isnan(d[pos < lag])) and np.all(np.isfinite(d[pos >= lag]))  # never across series
        back = np.where(pos >= lag, np.arange(len(y)) - lag, 0)
        restored = y[back] + mean[series] + std[series] * z
        np.testing.assert_allclose(restored[pos >= lag], y[pos >= lag])
        seg = slice(indptr[0], indptr[1])
        assert abs(np.nanmean(z[seg])) < 1e-9 and abs(np.nanstd(z[seg]) - 1) < 1e-9
    assert std[2] == 1.0  # a constant series keeps a unit scale (no division by zero)


def test_given_a_frequency_and_series_lengths_then_lags_and_the_difference_follow_autogluons_choice():
    assert recursive_lags(12) == [*range(1, 8), 11, 12, 13, 23, 24, 25, 35, 36, 37]
    assert recursive_lags(4) == [*range(1, 10), 11, 12, 13]
    assert recursive_lags(1) == [*range(1, 8)]
    assert difference_lag(12, [100, 80], 12) == 12
    assert difference_lag(12, [100, 30], 12) == 1  # one series too short for a seasonal difference
    assert difference_lag(1, [100], 12) == 1


def test_given_a_promotion_covariate_when_forecast_then_promoted_days_are_forecast_higher():
    config = EngineConfig(frequency="D", horizon=7, quantiles=("p10", "p50", "p90"))
    frame = make_frame(n_items=4, n_days=200, kind="covariate", noise=0.5)
    train, hist, fut, _ = _panels(frame, config)
    values = create("LightGBMRecursive", config).fit(train).predict(hist, fut)
    promo = fut.X[:, 0].reshape(values.shape[:2]) == 1
    assert promo.any() and (~promo).any()
    lift = values[:, :, -1][promo].mean() - values[:, :, -1][~promo].mean()
    assert lift > 20, f"promotion lift {lift:.1f}, generated as 30"


def test_given_a_series_unseen_in_training_when_forecast_then_it_gets_the_pooled_spread(monthly):
    frame, _ = _monthly_ar(n_items=8, seed=3)
    train, hist, fut, _ = _panels(frame, monthly)
    model = create("LightGBMRecursive", monthly).fit(train)
    renamed = [f"new_{u}" for u in hist.uids]
    hist.uids = fut.uids = np.array(renamed)
    hist.static = hist.static.reindex(renamed)
    values = model.predict(hist, fut)
    assert np.isfinite(values).all()
    assert model.series_residual_std and not set(renamed) & set(model.series_residual_std)


def test_given_a_fitted_model_when_pickled_then_it_forecasts_the_same(monthly):
    frame, _ = _monthly_ar(n_items=6, seed=4)
    train, hist, fut, _ = _panels(frame, monthly)
    model = create("LightGBMRecursive", monthly).fit(train)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(hist, fut), model.predict(hist, fut))


def test_given_weekly_data_or_100_monthly_series_on_the_default_preset_then_the_recursive_member_is_trained(monthly):
    assert "LightGBMRecursive" in default_members(monthly)
    assert LightGBMRecursive.name in default_members(EngineConfig(frequency="3M", horizon=8))
    assert LightGBMRecursive.suits(monthly, 145) and not LightGBMRecursive.suits(monthly, 32)
    assert not LightGBMRecursive.suits(EngineConfig(frequency="D", horizon=14), 24)
    weekly = EngineConfig(frequency="W", horizon=13)
    assert "LightGBMRecursive" in default_members(weekly) and LightGBMRecursive.suits(weekly, 1)


def test_given_gaps_and_a_context_shorter_than_a_season_when_forecast_then_every_value_is_finite_and_ordered(monthly):
    frame, _ = _monthly_ar(n_items=6, seed=5)
    train, hist, fut, _ = _panels(frame, monthly)
    rng = np.random.default_rng(0)
    for panel in (train, hist):  # unknown values inside the history (the engine fills them; a Panel may not)
        panel.y[rng.choice(len(panel.y), len(panel.y) // 20, replace=False)] = np.nan
        panel.y[panel.indptr[1:] - 1] = panel.y[panel.indptr[1:] - 2] = 1000.0  # a known last value
    model = create("LightGBMRecursive", monthly).fit(train)
    assert model.diff_lag == 12
    short = hist.subset([0, 1])
    keep = [np.arange(short.indptr[i + 1] - 8, short.indptr[i + 1]) for i in range(2)]  # 8 months: no season back
    short = short.take_rows(np.concatenate(keep), np.array([0, 8, 16]))
    values = model.predict(short, fut.subset([0, 1]))
    assert np.isfinite(values).all()
    assert np.all(np.diff(values[:, :, :3], axis=2) >= 0)
    # without a season back the forecast starts from the last value, not from zero
    last = short.y[short.indptr[1:] - 1]
    assert np.all(np.abs(values[:, 0, -1] - last) < 0.2 * np.abs(last))
