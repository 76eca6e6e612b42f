"""Seasonal naive: the baseline every other candidate must beat (it always survives)."""
from __future__ import annotations

import numpy as np

from .base import Candidate, per_series


def seasonal_naive_quantiles(y: np.ndarray, h: int, season: int, levels, window: int = 400) -> np.ndarray:
    """Repeat the last season; quantiles from the empirical k-season-ahead residuals.

    The forecast for step j copies y[T + j - k*m] with k = ceil(j/m); its error is that of a
    k-season difference, so residual quantiles are taken from in-sample differences at lag k*m.
    """
    m = season if len(y) >= season and season > 1 else 1
    y = y[-max(window, 2 * m):] if len(y) > max(window, 2 * m) else y
    steps = np.arange(1, h + 1)
    k = np.ceil(steps / m).astype(int)
    point = y[len(y) - m + (steps - 1) % m]   # m == 1: the last value repeated
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


class SeasonalNaive(Candidate):
    name = "SeasonalNaive"
    relative_cost = 0
    fits_per_prediction = True
    is_baseline = True

    def _predict(self, history, future):
        m, levels = self.config.season_length, self.config.quantile_levels
        return per_series(self, history, future, lambda y, h, i: seasonal_naive_quantiles(y, h, m, levels))
