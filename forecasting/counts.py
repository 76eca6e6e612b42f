"""Count-distribution quantiles for low-count integer series (a few units a day of a slow item).

Why: the ensemble's band is a continuous one, scaled on the backtests; a series that sells 0-6
units a day has a discrete distribution whose quantiles are whole units and whose spread follows
its level (Poisson: variance = mean). On pizzaplace (32 pizza types, 1-7 a day) negative-binomial
quantiles around the ensemble's own p50 scored wQL 0.2859 against the band's 0.2961 on the
held-out windows (docs/engine.md). So where the training history is integer and its recent level
low, and the backtests confirm it, each period's forecast becomes one negative binomial with the
ensemble's p50 (its mean where the p50 is under one unit) as its mean: integer quantiles, and the
mean of that same distribution. A period whose distribution would be 0 at every quantile while its
mean is not (a rate under ~0.1 a period) keeps the band: its mean must lie inside the quantiles, so
it would read 0, and the horizon's expected demand of a slow mover would be lost.
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
# variance / mean of the count distribution: 1 is Poisson, above it a negative binomial (an
# intermittent item, selling on a few days, is far more dispersed than Poisson: 4-6 on such data)
DISPERSIONS = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 6.0)
# The distribution's mean is the ensemble's p50 where that is at least one unit: a steady slow
# seller's p50 is the robust location (on pizzaplace the band's mean, pulled up by its upper tail,
# held out worse: 0.3501 against 0.3252 on the last window). Below one unit the p50 says "mostly
# nothing" (an intermittent item's is 0) and a distribution around it would be all zeros: there the
# ensemble's mean, the item's rate, is the mean.
MEDIAN_MIN_UNITS = 1.0
# backtest points of low-count series (in one regime) below which the band is left as it is
MIN_POINTS = 28
# (series, window) rows the choice reads at most: a seeded sample decides as well on thousands of
# series (scipy's quantile search takes ~2 s per dispersion for 25,000 series x 14 days)
MAX_ROWS = 2000


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


def _columns(levels: np.ndarray) -> Optional[tuple]:
    """(p50's column, the mean's column), or None when the levels have no p50 (or are one-sided)."""
    if len(levels) < 2 or levels.min() >= 0.5 or levels.max() <= 0.5:
        return None
    nearest = int(np.argmin(np.abs(levels - 0.5)))
    return (nearest, len(levels)) if abs(levels[nearest] - 0.5) < 1e-9 else None


def _regimes(values: np.ndarray, levels: np.ndarray) -> tuple:
    """(mean of the count distribution, True where it is the p50) per point; (n, h, q + 1) -> 2 x (n, h)."""
    columns = _columns(levels)
    if columns is None:
        raise ValueError("count quantiles need a p50 among the quantiles")
    median_col, mean_col = columns
    median = values[..., median_col]
    on_median = median >= MEDIAN_MIN_UNITS
    return np.maximum(np.where(on_median, median, values[..., mean_col]), 0.0), on_median


def _counted(mean: np.ndarray, levels: np.ndarray, dispersion: float) -> tuple:
    """(count quantiles, where they are used): not where every quantile is 0 but the mean is not."""
    quantiles = count_quantiles(mean, levels, dispersion)
    return quantiles, ~((quantiles[..., -1] <= 0) & (mean > 0))


def _point_pinball(quantiles: np.ndarray, actual: np.ndarray, levels: np.ndarray) -> np.ndarray:
    diff = actual[..., None] - quantiles
    return np.sum(np.maximum(levels * diff, (levels - 1) * diff), axis=-1)


@dataclasses.dataclass(frozen=True)
class CountBand:
    """The dispersions the backtests chose for the periods whose distribution is centred on the
    p50 and for those centred on the mean (None: that regime keeps the band), and the gain there."""

    median_dispersion: Optional[float]
    mean_dispersion: Optional[float]
    gain: float = 0.0

    @classmethod
    def learn(cls, values: np.ndarray, actual: np.ndarray, rows: np.ndarray, levels) -> Optional["CountBand"]:
        """Per regime (p50 of at least MEDIAN_MIN_UNITS, or under it), the dispersion whose count
        quantiles have the lowest pinball loss over the backtests' low-count points of that regime,
        where lower than the calibrated band's own there; None when neither regime gains.
        (n, H, q + 1) calibrated backtest forecasts, (n, H) actuals, (n,) low-count rows."""
        levels = np.asarray(levels, float)
        rows = np.asarray(rows, bool)
        if _columns(levels) is None or not rows.any():
            return None
        chosen_rows = np.flatnonzero(rows)
        if chosen_rows.size > MAX_ROWS:
            chosen_rows = np.sort(np.random.default_rng(0).choice(chosen_rows, MAX_ROWS, replace=False))
        values, actual = np.asarray(values, float)[chosen_rows], np.asarray(actual, float)[chosen_rows]
        mean, on_median = _regimes(values, levels)
        band = _point_pinball(values[..., :-1], actual, levels)
        count = {}
        for d in DISPERSIONS:
            quantiles, used = _counted(mean, levels, d)
            count[d] = np.where(used, _point_pinball(quantiles, actual, levels), band)
        chosen: list = []
        total_band = total_count = float(band.sum())
        for points in (on_median, ~on_median):
            base = float(band[points].sum())
            if points.sum() < MIN_POINTS or base <= 0:
                chosen.append(None)
                continue
            best = min(DISPERSIONS, key=lambda d: float(count[d][points].sum()))
            loss = float(count[best][points].sum())
            chosen.append(best if loss < base else None)
            if loss < base:
                total_count -= base - loss
        if chosen == [None, None] or total_band <= 0:
            return None
        return cls(chosen[0], chosen[1], 1.0 - total_count / total_band)

    def apply(self, values: np.ndarray, rows: np.ndarray, levels) -> np.ndarray:
        """values (n, h, q + 1) with the rows' quantiles replaced by the count distribution's and
        their mean set to its mean, in the regimes the backtests chose it for."""
        levels = np.asarray(levels, float)
        rows = np.asarray(rows, bool)
        if _columns(levels) is None or not rows.any():
            return values
        out = values.copy()
        part = values[rows]
        mean, on_median = _regimes(part, levels)
        for dispersion, points in ((self.median_dispersion, on_median), (self.mean_dispersion, ~on_median)):
            if dispersion is None or not points.any():
                continue
            quantiles, used = _counted(mean[points], levels, dispersion)
            replace = np.flatnonzero(points.ravel())[used.ravel()]
            flat = part.reshape(-1, part.shape[-1])
            flat[replace, :-1] = quantiles.reshape(-1, len(levels))[used.ravel()]
            flat[replace, -1] = mean[points].ravel()[used.ravel()]
        out[rows] = part
        return out

    def describe(self, n_rows: int, n_series: int) -> str:
        def kind(d: Optional[float]) -> str:
            if d is None:
                return "the band"
            return "Poisson" if d <= 1.0 else f"negative binomial (variance {d:g} x mean)"

        return (
            f"{n_rows} of {n_series} series are low-count integers (recent mean <= {LOW_COUNT_MEAN:g}): "
            f"count quantiles, {kind(self.median_dispersion)} around a p50 of {MEDIAN_MIN_UNITS:g} unit or more, "
            f"{kind(self.mean_dispersion)} around the mean below it "
            f"(backtest pinball loss {-self.gain:+.1%} against the band)"
        )
