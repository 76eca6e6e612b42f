"""One LightGBM model across all series, one step ahead, applied recursively over the horizon.

AutoGluon-TimeSeries' RecursiveTabular (mlforecast + LightGBM) in the engine's terms, on the flat
arrays of a `Panel` (no mlforecast: it imports scikit-learn, ~1.5-3 s in every process that loads
a model, and the engine's batch and endpoint start-up is budgeted in seconds):

- **target transforms**, per series: the seasonal difference d[t] = y[t] - y[t - m] (when the
  frequency is seasonal and the series are long enough; else the first difference), then
  standardised, z = (d - mean) / std, with the mean and std of the series' differenced history
  (at prediction, of the context's);
- **features** of a target time t: z at lags 1..min(m + 1, 13) and around the seasons back
  (k*m - 1, k*m, k*m + 1 for k = 1..3), calendar features of t (month, day of week ...), the
  configured holidays on daily data, the known covariates at t, the static categories;
- **one L2 booster** on every (series, t) row except each series' last H, which are held out:
  they stop the boosting early and give the residual spread;
- **recursion**: step j's prediction becomes the lag-1 value of step j + 1; forecasts are undone
  back to the target's scale, y[T + j] = y[T + j - m] + mean + std * z (a predicted y when j > m);
- **quantiles** from a normal distribution around that mean: sigma = the held-out rows' RMS of
  one-step errors (in z units) x the series' std x sqrt(j), AutoGluon's rule. The mean is the
  booster's (the distribution is symmetric, so it is also the median and inside the band).
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd

from ..calendar import NEAR_CAP, PROXIMITY_CAP, HolidayFeaturizer, calendar_features
from .base import Candidate
from .lightgbm_global import SHORT_HISTORY_DAYS, import_lightgbm, lightgbm_dataset, lightgbm_params, static_codes

RECENT_LAGS = 7


def recursive_lags(m: int) -> list:
    """Target lags (in periods) of the differenced, standardised series: 1..7, and three around
    each of the last three seasons beyond that (gluonts' and AutoGluon's choice: monthly data
    1..7, 11-13, 23-25, 35-37; quarterly 1..9, 11-13)."""
    lags = set(range(1, RECENT_LAGS + 1))
    if m > 1:
        for k in (1, 2, 3):
            lags |= {k * m - 1, k * m, k * m + 1}
    return sorted(lags)


def difference_lag(m: int, lengths, horizon: int) -> int:
    """The seasonal lag m when every series keeps at least m + 1 differenced values besides the
    held-out horizon (AutoGluon's test), else 1 (first differences)."""
    lengths = np.asarray(lengths, int)
    if m > 1 and len(lengths) and lengths.min() >= 2 * m + 1 + horizon:
        return m
    return 1


def standardise(d: np.ndarray, indptr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per series mean and std of the finite differenced values (std at least 1e-8 of the
    series' scale, 1 when the series is constant or empty)."""
    n = len(indptr) - 1
    mean, std = np.zeros(n), np.ones(n)
    for i in range(n):
        v = d[indptr[i] : indptr[i + 1]]
        v = v[np.isfinite(v)]
        if len(v):
            mean[i] = v.mean()
            s = v.std()
            std[i] = s if s > 1e-8 * max(np.abs(v).max(), 1.0) else 1.0
    return mean, std


def differenced(y: np.ndarray, indptr: np.ndarray, lag: int) -> np.ndarray:
    """d[t] = y[t] - y[t - lag] within each series (NaN for its first `lag` rows)."""
    d = np.full(len(y), np.nan)
    if len(y) > lag:
        d[lag:] = y[lag:] - y[:-lag]
    pos = np.arange(len(y)) - np.repeat(indptr[:-1], np.diff(indptr))
    d[pos < lag] = np.nan
    return d


class LightGBMRecursive(Candidate):
    """Trained by the default preset on weekly data and on monthly and quarterly panels of
    MIN_SERIES series or more (FREQUENCY_MEMBERS; docs/engine.md "The recursive LightGBM model"):
    us_employment (145 monthly series) 0.00244 -> 0.00235, us_gasoline (1 weekly) 0.0188 -> 0.0181;
    on 5-32 quarterly and monthly series it cost up to 4% (prison), on daily data 2% (nycflights)."""

    name = "LightGBMRecursive"
    relative_cost = 3
    MIN_SERIES = 100

    @classmethod
    def suits(cls, config, n_series):
        unit = config.frequency_unit
        return unit == "W" or (unit == "M" and n_series >= cls.MIN_SERIES)

    @classmethod
    def default_params(cls, config):
        return {
            "num_boost_round": 1000,  # an upper bound: the held-out rows stop it early
            "early_stopping_rounds": 30,
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_data_in_leaf": 20,
            "feature_fraction": 0.9,
            "bagging_fraction": 1.0,
            "lambda_l2": 0.0,
            "max_bin": 255,
            "max_history": 1000,  # the last rows of each series that train (and standardise)
            "max_rows": 200_000,
            "seed": config.seed,
            "num_threads": 1,
        }

    # --- features -------------------------------------------------------------------------
    def _static_codes(self, static: pd.DataFrame) -> np.ndarray:
        return static_codes(static, self.static_columns, self.static_categories)

    def _features(self, lag_values: np.ndarray, ds, X_t, static_rows) -> pd.DataFrame:
        """lag_values: (rows, n_lags) z at the lags; ds, X_t: the targets' times and covariates."""
        f = {f"lag_{lag}": lag_values[:, j] for j, lag in enumerate(self.lags)}
        f.update(calendar_features(ds, self.unit))
        f.update(self.holidays.transform(ds))
        for j, name in enumerate(self.covariate_names):
            f[f"cov_{name}"] = X_t[:, j]
        for j, name in enumerate(self.static_columns):
            f[f"static_{name}"] = static_rows[:, j]
        return pd.DataFrame(f)

    def _lgb_params(self) -> dict:
        p = self.params
        bagging_freq = 1 if p["bagging_fraction"] < 1 else 0
        return lightgbm_params(p, "regression", bagging_freq=bagging_freq, metric="l1")

    # --- fit --------------------------------------------------------------------------------
    def _fit(self, train):
        lgb = import_lightgbm()
        H = self.config.horizon
        m = self.config.season_length
        self.unit = self.config.frequency_unit
        self.covariate_names = list(train.covariate_names)
        self.static_columns = list(train.static.columns)
        self.static_categories = {c: sorted(train.static[c].astype(str).unique()) for c in self.static_columns}
        self.holidays = HolidayFeaturizer(self.config.holiday_country if self.unit in ("D", "H", "min") else None).fit(
            train.ds
        )
        span = (train.ds.max() - train.ds.min()) if len(train.ds) else np.timedelta64(0, "D")
        self.holidays.cap = NEAR_CAP if span < np.timedelta64(SHORT_HISTORY_DAYS, "D") else PROXIMITY_CAP
        self.diff_lag = difference_lag(m, train.lengths, H)
        self.lags = recursive_lags(m)

        recent, indptr = _recent_rows(train.indptr, self.params["max_history"])
        y = train.y[recent]
        d = differenced(y, indptr, self.diff_lag)
        mean, std = standardise(d, indptr)
        series = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        z = (d - mean[series]) / std[series]
        pos = np.arange(len(y)) - indptr[series]
        ok = np.isfinite(z)
        # the last H rows of each series are held out (at most half of its rows)
        length = np.diff(indptr)[series]
        held = np.minimum(H, np.ceil(0.5 * length).astype(int))
        valid = ok & (pos >= length - held)
        fit_rows = np.flatnonzero(ok & ~valid)
        if len(fit_rows) > self.params["max_rows"]:  # the most recent rows of each series
            fit_rows = np.sort(fit_rows[np.argsort(-pos[fit_rows], kind="stable")][: self.params["max_rows"]])
        valid_rows = np.flatnonzero(valid)
        # features of the rows used only (a large panel's every row would not fit in memory)
        rows = np.concatenate([fit_rows, valid_rows])
        frame = self._features(
            _lagged(z, pos, np.array(self.lags), rows),
            train.ds[recent[rows]],
            train.X[recent[rows]],
            self._static_codes(train.static)[series[rows]],
        )
        fit_part, valid_part = np.arange(len(fit_rows)), np.arange(len(fit_rows), len(rows))
        self.feature_names = list(frame.columns)
        categorical = [c for c in self.feature_names if c.startswith("static_") or c == "nearest_holiday"]

        def budget(env):
            self.check_time()

        data = lightgbm_dataset(lgb, frame.iloc[fit_part], z[fit_rows], categorical, self.params["max_bin"])
        callbacks = [budget]
        valid_sets = []
        if len(valid_rows):
            valid_sets = [data.create_valid(frame.iloc[valid_part], z[valid_rows])]
            callbacks.append(lgb.early_stopping(self.params["early_stopping_rounds"], verbose=False))
        self.booster = lgb.train(
            self._lgb_params(),
            data,
            num_boost_round=self.params["num_boost_round"],
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        # the one-step errors of the held-out rows, in z units: per series (AutoGluon's rule; a
        # series without held-out rows, or unseen in training, gets the pooled figure)
        self.residual_std = 1.0
        self.series_residual_std: dict = {}
        if len(valid_rows):
            resid = z[valid_rows] - self.booster.predict(frame.iloc[valid_part], num_threads=1)
            self.residual_std = float(np.sqrt(np.mean(resid**2)))
            owner = series[valid_rows]
            sums = np.bincount(owner, resid**2, minlength=len(indptr) - 1)
            counts = np.bincount(owner, minlength=len(indptr) - 1)
            self.series_residual_std = {
                uid: float(np.sqrt(sums[i] / counts[i])) for i, uid in enumerate(train.uids) if counts[i]
            }
        self.n_train_rows = int(len(fit_rows))

    # --- predict ----------------------------------------------------------------------------
    def _predict(self, history, future):
        H = int(future.lengths.max(initial=0))
        n = history.n_series
        lags = np.array(self.lags)
        recent, indptr = _recent_rows(history.indptr, self.params["max_history"])
        y = history.y[recent]
        d = differenced(y, indptr, self.diff_lag)
        mean, std = standardise(d, indptr)
        series = np.repeat(np.arange(n), np.diff(indptr))
        z = (d - mean[series]) / std[series]
        back = max(int(lags.max()), self.diff_lag)
        # per series: the last `back` values of z and y, then the H to come (NaN before the start)
        zbuf = np.full((n, back + H), np.nan)
        ybuf = np.full((n, back + H), np.nan)
        length = np.diff(indptr)
        for i in range(n):
            k = min(length[i], back)
            if k:
                zbuf[i, back - k : back] = z[indptr[i + 1] - k : indptr[i + 1]]
                ybuf[i, back - k : back] = y[indptr[i + 1] - k : indptr[i + 1]]
        # a base value that is missing (a gap, a series shorter than the lag) falls back to the
        # series' last finite value
        last = np.array([_last_finite(y[indptr[i] : indptr[i + 1]]) for i in range(n)])
        ds_steps, X_steps = _future_steps(future, H)
        static_rows = self._static_codes(history.static)
        mean_out = np.zeros((n, H))
        for j in range(H):
            self.check_time()
            at = back + j
            frame = self._features(zbuf[:, at - lags], ds_steps[:, j], X_steps[:, j], static_rows)
            zhat = self.booster.predict(frame[self.feature_names], num_threads=1)
            zbuf[:, at] = zhat
            base = ybuf[:, at - self.diff_lag]
            base = np.where(np.isfinite(base), base, last)
            ybuf[:, at] = base + mean + std * zhat
            mean_out[:, j] = ybuf[:, at]
        growth = np.sqrt(np.arange(1, H + 1))
        ratio = np.array([self.series_residual_std.get(u, self.residual_std) for u in history.uids])
        sigma = (ratio * std)[:, None] * growth[None, :]
        zq = np.array([NormalDist().inv_cdf(float(q)) for q in self.config.quantile_levels])
        out = np.concatenate([mean_out[:, :, None] + sigma[:, :, None] * zq, mean_out[:, :, None]], axis=2)
        return out


def _recent_rows(indptr: np.ndarray, max_history: int) -> tuple[np.ndarray, np.ndarray]:
    """The rows of each series' last `max_history` periods, and the offsets of the cut panel."""
    lengths = np.diff(indptr)
    keep = np.minimum(lengths, max_history)
    new = np.concatenate([[0], np.cumsum(keep)]).astype(int)
    series = np.repeat(np.arange(len(lengths)), keep)
    rows = indptr[1:][series] - keep[series] + (np.arange(new[-1]) - new[:-1][series])
    return rows.astype(int), new


def _lagged(z: np.ndarray, pos: np.ndarray, lags: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(rows, n_lags): z at each of `rows` minus each lag, NaN where that is before the series' start."""
    idx = rows[:, None] - lags[None, :]
    ok = pos[rows][:, None] - lags[None, :] >= 0
    return np.where(ok, z[np.clip(idx, 0, max(len(z) - 1, 0))], np.nan)


def _last_finite(v: np.ndarray) -> float:
    finite = v[np.isfinite(v)]
    return float(finite[-1]) if len(finite) else 0.0


def _future_steps(future, H: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, H) timestamps and (n, H, covariates) of the future rows, each series padded to H with
    its last row (those steps are forecast and dropped: `Candidate.forecast` keeps what is asked)."""
    n = future.n_series
    ds = np.empty((n, H), dtype="datetime64[ns]")
    X = np.zeros((n, H, future.X.shape[1] if future.X.ndim == 2 else 0))
    for i in range(n):
        rows = np.arange(future.indptr[i], future.indptr[i + 1])
        if not len(rows):
            ds[i] = np.datetime64("1970-01-01", "ns")
            continue
        take = rows[np.minimum(np.arange(H), len(rows) - 1)]
        ds[i] = future.ds[take]
        if X.shape[2]:
            X[i] = future.X[take]
    return ds, X
