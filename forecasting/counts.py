"""Count-distribution quantiles for low-count integer series (a few units a day of a slow item).

Why: the ensemble's band is a continuous one, scaled on the backtests; a series that sells 0-6
units a day has a discrete distribution whose quantiles are whole units and whose spread follows
its level (Poisson: variance = mean). On pizzaplace (32 pizza types, 1-7 a day) negative-binomial
quantiles around the ensemble's own p50 scored wQL 0.2859 against the band's 0.2961 on the
held-out windows (docs/engine.md). So where the training history is integer and its recent level
low, and the backtests confirm it, each period's forecast becomes one negative binomial with the
ensemble's p50 as its mean: integer quantiles, and the mean of that same distribution.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from .data import Panel

# A series is low-count when its recent history averages at most this many units per period:
# above it the discrete steps are small against the spread and the continuous band is as good
LOW_COUNT_MEAN = 20.0
# the recent history: the last this many seasons (at least MIN_RECENT points)
RECENT_SEASONS = 2
MIN_RECENT = 8
# variance / mean of the count distribution: 1 is Poisson, above it a negative binomial
DISPERSIONS = (1.0, 1.25, 1.5, 2.0, 3.0)
# backtest points of low-count series below which the band is left as it is (too little evidence)
MIN_POINTS = 28


def count_series(panel: Panel, season_length: int, n_tail: int = 0) -> np.ndarray:
    """(series,) bool: every observed target a whole number >= 0 and the recent mean at most
    LOW_COUNT_MEAN; a series with no observed target is not one. n_tail: judged on the history
    before each series' last n_tail rows, for the series a backtest window keeps
    (`Panel.split_tail`: at least 2 rows left), in their order."""
    recent = max(RECENT_SEASONS * int(season_length), MIN_RECENT)
    kept = np.flatnonzero(panel.lengths - n_tail >= 2) if n_tail else np.arange(panel.n_series)
    out = np.zeros(len(kept), bool)
    for k, i in enumerate(kept):
        y = panel.y[panel.indptr[i] : panel.indptr[i + 1] - n_tail]
        y = y[np.isfinite(y)]
        if y.size == 0 or y.min() < 0 or np.any(y != np.round(y)):
            continue
        out[k] = float(y[-recent:].mean()) <= LOW_COUNT_MEAN
    return out


def count_quantiles(mean: np.ndarray, levels, dispersion: float) -> np.ndarray:
    """(...,) means -> (..., q) quantiles of the count distribution with that mean and variance
    `dispersion` x mean (Poisson at 1). A mean of 0 gives 0 at every level."""
    from scipy import stats  # here, not at import: an artifact without low-count series never needs scipy

    lam = np.maximum(np.asarray(mean, float), 0.0)
    levels = np.asarray(levels, float)
    safe = np.maximum(lam, 1e-12)
    if dispersion <= 1.0 + 1e-9:
        out = np.stack([stats.poisson.ppf(level, safe) for level in levels], axis=-1)
    else:
        size, p = safe / (dispersion - 1.0), 1.0 / dispersion
        out = np.stack([stats.nbinom.ppf(level, size, p) for level in levels], axis=-1)
    return np.where(lam[..., None] > 0, out, 0.0)


def _pinball(quantiles: np.ndarray, actual: np.ndarray, levels: np.ndarray) -> float:
    diff = actual[..., None] - quantiles
    return float(np.sum(np.maximum(levels * diff, (levels - 1) * diff)))


def _median_column(levels: np.ndarray) -> Optional[int]:
    """The p50's column, or None when the levels have no p50 or are not two-sided."""
    if len(levels) < 2 or levels.min() >= 0.5 or levels.max() <= 0.5:
        return None
    nearest = int(np.argmin(np.abs(levels - 0.5)))
    return nearest if abs(levels[nearest] - 0.5) < 1e-9 else None


@dataclasses.dataclass(frozen=True)
class CountBand:
    """The dispersion the backtests chose, and by how much it beat the band there (a share)."""

    dispersion: float
    gain: float = 0.0

    @classmethod
    def learn(cls, values: np.ndarray, actual: np.ndarray, rows: np.ndarray, levels) -> Optional["CountBand"]:
        """The dispersion whose count quantiles around the backtests' p50 have the lowest pinball
        loss over the low-count rows, if lower than the calibrated band's own there; else None.
        (n, H, q + 1) calibrated backtest forecasts, (n, H) actuals, (n,) low-count rows."""
        levels = np.asarray(levels, float)
        median = _median_column(levels)
        rows = np.asarray(rows, bool)
        if median is None or rows.sum() * np.asarray(actual).shape[1] < MIN_POINTS:
            return None
        values, actual = np.asarray(values, float)[rows], np.asarray(actual, float)[rows]
        band = _pinball(values[..., :-1], actual, levels)
        if band <= 0:
            return None
        losses = {d: _pinball(count_quantiles(values[..., median], levels, d), actual, levels) for d in DISPERSIONS}
        best = min(losses, key=losses.__getitem__)
        return cls(best, 1.0 - losses[best] / band) if losses[best] < band else None

    def apply(self, values: np.ndarray, rows: np.ndarray, levels) -> np.ndarray:
        """values (n, h, q + 1) with the rows' quantiles replaced by the count distribution's around
        their p50 and their mean set to its mean (that p50)."""
        levels = np.asarray(levels, float)
        median = _median_column(levels)
        rows = np.asarray(rows, bool)
        if median is None or not rows.any():
            return values
        out = values.copy()
        centre = np.maximum(values[rows][..., median], 0.0)
        out[rows, :, :-1] = count_quantiles(centre, levels, self.dispersion)
        out[rows, :, -1] = centre
        return out

    def describe(self, n_rows: int, n_series: int) -> str:
        kind = "Poisson" if self.dispersion <= 1.0 else f"negative binomial (variance {self.dispersion:g} x mean)"
        return (
            f"{n_rows} of {n_series} series are low-count integers (recent mean <= {LOW_COUNT_MEAN:g}): "
            f"{kind} quantiles around the p50 (backtest pinball loss {-self.gain:+.1%} against the band)"
        )
