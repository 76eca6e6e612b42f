"""The fitted model shared by the endpoint's threads: predictions keep no state on it."""

from __future__ import annotations

import importlib.util
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

from forecasting import load_model
from forecasting.artifact import ForecastModel
from forecasting.engine import _prepare
from forecasting.models import create

from .conftest import FAST_LGB, make_frame, split_context
from .test_models import _panels

FAST = ["SeasonalNaive", "NPTS", "DynamicRegression", "ETS", "Theta", "LightGBM"]
OPTIONAL = {"Prophet": "prophet", "DeepAR": "torch"}
EVERY = FAST + ["ARIMA"] + [n for n, module in OPTIONAL.items() if importlib.util.find_spec(module)]
PARAMS = {**FAST_LGB, "DeepAR": {"steps": 30, "num_samples": 50}}


def _fitted(names, config, history: pd.DataFrame, tmp_path):
    """The candidates fitted and weighted equally (so each one predicts), saved and loaded."""
    _, roles, static, panel = _prepare(history, config, "test")
    fitted = {
        n: create(
            n,
            config,
            **{"n_jobs": 1, **PARAMS.get(n, {})} if n in ("ETS", "Theta", "ARIMA", "Prophet") else PARAMS.get(n, {}),
        ).fit(panel)
        for n in names
    }
    weights = {n: np.full(len(config.quantiles) + 1, 1 / len(names)) for n in names}
    return load_model(ForecastModel(config, roles, static, fitted, weights).save(tmp_path / "model"))


@pytest.mark.parametrize("names", [FAST, pytest.param(EVERY, marks=pytest.mark.slow)], ids=["fast", "every"])
def test_given_one_loaded_model_when_threads_predict_at_once_then_each_gets_its_sequential_numbers(
    names, config, tmp_path
):
    # given: a model whose candidates all predict, and one context per item (as endpoint requests)
    frame = make_frame(n_items=4, n_days=100, kind="covariate", noise=2.0)
    history, context, _ = split_context(frame, config.horizon)
    model = _fitted(names, config, history, tmp_path)
    requests = [
        context[context["item_id"] == item].reset_index(drop=True) for item in sorted(context["item_id"].unique())
    ]
    requests.append(context)  # and one request with every item
    expected = [model.predict(r) for r in requests]
    # when: the same requests on 5 threads, twice over
    with ThreadPoolExecutor(5) as pool:
        rounds = [list(pool.map(model.predict, requests)) for _ in range(2)]
    # then
    for got in rounds:
        for frame_got, frame_expected in zip(got, expected):
            pd.testing.assert_frame_equal(frame_got, frame_expected)


def test_given_concurrent_predictions_when_some_series_fall_back_then_each_call_reports_its_own(config):
    # given: the first series too short for ETS (fewer than 8 points): it falls back; the others do not
    frame = make_frame(n_items=4, n_days=60, noise=2.0)
    frame = frame[~((frame["item_id"] == "item_0") & (frame.index < 50))].reset_index(drop=True)
    train, hist, fut, _ = _panels(frame, config)
    model = create("ETS", config, n_jobs=1).fit(train)
    calls = [[0], [1], [0, 1, 2], [2, 3]] * 3
    sequential = [model.forecast(hist.subset(c), fut.subset(c)) for c in calls]
    assert [f.fallbacks.count for f in sequential[:4]] == [1, 0, 1, 0]
    # when
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(lambda c: model.forecast(hist.subset(c), fut.subset(c)), calls))
    # then: every call's forecasts and fallback count are its own
    for got, want in zip(concurrent, sequential):
        np.testing.assert_array_equal(got.values, want.values)
        assert got.fallbacks == want.fallbacks
    assert not {"fallbacks", "fallback_reason", "predict_seconds", "_deadline"} & set(vars(model))


def test_given_a_deadline_when_predicting_then_a_passed_one_stops_it_and_a_far_one_changes_nothing(config, tmp_path):
    """The endpoint's per-request compute deadline: past it the prediction stops (it does not compute on)."""
    import time

    from forecasting.models.base import TimeBudgetExceeded

    frame = make_frame(n_items=3, n_days=60, noise=2.0)
    history, context, _ = split_context(frame, config.horizon)
    model = _fitted(["SeasonalNaive", "NPTS"], config, history, tmp_path)

    with pytest.raises(TimeBudgetExceeded, match="deadline"):
        model.predict(context, deadline=time.monotonic() - 1.0)
    pd.testing.assert_frame_equal(model.predict(context, deadline=time.monotonic() + 600), model.predict(context))
