"""ETS(A,N,A) from statsforecast: additive level and season, no trend, one fixed form (no search),
fitted per series on its recent context (the last year, 365 points) at each prediction.

A member of the default preset on daily panels of DAILY_SERIES (10 to 99 series), in place of
LightGBMSeasonal there. On nycflights (24 daily series, one year of history) a local model that
re-levels each series on its last weeks carries what the global models miss after the holiday
weeks: engine wQL 0.0942 -> 0.0884 (mean of LightGBM seeds 0-2) at less CPU. AutoETS's search
(`ETS`, "ZZA", beside LightGBMSeasonal) scored about the same (0.0893 against ANA's 0.0889 at seed
0) for twice the per-series CPU. One series
(elecdaily) lost with it (selection noise on two backtest windows of one series) and from 100
series (the seed's 125) the global LightGBM carries the ensemble (docs/engine.md "Daily data").

The fit window is a year, not the statistical members' 150 points: on 150 days the weekly indices
and the smoothing weights rest on ~21 cycles, and the fit loses to plain AutoETS on all the history
(pizzaplace, 2 windows, member alone: 0.2966 on 150 points, 0.2885 on 365, AutoETS "ZZZ" 0.2870;
nycflights 0.0917 -> 0.0875; engine 0.3025 -> 0.2991 and 0.0856 -> 0.0847 in replay;
docs/engine.md "Sixth session: the engine's ETS against AutoETS").
"""

from __future__ import annotations

from .statistical import ETS


class SeasonalETS(ETS):
    name = "SeasonalETS"
    # costly per window as ETS: a short panel keeps its backtest windows (with 3 the engine gave
    # nycflights its extra windows, and the ensemble weighed worse: 0.0909 / 0.0912 at seeds 0 / 1)
    relative_cost = 5
    selects_per_series = False  # nothing to choose at training, each series refits on its context
    reuses_backtest_selection = False
    selection_spans_windows = False
    fits_per_prediction = True
    window = 365  # a year of daily data (ETS.DAILY_WINDOW; 150 points: see the module docstring)
    DAILY_SERIES = (10, 100)  # [low, high): measured at 1 (elecdaily: loses), 24 (nycflights: gains)

    @classmethod
    def suits(cls, config, n_series):
        low, high = cls.DAILY_SERIES
        return config.frequency_unit == "D" and config.season_length > 1 and low <= n_series < high

    def _make(self, m, spec=None):
        from statsforecast.models import AutoETS

        return AutoETS(season_length=m, model="ANA" if m > 1 else "ANN")
