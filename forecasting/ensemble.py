"""Greedy ensemble selection with replacement (Caruana et al., 2004) over backtest forecasts.

Run once per output (each quantile with its pinball loss, the mean with the objective's point
loss): start empty, repeatedly add (with replacement) the candidate whose inclusion most lowers
the loss of the running average; weights = selection counts / rounds.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def caruana_weights(predictions: np.ndarray, loss: Callable[[np.ndarray], float], rounds: int = 20) -> np.ndarray:
    """predictions: (n_candidates, n_points) -> weights (n_candidates,) summing to 1."""
    n = predictions.shape[0]
    counts = np.zeros(n)
    current = np.zeros(predictions.shape[1])
    best_loss = np.inf
    for r in range(rounds):
        trial = [loss((current * r + predictions[i]) / (r + 1)) for i in range(n)]
        i = int(np.argmin(trial))
        if r > 0 and trial[i] >= best_loss - 1e-12 and r >= 1:
            # no candidate improves; adding the current best again keeps the weights stable
            pass
        counts[i] += 1
        current = (current * r + predictions[i]) / (r + 1)
        best_loss = min(best_loss, trial[i])
    return counts / counts.sum()


def pinball_loss(actual: np.ndarray, level: float) -> Callable[[np.ndarray], float]:
    def loss(forecast):
        diff = actual - forecast
        return float(np.sum(np.maximum(level * diff, (level - 1) * diff)))
    return loss


def point_loss(actual: np.ndarray, objective: str, scale: np.ndarray) -> Callable[[np.ndarray], float]:
    """The mean output's loss under the job objective (absolute error for wQL and WAPE)."""
    if objective == "RMSE":
        return lambda f: float(np.mean((actual - f) ** 2))
    if objective == "MAPE":
        keep = actual != 0
        return lambda f: float(np.mean(np.abs((actual[keep] - f[keep]) / actual[keep]))) if keep.any() else 0.0
    if objective == "MASE":
        s = np.where(scale > 0, scale, 1.0)
        return lambda f: float(np.mean(np.abs(actual - f) / s))
    return lambda f: float(np.sum(np.abs(actual - f)))
