"""Per-series statistical candidates: parallel workers, time budgets."""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np
import pandas as pd
import pytest

from forecasting import EngineConfig, train
from forecasting.models import TimeBudgetExceeded, create, local, statistical

from .conftest import make_frame
from .test_models import _panels


@pytest.mark.integration
@pytest.mark.parametrize("name", ["ETS", "ARIMA"])
def test_given_worker_processes_when_fitting_and_predicting_then_results_equal_the_serial_ones(
    name, config, monkeypatch
):
    # given: a few series with covariates, and the parallel path switched on for so few series
    monkeypatch.setattr(local, "PARALLEL_MIN_SERIES", 2)
    frame = make_frame(n_items=6, n_days=90, kind="covariate", noise=2.0)
    train_panel, hist, fut, _ = _panels(frame, config)
    # when
    serial = create(name, config, n_jobs=1).fit(train_panel)
    parallel = create(name, config, n_jobs=2).fit(train_panel)
    # then: the same forms per series and the same forecasts, in series order
    assert list(parallel.specs) == list(serial.specs) == list(train_panel.uids)
    for uid in serial.specs:
        assert parallel.specs[uid][0] == serial.specs[uid][0]
    in_workers, alone = parallel.forecast(hist, fut), serial.forecast(hist, fut)
    np.testing.assert_array_equal(in_workers.values, alone.values)
    assert in_workers.fallbacks == alone.fallbacks


def test_given_a_past_deadline_when_workers_fit_then_the_budget_error_comes_back(config, monkeypatch):
    monkeypatch.setattr(local, "PARALLEL_MIN_SERIES", 2)
    train_panel, *_ = _panels(make_frame(n_items=4, n_days=60), config)
    with pytest.raises(TimeBudgetExceeded, match="ETS exceeded its time budget"):
        create("ETS", config, n_jobs=2).fit(train_panel, deadline=time.monotonic() - 1)


def test_given_slow_progress_when_projected_past_the_deadline_then_it_stops_early(config):
    model = create("ARIMA", config)
    now = time.monotonic()
    # 1 of 10 series took 10 s; 90 s more cannot fit in the 5 s left
    with pytest.raises(TimeBudgetExceeded, match=r"ARIMA: projected ~90s more for 9 of 10 series"):
        model._check_projection(now - 10, 1, 10, now + 5)
    model._check_projection(now - 1, 9, 10, now + 5)  # on pace: no error
    # the same pace, but another backtest window will repeat the work: 10 s more do not fit in 5 s
    with pytest.raises(TimeBudgetExceeded, match=r"projected ~11s more for 1 of 10 series and 1 more backtest"):
        model._check_projection(now - 9, 9, 10, now + 5, repeats=1)


def test_given_a_tiny_statistical_budget_when_trained_then_the_skip_is_logged_and_the_baseline_kept(tmp_path, config):
    # given: a job without a time limit, but a statistical budget nothing can meet
    config = dataclasses.replace(config, statistical_budget_seconds=1e-9)
    frame = make_frame(n_items=3, n_days=90)
    lines = []
    # when
    result = train(frame, config, tmp_path, candidates=["SeasonalNaive", "NPTS", "ARIMA"], log=lines.append)
    # then: ARIMA is on the leaderboard as skipped, NPTS (no such budget) ran, the baseline is kept
    board = result.leaderboard.set_index("candidate")
    assert board.loc["ARIMA", "status"].startswith("skipped: ARIMA")
    assert "time budget" in board.loc["ARIMA", "status"]
    assert board.loc["NPTS", "status"] == "ok"
    assert board.loc["SeasonalNaive", "status"] == "ok"
    assert any("ARIMA" in line and "skipped" in line for line in lines)


class _SlowETS(statistical.ETS):
    """ETS whose search takes a known time per series and leaves a marker file per series."""

    def _fit_one(self, series):
        time.sleep(0.1)
        marker_dir = self.params["marker_dir"]
        with open(f"{marker_dir}/{os.getpid()}-{time.monotonic_ns()}", "w"):
            pass
        return None


@pytest.mark.integration
def test_given_an_abandoned_parallel_fit_when_it_stops_then_the_workers_stop_too(config, monkeypatch, tmp_path):
    # given: 80 slow series in 8 chunks, and a projection that gives up after the first chunk
    monkeypatch.setattr(local, "PARALLEL_MIN_SERIES", 2)

    def give_up(self, *args, **kwargs):
        raise TimeBudgetExceeded("ETS: projected too long")

    monkeypatch.setattr(local.LocalModel, "_check_projection", give_up)
    train_panel, *_ = _panels(make_frame(n_items=80, n_days=30), config)
    model = _SlowETS(config, n_jobs=2, marker_dir=str(tmp_path))
    # when
    with pytest.raises(TimeBudgetExceeded, match="projected too long"):
        model.fit(train_panel, deadline=time.monotonic() + 600)
    time.sleep(0.5)  # the series in progress finish
    before = len(os.listdir(tmp_path))
    time.sleep(1.5)
    # then: no worker starts another series of the abandoned fit (without the flag: ~30 more)
    assert len(os.listdir(tmp_path)) == before
    assert before < 80


