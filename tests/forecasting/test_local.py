"""The local-model base: per-series loop, fallback, minimum length, constant windows, workers."""

from __future__ import annotations

import time

import numpy as np
import pytest

from forecasting.models import TimeBudgetExceeded, local
from forecasting.models.base import seasonal_naive_quantiles
from forecasting.models.local import LocalModel

from .conftest import make_frame
from .test_models import _panels


class _LastValue(LocalModel):
    """A toy local model: the last value, flat, with a fixed +-1 band; raises on series ending above 65."""

    name = "LastValue"

    def _predict_one(self, series, state):
        if series.y[-1] > 65:
            raise ValueError("too high")
        last = series.y[-1]
        return np.tile([last - 1, last, last + 1, last], (series.h, 1))


class _Selecting(_LastValue):
    """Chooses an offset per series at fit (the series' own mean), used at prediction."""

    name = "Selecting"
    selects_per_series = True

    def _fit_one(self, series):
        return float(np.mean(series.y))

    def _predict_one(self, series, state):
        level = series.y[-1] if state is None else state
        return np.tile([level - 1, level, level + 1, level], (series.h, 1))


def test_given_a_series_the_model_raises_on_when_forecast_then_only_it_falls_back_and_is_counted(config):
    # given: make_frame levels 50, 60, 70: the model raises on the third series only
    train, hist, fut, _ = _panels(make_frame(n_items=3, n_days=60, noise=0.0), config)
    # when
    forecast = _LastValue(config).fit(train).forecast(hist, fut)
    # then: the third series is seasonal naive's forecast; the others are the model's
    assert forecast.fallbacks.count == 1
    assert forecast.fallbacks.first_reason == "ValueError: too high"
    naive = seasonal_naive_quantiles(hist.series_y(2), 7, config.season_length, config.quantile_levels)
    np.testing.assert_allclose(forecast.values[2], naive)
    np.testing.assert_allclose(forecast.values[0, :, 1], hist.series_y(0)[-1])


def test_given_a_series_shorter_than_the_model_needs_when_forecast_then_it_falls_back_with_that_reason(config):
    class NeedsLong(_LastValue):
        needs_min_length = 1000

    train, hist, fut, _ = _panels(make_frame(n_items=2, n_days=60), config)
    forecast = NeedsLong(config).fit(train).forecast(hist, fut)
    assert forecast.fallbacks.count == 2
    assert forecast.fallbacks.first_reason == "fewer than 1000 points"


def test_given_a_constant_window_when_the_model_declares_it_flat_then_it_is_forecast_flat_not_modelled(config):
    class Flat(_LastValue):
        flat_when_constant = True

        @classmethod
        def default_params(cls, config):
            return {"window": 20}

    frame = make_frame(n_items=3, n_days=60, noise=0.5)
    frame.loc[frame["item_id"] == "item_2", "target_value"] = 80.0  # would raise: the model never sees it
    train, hist, fut, _ = _panels(frame, config)
    forecast = Flat(config).fit(train).forecast(hist, fut)
    assert forecast.fallbacks.count == 0
    np.testing.assert_array_equal(forecast.values[2], 80.0)


def test_given_the_baseline_when_it_raises_then_the_error_is_not_hidden_by_a_fallback(config):
    class Baseline(_LastValue):
        falls_back = False

    train, hist, fut, _ = _panels(make_frame(n_items=3, n_days=60), config)
    with pytest.raises(ValueError, match="too high"):
        Baseline(config).fit(train).predict(hist, fut)


def test_given_a_model_that_selects_per_series_when_fitted_then_each_prediction_gets_its_state(config):
    train, hist, fut, _ = _panels(make_frame(n_items=3, n_days=60, noise=0.0), config)
    model = _Selecting(config).fit(train)
    assert list(model.specs) == list(train.uids)
    values = model.predict(hist, fut)
    for i, uid in enumerate(train.uids):
        np.testing.assert_allclose(values[i, :, 1], model.specs[uid])
    # a series not seen at fit gets state None (here: its last value)
    model.specs.pop(train.uids[0])
    np.testing.assert_allclose(model.predict(hist, fut)[0, :, 1], hist.series_y(0)[-1])


def test_given_worker_processes_when_forecast_then_values_and_fallbacks_equal_the_serial_ones(config, monkeypatch):
    monkeypatch.setattr(local, "PARALLEL_MIN_SERIES", 2)
    train, hist, fut, _ = _panels(make_frame(n_items=6, n_days=60), config)
    serial = _LastValue(config).fit(train).forecast(hist, fut)
    parallel = _LastValue(config, n_jobs=2).fit(train).forecast(hist, fut)
    np.testing.assert_array_equal(parallel.values, serial.values)
    assert parallel.fallbacks == serial.fallbacks and serial.fallbacks.count > 0


def test_given_a_past_deadline_when_forecast_then_the_whole_candidate_stops(config):
    train, hist, fut, _ = _panels(make_frame(n_items=2, n_days=60), config)
    with pytest.raises(TimeBudgetExceeded, match="LastValue exceeded its time budget"):
        _LastValue(config).fit(train).forecast(hist, fut, deadline=time.monotonic() - 1)
