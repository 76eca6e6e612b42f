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
    # Windows and model spaces are chosen for speed (~10-100 ms per series on a busy core):
    # these refit per series at every prediction, including the real-time endpoint's.
    window = 150

    @classmethod
    def default_params(cls, config):
        return {"window": cls.window}

    def _make(self, m: int):
        raise NotImplementedError

    def _one(self, y: np.ndarray, h: int, X=None, X_future=None) -> np.ndarray:
        m = self.config.season_length
        y = y[-self.params["window"]:]
        if X is not None:
            X = X[-len(y):]
        season = m if len(y) >= 2 * m + 2 else 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; bad fits fall back per series
            out = self._make(season).forecast(y=y.astype(float), h=h, X=X, X_future=X_future, level=[_LEVEL])
        mean = np.asarray(out["mean"], float)
        sigma = np.maximum((np.asarray(out[f"hi-{_LEVEL}"], float) - mean) / _Z, 0.0)
        return gaussian_quantiles(mean, sigma, self.config.quantile_levels)

    def _predict(self, history, future):
        self.fallbacks = 0
        m, levels = self.config.season_length, self.config.quantile_levels

        def one(y, h, i):
            if len(y) < 8:
                self.fallbacks += 1
                return seasonal_naive_quantiles(y, h, m, levels)
            try:
                values = self._one_with_covariates(y, h, i, history, future)
                if np.isfinite(values).all():
                    return values
            except Exception:  # contained per series: statsforecast raises on degenerate input
                pass
            self.fallbacks += 1
            return seasonal_naive_quantiles(y, h, m, levels)

        return per_series(self, history, future, one)

    def _one_with_covariates(self, y, h, i, history, future):
        return self._one(y, h)


class ETS(_StatsForecastModel):
    name = "ETS"
    relative_cost = 5
    autopilot_names = ("ets",)

    def _make(self, m):
        from statsforecast.models import AutoETS
        # error and trend chosen by AICc; additive seasonality (multiplicative rarely wins on short windows)
        return AutoETS(season_length=m, model="ZZA" if m > 1 else "ZZN")


class Theta(_StatsForecastModel):
    name = "Theta"
    relative_cost = 4
    autopilot_names = ()

    def _make(self, m):
        from statsforecast.models import AutoTheta
        return AutoTheta(season_length=m)


class ARIMA(_StatsForecastModel):
    """AutoARIMA with the known covariates as exogenous regressors (when they vary)."""

    name = "ARIMA"
    relative_cost = 6
    autopilot_names = ("arima",)
    window = 120

    def _make(self, m):
        from statsforecast.models import AutoARIMA
        return AutoARIMA(season_length=m, approximation=True, max_p=2, max_q=2, max_P=1, max_Q=1, nmodels=20)

    def _one_with_covariates(self, y, h, i, history, future):
        if not history.X.shape[1]:
            return self._one(y, h)
        n = min(len(y), self.params["window"])
        X = history.X[history.indptr[i]:history.indptr[i + 1]][-n:]
        Xf = future.X[future.indptr[i]:future.indptr[i] + h]
        varying = np.ptp(X, axis=0) > 0
        if not varying.any():
            return self._one(y, h)
        try:
            return self._one(y, h, X[:, varying], Xf[:, varying])
        except Exception:
            return self._one(y, h)
