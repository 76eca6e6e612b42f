"""ETS, ARIMA and Theta from statsforecast, fitted per series on a recent window of the context.

A recent window (a few hundred points) keeps fits fast and lets the model track the current
regime; prediction intervals become quantiles through the normal approximation the models use.
The loop over series, the worker processes, the time budget and the per-series seasonal-naive
fallback are the local-model base's (`local.LocalModel`); these classes say what one series needs.
"""

from __future__ import annotations

import warnings
from statistics import NormalDist

import numpy as np

from .base import gaussian_quantiles
from .local import LocalModel, default_jobs, recent_window, shutdown_pools  # noqa: F401  (benchmarks stop the pool)

_LEVEL = 80
_Z = NormalDist().inv_cdf(0.5 + _LEVEL / 200)  # stdlib: importing scipy.stats costs ~0.5 s per process
# Theta's classical decomposition averages each season's index over the cycles in its window: 150
# points hold under three years of weekly data, whose indices are then mostly noise (us_gasoline,
# 4 windows: Theta m=52 on 150 weeks 0.0245, on 520 weeks 0.0170 wQL)
THETA_SEASONS = 10


class _StatsForecastModel(LocalModel):
    """Model selection (the expensive search over model forms) happens in `fit`, per series, and
    is stored; `predict` re-estimates only the selected form on the recent context, which is
    several times cheaper (the real-time endpoint pays only that). Unknown series get the search.
    """

    # Windows and model spaces are chosen for speed (~10-100 ms per series on a busy core).
    window = 150
    selects_per_series = True
    fits_per_prediction = False
    reuses_backtest_selection = True  # the refit keeps the forms chosen on the backtests
    # the forms chosen before the oldest backtest window serve the later windows too (the engine's
    # `_carries_over`): the search, most of these models' cost, runs once per training
    selection_spans_windows = True
    per_series_statistical = True  # the engine gives these a default time budget (docs/engine.md)
    needs_min_length = 8
    flat_when_constant = True  # ARIMA's estimation fails on a constant window
    # and so is a longer daily window (ETS, SeasonalETS: 365) whose last 150 points are: no sales
    # for 150 days forecasts 0, not the season of a year ago
    constant_span = window

    @classmethod
    def default_params(cls, config):
        return {"window": cls.window, "n_jobs": default_jobs()}

    def _make(self, m: int, spec=None):
        raise NotImplementedError

    def _spec_of(self, fitted) -> object:
        raise NotImplementedError

    def _season(self, y):
        m = self.config.season_length
        return m if len(y) >= 2 * m + 2 else 1

    # --- fit: choose the model form per series ----------------------------------------
    def _fit_one(self, series):
        """The chosen form plus which covariates vary; None (raised and contained by the base):
        that series gets the search at predict."""
        y, xinfo = recent_window(series, self.params["window"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fitted = self._make(self._season(y)).fit(y, X=self._selection_X(xinfo))
        return self._spec_of(fitted), None if xinfo is None else xinfo[1]

    def _selection_X(self, xinfo):
        return None if xinfo is None else xinfo[0]

    # --- predict: re-estimate the chosen form and forecast ----------------------------
    def _predict_one(self, series, state):
        X, Xf, spec = self._design(series, state)
        return self._forecast(series.y[-self.params["window"] :], series.h, X, Xf, spec)

    def _design(self, series, state):
        """(X, X_future, spec) for one series: the covariates the stored form was chosen with."""
        yw, xinfo = recent_window(series, self.params["window"])
        X = Xf = spec = None
        if state is not None:
            spec, varying = state
            if varying is not None and series.X.shape[1]:
                X = series.X[-len(yw) :][:, varying]
                Xf = series.X_future[:, varying]
        elif xinfo is not None:
            X = xinfo[0]
            Xf = series.X_future[:, xinfo[1]]
        return X, Xf, spec

    def _forecast(self, y, h, X, Xf, spec):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; bad fits fall back per series
            out = self._make(self._season(y), spec).forecast(y=y, h=h, X=X, X_future=Xf, level=[_LEVEL])
        mean = np.asarray(out["mean"], float)
        sigma = np.maximum((np.asarray(out[f"hi-{_LEVEL}"], float) - mean) / _Z, 0.0)
        return gaussian_quantiles(mean, sigma, self.config.quantile_levels)


class ETS(_StatsForecastModel):
    name = "ETS"
    relative_cost = 5
    # daily data: a year of context, not 150 days (~21 weekly cycles), on which the search's form and
    # weekly indices lost to plain AutoETS on the whole history. Member alone, 2 windows:
    # pizzaplace 0.2992 -> 0.2886 (AutoETS "ZZZ" on all points 0.2870), nycflights 0.0949 -> 0.0883;
    # one series (elecdaily 0.0456 -> 0.0497, chicago 0.0285 -> 0.0288) about even, at ~2x the
    # search's CPU (docs/engine.md "Sixth session: the engine's ETS against AutoETS")
    DAILY_WINDOW = 365

    @classmethod
    def default_params(cls, config):
        params = super().default_params(config)
        if config.frequency_unit == "D":
            params["window"] = max(params["window"], cls.DAILY_WINDOW)
        return params

    def _make(self, m, spec=None):
        from statsforecast.models import AutoETS

        if spec is not None and (spec[2] == "N") == (m == 1):
            return AutoETS(season_length=m, model=spec[:3], damped=spec[3] == "D")
        # error and trend chosen by AICc; additive seasonality (multiplicative rarely wins on short windows)
        return AutoETS(season_length=m, model="ZZA" if m > 1 else "ZZN")

    def _spec_of(self, fitted):
        return str(fitted.model_["components"])


class Theta(_StatsForecastModel):
    name = "Theta"
    relative_cost = 4

    selects_per_series = False  # AutoTheta's selection is cheap; it simply refits
    reuses_backtest_selection = False
    selection_spans_windows = False
    fits_per_prediction = True

    @classmethod
    def default_params(cls, config):
        """At least THETA_SEASONS seasons of context (520 weeks for weekly data; 150 points otherwise)."""
        params = super().default_params(config)
        params["window"] = max(cls.window, THETA_SEASONS * config.season_length)
        # weekly: additive decomposition (us_gasoline 4 windows, in the engine: 0.0195 -> 0.0187 wQL;
        # statsforecast alone on 520 weeks 0.0170 -> 0.0164); elsewhere AutoTheta's default
        params["decomposition"] = "additive" if config.frequency_unit == "W" else "multiplicative"
        return params

    def _make(self, m, spec=None):
        from statsforecast.models import AutoTheta

        return AutoTheta(season_length=m, decomposition_type=self.params.get("decomposition", "multiplicative"))


class ARIMA(_StatsForecastModel):
    """AutoARIMA with the known covariates as exogenous regressors (when they vary).

    The order search runs on the target alone: with regressors every candidate order costs a
    regression with ARIMA errors, which made the search ~7x slower (~1.1 s vs 0.16 s per series).
    The chosen orders are then estimated with the regressors at prediction (regression with
    ARIMA errors), so covariate effects are still used.
    """

    name = "ARIMA"
    relative_cost = 6
    window = 120
    supports_covariates = True

    def _make(self, m, spec=None):
        from statsforecast.models import ARIMA as FixedARIMA
        from statsforecast.models import AutoARIMA

        if spec is not None and spec[4] == m:
            p, q, P, Q, s, d, D, mean, drift = spec
            return FixedARIMA(
                order=(p, d, q), seasonal_order=(P, D, Q), season_length=s, include_mean=mean, include_drift=drift
            )
        return AutoARIMA(season_length=m, approximation=True, max_p=2, max_q=2, max_P=1, max_Q=1, nmodels=20)

    def _selection_X(self, xinfo):
        return None

    def _forecast(self, y, h, X, Xf, spec):
        """With the covariates first; when that estimation breaks down (it can give a negative
        variance), the chosen order without them, which is how it was selected."""
        if X is not None:
            try:
                values = super()._forecast(y, h, X, Xf, spec)
                if np.isfinite(values).all():
                    return values
            except Exception:  # contained: the order alone is tried next
                pass
        return super()._forecast(y, h, None, None, spec)

    def _spec_of(self, fitted):
        coef = fitted.model_["coef"]
        return tuple(int(v) for v in fitted.model_["arma"]) + ("intercept" in coef, "drift" in coef)


class AirlineARIMA(_StatsForecastModel):
    """The "airline" seasonal ARIMA(0,1,1)(0,1,1)m (Box & Jenkins) on the log of the last 120 points
    (levels when a value is not positive): one fixed form, ~30 ms a series, no order search.
    Monthly and quarterly panels of MIN_SERIES series or more (us_employment 0.00245 -> 0.00239
    in replay); on 5-32 series it cost prison 4% (docs/engine.md "Seasonal data")."""

    name = "AirlineARIMA"
    relative_cost = 3  # one fixed form: cheap enough not to be pruned or screened like AutoARIMA
    window = 120  # ten years of monthly data (240 points: 0.00241)
    selects_per_series = False
    reuses_backtest_selection = False
    selection_spans_windows = False
    fits_per_prediction = True
    MIN_SERIES = 100

    @classmethod
    def suits(cls, config, n_series):
        return config.frequency_unit == "M" and config.season_length > 1 and n_series >= cls.MIN_SERIES

    def _make(self, m, spec=None):
        from statsforecast.models import ARIMA as FixedARIMA

        return FixedARIMA(order=(0, 1, 1), seasonal_order=(0, 1, 1) if m > 1 else (0, 0, 0), season_length=m)

    def _predict_one(self, series, state):
        y = np.asarray(series.y[-self.params["window"] :], float)
        if not np.all(y > 0):
            return self._forecast(y, series.h, None, None, None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self._make(self._season(y)).forecast(y=np.log(y), h=series.h, level=[_LEVEL])
        mu = np.asarray(out["mean"], float)
        sigma = np.maximum((np.asarray(out[f"hi-{_LEVEL}"], float) - mu) / _Z, 0.0)
        values = np.exp(gaussian_quantiles(mu, sigma, self.config.quantile_levels))
        values[:, -1] = np.exp(mu + sigma**2 / 2)  # the lognormal's mean
        return values
