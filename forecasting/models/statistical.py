"""ETS, ARIMA and Theta from statsforecast, fitted per series on a recent window of the context.

A recent window (a few hundred points) keeps fits fast and lets the model track the current
regime; prediction intervals become quantiles through the normal approximation the models use.
A series on which the model fails falls back to seasonal naive (statsforecast's fallback idea).
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import norm

from .base import Candidate, gaussian_quantiles, per_series
from .naive import seasonal_naive_quantiles

_LEVEL = 80
_Z = norm.ppf(0.5 + _LEVEL / 200)


class _StatsForecastModel(Candidate):
    """Model selection (the expensive search over model forms) happens in `fit`, per series, and
    is stored; `predict` re-estimates only the selected form on the recent context, which is
    several times cheaper (the real-time endpoint pays only that). Unknown series get the search.
    """
    # Windows and model spaces are chosen for speed (~10-100 ms per series on a busy core).
    window = 150
    reuses_backtest_selection = True  # the refit keeps the forms chosen on the latest backtest window

    @classmethod
    def default_params(cls, config):
        return {"window": cls.window}

    def _make(self, m: int, spec=None):
        raise NotImplementedError

    def _spec_of(self, fitted) -> object:
        raise NotImplementedError

    def _season(self, y):
        m = self.config.season_length
        return m if len(y) >= 2 * m + 2 else 1

    def _window(self, history, i, y, with_covariates: bool):
        y = y[-self.params["window"]:]
        if not with_covariates or not history.X.shape[1]:
            return y, None
        X = history.X[history.indptr[i + 1] - len(y):history.indptr[i + 1]]
        varying = np.ptp(X, axis=0) > 0
        return y, (X[:, varying], varying) if varying.any() else None

    def _fit(self, train):
        self.specs = {}
        for i in range(train.n_series):
            self.check_time()
            y = train.series_y(i)
            if len(y) < 8:
                continue
            y, xinfo = self._window(train, i, y, self.uses_covariates)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fitted = self._make(self._season(y)).fit(y.astype(float), X=None if xinfo is None else xinfo[0])
                self.specs[train.uids[i]] = (self._spec_of(fitted), None if xinfo is None else xinfo[1])
            except Exception:  # contained: the series gets the search (or the fallback) at predict
                continue

    uses_covariates = False

    def _predict(self, history, future):
        self.fallbacks = 0
        m, levels = self.config.season_length, self.config.quantile_levels
        specs = getattr(self, "specs", {})

        def one(y, h, i):
            if len(y) >= 8:
                try:
                    values = self._forecast(y, h, i, history, future, specs.get(history.uids[i]))
                    if np.isfinite(values).all():
                        return values
                except Exception:  # contained per series: statsforecast raises on degenerate input
                    pass
            self.fallbacks += 1
            return seasonal_naive_quantiles(y, h, m, levels)

        return per_series(self, history, future, one)

    def _forecast(self, y, h, i, history, future, spec):
        y, xinfo = self._window(history, i, y, self.uses_covariates)
        X = Xf = None
        if spec is not None:
            spec, varying = spec
            if varying is not None and history.X.shape[1]:
                X = history.X[history.indptr[i + 1] - len(y):history.indptr[i + 1]][:, varying]
                Xf = future.X[future.indptr[i]:future.indptr[i] + h][:, varying]
        elif xinfo is not None:
            X = xinfo[0]
            Xf = future.X[future.indptr[i]:future.indptr[i] + h][:, xinfo[1]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; bad fits fall back per series
            out = self._make(self._season(y), spec).forecast(y=y.astype(float), h=h, X=X, X_future=Xf,
                                                            level=[_LEVEL])
        mean = np.asarray(out["mean"], float)
        sigma = np.maximum((np.asarray(out[f"hi-{_LEVEL}"], float) - mean) / _Z, 0.0)
        return gaussian_quantiles(mean, sigma, self.config.quantile_levels)


class ETS(_StatsForecastModel):
    name = "ETS"
    relative_cost = 5
    autopilot_names = ("ets",)

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
    autopilot_names = ()

    reuses_backtest_selection = False  # AutoTheta's selection is cheap; it simply refits

    def _make(self, m, spec=None):
        from statsforecast.models import AutoTheta
        return AutoTheta(season_length=m)

    def _fit(self, train):
        self.specs = {}


class ARIMA(_StatsForecastModel):
    """AutoARIMA with the known covariates as exogenous regressors (when they vary)."""

    name = "ARIMA"
    relative_cost = 6
    autopilot_names = ("arima",)
    window = 120

    uses_covariates = True

    def _make(self, m, spec=None):
        from statsforecast.models import ARIMA as FixedARIMA
        from statsforecast.models import AutoARIMA
        if spec is not None and spec[4] == m:
            p, q, P, Q, s, d, D, mean, drift = spec
            return FixedARIMA(order=(p, d, q), seasonal_order=(P, D, Q), season_length=s,
                              include_mean=mean, include_drift=drift)
        return AutoARIMA(season_length=m, approximation=True, max_p=2, max_q=2, max_P=1, max_Q=1, nmodels=20)

    def _spec_of(self, fitted):
        coef = fitted.model_["coef"]
        return tuple(int(v) for v in fitted.model_["arma"]) + ("intercept" in coef, "drift" in coef)
