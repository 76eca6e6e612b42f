"""The Prophet candidate (optional `prophet` extra): known answers, reproducibility, workers,
artifacts, the engine's labels."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("prophet")

from forecasting import load_model, train  # noqa: E402
from forecasting.models import Prophet, create, local  # noqa: E402

from .conftest import make_frame, split_context  # noqa: E402
from .test_models import _panels  # noqa: E402


def test_given_a_pure_weekly_season_when_forecast_then_prophet_follows_it(config):
    frame = make_frame(n_items=4, n_days=140, kind="seasonal", noise=0.3)
    train_panel, hist, fut, truth = _panels(frame, config)
    model = create("Prophet", config, n_jobs=1).fit(train_panel)
    forecast = model.forecast(hist, fut)
    values = forecast.values
    assert values.shape == (4, 7, 4)
    assert forecast.fallbacks.count == 0  # Prophet itself, not the seasonal naive fallback
    mae = np.mean(np.abs(values[:, :, 1] - truth))  # p50
    assert mae < 1.0, f"Prophet p50 error {mae:.2f} on a season of amplitude 10"


@pytest.mark.integration
def test_given_a_linear_trend_when_forecast_then_prophet_extrapolates_it(config):
    frame = make_frame(n_items=3, n_days=150, kind="trend", noise=0.3)
    train_panel, hist, fut, truth = _panels(frame, config)
    values = create("Prophet", config, n_jobs=1).fit(train_panel).predict(hist, fut)
    naive_error = np.mean(np.abs(hist.y[hist.indptr[1:] - 1][:, None] - truth))  # last value repeated
    error = np.mean(np.abs(values[:, :, -1] - truth))
    assert error < 0.1 * naive_error, f"Prophet: {error:.2f} vs flat forecast {naive_error:.2f}"


@pytest.mark.integration
def test_given_a_promotion_effect_when_forecast_then_the_regressor_lifts_promoted_days(config):
    frame = make_frame(n_items=3, n_days=200, kind="covariate", noise=0.5)
    train_panel, hist, fut, truth = _panels(frame, config)
    values = create("Prophet", config, n_jobs=1).fit(train_panel).predict(hist, fut)
    promo = fut.X[:, 0].reshape(values.shape[:2]) == 1
    assert promo.any() and (~promo).any()
    # within each series: the lift on promoted days against the others (truth 30)
    lifts = [
        values[i, promo[i], -1].mean() - values[i, ~promo[i], -1].mean()
        for i in range(len(values))
        if promo[i].any() and (~promo[i]).any()
    ]
    assert lifts and all(25 < lift < 35 for lift in lifts), lifts
    assert np.mean(np.abs(values[:, :, -1] - truth)) < 2.0


@pytest.mark.integration
def test_given_noisy_series_when_forecast_then_quantiles_never_cross_and_form_an_interval(config):
    frame = make_frame(n_items=3, n_days=100, kind="seasonal", noise=8.0, seed=3)
    train_panel, hist, fut, truth = _panels(frame, config)
    values = create("Prophet", config, n_jobs=1).fit(train_panel).predict(hist, fut)
    assert np.all(np.diff(values[:, :, :-1], axis=2) >= 0)
    assert np.all(values[:, :, 2] > values[:, :, 0] + 5)  # noise sd 8: a real 80% interval (~20 wide)
    covered = np.mean((truth >= values[:, :, 0]) & (truth <= values[:, :, 2]))
    assert covered >= 0.5


@pytest.mark.integration
def test_given_two_runs_when_forecast_then_numbers_are_identical_and_the_caller_rng_untouched(config):
    frame = make_frame(n_items=2, n_days=120, kind="covariate", noise=2.0)
    train_panel, hist, fut, _ = _panels(frame, config)
    np.random.seed(123)
    first = create("Prophet", config, n_jobs=1).fit(train_panel).predict(hist, fut)
    # Prophet draws from numpy's global RNG: seeded per series, then the caller's state restored
    assert np.random.random() == np.random.RandomState(123).random()
    np.random.seed(999)  # whatever the caller's state, the same numbers
    second = create("Prophet", config, n_jobs=1).fit(train_panel).predict(hist, fut)
    np.testing.assert_array_equal(first, second)
    # another seed: other sample draws, so other quantiles (the mean, yhat, does not depend on it)
    other = create("Prophet", dataclasses.replace(config, seed=1), n_jobs=1).fit(train_panel).predict(hist, fut)
    assert not np.array_equal(first[:, :, :-1], other[:, :, :-1])
    np.testing.assert_allclose(first[:, :, -1], other[:, :, -1])


@pytest.mark.integration
def test_given_worker_processes_when_forecast_then_results_equal_the_serial_ones(config, monkeypatch):
    monkeypatch.setattr(local, "PARALLEL_MIN_SERIES", 2)
    frame = make_frame(n_items=4, n_days=90, kind="covariate", noise=2.0)
    train_panel, hist, fut, _ = _panels(frame, config)
    serial = create("Prophet", config, n_jobs=1).fit(train_panel)
    parallel = create("Prophet", config, n_jobs=2).fit(train_panel)
    in_workers, alone = parallel.forecast(hist, fut), serial.forecast(hist, fut)
    np.testing.assert_array_equal(in_workers.values, alone.values)
    assert in_workers.fallbacks.count == alone.fallbacks.count == 0
    # one series alone (the real-time endpoint) gets the numbers it gets inside the batch
    alone = serial.predict(hist.subset([2]), fut.subset([2]))
    np.testing.assert_array_equal(alone[0], serial.predict(hist, fut)[2])


@pytest.mark.integration
def test_given_concurrent_requests_when_forecast_then_each_gets_its_serial_numbers(config):
    """The endpoint serves requests on threads; Prophet's draws from numpy's global generator
    must not interleave between them."""
    from concurrent.futures import ThreadPoolExecutor

    frame = make_frame(n_items=4, n_days=90, kind="covariate", noise=2.0)
    train_panel, hist, fut, _ = _panels(frame, config)
    model = create("Prophet", config, n_jobs=1).fit(train_panel)
    expected = [model.predict(hist.subset([i]), fut.subset([i]))[0] for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(2):
            got = list(pool.map(lambda i: model.predict(hist.subset([i]), fut.subset([i]))[0], range(4)))
            for i in range(4):
                np.testing.assert_array_equal(got[i], expected[i])


@pytest.mark.integration
def test_given_a_pickled_candidate_when_loaded_then_it_predicts_identical_numbers(config):
    frame = make_frame(n_items=2, n_days=100, kind="seasonal")
    train_panel, hist, fut, _ = _panels(frame, config)
    model = create("Prophet", config, n_jobs=1).fit(train_panel)
    before = model.predict(hist, fut)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(hist, fut), before)


@pytest.mark.integration
def test_given_the_prophet_algorithm_when_trained_then_it_is_labelled_prophet_and_survives_save_load(tmp_path, config):
    # given: promotions seasonal naive cannot foresee, so Prophet earns ensemble weight
    frame = make_frame(n_items=3, n_days=120, kind="covariate", noise=0.5)
    history, context, actual = split_context(frame, config.horizon)
    config = dataclasses.replace(config, algorithms=("prophet",), holiday_country="US")
    # when
    result = train(history, config, tmp_path, log=lambda *_: None)
    # then
    board = result.leaderboard.set_index("candidate")
    assert board.loc["Prophet", "status"] == "ok"
    assert board.loc["Prophet", "ensemble_weight"] > 0.5
    first = load_model(result.model_dir).predict(context)
    second = load_model(result.model_dir).predict(context)
    cols = list(config.quantiles) + ["mean"]
    np.testing.assert_array_equal(first[cols].to_numpy(), second[cols].to_numpy())
    truth = actual.sort_values(["item_id", "timestamp"])["target_value"].to_numpy()
    assert np.mean(np.abs(first.sort_values(["item_id", "timestamp"])["mean"].to_numpy() - truth)) < 3.0


def test_given_prophet_not_installed_when_trained_then_the_stand_in_is_named(tmp_path, config, monkeypatch):
    monkeypatch.setattr(Prophet, "available", classmethod(lambda cls: False))
    frame = make_frame(n_items=2, n_days=90, kind="seasonal")
    config = dataclasses.replace(config, algorithms=("prophet",))
    result = train(frame, config, tmp_path, log=lambda *_: None)
    labels = set(result.leaderboard["candidate"])
    assert "DynamicRegression (Prophet-style, stands in for prophet)" in labels
    assert "Prophet" not in labels


def test_given_an_unknown_holiday_country_when_forecast_then_the_error_says_so(config):
    config = dataclasses.replace(config, holiday_country="XX")
    train_panel, hist, fut, _ = _panels(make_frame(n_items=2, n_days=60), config)
    with pytest.raises(ValueError, match="CountryCode 'XX'"):
        create("Prophet", config, n_jobs=1).fit(train_panel).predict(hist, fut)


QUIET_SCRIPT = """
from forecasting import EngineConfig
from forecasting.models import create
from tests.forecasting.conftest import make_frame
from tests.forecasting.test_models import _panels
config = EngineConfig(frequency="D", horizon=7, quantiles=("p10", "p50", "p90"), holiday_country="US")
train_panel, hist, fut, _ = _panels(make_frame(n_items=2, n_days=60), config)
model = create("Prophet", config, n_jobs=1).fit(train_panel)
print("fallbacks", model.forecast(hist, fut).fallbacks.count)
"""


@pytest.mark.integration
def test_given_a_fresh_process_when_prophet_forecasts_then_nothing_is_printed():
    # a fresh interpreter without pytest's log capture: prophet's and cmdstanpy's own handlers
    # would print 'Importing plotly failed' and INFO lines per fit
    done = subprocess.run(
        [sys.executable, "-c", QUIET_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fallbacks 0"
    assert done.stderr == ""
