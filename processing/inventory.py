"""The horizon total's demand distribution, for inventory: how the periods' errors add up.

Each period's forecast is read as a normal distribution: its mean, and sigma from the outer
quantiles. The horizon total's mean is the sum of the means; its spread depends on how the
periods' errors move together. Multi-step forecast errors are positively correlated (a level
error persists over the whole horizon), so summing the periods as independent (root-sum-square
sigma) understates the total's spread: on the seed windows an order-up-to level built that way
covered 41-49% of the items' actual totals at service levels 0.8-0.95 (benchmarks/bench_inventory.py).

The total's sigma is the root-sum-square of the periods' sigmas times a spread factor k:

- CALIBRATED: k measured on the model's own backtest (the training pipeline's holdout, scored by
  Evaluate; `spread_factor`): the spread of the items' horizon-total errors in units of their
  root-sum-square sigma (k^2 is the ratio of the total error's variance to the summed
  per-period variances: it takes in both the errors' correlation across the horizon and how
  well the per-period intervals were calibrated). Stored with the model version
  (registry metadata `horizon_spread_factor`), read by the batch report.
- COMONOTONE: the fallback for a model without that figure (registered before it existed):
  sigma = sum of the periods' sigmas, so the total's quantile is the sum of the periods'
  quantiles: the perfectly correlated bound, the most any correlation can need when the
  per-period intervals are right.
- INDEPENDENT: k = 1, root-sum-square (what the report did before; kept for comparison).

Numpy only: it runs in the processing container (Evaluate and Report).
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Optional

import numpy as np

CALIBRATED = "calibrated"
COMONOTONE = "comonotone"
INDEPENDENT = "independent"
AGGREGATIONS = (CALIBRATED, COMONOTONE, INDEPENDENT)
# fewer items with a usable backtest than this: no factor (the report falls back to COMONOTONE)
MIN_ITEMS = 20
MAD_TO_SIGMA = 1.482602  # 1 / Phi^-1(0.75): the median absolute value of a standard normal -> 1


def z_span(lower_level: float, upper_level: float) -> float:
    """Standard-normal distance between two quantile levels (p10-p90: 2.563)."""
    return NormalDist().inv_cdf(upper_level) - NormalDist().inv_cdf(lower_level)


def period_sigma(lower, upper, lower_level: float, upper_level: float) -> np.ndarray:
    """Each period's sigma read from its outer quantiles as a normal: (p_hi - p_lo) / (z_hi - z_lo)."""
    span = z_span(lower_level, upper_level)
    if span <= 0:
        raise ValueError("the spread needs two distinct quantile levels")
    return np.clip(np.asarray(upper, float) - np.asarray(lower, float), 0, None) / span


def total_sigma(sum_variance, sum_sigma, aggregation: str, factor: Optional[float] = None) -> np.ndarray:
    """The horizon total's sigma from each item's summed period variances and summed sigmas.

    independent: sqrt(sum sigma^2); comonotone: sum sigma; calibrated: factor * sqrt(sum sigma^2)."""
    root_sum_square = np.sqrt(np.clip(np.asarray(sum_variance, float), 0, None))
    if aggregation == INDEPENDENT:
        return root_sum_square
    if aggregation == COMONOTONE:
        return np.asarray(sum_sigma, float)
    if aggregation == CALIBRATED:
        if factor is None or not np.isfinite(factor) or factor <= 0:
            raise ValueError(f"the calibrated aggregation needs a positive spread factor, not {factor!r}")
        return factor * root_sum_square
    raise ValueError(f"unknown aggregation {aggregation!r}; one of {', '.join(AGGREGATIONS)}")


def spread_factor(errors, sigmas, codes, min_items: int = MIN_ITEMS) -> Optional[float]:
    """k from one backtest horizon: the robust spread of u = total error / sqrt(sum sigma^2) over items.

    errors: actual - mean per row; sigmas: the rows' period_sigma; codes: each row's item (one
    backtest horizon per item). k = 1.4826 x median |u| (the normal's sigma, were u normal; the
    median keeps a few items with wild errors from setting everyone's stock). Items with a missing
    value or no spread at all (sum of sigma^2 = 0) are left out; None when fewer than `min_items`
    items remain: a handful of items says too little about a horizon's error.
    """
    errors, sigmas, codes = np.asarray(errors, float), np.asarray(sigmas, float), np.asarray(codes)
    if not len(codes):
        return None
    _, codes = np.unique(codes, return_inverse=True)
    count = int(codes.max()) + 1
    bad = np.bincount(codes, weights=~(np.isfinite(errors) & np.isfinite(sigmas)), minlength=count) > 0
    total = np.bincount(codes, weights=np.nan_to_num(errors), minlength=count)
    variance = np.bincount(codes, weights=np.nan_to_num(sigmas) ** 2, minlength=count)
    keep = ~bad & (variance > 0)
    if keep.sum() < min_items:
        return None
    u = total[keep] / np.sqrt(variance[keep])
    factor = float(MAD_TO_SIGMA * np.median(np.abs(u)))
    return factor if factor > 0 else None
