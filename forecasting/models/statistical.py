"""ETS, ARIMA and Theta from statsforecast, fitted per series on a recent window of the context.

A recent window (a few hundred points) keeps fits fast and lets the model track the current
regime; prediction intervals become quantiles through the normal approximation the models use.
A series on which the model fails falls back to seasonal naive (statsforecast's fallback idea).

Per-series work is independent, so panels of many series are split into contiguous chunks run
by a small pool of worker processes (BLAS/OpenMP pinned to one thread each, as statsforecast
does); results come back in series order and equal the serial ones exactly.
"""
from __future__ import annotations

import atexit
import multiprocessing
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from statistics import NormalDist
from typing import Optional

import numpy as np

from .base import Candidate, TimeBudgetExceeded, gaussian_quantiles
from .naive import seasonal_naive_quantiles

_LEVEL = 80
_Z = NormalDist().inv_cdf(0.5 + _LEVEL / 200)  # stdlib: importing scipy.stats costs ~0.5 s per process
PARALLEL_MIN_SERIES = 64      # below this, worker start-up costs more than it saves (e.g. endpoint calls)
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
_POOL: dict = {}


def default_jobs() -> int:
    """Worker processes for per-series fits: the cores this process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _pool(n_jobs: int):
    """(pool, cancel flag) per size, kept for the life of the process (worker start-up is not free).

    Forked workers where the platform has fork (as statsforecast's own n_jobs does): a spawned
    worker re-imports the caller's main module, which breaks scripts without a main guard.
    The shared cancel flag holds the number of the last abandoned map: chunks of that map that
    already reached a worker stop at their next series instead of running on in the background.
    """
    if n_jobs not in _POOL:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        context = multiprocessing.get_context(method)
        cancelled = context.Value("q", 0)
        pool = ProcessPoolExecutor(max_workers=n_jobs, mp_context=context, initializer=_init_worker,
                                   initargs=(cancelled,))
        _POOL[n_jobs] = (pool, cancelled)
    return _POOL[n_jobs]


_CANCELLED = None   # in workers: the shared cancel flag
_MAP_COUNT = [0]    # in the parent: numbers the parallel maps


def _init_worker(cancelled):
    """One BLAS/OpenMP thread per worker: the workers already fill the cores."""
    global _CANCELLED
    from threadpoolctl import threadpool_limits
    _CANCELLED = cancelled
    for k in _THREAD_VARS:
        os.environ[k] = "1"
    threadpool_limits(1)


@atexit.register
def shutdown_pools(wait: bool = False):
    """Stop the worker processes (at exit, or when a caller wants their resources back)."""
    for pool, _ in _POOL.values():
        pool.shutdown(wait=wait, cancel_futures=True)
    _POOL.clear()


def _run_chunk(model: "_StatsForecastModel", method: str, items: list, deadline: Optional[float],
               map_id: int = 0) -> list:
    """Worker side: one model method over a chunk of series, checking the shared deadline."""
    model._deadline = deadline
    out = []
    for item in items:
        model.check_time()  # time.monotonic is system-wide on Linux, so the parent's deadline holds
        if _CANCELLED is not None and map_id and _CANCELLED.value >= map_id:
            raise TimeBudgetExceeded(f"{model.name}: abandoned by the engine")
        out.append(getattr(model, method)(*item))
    return out


class _StatsForecastModel(Candidate):
    """Model selection (the expensive search over model forms) happens in `fit`, per series, and
    is stored; `predict` re-estimates only the selected form on the recent context, which is
    several times cheaper (the real-time endpoint pays only that). Unknown series get the search.
    """
    # Windows and model spaces are chosen for speed (~10-100 ms per series on a busy core).
    window = 150
    reuses_backtest_selection = True  # the refit keeps the forms chosen on the latest backtest window
    uses_covariates = False
    per_series_statistical = True     # the engine gives these a default time budget (docs/engine.md)

    @classmethod
    def default_params(cls, config):
        return {"window": cls.window, "n_jobs": default_jobs()}

    def _make(self, m: int, spec=None):
        raise NotImplementedError

    def _spec_of(self, fitted) -> object:
        raise NotImplementedError

    def _season(self, y):
        m = self.config.season_length
        return m if len(y) >= 2 * m + 2 else 1

    def _window(self, history, i, y, with_covariates: bool):
        y = y[-self.params["window"]:]
        if not with_covariates or not history.X.shape[1]:
            return y, None
        X = history.X[history.indptr[i + 1] - len(y):history.indptr[i + 1]]
        varying = np.ptp(X, axis=0) > 0
        return y, (X[:, varying], varying) if varying.any() else None

    # --- the parallel map -------------------------------------------------------------
    def _map(self, method: str, items: list, repeats: int = 0) -> list:
        """[getattr(self, method)(*item) for item in items], in worker processes when worth it."""
        n_jobs = int(self.params.get("n_jobs") or 1)
        deadline = self._deadline
        if n_jobs <= 1 or len(items) < PARALLEL_MIN_SERIES:
            return _run_chunk(self, method, items, deadline)
        # a few chunks per worker balance uneven series; contiguous chunks keep the series order
        n_chunks = min(len(items), n_jobs * 4)
        bounds = np.linspace(0, len(items), n_chunks + 1).astype(int)
        pool, cancelled = _pool(n_jobs)
        _MAP_COUNT[0] += 1
        map_id = _MAP_COUNT[0]
        futures = [pool.submit(_run_chunk, self, method, items[a:b], deadline, map_id)
                   for a, b in zip(bounds[:-1], bounds[1:])]
        out, started = [], time.monotonic()
        try:
            for fut in futures:
                out.extend(fut.result())
                finished = [k for k, f in enumerate(futures) if f.done()]
                if len(finished) >= n_jobs:  # the workers' pace is known once each has delivered once
                    done = int(sum(bounds[k + 1] - bounds[k] for k in finished))
                    self._check_projection(started, done, len(items), deadline, repeats)
        except BaseException:
            with cancelled.get_lock():
                cancelled.value = max(cancelled.value, map_id)
            for fut in futures:
                fut.cancel()
            raise
        return out

    def _check_projection(self, started: float, done: int, total: int, deadline: Optional[float],
                          repeats: int = 0):
        """Stop early when the series done so far say the rest (and `repeats` more passes over all
        of them) cannot finish before the deadline."""
        if deadline is None or done >= total:
            return
        now = time.monotonic()
        per_series = (now - started) / done
        needed = per_series * ((total - done) + repeats * total)
        if now + needed > deadline:
            more = f" and {repeats} more backtest window(s)" if repeats else ""
            raise TimeBudgetExceeded(f"{self.name}: projected ~{needed:.0f}s more for {total - done} of {total} series"
                                     f"{more}, would exceed its time budget ({max(deadline - now, 0):.0f}s left)")

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_deadline", None)  # the deadline travels explicitly; saved models carry none
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._deadline = None

    # --- fit: choose the model form per series ----------------------------------------
    def _fit(self, train):
        items, keys = [], []
        for i in range(train.n_series):
            y = train.series_y(i)
            if len(y) < 8:
                continue
            y, xinfo = self._window(train, i, y, self.uses_covariates)
            items.append((y.astype(float), xinfo))
            keys.append(train.uids[i])
        # the engine says how many more backtest windows will repeat this search: their cost
        # counts in the projection (a lower bound: it leaves out their predictions)
        specs = self._map("_select_one", items, repeats=int(getattr(self, "windows_after", 0) or 0))
        self.specs = {k: s for k, s in zip(keys, specs) if s is not None}

    def _select_one(self, y, xinfo):
        """The chosen form (plus which covariates vary), or None: that series gets the search later."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fitted = self._make(self._season(y)).fit(y, X=self._selection_X(xinfo))
            return self._spec_of(fitted), None if xinfo is None else xinfo[1]
        except Exception:  # contained: the series gets the search (or the fallback) at predict
            return None

    def _selection_X(self, xinfo):
        return None if xinfo is None else xinfo[0]

    # --- predict: re-estimate the chosen form and forecast ----------------------------
    def _predict(self, history, future):
        specs = getattr(self, "specs", {})
        h_max = int(future.lengths.max(initial=0))
        items, rows = [], []
        for i in range(history.n_series):
            h = int(future.lengths[i])
            if not h:
                continue
            y = history.series_y(i)
            X, Xf, spec = self._design(history, future, i, y, h, specs.get(history.uids[i]))
            items.append((y.astype(float), X, Xf, h, spec))  # whole y: the fallback's residuals use it
            rows.append((i, h))
        results = self._map("_forecast_one", items)
        out = np.full((history.n_series, h_max, len(self.config.quantiles) + 1), np.nan)
        reasons = [reason for _, reason in results if reason is not None]
        self.fallbacks = len(reasons)
        self.fallback_reason = reasons[0] if reasons else None
        for (i, h), (values, _) in zip(rows, results):
            out[i, :h] = values
            out[i, h:] = out[i, h - 1]
        return out

    def _design(self, history, future, i, y, h, spec):
        """(X, X_future, spec) for series i: the covariates the stored form was chosen with."""
        yw, xinfo = self._window(history, i, y, self.uses_covariates)
        X = Xf = None
        if spec is not None:
            spec, varying = spec
            if varying is not None and history.X.shape[1]:
                X = history.X[history.indptr[i + 1] - len(yw):history.indptr[i + 1]][:, varying]
                Xf = future.X[future.indptr[i]:future.indptr[i] + h][:, varying]
        elif xinfo is not None:
            X = xinfo[0]
            Xf = future.X[future.indptr[i]:future.indptr[i] + h][:, xinfo[1]]
        return X, Xf, spec

    def _forecast_one(self, y, X, Xf, h, spec):
        """((h, q + 1) values, None; or why seasonal naive had to stand in for this series)."""
        window = y[-self.params["window"]:]
        if len(y) < 8:
            reason = "fewer than 8 points"
        elif np.ptp(window) == 0:
            # constant (e.g. no sales lately): nothing to model, and ARIMA's estimation fails on it
            return np.full((h, len(self.config.quantiles) + 1), window[-1]), None
        else:
            try:
                values = self._forecast(window, h, X, Xf, spec)
                if np.isfinite(values).all():
                    return values, None
                reason = "non-finite forecast"
            except Exception as exc:  # contained per series: statsforecast raises on degenerate input
                reason = f"{type(exc).__name__}: {exc}"
        return seasonal_naive_quantiles(y, h, self.config.season_length, self.config.quantile_levels), reason

    def _forecast(self, y, h, X, Xf, spec):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; bad fits fall back per series
            out = self._make(self._season(y), spec).forecast(y=y, h=h, X=X, X_future=Xf, level=[_LEVEL])
        mean = np.asarray(out["mean"], float)
        sigma = np.maximum((np.asarray(out[f"hi-{_LEVEL}"], float) - mean) / _Z, 0.0)
        return gaussian_quantiles(mean, sigma, self.config.quantile_levels)


class ETS(_StatsForecastModel):
    name = "ETS"
    relative_cost = 5

    def _make(self, m, spec=None):
        from statsforecast.models import AutoETS
        if spec is not None and (spec[2] == "N") == (m == 1):
            return AutoETS(season_length=m, model=spec[:3], damped=spec[3] == "D")
        # error and trend chosen by AICc; additive seasonality (multiplicative rarely wins on short windows)
        return AutoETS(season_length=m, model="ZZA" if m > 1 else "ZZN")

    def _spec_of(self, fitted):
        return str(fitted.model_["components"])


class Theta(_StatsForecastModel):
    name = "Theta"
    relative_cost = 4

    reuses_backtest_selection = False  # AutoTheta's selection is cheap; it simply refits
    fits_per_prediction = True

    def _make(self, m, spec=None):
        from statsforecast.models import AutoTheta
        return AutoTheta(season_length=m)

    def _fit(self, train):
        self.specs = {}


class ARIMA(_StatsForecastModel):
    """AutoARIMA with the known covariates as exogenous regressors (when they vary).

    The order search runs on the target alone: with regressors every candidate order costs a
    regression with ARIMA errors, which made the search ~7x slower (~1.1 s vs 0.16 s per series).
    The chosen orders are then estimated with the regressors at prediction (regression with
    ARIMA errors), so covariate effects are still used.
    """

    name = "ARIMA"
    relative_cost = 6
    window = 120

    uses_covariates = True

    def _make(self, m, spec=None):
        from statsforecast.models import ARIMA as FixedARIMA
        from statsforecast.models import AutoARIMA
        if spec is not None and spec[4] == m:
            p, q, P, Q, s, d, D, mean, drift = spec
            return FixedARIMA(order=(p, d, q), seasonal_order=(P, D, Q), season_length=s,
                              include_mean=mean, include_drift=drift)
        return AutoARIMA(season_length=m, approximation=True, max_p=2, max_q=2, max_P=1, max_Q=1, nmodels=20)

    def _selection_X(self, xinfo):
        return None

    def _forecast(self, y, h, X, Xf, spec):
        """With the covariates first; when that estimation breaks down (it can give a negative
        variance), the chosen order without them, which is how it was selected."""
        if X is not None:
            try:
                values = super()._forecast(y, h, X, Xf, spec)
                if np.isfinite(values).all():
                    return values
            except Exception:  # contained: the order alone is tried next
                pass
        return super()._forecast(y, h, None, None, spec)

    def _spec_of(self, fitted):
        coef = fitted.model_["coef"]
        return tuple(int(v) for v in fitted.model_["arma"]) + ("intercept" in coef, "drift" in coef)
