"""Dynamic regression, Prophet-style: per-series ridge on trend + Fourier seasonality + holiday
windows (daily data) or working days (monthly data) + known covariates, fitted on a recent
window (two years for daily data).

It plays Prophet's part (same model family: additive trend with changepoints, Fourier
seasonalities, holiday effects around each holiday, extra regressors) without the Stan
dependency, and is named as a stand-in in the leaderboard.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from processing.kernel.contracts import split_frequency

from ..calendar import WEEKDAYS_PER_MONTH, holiday_table, monthly_steps, weekdays_in_month
from .local import LocalModel

# frequency unit -> (fit window in periods, [(seasonal period, Fourier order)])
SEASONAL_SETUP: dict[str, tuple[int, list[tuple[float, int]]]] = {
    "D": (730, [(7, 3), (365.25, 8)]),
    "H": (24 * 7 * 6, [(24, 4), (168, 3)]),
    "min": (60 * 24 * 4, [(60, 3)]),
    "W": (156, [(52.18, 6)]),
    "M": (72, [(12, 4)]),
    "Y": (30, []),
}
HOLIDAY_BANDS = ((-1, 1), (-7, -2), (2, 7))  # days relative to the holiday: the day, the week before/after


def _holiday_design(ds: pd.DatetimeIndex, country) -> np.ndarray:
    """One column per (holiday name, band): 1 when the date lies in that band around it."""
    if not country or not len(ds):
        return np.zeros((len(ds), 0))
    days = ds.normalize().to_numpy("datetime64[D]").astype(np.int64)
    table = holiday_table(country, range(ds.min().year - 1, ds.max().year + 2))
    cols = []
    for _name, part in table.groupby("name", sort=True):
        hd = part["date"].to_numpy("datetime64[D]").astype(np.int64)
        diff = days[:, None] - hd[None, :]
        for lo, hi in HOLIDAY_BANDS:
            cols.append(((diff >= lo) & (diff <= hi)).any(axis=1).astype(float))
    return np.column_stack(cols)


def residual_carry(resid: np.ndarray, h: int, m: int) -> np.ndarray:
    """Carry the recent residual level forward, decaying as the residuals' own persistence.

    A regression misses slow movements it has no term for (a cycle of unknown period, a level
    shift); the mean of the last season's residuals, decayed by their lag-m autocorrelation per
    season, corrects the next periods without touching the long-run forecast.
    """
    if len(resid) < 4 * m:
        return np.zeros(h)
    a, b = resid[m:], resid[:-m]
    denom = np.sqrt(np.sum(a * a) * np.sum(b * b))
    phi = float(np.clip(np.sum(a * b) / denom, 0.0, 0.98)) if denom > 0 else 0.0
    level = float(np.mean(resid[-m:]))
    return level * phi ** (np.arange(1, h + 1) / m)


_CACHE: dict = {}


def _cached_holidays(idx: pd.DatetimeIndex, country) -> np.ndarray:
    """Shared by concurrent predictions (the endpoint's threads): the design is returned from a
    local, so another thread clearing the cache in between cannot lose it."""
    key = (idx[0], idx[-1], len(idx), country) if len(idx) else None
    design = _CACHE.get(key)
    if design is None:
        design = _holiday_design(idx, country)
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[key] = design
    return design


class DynamicRegression(LocalModel):
    name = "DynamicRegression"
    relative_cost = 2
    supports_covariates = True

    @classmethod
    def default_params(cls, config):
        window, seasons = SEASONAL_SETUP.get(config.frequency_unit, (200, []))
        # periods and window are in units of the frequency's base (months for 3M): in steps of
        # a multiple they shrink by its count (a quarter's year is 4 steps, not 12)
        count = split_frequency(config.frequency)[0]
        if count > 1:
            window = max(int(window // count), 40)
            seasons = [
                (period / count, min(order, int(period / count // 2)))
                for period, order in seasons
                if period / count >= 2
            ]
        return {"window": window, "seasons": seasons, "ridge": 1.0}

    def _design(self, ds: np.ndarray, t: np.ndarray, n_fit: int, X: np.ndarray) -> np.ndarray:
        idx = pd.DatetimeIndex(ds)
        tt = t / max(n_fit, 1)
        cols = [np.ones_like(tt), tt, np.maximum(tt - 0.5, 0), np.maximum(tt - 0.8, 0)]
        for period, order in self.params["seasons"]:
            if period * 1.5 > n_fit:
                continue  # a seasonality needs more than one cycle of data
            phase = 2 * np.pi * t / period
            for k in range(1, order + 1):
                cols += [np.sin(k * phase), np.cos(k * phase)]
        design = np.column_stack(cols)
        if self.config.frequency_unit in ("D", "H", "min"):
            design = np.column_stack([design, _cached_holidays(idx, self.config.holiday_country)])
        if monthly_steps(self.config.frequency):
            # as the deviation from an average month: the columns are scaled by their largest
            # value, and 20-23 days so scaled would vary by 0.1 against a ridge penalty of 1
            design = np.column_stack([design, weekdays_in_month(idx) - WEEKDAYS_PER_MONTH])
        if X.shape[1]:
            design = np.column_stack([design, X])
        return design

    def _predict_one(self, series, state):
        levels = np.asarray(self.config.quantile_levels)
        window, ridge, h = self.params["window"], self.params["ridge"], series.h
        n = min(len(series.y), window)
        yy = series.y[-n:]
        ds_all = np.concatenate([series.ds[-n:], series.ds_future])
        X_all = np.concatenate([series.X[-n:], series.X_future])
        varying = np.ptp(X_all[:n], axis=0) > 0 if X_all.shape[1] else np.zeros(0, bool)
        t = np.arange(n + h, dtype=float)
        A = self._design(ds_all, t, n, X_all[:, varying])
        scale = np.mean(np.abs(yy)) or 1.0
        col_scale = np.maximum(np.abs(A[:n]).max(axis=0), 1e-9)
        A = A / col_scale
        keep = np.abs(A[:n]).sum(axis=0) > 0
        A = A[:, keep]
        penalty = np.full(A.shape[1], ridge)
        penalty[0] = 0.0
        fit_A = A[:n]
        beta = np.linalg.solve(fit_A.T @ fit_A + np.diag(penalty), fit_A.T @ (yy / scale))
        fitted = fit_A @ beta * scale
        pred = A[n:] @ beta * scale
        resid = yy - fitted
        pred = pred + residual_carry(resid, h, max(self.config.season_length, 1))
        dof = max(n - A.shape[1], 1)
        inflate = np.sqrt(n / dof)
        q = np.quantile(resid, levels) * inflate
        return np.column_stack([pred[:, None] + q[None, :], pred])
