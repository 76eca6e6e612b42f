"""The candidate base class owns the ceremony; each model writes only `_fit` and `_predict`.

Contract: `fit(train)` learns whatever is global (a booster, chosen settings); `predict(history,
future)` forecasts the `future` rows (known covariates, empty target) that follow each series of
`history`. Local statistical models fit per series inside `_predict`, on a recent window of the
context, so one code path serves backtests, batch and the one-item real-time endpoint.

Forecasts are arrays (n_series, horizon, n_quantiles + 1): configured quantiles in order, then
the mean. The base class sorts quantiles per row so they never cross.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np

from ..config import EngineConfig
from ..data import Panel


class TimeBudgetExceeded(RuntimeError):
    """A candidate ran past its deadline; the engine logs it and moves on."""


class Candidate:
    name: str = "abstract"          # leaderboard name (honest about what it is)
    is_baseline: bool = False
    refit_every_window: bool = True  # False: global models fit once, before the oldest backtest window
    relative_cost: int = 0           # rough training cost rank: cheap candidates run first
    fits_per_prediction: bool = False  # True: nothing global to learn; each series is fitted on the context

    def __init__(self, config: EngineConfig, **params):
        self.config = config
        self.params = {**self.default_params(config), **params}
        self._deadline: Optional[float] = None
        self.fit_seconds = 0.0
        self.predict_seconds = 0.0

    @classmethod
    def default_params(cls, config: EngineConfig) -> dict:
        return {}

    @classmethod
    def available(cls) -> bool:
        return True

    # --- public: ceremony -------------------------------------------------------------
    def fit(self, train: Panel, deadline: Optional[float] = None) -> "Candidate":
        self._deadline = deadline
        start = time.perf_counter()
        try:
            self._fit(train)
        finally:
            self._deadline = None
        self.fit_seconds = time.perf_counter() - start
        return self

    def predict(self, history: Panel, future: Panel, deadline: Optional[float] = None) -> np.ndarray:
        if history.n_series != future.n_series or not np.array_equal(history.uids, future.uids):
            raise ValueError("history and future must hold the same series in the same order")
        self._deadline = deadline
        start = time.perf_counter()
        try:
            values = np.asarray(self._predict(history, future), dtype=float)
        finally:
            self._deadline = None
        self.predict_seconds = time.perf_counter() - start
        expected = (future.n_series, int(future.lengths.max(initial=0)), len(self.config.quantiles) + 1)
        if values.shape != expected:
            raise RuntimeError(f"{self.name} returned forecasts of shape {values.shape}, expected {expected}")
        if not np.isfinite(values).all():
            raise RuntimeError(f"{self.name} produced non-finite forecasts")
        return finalize(values)

    def check_time(self):
        """Models call this inside loops: a candidate past its budget stops, it does not hang."""
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise TimeBudgetExceeded(f"{self.name} exceeded its time budget")

    # --- model-specific ---------------------------------------------------------------
    def _fit(self, train: Panel) -> None:
        """Most local models have nothing global to learn."""

    def _predict(self, history: Panel, future: Panel) -> np.ndarray:
        raise NotImplementedError


def finalize(values: np.ndarray, non_negative: bool = False) -> np.ndarray:
    """Quantiles sorted per row (never crossing); the mean kept as is.

    non_negative clips quantiles and mean at zero (for targets that never go below it);
    clipping keeps the order of the quantiles.
    """
    out = values.copy()
    out[:, :, :-1] = np.sort(out[:, :, :-1], axis=2)
    if non_negative:
        np.maximum(out, 0.0, out=out)
    return out


def gaussian_quantiles(mean: np.ndarray, sigma: np.ndarray, levels) -> np.ndarray:
    """(h,) mean and sigma -> (h, q + 1) quantiles from the normal distribution, then the mean."""
    from scipy.stats import norm

    z = norm.ppf(np.asarray(levels, float))
    return np.column_stack([mean[:, None] + sigma[:, None] * z[None, :], mean])


def per_series(model: Candidate, history: Panel, future: Panel,
               one: Callable[[np.ndarray, int, int], np.ndarray]) -> np.ndarray:
    """Loop helper for local models: one(y, h, i) -> (h, q + 1); NaN-padded to the longest horizon."""
    h_max = int(future.lengths.max(initial=0))
    out = np.full((history.n_series, h_max, len(model.config.quantiles) + 1), np.nan)
    for i in range(history.n_series):
        model.check_time()
        h = int(future.lengths[i])
        if h:
            out[i, :h] = one(history.series_y(i), h, i)
            out[i, h:] = out[i, h - 1]
    return out
