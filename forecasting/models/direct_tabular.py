"""AutoGluon-TimeSeries' DirectTabular in the engine's terms: one LightGBM model per quantile over
every horizon step, each training row a (forecast origin, step) pair.

- **rows**: every origin o of every series (its last `max_history` periods) paired with every step
  h = 1..H that the series still holds, so each target is seen from each origin that forecasts it
  (LightGBMGlobal draws one step per target instead);
- **features** of the target time s = o + h: the target at lags 1..8 of s and three around each of
  its last 5 seasons (k*m - 1, k*m, k*m + 1: AutoGluon's lag set, which stops at 3 seasons), each over
  the origin's scale (the mean |y| of its last 2 periods, `scale_window`); lags after the origin
  (lag < h) are NaN, as at prediction time, so the trees learn what each step may read; the step
  h; calendar features of s; the known covariates at s;
- **target**: y[s] over the same scale; quantile boosters (objective `quantile`), then sorted,
  and the mean of their distribution (`quantile_mean`), as LightGBMGlobal.

The seasonal lag m sits at the same feature for every step up to m, so a weekly year (lag 52 of the
target time, not of the origin) lines up with the target whatever the step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..calendar import calendar_features
from .base import Candidate, quantile_mean
from .lightgbm_global import import_lightgbm, lightgbm_dataset, lightgbm_params, static_codes


def direct_lags(m: int, extra: int, seasons: int = 0) -> np.ndarray:
    """Lags of the target time: 1..m + extra (1..1 + extra on non-seasonal data); with `seasons`,
    1..extra and three around each of the last `seasons` seasons instead (AutoGluon's lag set)."""
    if seasons and m > 1:
        lags = set(range(1, extra + 1))
        for k in range(1, seasons + 1):
            lags |= {k * m - 1, k * m, k * m + 1}
        return np.array(sorted(lags))
    return np.arange(1, max(m, 1) + extra + 1)


def training_pairs(
    indptr, H: int, max_history: int, max_rows: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(series, origin row, step) of every training row: each of a series' last `max_history`
    origins with each step up to H whose target it still holds. Over `max_rows`, every series
    keeps its last H origins (counted from its own end: a long series would otherwise crowd a
    short one out) and the rest are a seeded draw over the whole history: on 20 weekly series of
    800 weeks, the nearest 200,000 rows and a 100,000-row draw score alike at half the fit time
    (docs/engine.md, "Seventeenth session")."""
    series, o, h = [], [], []
    for i, n in enumerate(np.diff(indptr)):
        origins = np.arange(max(n - 1 - max_history, 0), n - 1)
        oo, hh = np.meshgrid(origins, np.arange(1, H + 1), indexing="ij")
        keep = (oo + hh) < n
        o.append(indptr[i] + oo[keep])
        h.append(hh[keep])
        series.append(np.full(int(keep.sum()), i))
    series_a, o_a, h_a = (np.concatenate(x) if x else np.array([], int) for x in (series, o, h))
    if len(o_a) > max_rows:
        latest = (indptr[series_a + 1] - 1 - o_a) <= H
        rest = np.flatnonzero(~latest)
        room = max(max_rows - int(latest.sum()), 0)
        drawn = np.random.default_rng(seed).choice(rest, size=min(room, len(rest)), replace=False)
        keep_rows = np.sort(np.concatenate([np.flatnonzero(latest), drawn]))
        series_a, o_a, h_a = series_a[keep_rows], o_a[keep_rows], h_a[keep_rows]
    return series_a, o_a, h_a


def pair_count(lengths, H: int, max_history: int) -> int:
    """How many (origin, step) rows `training_pairs` lists before the `max_rows` trim: a series'
    origin d periods before its last holds min(H, d) steps."""
    c = np.minimum(np.maximum(np.asarray(lengths, int) - 1, 0), max_history)
    short = c <= H
    return int(np.sum(np.where(short, c * (c + 1) // 2, H * (H + 1) // 2 + (c - H) * H)))


class DirectTabular(Candidate):
    """Trained by the default preset on weekly panels under MAX_SERIES series whose median history
    holds 5 seasons + 1 + h (FREQUENCY_MEMBERS, `suits_panel`; docs/engine.md "Sixth session"):
    AutoGluon medium's ensemble on us_gasoline leans on its DirectTabular member."""

    name = "DirectTabular"
    relative_cost = 3  # one fit before the oldest window: leaves a short panel its extra windows
    MAX_SERIES = 100  # rows grow as series x history x horizon: small panels only

    @classmethod
    def suits(cls, config, n_series):
        return config.frequency_unit == "W" and n_series < cls.MAX_SERIES

    @classmethod
    def suits_panel(cls, config, panel):
        """Only where the median series holds its deepest seasonal lag and a horizon: on shorter
        history most of its lag features are NaN, and on avocado (169 weeks, a set it was not tuned
        on) it cost 13% (0.0983 -> 0.1113, docs/engine.md "Sixth session")."""
        seasons = int(cls.default_params(config)["lag_seasons"])
        needed = (seasons * max(config.season_length, 1) + 1) + config.horizon
        return cls.suits(config, panel.n_series) and float(np.median(panel.lengths)) >= needed

    @classmethod
    def default_params(cls, config):
        return {
            "num_boost_round": 200,
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_data_in_leaf": 20,
            "feature_fraction": 0.9,
            "bagging_fraction": 1.0,
            "lambda_l2": 0.0,
            "max_bin": 255,
            "extra_lags": 8,  # lags 1..8 of the target time (1..m + 8 when lag_seasons is 0)
            "lag_seasons": 5,  # and k*m - 1, k*m, k*m + 1 for k = 1..5 (AutoGluon's set has 3)
            "scale_window": 2,  # the origin's scale: mean |y| of its last 2 periods
            "max_history": 1000,  # the last origins of each series that train
            "max_rows": 100_000,
            "seed": config.seed,
            "num_threads": 1,
        }

    # --- features -------------------------------------------------------------------------
    def _scale_window(self) -> int:
        return max(int(self.params["scale_window"]), 1)

    def _rows(self, y, st, o, h, ds_t, X_t, static_rows) -> tuple[pd.DataFrame, np.ndarray]:
        """Features of targets at o + h (flat row indices; st: the series' first row) and the
        origin's scale. Lags before the series' start or after the origin are NaN."""
        w = self._scale_window()
        csum = np.concatenate([[0.0], np.cumsum(np.abs(np.nan_to_num(y)))])
        first = np.maximum(o - w + 1, st)
        scale = (csum[o + 1] - csum[first]) / (o + 1 - first)
        scale = np.where(scale > 0, scale, 1.0)
        s = o + h
        idx = s[:, None] - self.lags[None, :]
        ok = (idx >= st[:, None]) & (self.lags[None, :] >= h[:, None])
        lagged = np.where(ok, y[np.clip(idx, 0, max(len(y) - 1, 0))], np.nan) / scale[:, None]
        f = {f"lag_{lag}": lagged[:, j] for j, lag in enumerate(self.lags)}
        f["step"] = h.astype(float)
        f.update(calendar_features(ds_t, self.unit))
        for j, name in enumerate(self.covariate_names):
            f[f"cov_{name}"] = X_t[:, j]
        for j, name in enumerate(self.static_columns):
            f[f"static_{name}"] = static_rows[:, j]
        return pd.DataFrame(f), scale

    # --- fit --------------------------------------------------------------------------------
    def _fit(self, train):
        lgb = import_lightgbm()
        H = self.config.horizon
        self.unit = self.config.frequency_unit
        self.lags = direct_lags(
            self.config.season_length, int(self.params["extra_lags"]), int(self.params["lag_seasons"])
        )
        self.covariate_names = list(train.covariate_names)
        self.static_columns = list(train.static.columns)
        self.static_categories = {c: sorted(train.static[c].astype(str).unique()) for c in self.static_columns}
        p = self.params
        series_a, o_a, h_a = training_pairs(train.indptr, H, p["max_history"], p["max_rows"], p["seed"])
        # over max_rows the final refit would draw from a history only the backtest horizons
        # longer: the latest backtest fit is kept instead, half the fit time on a long weekly
        # panel at the same wQL (docs/engine.md, "Seventeenth session"); under it, every row counts
        self.reuses_backtest_selection = pair_count(np.diff(train.indptr), H, p["max_history"]) > p["max_rows"]
        st = train.indptr[series_a]
        s = o_a + h_a
        statics = static_codes(train.static, self.static_columns, self.static_categories)[series_a]
        frame, scale = self._rows(train.y, st, o_a, h_a, train.ds[s], train.X[s], statics)
        target = train.y[s] / scale
        ok = np.isfinite(target)
        frame, target = frame[ok], target[ok]
        self.feature_names = list(frame.columns)
        categorical = [c for c in self.feature_names if c.startswith("static_")]

        def budget(env):
            self.check_time()

        data = lightgbm_dataset(lgb, frame, target, categorical, p["max_bin"])
        self.boosters = [
            lgb.train(
                lightgbm_params(p, "quantile", bagging_freq=1 if p["bagging_fraction"] < 1 else 0, alpha=q),
                data,
                num_boost_round=p["num_boost_round"],
                callbacks=[budget],
            )
            for q in self.config.quantile_levels
        ]
        self.n_train_rows = int(len(target))

    # --- predict ----------------------------------------------------------------------------
    def _predict(self, history, future):
        H = int(future.lengths.max(initial=0))
        nf = future.lengths
        series = np.repeat(np.arange(history.n_series), nf)
        st = history.indptr[series]
        o = history.indptr[series + 1] - 1
        h = np.concatenate([np.arange(1, k + 1) for k in nf]) if len(nf) else np.array([], dtype=int)
        statics = static_codes(history.static, self.static_columns, self.static_categories)[series]
        frame, scale = self._rows(history.y, st, o, h, future.ds, future.X, statics)
        frame = frame[self.feature_names]
        q = np.sort(np.column_stack([b.predict(frame, num_threads=1) for b in self.boosters]), axis=1)
        q = np.column_stack([q, quantile_mean(q, self.config.quantile_levels)])
        values = scale[:, None] * q
        out = np.zeros((history.n_series, H, q.shape[1]))
        offsets = np.concatenate([[0], np.cumsum(nf)])
        for i in range(history.n_series):
            k = nf[i]
            out[i, :k] = values[offsets[i] : offsets[i + 1]]
            if 0 < k < H:
                out[i, k:] = out[i, k - 1]
        return out
