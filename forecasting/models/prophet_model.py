"""Prophet (Meta's prophet package), per series; used for Autopilot's `prophet` when installed.

Optional: the core install does not need prophet; without it `prophet` maps to the
DynamicRegression stand-in.

A local model like ETS/ARIMA: each series is fitted inside `predict` (MAP fit, no MCMC) on a
recent window of its context (two years for daily data), so backtests, batch and the one-item
real-time endpoint share one code path. The local-model base (`local.LocalModel`) runs the
per-series loop, the worker processes, the time budget and the per-series seasonal-naive
fallback. Nothing is selected in `fit`.

- Seasonalities by data spacing: hourly (sub-hourly data), daily (sub-daily data), weekly
  (sub-weekly data), yearly; each only when the window holds at least 1.5 of its cycles.
- Country holidays (config.holiday_country) for daily and sub-daily data.
- Each known covariate that varies in the fit window is an extra regressor; its future values
  come from the future rows.
- Quantiles from Prophet's predictive samples; the mean is Prophet's yhat. Prophet draws from
  numpy's global generator: it is seeded per series from config.seed and the series id (so one
  series gets the same forecast alone, in a batch, serially or in a worker) and the caller's
  generator state is restored afterwards; a lock keeps concurrent requests' draws apart.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import threading
import warnings
import zlib
from typing import Optional

import numpy as np
import pandas as pd

from .local import LocalModel, default_jobs, recent_window
from .regression import SEASONAL_SETUP

# (name, period in days, Fourier order): Prophet's own defaults, plus an hourly cycle for sub-hourly data
_SEASONS = (("hourly", 1 / 24, 3), ("daily", 1.0, 4), ("weekly", 7.0, 3), ("yearly", 365.25, 10))
_HOLIDAY_UNITS = ("D", "H", "min")
_QUIET = [False]
_GLOBAL_RNG = threading.Lock()  # guards numpy's global generator, which Prophet samples from


def _new_lock_in_child():
    """A worker forked while another thread held the lock would wait on it forever."""
    global _GLOBAL_RNG
    _GLOBAL_RNG = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


def _quiet():
    """Keep prophet and cmdstanpy quiet (INFO per fit, 'Importing plotly failed' at import);
    only their own loggers are touched. Runs in each process (workers may import prophet first)."""
    if _QUIET[0]:
        return
    # the plotly message is logged at ERROR while prophet.plot is imported: silence that logger only
    logging.getLogger("prophet.plot").setLevel(logging.CRITICAL)
    logging.getLogger("prophet").setLevel(logging.WARNING)
    from cmdstanpy.utils import get_logger  # installs cmdstanpy's handler (level DEBUG) once

    get_logger().setLevel(logging.WARNING)
    _QUIET[0] = True


class Prophet(LocalModel):
    name = "Prophet"
    relative_cost = 8
    supports_covariates = True
    per_series_statistical = True  # the engine gives it the statistical time budget (docs/engine.md)
    needs_min_length = 8
    flat_when_constant = True

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("prophet") is not None

    @classmethod
    def default_params(cls, config):
        window = SEASONAL_SETUP.get(config.frequency_unit, (200, []))[0]
        return {"window": window, "n_jobs": default_jobs(), "samples": 300}

    def _fit(self, train):
        """Nothing is selected; the holiday country is checked here, once per training rather than
        on every prediction (an unknown one would make every series fall back unseen)."""
        super()._fit(train)
        country = self._holiday_country()
        if country is not None:
            _quiet()
            from prophet.make_holidays import make_holidays_df

            try:
                make_holidays_df([2020], country)
            except Exception:
                raise ValueError(
                    f"HolidayConfig CountryCode {country!r} is not known to "
                    "prophet's holidays; use an ISO 3166-1 alpha-2 code such as US, DE, GB"
                ) from None

    def _holiday_country(self) -> Optional[str]:
        """The country whose holidays the model uses: daily and sub-daily data only."""
        country = self.config.holiday_country
        return country if country and self.config.frequency_unit in _HOLIDAY_UNITS else None

    def _seasonalities(self, ds: np.ndarray):
        step = np.median(np.diff(ds)) / np.timedelta64(1, "D") if len(ds) > 1 else 1.0
        span = (ds[-1] - ds[0]) / np.timedelta64(1, "D") if len(ds) > 1 else 0.0
        out = []
        for name, period, order in _SEASONS:
            per_cycle = period / step
            if per_cycle < 2 or span < 1.5 * period:
                continue  # not resolvable at this spacing, or less than 1.5 cycles of data
            # at most (points per cycle - 1) / 2 harmonics are identifiable (3 for a week of days)
            out.append((name, period, int(min(order, max(1, (per_cycle - 1) // 2)))))
        return out

    def _predict_one(self, series, state):
        """The window's dates and varying covariates; the draws seeded by (config seed, series id)."""
        y, xinfo = recent_window(series, self.params["window"])
        seed = zlib.crc32(f"{self.config.seed}|{series.uid}".encode()) & 0x7FFFFFFF
        Xh, Xfut = (None, None) if xinfo is None else (xinfo[0], series.X_future[:, xinfo[1]])
        return self._forecast(y, series.ds[-len(y) :], series.ds_future, Xh, Xfut, seed)

    def _forecast(self, y, ds, ds_future, Xh, Xfut, seed):
        _quiet()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from prophet import Prophet as _Prophet
        df = pd.DataFrame({"ds": pd.DatetimeIndex(ds), "y": y})
        fut = pd.DataFrame({"ds": pd.DatetimeIndex(ds_future)})
        model = _Prophet(
            yearly_seasonality=False,
            weekly_seasonality=False,
            daily_seasonality=False,
            mcmc_samples=0,
            uncertainty_samples=int(self.params["samples"]),
        )
        for name, period, order in self._seasonalities(np.asarray(ds)):
            model.add_seasonality(name=name, period=period, fourier_order=order)
        country = self._holiday_country()
        if country is not None:
            model.add_country_holidays(country_name=country)
        if Xh is not None:
            for j in range(Xh.shape[1]):
                model.add_regressor(f"covariate_{j}")
                df[f"covariate_{j}"] = Xh[:, j]
                fut[f"covariate_{j}"] = Xfut[:, j]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # cmdstanpy's files of this fit go to a directory removed right after (by default
            # they pile up in its process-wide temp folder, which forked workers never clear)
            with tempfile.TemporaryDirectory(prefix="prophet-") as output_dir:
                model.fit(df, output_dir=output_dir)
            # the endpoint predicts on several threads: one seeded draw at a time
            with _GLOBAL_RNG:
                state = np.random.get_state()
                try:
                    np.random.seed(seed)
                    samples = model.predictive_samples(fut)["yhat"]  # (h, samples)
                finally:
                    np.random.set_state(state)
            model.uncertainty_samples = 0  # yhat only: no draw
            mean = model.predict(fut)["yhat"].to_numpy(float)
        levels = np.asarray(self.config.quantile_levels, float)
        q = np.quantile(samples, levels, axis=1).T  # (h, q)
        return np.column_stack([q, mean])
