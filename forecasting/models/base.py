"""The candidate base class owns the ceremony; each model writes only `_fit` and `_predict`.

Contract: `fit(train)` learns whatever is global (a booster, chosen settings); `predict(history,
future)` forecasts the `future` rows (known covariates, empty target) that follow each series of
`history`. Per-series (local) models derive from `local.LocalModel`, which fits each series on a
recent window of the context at prediction, so one code path serves backtests, batch and the
one-item real-time endpoint.

A prediction keeps nothing on the model: its deadline lives in a context variable and its report
(seconds, fallbacks) comes back in a `Forecast`, so the threaded endpoint can share one model.

Forecasts are arrays (n_series, horizon, n_quantiles + 1): configured quantiles in order, then
the mean. The base class sorts quantiles per row so they never cross, and keeps the mean
inside the outer quantiles.
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from contextvars import ContextVar
from statistics import NormalDist
from typing import Iterator, Optional

import numpy as np

from ..config import EngineConfig
from ..data import Panel


class TimeBudgetExceeded(RuntimeError):
    """A candidate ran past its deadline; the engine logs it and moves on."""


# The deadline of the fit or prediction running in this thread (or worker): a context variable, not
# an attribute, so one model can serve several threads at once (the endpoint) without sharing it.
_DEADLINE: ContextVar[Optional[float]] = ContextVar("candidate_deadline", default=None)


@contextmanager
def deadline_scope(deadline: Optional[float]) -> Iterator[None]:
    """`check_time` inside this block compares time.monotonic() with `deadline` (None: no limit)."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def current_deadline() -> Optional[float]:
    return _DEADLINE.get()


@dataclasses.dataclass(frozen=True)
class Fallbacks:
    """How many series of one prediction a local model left to seasonal naive, and the first reason."""

    count: int = 0
    first_reason: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Forecast:
    """One prediction's result: the forecasts, and what happened while making them (per call, so
    concurrent predictions on one model never see each other's figures)."""

    values: np.ndarray  # (n_series, horizon, n_quantiles + 1)
    seconds: float
    fallbacks: Fallbacks = Fallbacks()


class Candidate:
    """A forecasting model the engine can backtest, ensemble and save.

    What a model is and supports is declared in class attributes, which the engine reads (it
    never probes with getattr); subclasses override the ones that differ.
    """

    name: str = "abstract"  # leaderboard name (honest about what it is)
    is_baseline: bool = False  # the one candidate that always survives (registry: BASELINE)
    is_global: bool = True  # one model across all series: fitted once, before the oldest
    #                                  backtest window; local models (LocalModel) refit every window
    refit_every_window: bool = False  # a global model may ask, once fitted, to be refitted per window
    relative_cost: int = 0  # rough training cost rank: cheap candidates run first
    fits_per_prediction: bool = False  # True: nothing global to learn; each series is fitted on the context
    reuses_backtest_selection: bool = False  # True: the final refit keeps the latest window's fit
    per_series_statistical: bool = False  # True: the engine gives it a default time budget (docs/engine.md)
    supports_covariates: bool = True  # False: the known covariates are not used

    windows_after: int = 0  # set by the engine before fit: backtest windows still to come

    def __init__(self, config: EngineConfig, **params):
        self.config = config
        self.params = {**self.default_params(config), **params}
        self.fit_seconds = 0.0

    @classmethod
    def default_params(cls, config: EngineConfig) -> dict:
        return {}

    @classmethod
    def available(cls) -> bool:
        return True

    @classmethod
    def suits(cls, config: EngineConfig, n_series: int) -> bool:
        """False: a variant with nothing to add on this data; the engine leaves it out of the list."""
        return True

    @classmethod
    def suits_panel(cls, config: EngineConfig, panel: Panel) -> bool:
        """`suits`, for members that also need the series' lengths to judge."""
        return cls.suits(config, panel.n_series)

    # --- public: ceremony -------------------------------------------------------------
    def fit(self, train: Panel, deadline: Optional[float] = None) -> "Candidate":
        start = time.perf_counter()
        with deadline_scope(deadline):
            self._fit(train)
        self.fit_seconds = time.perf_counter() - start
        return self

    def predict(self, history: Panel, future: Panel, deadline: Optional[float] = None) -> np.ndarray:
        return self.forecast(history, future, deadline).values

    def forecast(self, history: Panel, future: Panel, deadline: Optional[float] = None) -> Forecast:
        """`predict` with its report: seconds taken and the series that fell back. Stateless:
        nothing of the call is kept on the model."""
        if history.n_series != future.n_series or not np.array_equal(history.uids, future.uids):
            raise ValueError("history and future must hold the same series in the same order")
        start = time.perf_counter()
        with deadline_scope(deadline):
            values, fallbacks = self._forecast_panel(history, future)
        values = np.asarray(values, dtype=float)
        seconds = time.perf_counter() - start
        expected = (future.n_series, int(future.lengths.max(initial=0)), len(self.config.quantiles) + 1)
        if values.shape != expected:
            raise RuntimeError(f"{self.name} returned forecasts of shape {values.shape}, expected {expected}")
        if not np.isfinite(values).all():
            raise RuntimeError(f"{self.name} produced non-finite forecasts")
        return Forecast(finalize(values, levels=self.config.quantile_levels), seconds, fallbacks)

    def check_time(self):
        """Models call this inside loops: a candidate past its budget stops, it does not hang."""
        deadline = _DEADLINE.get()
        if deadline is not None and time.monotonic() > deadline:
            raise TimeBudgetExceeded(f"{self.name} exceeded its time budget")

    # --- model-specific ---------------------------------------------------------------
    def _fit(self, train: Panel) -> None:
        """Most local models have nothing global to learn."""

    def _forecast_panel(self, history: Panel, future: Panel) -> tuple[np.ndarray, Fallbacks]:
        """Global models: `_predict`; LocalModel runs its per-series loop here."""
        return self._predict(history, future), Fallbacks()

    def _predict(self, history: Panel, future: Panel) -> np.ndarray:
        raise NotImplementedError


