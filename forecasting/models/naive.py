"""Seasonal naive: the baseline every other candidate must beat (it always survives), and the
per-series fallback of the other local models (`base.seasonal_naive_quantiles`).

`SeasonalDrift` is seasonal naive moved by the panel's growth over the last year: every member
of the default preset ran 5-11% under visnights' held-out windows, in which the regions grew
together (docs/engine.md "Seasonal data"), while one region's own year-on-year change is mostly
noise (a per-series drift scored 0.082 wQL alone against seasonal naive's 0.073).
"""

from __future__ import annotations

import numpy as np

from .base import seasonal_naive_quantiles
from .local import LocalModel


class SeasonalNaive(LocalModel):
    name = "SeasonalNaive"
    relative_cost = 0
    is_baseline = True
    falls_back = False  # the baseline: a series it cannot forecast fails the job, as it should

    def _predict_one(self, series, state):
        return seasonal_naive_quantiles(series.y, series.h, self.config.season_length, self.config.quantile_levels)


def panel_growth(series_values, season: int, years: int = 1) -> float:
    """Log growth of the panel per season: log(sum of every series' last season / sum of the
    season before it), over the series with two positive finite seasons at their end (0 without);
    with `years` > 1 the mean of that over the last `years` seasons (each measured as if it were
    the last)."""
    values = [np.asarray(y, float) for y in series_values]
    out = []
    for back in range(years):
        now = then = 0.0
        for y in values:
            end = len(y) - back * season
            tail = y[max(end - 2 * season, 0) : max(end, 0)]
            if len(tail) == 2 * season and np.all(np.isfinite(tail)) and np.all(tail > 0):
                then += float(tail[:season].sum())
                now += float(tail[season:].sum())
        out.append(float(np.log(now / then)) if now > 0 and then > 0 else 0.0)
    return float(np.mean(out))


def seasonal_drift_quantiles(y: np.ndarray, h: int, season: int, levels, growth: float, window: int) -> np.ndarray:
    """Seasonal naive x exp(growth x k) for the step k seasons ahead, on the log scale: quantiles
    from the series' own k-season log differences around their mean (its spread, the drift
    given). Plain seasonal naive for a series with a non-positive value or under three seasons."""
    y = np.asarray(y, float)[-window:]
    m = season
    if m <= 1 or len(y) < 3 * m or not np.all(y > 0):
        return seasonal_naive_quantiles(y, h, season, levels)
    ly = np.log(y)
    steps = np.arange(1, h + 1)
    k = np.ceil(steps / m).astype(int)
    point = ly[len(y) - m + (steps - 1) % m] + k * growth
    out = np.empty((h, len(levels) + 1))
    spread: dict = {}
    for j in range(h):
        lag = int(k[j]) * m
        if lag not in spread:
            diff = ly[lag:] - ly[:-lag] if len(ly) > lag else np.zeros(1)
            spread[lag] = diff - diff.mean()
        out[j, :-1] = np.exp(point[j] + np.quantile(spread[lag], levels))
        out[j, -1] = float(np.mean(np.exp(point[j] + spread[lag])))
    return out


class SeasonalDrift(LocalModel):
    """Seasonal naive moved by the training panel's growth over its last season (`panel_growth`,
    learned at fit: an item's forecast does not depend on the other items of a request). With
    `SeasonalDriftLong` (the growth averaged over three seasons) the default preset's members on
    monthly and quarterly data (`models.FREQUENCY_MEMBERS`); not on weekly data, where a 52-step
    lag drifts through the year (us_gasoline 0.0188 -> 0.0201)."""

    name = "SeasonalDrift"
    relative_cost = 1
    fits_per_prediction = False  # learns the panel's growth at fit
    years = 1  # seasons the growth is averaged over

    @classmethod
    def default_params(cls, config):
        return {"window": 400, "years": cls.years}

    @classmethod
    def suits(cls, config, n_series):
        return config.season_length > 1

    def _fit(self, train) -> None:
        super()._fit(train)
        m = self.config.season_length
        series = (train.series_y(i) for i in range(train.n_series))
        self.growth = panel_growth(series, m, int(self.params["years"])) if m > 1 else 0.0

    def _predict_one(self, series, state):
        return seasonal_drift_quantiles(
            series.y,
            series.h,
            self.config.season_length,
            self.config.quantile_levels,
            getattr(self, "growth", 0.0),
            self.params["window"],
        )


class SeasonalDriftLong(SeasonalDrift):
    """SeasonalDrift with the panel's growth averaged over its last three seasons: beside the
    one-season growth it kept aus_accommodation's gain, where a year's growth mean-reverts
    (docs/engine.md "Seasonal data")."""

    name = "SeasonalDriftLong"
    years = 3
