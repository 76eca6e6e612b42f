"""One base for per-series (local) models: it owns the loop over series, the worker processes,
the deadline and the per-series fallback; a model writes only what one series needs.

    class MyModel(LocalModel):
        name = "MyModel"
        def _predict_one(self, series, state):     # series: a `Series` (arrays, no panel offsets)
            return forecast_of(series.y, series.h)  # (h, n_quantiles + 1): quantiles, then the mean

A model that chooses something per series at training (say an ETS form) declares
`selects_per_series = True` and writes `_fit_one(series)`; what it returns is stored in
`specs` by series id and handed back to `_predict_one` as `state` (None for series not seen
in training, or whose selection failed: the model searches again on the context).

A series falls back to seasonal naive (statsforecast's `fallback_model` idea) when it is
shorter than `needs_min_length`, when the model raises on it, or when its forecast is not
finite; the count and the first reason come back with the forecast (`Forecast.fallbacks`),
and the engine fails a candidate that fell back on every series. The deadline is the
candidate's (`Candidate.check_time`): past it the whole candidate stops, and the engine keeps
the baseline; with workers, a projection from the series done so far stops it early.

Per-series work is independent, so panels of many series are split into contiguous chunks run
by a small pool of worker processes (BLAS/OpenMP pinned to one thread each, as statsforecast
does); results come back in series order and equal the serial ones exactly. Only models that
set `n_jobs` in their params use workers (the numpy models are faster without).
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Optional

import numpy as np

from processing.kernel.process_env import configure_threads
from processing.kernel.processes import exit_when_orphaned

from ..data import Panel
from .base import (
    NAIVE_WINDOW,
    Candidate,
    Fallbacks,
    TimeBudgetExceeded,
    current_deadline,
    deadline_scope,
    seasonal_naive_quantiles,
)

logger = logging.getLogger(__name__)

PARALLEL_MIN_SERIES = 64  # below this, worker start-up costs more than it saves (e.g. endpoint calls)
# per-series statistical models (ARIMA, ETS, Theta, Prophet: a fit per series at each prediction,
# 0.1-1 s each) repay the workers from a few series: a batch-transform file of 60 seed series ran
# its Prophet and ARIMA fits on one core (~70 s under load) while the file of 65 beside it used both
PARALLEL_MIN_COSTLY_SERIES = 8
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
_POOL: dict = {}


@dataclasses.dataclass(frozen=True)
class Series:
    """One series as a local model sees it: the recent history and, at prediction, the future rows.

    y, ds and X hold the same (most recent) rows; X and X_future keep every covariate column for
    models that declare `supports_covariates` (zero columns otherwise); `length` is the length of
    the whole history (y may be only its tail).
    """

    uid: Any
    y: np.ndarray
    ds: np.ndarray
    X: np.ndarray
    length: int
    ds_future: np.ndarray
    X_future: np.ndarray

    @property
    def h(self) -> int:
        return len(self.ds_future)


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
        pool = ProcessPoolExecutor(
            max_workers=n_jobs, mp_context=context, initializer=_init_worker, initargs=(cancelled, os.getpid())
        )
        _POOL[n_jobs] = (pool, cancelled)
    return _POOL[n_jobs]


_CANCELLED = None  # in workers: the shared cancel flag
_MAP_COUNT = [0]  # in the parent: numbers the parallel maps


ORPHAN_CHECK_SECONDS = 1.0  # a pool worker whose owner died (killed, or os._exit without shutting the
# pool down) would wait on the call queue for ever: forked workers hold its write end, so no EOF comes


def _init_worker(cancelled, owner):
    """One BLAS/OpenMP thread per worker (the workers already fill the cores), idle threads asleep;
    the worker ends when its owner (the pid that made the pool) is gone."""
    global _CANCELLED
    exit_when_orphaned(ORPHAN_CHECK_SECONDS, 0, owner=owner)
    from threadpoolctl import threadpool_limits

    _CANCELLED = cancelled
    for k in _THREAD_VARS:
        os.environ[k] = "1"
    configure_threads()
    threadpool_limits(1)


@atexit.register
def shutdown_pools(wait: bool = False):
    """Stop the worker processes (at exit, or when a caller wants their resources back)."""
    for pool, _ in _POOL.values():
        pool.shutdown(wait=wait, cancel_futures=True)
    _POOL.clear()


def _run_chunk(model: "LocalModel", method: str, items: list, deadline: Optional[float], map_id: int = 0) -> list:
    """One model method over a chunk of series, checking the deadline (in a worker: the parent's)."""
    with deadline_scope(deadline):
        out = []
        for item in items:
            model.check_time()  # time.monotonic is system-wide on Linux, so the parent's deadline holds
            if _CANCELLED is not None and map_id and _CANCELLED.value >= map_id:
                raise TimeBudgetExceeded(f"{model.name}: abandoned by the engine")
            out.append(getattr(model, method)(*item))
        return out


class LocalModel(Candidate):
    """A candidate fitted per series: subclasses write `_predict_one` (and `_fit_one`)."""

    is_global = False
    fits_per_prediction = True  # nothing global to learn (unless it selects per series)
    selects_per_series = False  # True: `_fit_one` chooses something per series at training
    supports_covariates = False  # True: Series.X / X_future carry the known covariates
    needs_min_length = 1  # shorter series fall back to seasonal naive
    flat_when_constant = False  # True: a constant window is forecast flat (nothing to model)
    # the recent points that must be constant for that (None: the whole window): a daily ETS fits a
    # year, and a product without sales for 150 days still forecasts 0, not its old season
    constant_span: Optional[int] = None
    falls_back = True  # False for the baseline itself: its errors are the candidate's

    # --- hooks ------------------------------------------------------------------------
    def _fit_one(self, series: Series) -> Any:
        """What this series' prediction should reuse (e.g. a chosen model form), or None."""
        return None

    def _predict_one(self, series: Series, state: Any) -> np.ndarray:
        """(series.h, n_quantiles + 1) forecasts: quantiles in order, then the mean."""
        raise NotImplementedError

    def context_length(self) -> Optional[int]:
        """The most recent points the model reads (None: all); the rest is not shipped to workers."""
        window = self.params.get("window")
        return int(window) if window else None

    # --- fit ----------------------------------------------------------------------------
    def _fit(self, train: Panel) -> None:
        self.specs: dict = {}
        if not self.selects_per_series:
            return
        keep = [i for i in range(train.n_series) if int(train.lengths[i]) >= max(self.needs_min_length, 1)]
        items = [(self._series(train, i, None, self.context_length()),) for i in keep]
        # the engine says how many more backtest windows will repeat this search: their cost
        # counts in the projection (a lower bound: it leaves out their predictions)
        states = self._map("_fit_safe", items, repeats=self.windows_after)
        self.specs = {train.uids[i]: s for i, s in zip(keep, states) if s is not None}

    def _fit_safe(self, series: Series) -> Any:
        try:
            return self._fit_one(series)
        except TimeBudgetExceeded:
            raise
        except Exception:  # contained: the series gets the search (or the fallback) at predict
            return None

    # --- predict ------------------------------------------------------------------------
    def _forecast_panel(self, history: Panel, future: Panel) -> tuple[np.ndarray, Fallbacks]:
        specs = getattr(self, "specs", None) or {}  # a model loaded from before `specs` existed has none
        h_max = int(future.lengths.max(initial=0))
        # the fallback reads the last NAIVE_WINDOW (or two seasons of) points; the model its own context
        own = self.context_length()
        keep = None if own is None else max(own, NAIVE_WINDOW, 2 * self.config.season_length)
        items, rows = [], []
        for i in range(history.n_series):
            h = int(future.lengths[i])
            if not h:
                continue
            items.append((self._series(history, i, future, keep), specs.get(history.uids[i])))
            rows.append((i, h))
        results = self._map("_predict_safe", items)
        out = np.full((history.n_series, h_max, len(self.config.quantiles) + 1), np.nan)
        reasons = [reason for _, reason in results if reason is not None]
        for (i, h), (values, _) in zip(rows, results):
            out[i, :h] = values
            out[i, h:] = out[i, h - 1]
        fallbacks = Fallbacks(len(reasons), reasons[0] if reasons else None)
        if fallbacks.count:
            logger.info(
                "%s: %d of %d series fell back to seasonal naive (%s)",
                self.name,
                fallbacks.count,
                len(items),
                fallbacks.first_reason,
            )
        return out, fallbacks

    def _predict_safe(self, series: Series, state: Any) -> tuple[np.ndarray, Optional[str]]:
        """((h, q + 1) values, None), or the fallback's values and why it had to stand in."""
        if not self.falls_back:
            return self._predict_one(series, state), None
        own = self.context_length()
        window = series.y[-own:] if own else series.y
        if series.length < self.needs_min_length:
            reason = f"fewer than {self.needs_min_length} points"
        elif self.flat_when_constant and np.ptp(window[-(self.constant_span or len(window)) :]) == 0:
            # constant (e.g. no sales lately): nothing to model, and ARIMA's estimation fails on it
            return np.full((series.h, len(self.config.quantiles) + 1), window[-1]), None
        else:
            try:
                values = np.asarray(self._predict_one(series, state), dtype=float)
                if np.isfinite(values).all():
                    return values, None
                reason = "non-finite forecast"
            except TimeBudgetExceeded:
                raise
            except Exception as exc:  # contained per series: statsforecast raises on degenerate input
                reason = f"{type(exc).__name__}: {exc}"
        return seasonal_naive_quantiles(
            series.y, series.h, self.config.season_length, self.config.quantile_levels
        ), reason

    def _series(self, panel: Panel, i: int, future: Optional[Panel], keep: Optional[int]) -> Series:
        start, end = int(panel.indptr[i]), int(panel.indptr[i + 1])
        first = start if keep is None else max(start, end - keep)
        X = panel.X[first:end] if self.supports_covariates else panel.X[first:end, :0]
        if future is None:
            ds_future, X_future = panel.ds[:0], X[:0]
        else:
            f0 = int(future.indptr[i])
            f1 = f0 + int(future.lengths[i])
            ds_future = future.ds[f0:f1]
            X_future = future.X[f0:f1] if self.supports_covariates else future.X[f0:f1, :0]
        # y is copied: a fresh array (as a worker receives it), so an item gets the same numbers alone,
        # in a batch and in a worker; statsforecast's sums over a view into the panel depended on
        # where the series sat in memory (Theta differed by 3e-14)
        y = np.array(panel.y[first:end], dtype=float)
        return Series(panel.uids[i], y, panel.ds[first:end], X, end - start, ds_future, X_future)

    # --- the parallel map -------------------------------------------------------------
    def _map(self, method: str, items: list, repeats: int = 0) -> list:
        """[getattr(self, method)(*item) for item in items], in worker processes when worth it."""
        n_jobs = int(self.params.get("n_jobs") or 1)
        deadline = current_deadline()
        least = min(PARALLEL_MIN_SERIES, PARALLEL_MIN_COSTLY_SERIES if self.per_series_statistical else 1 << 30)
        if n_jobs <= 1 or len(items) < least:
            return _run_chunk(self, method, items, deadline)
        # a few chunks per worker balance uneven series; contiguous chunks keep the series order
        n_chunks = min(len(items), n_jobs * 4)
        bounds = np.linspace(0, len(items), n_chunks + 1).astype(int)
        pool, cancelled = _pool(n_jobs)
        _MAP_COUNT[0] += 1
        map_id = _MAP_COUNT[0]
        futures = [
            pool.submit(_run_chunk, self, method, items[a:b], deadline, map_id) for a, b in zip(bounds[:-1], bounds[1:])
        ]
        out: list = []
        started = time.monotonic()
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

    def _check_projection(self, started: float, done: int, total: int, deadline: Optional[float], repeats: int = 0):
        """Stop early when the series done so far say the rest (and `repeats` more passes over all
        of them) cannot finish before the deadline."""
        if deadline is None or done >= total:
            return
        now = time.monotonic()
        per_series = (now - started) / done
        needed = per_series * ((total - done) + repeats * total)
        if now + needed > deadline:
            more = f" and {repeats} more backtest window(s)" if repeats else ""
            raise TimeBudgetExceeded(
                f"{self.name}: projected ~{needed:.0f}s more for {total - done} of {total} series"
                f"{more}, would exceed its time budget ({max(deadline - now, 0):.0f}s left)"
            )


def recent_window(series: Series, window: int) -> tuple[np.ndarray, Optional[tuple[np.ndarray, np.ndarray]]]:
    """(the last `window` targets, (their covariates that vary, the mask of those) or None)."""
    y = series.y[-window:]
    if not series.X.shape[1]:
        return y, None
    X = series.X[-len(y) :]
    varying = np.ptp(X, axis=0) > 0
    return y, ((X[:, varying], varying) if varying.any() else None)
