"""NPTS: non-parametric time series forecasting (GluonTS / Autopilot), seasonal variant.

The forecast distribution for step T+j is the past values of the same season position,
weighted by exp(-decay * seasons_back) so recent seasons count more. GluonTS draws sample
paths from that distribution; we compute its quantiles and mean exactly (the limit of
infinitely many samples), which is deterministic and cheaper.
"""

from __future__ import annotations

import numpy as np

from .local import LocalModel


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, levels) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cdf = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(levels, cdf, v)


def npts_forecast(y: np.ndarray, h: int, season: int, levels, decay: float, window: int) -> np.ndarray:
    y = y[-window:]
    m = season if season > 1 and len(y) >= 2 * season else 1
    out = np.empty((h, len(levels) + 1))
    n = len(y)
    for j in range(h):
        # same season position as T+1+j, strictly in the past
        first = n - m + (j % m)
        idx = np.arange(first, -1, -m)
        seasons_back = np.arange(len(idx), dtype=float)
        w = np.exp(-decay * seasons_back)
        vals = y[idx]
        out[j, :-1] = weighted_quantiles(vals, w, levels)
        out[j, -1] = np.sum(w * vals) / w.sum()
    return out


class NPTS(LocalModel):
    name = "NPTS"
    relative_cost = 1

    @classmethod
    def default_params(cls, config):
        return {"decay": 0.3, "window": 400}

    def _predict_one(self, series, state):
        p = self.params
        return npts_forecast(
            series.y, series.h, self.config.season_length, self.config.quantile_levels, p["decay"], p["window"]
        )
