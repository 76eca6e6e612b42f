"""Bagging of the global LightGBM model: bags averaged, each the unbagged model at its own seed,
reproducible, and on by default only where `LightGBMGlobal.bagging_for` says it pays."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from forecasting import EngineConfig
from forecasting.models import create
from forecasting.models.lightgbm_global import LightGBMGlobal

from ..conftest import FAST_LGB, make_frame
from ..test_models import _panels

FAST = FAST_LGB["LightGBM"]


@pytest.fixture(scope="module")
def panels():
    config = EngineConfig(frequency="D", horizon=7, quantiles=("p10", "p50", "p90"), seed=5)
    return (config, *_panels(make_frame(n_items=12, n_days=90, kind="covariate", noise=2.0), config))


def test_given_bags_when_predicting_then_the_forecast_is_the_mean_of_each_bag_alone(panels):
    config, train, hist, fut, _ = panels
    model = create("LightGBM", config, **FAST, bags=3, bag_rows=600).fit(train)
    assert model.params["bags"] == 3 and model.params["bag_rows"] == 600 and len(model.bag_boosters) == 3
    assert model.n_train_rows == 3 * 600  # 12 x 88 eligible rows: each bag a sample of 600
    values = model.predict(hist, fut)
    alone = []
    for bag in model.bag_boosters:
        single = copy.copy(model)
        single.bag_boosters = [bag]
        alone.append(single.predict(hist, fut))
    assert not np.allclose(alone[0], alone[1])  # the bags differ: their own rows and seeds
    np.testing.assert_allclose(values, np.mean(alone, axis=0), rtol=1e-12, atol=1e-9)
    assert np.all(np.diff(values[:, :, :3], axis=2) >= 0)  # quantiles ordered
    assert np.all((values[:, :, 3] >= values[:, :, 0]) & (values[:, :, 3] <= values[:, :, 2]))  # mean inside p10-p90


def test_given_bags_then_bag_k_is_the_unbagged_model_at_seed_plus_k_on_bag_rows(panels):
    config, train, hist, fut, _ = panels
    bagged = create("LightGBM", config, **FAST, bags=2, bag_rows=600).fit(train)
    second = create("LightGBM", config, **{**FAST, "max_rows": 600}, bags=1, seed=config.seed + 1).fit(train)
    only = copy.copy(bagged)
    only.bag_boosters = bagged.bag_boosters[1:]
    np.testing.assert_array_equal(only.predict(hist, fut), second.predict(hist, fut))


def test_given_a_seed_when_bagged_twice_then_the_forecasts_are_identical_and_another_seed_differs(panels):
    config, train, hist, fut, _ = panels
    a = create("LightGBM", config, **FAST, bags=3, bag_rows=600).fit(train).predict(hist, fut)
    b = create("LightGBM", config, **FAST, bags=3, bag_rows=600).fit(train).predict(hist, fut)
    np.testing.assert_array_equal(a, b)
    c = create("LightGBM", config, **FAST, bags=3, bag_rows=600, seed=6).fit(train).predict(hist, fut)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(
    "frequency, n_series, bags",
    [
        ("D", 125, 2),
        ("D", 100, 2),
        ("D", 99, 1),
        ("D", 24, 1),
        ("D", 1, 1),
        ("W", 500, 1),
        ("M", 500, 1),
        ("H", 500, 1),
    ],
)
def test_given_a_panel_then_bagging_is_on_only_for_daily_data_of_100_series_or_more(frequency, n_series, bags):
    config = EngineConfig(frequency=frequency, horizon=7)
    assert LightGBMGlobal.bagging_for(config, n_series)["bags"] == bags


def test_given_default_params_when_fitted_then_the_gate_decides_and_the_params_record_it(config):
    """100 daily series: 2 bags of 50,000 rows; 12: one booster per quantile on max_rows, the
    unbagged model as before."""
    big_frame = make_frame(n_items=100, n_days=30, kind="seasonal", noise=0.3)
    big, *_ = _panels(big_frame, config)
    model = create("LightGBM", config, num_boost_round=5, min_data_in_leaf=5).fit(big)
    assert (model.params["bags"], model.params["bag_rows"], len(model.bag_boosters)) == (2, 50_000, 2)
    small, hist, fut, _ = _panels(make_frame(n_items=12, n_days=90, kind="seasonal", noise=0.3), config)
    one = create("LightGBM", config, **FAST).fit(small)
    assert (one.params["bags"], one.params["bag_rows"], len(one.bag_boosters)) == (1, 5000, 1)
    explicit = create("LightGBM", config, **FAST, bags=1).fit(small)
    np.testing.assert_array_equal(one.predict(hist, fut), explicit.predict(hist, fut))


@pytest.mark.parametrize("bags", [0, -1, 1.5, "3"])
def test_given_a_bad_bags_parameter_when_fitting_then_a_one_line_error_names_it(bags, config):
    train, *_ = _panels(make_frame(n_items=3, n_days=40), config)
    with pytest.raises(ValueError, match="LightGBM parameter bags"):
        create("LightGBM", config, **FAST, bags=bags).fit(train)