@pytest.mark.parametrize(
    "name", [pytest.param("ARIMA", marks=pytest.mark.integration), "ETS", "Theta"]
)  # ARIMA fits take seconds
def test_given_a_series_with_no_sales_lately_when_forecast_then_it_is_flat_zero_not_a_fallback(name, config):
    # ARIMA's estimation fails on a constant window (all residuals missing); that is not a model failure
    frame = make_frame(n_items=3, n_days=300, kind="covariate", noise=2.0)
    frame.loc[(frame["item_id"] == "item_1") & (frame.index % 300 >= 120), "target_value"] = 0.0
    train_panel, hist, fut, _ = _panels(frame, config)
    model = create(name, config, n_jobs=1).fit(train_panel)
    forecast = model.forecast(hist, fut)
    values = forecast.values
    assert forecast.fallbacks.count == 0
    np.testing.assert_array_equal(values[1], 0.0)
    assert values[0].mean() > 10


@pytest.mark.parametrize("name", ["Theta", "ETS"])
def test_given_one_item_alone_when_forecast_then_it_gets_exactly_its_numbers_from_the_batch(name, config):
    # the endpoint forecasts one item; batch forecasts it among others (at another place in memory)
    frame = make_frame(n_items=5, n_days=98, kind="covariate", noise=2.0)  # 91 points: odd offsets
    train_panel, hist, fut, _ = _panels(frame, config)
    model = create(name, config, n_jobs=1).fit(train_panel)
    batch = model.predict(hist, fut)
    for i in range(hist.n_series):
        np.testing.assert_array_equal(model.predict(hist.subset([i]), fut.subset([i]))[0], batch[i])


def _weekly_panels(n_weeks: int, h: int):
    """One weekly series: a yearly pattern (52.18 weeks, so a lag-52 season drifts), a trend, noise."""
    from forecasting.config import EngineConfig
    from forecasting.engine import _prepare as prepare

    rng = np.random.default_rng(3)
    t = np.arange(n_weeks + h)
    y = (
        100
        + 0.02 * t
        + 8 * np.sin(2 * np.pi * t / 52.18)
        + 4 * np.cos(4 * np.pi * t / 52.18)
        + rng.normal(0, 2.5, len(t))
    )
    stamps = pd.date_range("2000-01-02", periods=len(t), freq="W-SUN")
    frame = pd.DataFrame({"item_id": "a", "timestamp": stamps, "target_value": y})
    config = EngineConfig(frequency="W", horizon=h, quantiles=("p10", "p50", "p90"))
    panel = prepare(frame, config, "test")[3]
    hist, fut = panel.split_tail(h, h)
    return config, hist, dataclasses.replace(fut, y=np.full_like(fut.y, np.nan)), y[n_weeks:]


def test_given_weekly_data_when_theta_is_created_then_its_window_holds_ten_years_and_its_decomposition_is_additive():
    from forecasting.config import EngineConfig

    weekly = create("Theta", EngineConfig(frequency="W", horizon=13)).params
    assert (weekly["window"], weekly["decomposition"]) == (520, "additive")
    daily = create("Theta", EngineConfig(frequency="D", horizon=14)).params
    assert (daily["window"], daily["decomposition"]) == (150, "multiplicative")  # 10 weeks < 150
    assert create("Theta", EngineConfig(frequency="M", horizon=12)).params["window"] == 150


def test_given_a_long_weekly_series_when_theta_forecasts_then_ten_years_beat_three_of_seasonal_averaging():
    # three years give each week's seasonal index ~3 noisy samples; ten years average the noise out
    config, hist, fut, actual = _weekly_panels(n_weeks=700, h=26)
    errors = {}
    for window in (150, None):
        params = {"n_jobs": 1, **({"window": window} if window else {})}
        values = create("Theta", config, **params).fit(hist).predict(hist, fut)
        errors[window] = np.mean(np.abs(values[0, :, -1] - actual))
    assert errors[None] < 0.5 * errors[150]  # measured: 2.5 against 8.7


def test_given_a_multiplicative_monthly_season_when_airline_arima_forecasts_then_it_follows_it_on_the_log_scale():
    from forecasting.models import CANDIDATES

    # given: 20 years of 3% a year growth times a month-of-year pattern (multiplicative), little noise
    rng = np.random.default_rng(0)
    t = np.arange(252)
    pattern = 1 + 0.3 * np.sin(2 * np.pi * t / 12)
    y = 1000 * 1.03 ** (t / 12) * pattern * np.exp(0.002 * rng.standard_normal(len(t)))
    dates = pd.date_range("2000-01-01", periods=len(t), freq="MS")
    frame = pd.DataFrame({"item_id": "a", "timestamp": dates, "target_value": y})
    config = EngineConfig(frequency="M", horizon=12, quantiles=("p10", "p50", "p90"))
    train, hist, fut, truth = _panels(frame, config)
    # when
    values = create("AirlineARIMA", config).fit(train).predict(hist, fut)
    # then: the p50 within 1% of the truth, the interval around it, the mean inside it
    assert np.max(np.abs(values[0, :, 1] / truth[0] - 1)) < 0.01
    assert np.all(values[0, :, 0] < values[0, :, 1]) and np.all(values[0, :, 1] < values[0, :, 2])
    assert np.all((values[0, :, 3] >= values[0, :, 0]) & (values[0, :, 3] <= values[0, :, 2]))
    # a series with a zero is forecast on its levels (no log), still finite
    frame.loc[5, "target_value"] = 0.0
    train, hist, fut, _ = _panels(frame, config)
    assert np.isfinite(create("AirlineARIMA", config).fit(train).predict(hist, fut)).all()
    # only monthly/quarterly panels of 100+ series
    assert CANDIDATES["AirlineARIMA"].suits(config, 145) and not CANDIDATES["AirlineARIMA"].suits(config, 32)
    assert not CANDIDATES["AirlineARIMA"].suits(EngineConfig(frequency="W", horizon=13), 145)
