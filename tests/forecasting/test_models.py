"""Each candidate on tiny synthetic series with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting.engine import _prepare
from forecasting.models import create

from .conftest import FAST_LGB, make_frame, split_context


def _panels(frame, config):
    from forecasting.artifact import ForecastModel

    history, context, actual = split_context(frame, config.horizon)
    _, roles, static, train_panel = _prepare(history, config, "test")
    model = ForecastModel(config, roles, static, {}, {})
    from forecasting.data import ColumnRoles, static_frame, to_long_frame

    long = to_long_frame(context, config, roles, "ctx", training=False)
    ids = static_frame(context, config, ColumnRoles([], roles.static, []))
    hist, fut = model._split(long, ids, "ctx")
    truth = actual.sort_values(["item_id", "timestamp"])["target_value"].to_numpy().reshape(hist.n_series, -1)
    return train_panel, hist, fut, truth


@pytest.mark.parametrize("name", ["SeasonalNaive", "ETS", "Theta", "NPTS", "DynamicRegression", "LightGBM"])
def test_given_a_pure_weekly_season_when_forecast_then_each_candidate_follows_it(name, config):
    frame = make_frame(n_items=4, n_days=140, kind="seasonal", noise=0.3)
    train, hist, fut, truth = _panels(frame, config)
    model = create(name, config, **FAST_LGB.get(name, {})).fit(train)
    values = model.predict(hist, fut)
    assert values.shape == (4, 7, 4)
    mae = np.mean(np.abs(values[:, :, 1] - truth))  # p50
    assert mae < 2.5, f"{name} p50 error {mae:.2f} on a season of amplitude 10"


@pytest.mark.parametrize("name", ["ETS", "Theta", "DynamicRegression", "LightGBM"])
def test_given_a_linear_trend_when_forecast_then_the_candidate_extrapolates_it(name, config):
    frame = make_frame(n_items=4, n_days=150, kind="trend", noise=0.3)
    train, hist, fut, truth = _panels(frame, config)
    # LightGBM's mean is that of its quantile boosters, whose outer quantiles need the default
    # number of rounds to follow a trend (30 rounds leave p90 far behind)
    params = {"LightGBM": {"min_data_in_leaf": 5, "max_rows": 5000}}.get(name, {})
    values = create(name, config, **params).fit(train).predict(hist, fut)
    naive_error = np.mean(np.abs(hist.y[hist.indptr[1:] - 1][:, None] - truth))  # last value repeated
    error = np.mean(np.abs(values[:, :, -1] - truth))
    assert error < 0.5 * naive_error, f"{name}: {error:.2f} vs flat forecast {naive_error:.2f}"


@pytest.mark.parametrize("name", ["DynamicRegression", "LightGBM"])
def test_given_a_promotion_effect_when_forecast_then_promoted_days_are_forecast_higher(name, config):
    frame = make_frame(n_items=4, n_days=200, kind="covariate", noise=0.5)
    train, hist, fut, truth = _panels(frame, config)
    params = {"LightGBM": {"num_boost_round": 60, "min_data_in_leaf": 5}}.get(name, {})
    values = create(name, config, **params).fit(train).predict(hist, fut)
    promo = fut.X[:, 0].reshape(values.shape[:2]) == 1
    assert promo.any() and (~promo).any()
    lift = values[:, :, 1][promo].mean() - values[:, :, 1][~promo].mean()  # p50
    assert 20 < lift < 40, f"{name} learned a lift of {lift:.1f}, the truth is 30"
    # the mean follows (LightGBM's is that of its quantiles, whose p10 learns the lift slowest)
    mean_lift = values[:, :, -1][promo].mean() - values[:, :, -1][~promo].mean()
    assert 12 < mean_lift < 40, f"{name}: the mean's lift is {mean_lift:.1f}, the truth is 30"


@pytest.mark.parametrize("name", ["SeasonalNaive", "ETS", "NPTS", "DynamicRegression", "LightGBM"])
def test_given_noisy_series_when_forecast_then_quantiles_never_cross(name, config):
    frame = make_frame(n_items=3, n_days=100, kind="seasonal", noise=8.0, seed=3)
    train, hist, fut, _ = _panels(frame, config)
    values = create(name, config, **FAST_LGB.get(name, {})).fit(train).predict(hist, fut)
    assert np.all(np.diff(values[:, :, :-1], axis=2) >= 0)
    assert np.all(values[:, :, 2] > values[:, :, 0])  # a real interval, not a point


def test_given_the_seasonal_naive_when_forecast_then_the_median_repeats_last_week_exactly(config):
    frame = make_frame(n_items=2, n_days=60, kind="seasonal", noise=0.0)
    train, hist, fut, truth = _panels(frame, config)
    values = create("SeasonalNaive", config).predict(hist, fut)
    last_week = np.stack([hist.series_y(i)[-7:] for i in range(hist.n_series)])
    np.testing.assert_allclose(values[:, :, -1], last_week)


def test_given_an_unknown_model_name_when_created_then_the_error_lists_the_registry(config):
    with pytest.raises(ValueError, match=r"Unknown model: 'Foo', available models are: \['ARIMA'"):
        create("Foo", config)


@pytest.mark.parametrize(
    "name", ["ETS", pytest.param("ARIMA", marks=pytest.mark.integration)]
)  # ARIMA fits take seconds
def test_given_a_fitted_statistical_model_when_predicting_then_it_reuses_the_selected_forms(name, config):
    frame = make_frame(n_items=3, n_days=120, kind="seasonal", noise=0.5)
    train, hist, fut, truth = _panels(frame, config)
    model = create(name, config).fit(train)
    assert set(model.specs) == set(train.uids)
    forecast = model.forecast(hist, fut)
    values = forecast.values
    assert forecast.fallbacks.count == 0
    assert np.mean(np.abs(values[:, :, 1] - truth)) < 2.5


def test_given_the_registry_then_exactly_one_candidate_is_the_baseline_and_every_job_runs_it_first():
    from forecasting.models import BASELINE, CANDIDATES, candidate_names
    from forecasting.models.naive import SeasonalNaive

    assert [name for name, cls in CANDIDATES.items() if cls.is_baseline] == [BASELINE] == [SeasonalNaive.name]
    assert candidate_names(["arima", "npts"])[0] == BASELINE
    assert candidate_names(preset="default")[0] == BASELINE


def test_given_quarterly_data_when_the_regression_forecasts_then_its_season_is_four_steps_long():
    # 4-step season (amplitude 10) on a level of 100: the year of a 3M series is 4 steps, not 12
    from forecasting import EngineConfig

    config = EngineConfig(frequency="3M", horizon=8, quantiles=("p10", "p50", "p90"))
    rng = np.random.default_rng(0)
    rows = []
    for item in ("a", "b"):
        stamps = pd.date_range("2000-01-01", periods=60, freq="QS")
        y = 100 + 10 * np.tile([1.0, -1.0, 0.5, -0.5], 15) + rng.normal(0, 0.3, 60)
        rows.append(pd.DataFrame({"item_id": item, "timestamp": stamps.strftime("%Y-%m-%d"), "target_value": y}))
    frame = pd.concat(rows, ignore_index=True)
    train, hist, fut, truth = _panels(frame, config)
    values = create("DynamicRegression", config).fit(train).predict(hist, fut)
    mae = np.mean(np.abs(values[:, :, 1] - truth))
    assert mae < 2.0, f"p50 error {mae:.2f} on a 4-step season of amplitude 10"


def test_given_a_small_panel_when_lightgbm_is_fitted_then_it_refits_on_every_backtest_window(config):
    small = make_frame(n_items=2, n_days=120, kind="seasonal")
    train, _, _, _ = _panels(small, config)
    model = create("LightGBM", config, **FAST_LGB["LightGBM"]).fit(train)
    assert model.refit_every_window
    big = create("LightGBM", config, **{**FAST_LGB["LightGBM"], "refit_below_rows": 100}).fit(train)
    assert not big.refit_every_window


def test_given_series_of_several_lengths_when_lightgbm_draws_training_rows_then_they_are_those_of_the_listed_rows():
    """The draw by index arithmetic equals the one from the listed eligible rows (what fit built
    over every row of the panel before), with and without sampling."""
    from forecasting.models.lightgbm_global import _training_rows

    indptr = np.array([0, 3, 50, 51, 140, 400])
    lengths = np.diff(indptr)
    starts = np.repeat(indptr[:-1], lengths)
    pos = np.arange(indptr[-1]) - starts
    end_pos = np.repeat(lengths, lengths) - pos
    for max_history, max_rows in [(1100, 100_000), (60, 100_000), (60, 150), (1100, 37)]:
        eligible = np.flatnonzero((pos >= 2) & (end_pos <= max_history))
        draws = int(np.clip(max_rows // len(eligible), 1, 3))
        listed = np.tile(eligible, draws)
        if len(listed) > max_rows:
            listed = np.sort(np.random.default_rng(7).choice(listed, max_rows, replace=False))
        rows, series = _training_rows(indptr, max_history, max_rows, np.random.default_rng(7))
        np.testing.assert_array_equal(rows, listed)
        np.testing.assert_array_equal(series, np.searchsorted(indptr, listed, side="right") - 1)


def test_given_rows_with_gaps_when_window_means_are_taken_then_they_match_the_direct_means():
    from forecasting.models.lightgbm_global import _window_means

    y = np.array([1.0, np.nan, 3.0, -4.0, 5.0, 6.0, 7.0, 8.0])
    st = np.array([0, 0, 4, 4, 4])
    end = np.array([0, 3, 4, 7, 3])  # the last: an empty window (before its series' start)
    got = _window_means(y, st, end, 3)
    for i, (a, e) in enumerate(zip(st, end)):
        window = np.nan_to_num(y[max(a, e - 2) : e + 1])
        if e < a:
            assert np.isnan(got["sum"][i])
            continue
        assert got["sum"][i] == pytest.approx(window.mean())
        assert got["abs"][i] == pytest.approx(np.abs(window).mean())
        assert got["sq"][i] == pytest.approx((window**2).mean())


@pytest.mark.parametrize("mode", ["season", "season_level"])
def test_given_a_seasonal_series_when_the_seasonal_baseline_is_taken_then_it_inverts_exactly_and_reads_no_row_after_the_origin(
    mode,
):
    """The seasonal target transform (y - baseline) / scale is undone exactly by the forecast's
    baseline + scale * target; a periodic series is its own seasonal baseline; and scrambling every
    row after the origin changes nothing (k = ceil(h/m) seasons back, also for h > m)."""
    from forecasting.models.lightgbm_global import _window_means, seasonal_baseline, seasonal_difference_lags

    m, L = 12, 12
    t = np.arange(60)
    y = np.concatenate([100 + 10 * np.sin(2 * np.pi * t / m), 50 + 5 * np.cos(2 * np.pi * t / m)])
    st = np.repeat([0, 60], 30)
    o = np.concatenate([np.full(30, 35), np.full(30, 95)])
    h = np.tile(np.arange(1, 31), 2) % 24 + 1  # 1 .. 24: one and two seasons back
    level = _window_means(y, st, o, L)["sum"]
    base = seasonal_baseline(y, st, o, h, m, level, L, mode)
    scale = _window_means(y, st, o, 4 * L)["abs"]
    target = (y[o + h] - base) / scale
    np.testing.assert_array_equal(base + scale * target, y[o + h])
    np.testing.assert_allclose(base, y[o + h], atol=1e-9)
    for cut in (35, 95):
        scrambled = y.copy()
        later = np.arange(len(y)) > cut
        later &= (np.arange(len(y)) < 60) if cut == 35 else True
        scrambled[later] = np.random.default_rng(0).normal(0, 1e6, later.sum())
        np.testing.assert_array_equal(seasonal_baseline(scrambled, st, o, h, m, level, L, mode), base)
        lags = seasonal_difference_lags(y, st, o, m, 2 * L, scale)
        for name, col in seasonal_difference_lags(scrambled, st, o, m, 2 * L, scale).items():
            np.testing.assert_array_equal(col, lags[name])
        np.testing.assert_allclose(lags["sdiff_23"], 0, atol=1e-9)  # a periodic series: no change


def test_given_too_short_a_history_or_no_season_when_the_seasonal_baseline_is_taken_then_it_is_the_level():
    from forecasting.models.lightgbm_global import seasonal_baseline

    y = np.arange(10.0)
    st, o, h = np.zeros(3, dtype=int), np.array([3, 3, 9]), np.array([1, 2, 1])
    level = np.array([-1.0, -2.0, -3.0])
    got = seasonal_baseline(y, st, o, h, 7, level, 7, "season")
    np.testing.assert_array_equal(got, [-1.0, -2.0, y[3]])  # rows 4 - 7, 5 - 7 are before the start
    np.testing.assert_array_equal(seasonal_baseline(y, st, o, h, 1, level, 1, "season"), level)
    with pytest.raises(ValueError, match="target mode"):
        seasonal_baseline(y, st, o, h, 7, level, 7, "yearly")


@pytest.mark.parametrize("mode", ["season", "season_level"])
def test_given_the_seasonal_target_when_lightgbm_forecasts_a_seasonal_panel_then_it_follows_the_season(config, mode):
    frame = make_frame(n_items=3, n_days=140, kind="seasonal")
    train, hist, fut, truth = _panels(frame, config)
    values = create("LightGBM", config, **FAST_LGB["LightGBM"], target=mode).fit(train).predict(hist, fut)
    mae = np.mean(np.abs(values[:, :, 1] - truth))
    assert mae < 1.5, f"p50 error {mae:.2f} on a weekly season of amplitude 10"


def test_given_a_horizon_over_a_season_when_npts_forecasts_then_each_step_is_its_own_weighted_distribution():
    # given: a noisy weekly series, a 20-step horizon (steps a season apart share their past values)
    from forecasting.models.npts import npts_forecast, weighted_quantiles

    y = np.random.default_rng(3).gamma(2.0, 10.0, size=90)
    levels, m, decay = [0.1, 0.5, 0.9], 7, 0.3
    # when
    out = npts_forecast(y, 20, m, levels, decay, 400)
    # then: every step equals the distribution of its own season position, computed step by step
    for j in range(20):
        idx = np.arange(len(y) - m + (j % m), -1, -m)
        w = np.exp(-0.3 * np.arange(len(idx), dtype=float))
        np.testing.assert_array_equal(out[j, :-1], weighted_quantiles(y[idx], w, levels))
        assert out[j, -1] == np.sum(w * y[idx]) / w.sum()