def finalize(values: np.ndarray, non_negative: bool = False, levels=None) -> np.ndarray:
    """Quantiles sorted per row (never crossing); the mean kept inside the outer quantiles.

    non_negative clips quantiles and mean at zero (for targets that never go below it);
    clipping keeps the order of the quantiles. With `levels` on both sides of the median
    (p10 ... p90), a mean outside [lowest, highest quantile] is moved to the nearer bound: the
    last guard of one coherent distribution (the sources, `quantile_mean` and one weight per
    member, already keep it inside).
    """
    out = values.copy()
    out[:, :, :-1] = np.sort(out[:, :, :-1], axis=2)
    if non_negative:
        np.maximum(out, 0.0, out=out)
    if levels is not None and straddles_median(levels) and out.shape[2] > 2:
        out[:, :, -1] = np.clip(out[:, :, -1], out[:, :, 0], out[:, :, -2])
    return out


def straddles_median(levels) -> bool:
    """True when the quantile levels reach from at most 0.5 to at least 0.5 (p50 alone counts)."""
    levels = np.asarray(levels, float)
    return bool(len(levels)) and levels.min() <= 0.5 <= levels.max()


def quantile_mean(quantiles: np.ndarray, levels, lower_bound: Optional[float] = None) -> np.ndarray:
    """The mean of the distribution the quantiles describe: (..., k) sorted quantiles -> (...,).

    The quantile function is taken as piecewise linear through (level, quantile), extended
    into both tails with the slope of the outermost segment (clipped at `lower_bound`, e.g. 0
    for demand); its integral over (0, 1) is the mean. For p10/p50/p90 that is
    0.3125 p10 + 0.375 p50 + 0.3125 p90 (Swanson's 0.3/0.4/0.3 rule, nearly): exact for
    symmetric distributions, and it follows skew. It always lies inside [p_lowest, p_highest]
    when the levels straddle the median.
    """
    q = np.asarray(quantiles, float)
    lv = np.asarray(levels, float)
    if q.shape[-1] == 1:
        return q[..., 0].copy()
    mid = np.sum(np.diff(lv) * (q[..., 1:] + q[..., :-1]) / 2, axis=-1)
    lo_slope = (q[..., 1] - q[..., 0]) / (lv[1] - lv[0])
    hi_slope = (q[..., -1] - q[..., -2]) / (lv[-1] - lv[-2])
    lo_w, hi_w = lv[0], 1 - lv[-1]
    start = q[..., 0] - lo_w * lo_slope  # the tail line's value at level 0
    lower = lo_w * (q[..., 0] + start) / 2
    if lower_bound is not None:
        # the line crosses the bound inside the tail: integrate the clipped line
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing = np.where(lo_slope > 0, (q[..., 0] - lower_bound) / lo_slope, lo_w)
        crossing = np.clip(crossing, 0, lo_w)
        clipped = lower_bound * (lo_w - crossing) + crossing * (q[..., 0] + lower_bound) / 2
        lower = np.where(start < lower_bound, clipped, lower)
    upper = hi_w * q[..., -1] + hi_slope * hi_w**2 / 2
    return mid + lower + upper


def gaussian_quantiles(mean: np.ndarray, sigma: np.ndarray, levels) -> np.ndarray:
    """(h,) mean and sigma -> (h, q + 1) quantiles from the normal distribution, then the mean."""
    z = np.array([NormalDist().inv_cdf(float(q)) for q in levels])
    return np.column_stack([mean[:, None] + sigma[:, None] * z[None, :], mean])


NAIVE_WINDOW = 400  # seasonal naive's residual quantiles read at most this many recent points


def seasonal_naive_quantiles(y: np.ndarray, h: int, season: int, levels, window: int = NAIVE_WINDOW) -> np.ndarray:
    """Repeat the last season; quantiles from the empirical k-season-ahead residuals.

    The forecast for step j copies y[T + j - k*m] with k = ceil(j/m); its error is that of a
    k-season difference, so residual quantiles are taken from in-sample differences at lag k*m.
    """
    m = season if len(y) >= season and season > 1 else 1
    y = y[-max(window, 2 * m) :] if len(y) > max(window, 2 * m) else y
    steps = np.arange(1, h + 1)
    k = np.ceil(steps / m).astype(int)
    point = y[len(y) - m + (steps - 1) % m]  # m == 1: the last value repeated
    out = np.empty((h, len(levels) + 1))
    cache = {}
    for j in range(h):
        lag = int(k[j]) * m
        if lag not in cache:
            resid = y[lag:] - y[:-lag] if len(y) > lag else np.zeros(1)
            cache[lag] = np.quantile(resid, levels) if len(resid) else np.zeros(len(levels))
        out[j, :-1] = point[j] + cache[lag]
    out[:, -1] = point
    return out
