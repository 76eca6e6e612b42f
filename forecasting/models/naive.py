"""Seasonal naive: the baseline every other candidate must beat (it always survives), and the
per-series fallback of the other local models (`base.seasonal_naive_quantiles`)."""

from __future__ import annotations

from .base import seasonal_naive_quantiles
from .local import LocalModel


class SeasonalNaive(LocalModel):
    name = "SeasonalNaive"
    relative_cost = 0
    is_baseline = True
    falls_back = False  # the baseline: a series it cannot forecast fails the job, as it should

    def _predict_one(self, series, state):
        return seasonal_naive_quantiles(series.y, series.h, self.config.season_length, self.config.quantile_levels)
