"""Scoring for backtests: the project's evaluation.metrics when present, same maths otherwise.

Objective values are "lower is better" for every metric the engine optimises.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

try:  # the EVAL engineer's shared implementation (same signatures)
    from evaluation.metrics import mape, rmse, wape, wql
except ImportError:  # pragma: no cover - only while evaluation/ is being written

    def wql(actual: Any, quantile_forecasts: Mapping[str, Any]) -> float:
        actual = np.asarray(actual, float)
        denom = np.abs(actual).sum()
        losses = []
        for name, forecast in quantile_forecasts.items():
            q = float(name[1:]) / 100.0
            diff = actual - np.asarray(forecast, float)
            losses.append(2 * np.sum(np.maximum(q * diff, (q - 1) * diff)) / denom if denom else np.nan)
        return float(np.mean(losses))

    def wape(actual: Any, forecast: Any) -> float:
        actual = np.asarray(actual, float)
        denom = np.abs(actual).sum()
        return float(np.abs(actual - np.asarray(forecast, float)).sum() / denom) if denom else float("nan")

    def rmse(actual: Any, forecast: Any) -> float:
        return float(np.sqrt(np.mean((np.asarray(actual, float) - np.asarray(forecast, float)) ** 2)))

    def mape(actual: Any, forecast: Any) -> float:
        actual = np.asarray(actual, float)
        keep = actual != 0
        if not keep.any():
            return float("nan")
        return float(np.mean(np.abs((actual[keep] - np.asarray(forecast, float)[keep]) / actual[keep])))


def pinball(actual: np.ndarray, forecast: np.ndarray, level: float) -> float:
    diff = actual - forecast
    return float(np.sum(np.maximum(level * diff, (level - 1) * diff)))


def mase(actual: np.ndarray, forecast: np.ndarray, scales: np.ndarray) -> float:
    """Mean over series of MAE / in-sample seasonal-naive MAE. actual/forecast: (series, h)."""
    scales = np.where(scales > 0, scales, np.nan)
    per_series = np.mean(np.abs(actual - forecast), axis=1) / scales
    return float(np.nanmean(per_series)) if np.isfinite(per_series).any() else float("nan")


def seasonal_naive_scales(histories: list, season: int) -> np.ndarray:
    """In-sample MAE of the seasonal naive forecast per series (the MASE denominator)."""
    out = np.full(len(histories), np.nan)
    for i, y in enumerate(histories):
        m = season if len(y) > season else 1
        if len(y) > m:
            out[i] = np.mean(np.abs(y[m:] - y[:-m]))
    return out


def score_all(actual: np.ndarray, values: np.ndarray, quantile_names, scales: np.ndarray) -> dict:
    """Every leaderboard metric for one forecast. values: (series, h, n_quantiles + 1 [mean])."""
    flat_actual = actual.ravel()
    qf = {name: values[:, :, j].ravel() for j, name in enumerate(quantile_names)}
    mean = values[:, :, -1]
    return {
        "wQL": wql(flat_actual, qf),
        "WAPE": wape(flat_actual, mean.ravel()),
        "MAPE": mape(flat_actual, mean.ravel()),
        "MASE": mase(actual, mean, scales),
        "RMSE": rmse(flat_actual, mean.ravel()),
    }


OBJECTIVE_KEYS = {"AverageWeightedQuantileLoss": "wQL", "WAPE": "WAPE", "MAPE": "MAPE", "MASE": "MASE", "RMSE": "RMSE"}
