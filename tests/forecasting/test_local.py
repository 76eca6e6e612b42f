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


class _Pid(LocalModel):
    """Forecasts the id of the process that computed it: which process ran each series."""

    name = "Pid"
    falls_back = False

    def _predict_one(self, series, state):
        import os

        return np.full((series.h, len(self.config.quantiles) + 1), float(os.getpid()))


class _CostlyPid(_Pid):
    name = "CostlyPid"
    per_series_statistical = True  # as ARIMA, ETS, Theta and Prophet: a fit per series at prediction


@pytest.mark.parametrize("cls, in_workers", [(_CostlyPid, True), (_Pid, False)])
def test_given_a_file_of_few_series_when_a_costly_model_forecasts_then_the_workers_share_them(cls, in_workers, config):
    # given: 10 series, far fewer than PARALLEL_MIN_SERIES (a 60-series transform file ran on one core)
    import os

    assert local.PARALLEL_MIN_COSTLY_SERIES <= 10 < local.PARALLEL_MIN_SERIES
    train, hist, fut, _ = _panels(make_frame(n_items=10, n_days=40), config)
    # when
    values = cls(config, n_jobs=2).fit(train).predict(hist, fut)
    # then: a per-series statistical model used the workers; a cheap one stayed in this process
    pids = set(values[:, 0, 0].astype(int))
    assert (os.getpid() not in pids) is in_workers


def test_pool_workers_end_when_their_owner_dies_without_shutting_the_pool_down():
    """An AutoML worker killed with its runtime (os._exit on orphaning) left its per-series pool
    waiting on the call queue for ever: the fault test found them alive after the kill."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    code = (
        "import os\n"
        "from forecasting.models import local\n"
        "pool, _ = local._pool(2)\n"
        "pool.submit(os.getpid).result()\n"
        "print(' '.join(str(pid) for pid in pool._processes), flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    workers = [int(pid) for pid in out.stdout.split()]
    assert len(workers) == 2

    def alive(pid):
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
        except OSError:
            return False

    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers), "pool workers outlived their owner"
