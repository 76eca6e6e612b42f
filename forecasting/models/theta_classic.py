"""The standard Theta method (Assimakopoulos & Nikolopoulos 2000; theta = 2) from statsforecast,
with AutoGluon's settings: multiplicative classical decomposition, the whole history up to 2,500
points. AutoGluon medium's "Theta" member, which wins weight on small seasonal panels.

One fixed form, no search: ~2 ms a series on quarterly data, so unlike AutoTheta (`Theta`) it
leaves a short panel its extra backtest windows. Only on weekly, monthly and quarterly panels of
fewer than MAX_SERIES series: with 145 monthly series (us_employment) the global LightGBM models
carry the ensemble and Theta's weight was selection noise (0.00242 -> 0.00254 wQL).
"""

from __future__ import annotations

from .statistical import _StatsForecastModel


class ThetaClassic(_StatsForecastModel):
    name = "ThetaClassic"
    relative_cost = 3  # cheap per window: below the threshold that costs a short panel its extra windows
    window = 2500  # AutoGluon's max_ts_length
    selects_per_series = False  # one form: nothing to choose at training, each series refits on its context
    reuses_backtest_selection = False
    fits_per_prediction = True
    MAX_SERIES = 100  # measured: 1-32 series gain (prison 0.0600 -> 0.0589), 145 lose

    @classmethod
    def suits(cls, config, n_series):
        return config.frequency_unit in ("W", "M") and config.season_length > 1 and n_series < cls.MAX_SERIES

    def _make(self, m, spec=None):
        from statsforecast.models import Theta

        return Theta(season_length=m, decomposition_type="multiplicative")
