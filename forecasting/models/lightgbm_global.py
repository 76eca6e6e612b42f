"""One LightGBM model across all series, direct multi-horizon, quantiles learned directly.

Direct strategy without leakage: a training row is a (target time s, horizon h) pair whose
features use the target only up to the origin o = s - h, exactly as at prediction time, where
o is the last observed period and s = o + 1 ... o + H. Each training target gets a seeded random
h in 1..H, so one model covers every horizon without multiplying the rows by H. One booster per
quantile; the mean is the mean of their distribution (`quantile_mean`).

Targets and lags are scaled per row: (y - recent level) / recent mean |y|. Trees cannot
extrapolate levels, so the model learns shapes and changes, and the level is added back.
LightGBMSeasonal (below) measures the target from last season's value instead (`target="season"`).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from ..calendar import (
    NEAR_CAP,
    PROXIMITY_CAP,
    HolidayFeaturizer,
    HolidayLift,
    calendar_features,
    monthly_steps,
    weekdays_in_month,
)
from .base import Candidate, quantile_mean, straddles_median

_LONG_PERIODS = {"D": (364, 365), "H": (168,), "min": (), "W": (52,), "M": (), "Y": ()}
SHORT_HISTORY_DAYS = 730  # holiday distances capped at NEAR_CAP on a shorter history (forecasting/calendar.py)
LIFT_MIN_SERIES = 10  # the panel's holiday lift (calendar.HolidayLift) as features from this many series
# a day whose lift leaves less than this of a normal day (a shop closed on a holiday: lift -1) has
# no normal-day reading: its value over (1 + lift) would be 0/0 or, on a day the lift did not see
# closed (a later history, series the lift did not read), a division by ~0
LIFT_MIN_SHARE = 0.05


def import_lightgbm():
    """lightgbm without its scikit-learn wrappers, which the engine never uses.

    `import lightgbm` imports scikit-learn when installed (and through it scipy.stats): ~1.5 s
    of every training, batch and endpoint process's start-up on a quiet machine, 4-5 s on a busy
    one, against ~0.4 s without. Hidden only when nothing in the process has imported
    scikit-learn yet; later imports of scikit-learn work as usual.
    """
    if "lightgbm" in sys.modules or "sklearn" in sys.modules:
        import lightgbm

        return lightgbm
    # None in sys.modules makes `import sklearn` inside lightgbm.compat raise ImportError (the import
    # system's documented behaviour; typeshed types the mapping as modules only)
    sys.modules["sklearn"] = None  # type: ignore[assignment]
    try:
        import lightgbm
    finally:
        del sys.modules["sklearn"]
    return lightgbm


def lightgbm_dataset(lgb, frame, target, categorical, max_bin: int):
    """The training Dataset the LightGBM models share (raw data kept: a validation set or a second
    booster reads it)."""
    return lgb.Dataset(
        frame,
        target,
        categorical_feature=categorical,
        free_raw_data=False,
        params={"max_bin": max_bin, "verbose": -1},
    )


def lightgbm_params(p: dict, objective: str, bagging_freq: int, **objective_params) -> dict:
    """The LightGBM training parameters both LightGBM models share, from a candidate's params `p`:
    one place for the tree, bagging, determinism and thread settings. `objective_params` are the
    objective's own (the quantile's `alpha`, the recursive model's early-stopping `metric`)."""
    return {
        "objective": objective,
        **objective_params,
        "learning_rate": p["learning_rate"],
        "num_leaves": p["num_leaves"],
        "min_data_in_leaf": p["min_data_in_leaf"],
        "feature_fraction": p["feature_fraction"],
        "bagging_fraction": p["bagging_fraction"],
        "bagging_freq": bagging_freq,
        "lambda_l2": p["lambda_l2"],
        "max_bin": p["max_bin"],
        "verbose": -1,
        "seed": p["seed"],
        "deterministic": True,
        "num_threads": p["num_threads"],
    }


def _level_window(m: int) -> int:
    return m if 2 <= m <= 28 else (4 if m > 28 else 1)


def _window_means(y, st, end, width) -> dict:
    """Means of y, |y| and y**2 over rows max(st, end - width + 1) .. end of each target (NaN counts
    as 0; NaN where the window is empty). A loop over the window's offsets, each a gather of the
    target rows only: O(targets x width), not cumulative sums as long as the panel."""
    n = np.minimum(end - st + 1, width)
    total = np.zeros(len(end))
    absolute = np.zeros(len(end))
    square = np.zeros(len(end))
    top = len(y) - 1
    for j in range(width):
        idx = end - j
        v = np.where(j < n, y[np.clip(idx, 0, top)], 0.0)
        v = np.nan_to_num(v)
        total += v
        absolute += np.abs(v)
        square += v * v
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.maximum(n, 1)
        empty = n <= 0
        return {
            "sum": np.where(empty, np.nan, total / denom),
            "abs": np.where(empty, np.nan, absolute / denom),
            "sq": np.where(empty, np.nan, square / denom),
        }


def seasonal_baseline(y, st, o, h, m: int, level, window: int, mode: str) -> np.ndarray:
    """What the target is measured from: the recent level (mode "level"), or a seasonal
    difference like AutoGluon's RecursiveTabular (differences=[m]) made direct: the seasonal-naive
    value y[s - k*m] (mode "season"), or the level plus last season's change from its level,
    level + y[s - k*m] - level(o - k*m) (mode "season_level"); k = ceil(h/m), so only rows <= o
    are read. Rows whose season back is before the series' start fall back to the level (the
    model sees that row's season_lag_0 as NaN)."""
    if mode == "level" or m <= 1:
        return level
    s = o + h
    back = s - np.ceil(h / m).astype(int) * m
    ok = back >= st
    last = np.where(ok, y[np.clip(back, 0, len(y) - 1)], np.nan)
    if mode == "season":
        base = last
    elif mode == "season_level":
        shift = o - (s - back)
        ok &= shift >= st
        past = _window_means(y, st, np.where(ok, shift, st), window)["sum"]
        base = level + last - past
    else:
        raise ValueError(f"unknown LightGBM target mode {mode!r}: 'level', 'season' or 'season_level'")
    return np.where(ok & np.isfinite(base), base, level)


def seasonal_difference_lags(y, st, o, m: int, count: int, scale) -> dict:
    """The recent seasonal differences (y[o-j] - y[o-j-m]) / scale, j < count: the lags a model of
    the seasonally differenced series sees (rows <= o only; NaN before the series' start)."""
    top = len(y) - 1

    def value(idx):
        return np.where(idx >= st, y[np.clip(idx, 0, top)], np.nan)

    return {f"sdiff_{j}": (value(o - j) - value(o - j - m)) / scale for j in range(count)}


def static_codes(static: pd.DataFrame, columns, categories: dict) -> np.ndarray:
    """(series, columns) float codes of the static attributes in the training's categories; NaN for
    a value the training did not see (the trees' missing branch)."""
    cols = []
    for c in columns:
        codes = pd.Categorical(static[c].astype(str), categories=categories[c]).codes.astype(float)
        codes[codes < 0] = np.nan
        cols.append(codes)
    return np.column_stack(cols) if cols else np.zeros((len(static), 0))


class FeatureBuilder:
    """Vectorised features over flat arrays (rows of all series, offsets by series)."""

    def __init__(self, config, covariate_names, static: pd.DataFrame):
        self.config = config
        self.m = config.season_length
        self.L = _level_window(self.m)
        self.W = max(4 * self.L, 28 if self.m >= 7 else 8)
        self.unit = config.frequency_unit
        self.long_periods = _LONG_PERIODS.get(self.unit, ())
        self.covariate_names = list(covariate_names)
        self.static_columns = list(static.columns)
        self.static_categories = {c: sorted(static[c].astype(str).unique()) for c in self.static_columns}
        self.holidays = HolidayFeaturizer(config.holiday_country if self.unit in ("D", "H", "min") else None)
        self.trading_days = monthly_steps(config.frequency)

    def fit(self, ds):
        self.holidays.fit(ds)
        # under two years each holiday is seen at most once: far distances would name the date
        short = len(ds) and (ds.max() - ds.min()) < np.timedelta64(SHORT_HISTORY_DAYS, "D")
        self.holidays.cap = NEAR_CAP if short else PROXIMITY_CAP
        self.short_history = bool(short)
        return self

    def static_codes(self, static: pd.DataFrame) -> np.ndarray:
        return static_codes(static, self.static_columns, self.static_categories)

    def _holiday_context(self, ds_s, h) -> dict:
        """Daily data with a calendar, once `fit_holiday_lift` ran: the panel's own holiday lift
        (`calendar.HolidayLift`) at the target and at its first same-season lag, and how far each
        same-season lag stands from a holiday (capped at 2 days). With one year of history each
        holiday is seen once; the lift carries what the panel did on it to every series, and its
        pooled offsets to a holiday the history never saw (Christmas in a year from January); the
        lags' distances say when last week's same weekday was a holiday's, not a normal day."""
        lift = getattr(self, "lift", None)  # models pickled before it existed: no such features
        if lift is None or not len(ds_s):
            return {}
        t = np.asarray(ds_s, "datetime64[ns]")
        k = np.ceil(h / self.m).astype(int)
        out = {"holiday_lift": lift.transform(t)}
        out["season_lag_0_lift"] = lift.transform(t - (k * self.m).astype("timedelta64[D]"))
        for extra in range(3):
            tr = self.holidays.transform(t - ((k + extra) * self.m).astype("timedelta64[D]"))
            out[f"season_lag_{extra}_holiday"] = np.minimum(
                np.minimum(tr["days_to_holiday"], tr["days_since_holiday"]), 2.0
            )
        return out

    def fit_holiday_lift(self, train) -> None:
        """Learn the holiday lift from the training panel: daily data with a calendar, under two
        years of history (SHORT_HISTORY_DAYS) and LIFT_MIN_SERIES series or more only. The seed's
        three years scored 0.0051 against 0.0047 (its Christmas days are the generator's quirk,
        docs/engine.md "The seed's December"); on one series (elecdaily) the lift is that series'
        own one-year ratios, not a panel's: 0.0373 against 0.0350 over LightGBM seeds 0-2."""
        self.lift = None
        if (
            self.holidays.country
            and self.unit == "D"
            and self.m > 1
            and getattr(self, "short_history", False)
            and train.n_series >= LIFT_MIN_SERIES
        ):
            self.lift = HolidayLift(self.holidays.country).fit(train)

    @property
    def categorical(self) -> list:
        return ["nearest_holiday"] * bool(self.holidays.country) + [f"static_{c}" for c in self.static_columns]

    def build(self, y, X, st, o, h, ds_s, X_s, static_codes_rows) -> pd.DataFrame:
        """Features of targets at o + h made at origins o (rows of the flat history y, X).

        st: the start row of each target's series; ds_s, X_s: each target's timestamp and
        covariates (the future's at prediction); static_codes_rows: each target's static codes.
        The target is read only at rows <= o (lags, seasonal lags with k * m >= h, yearly lags
        with P >= h), so the history alone serves, and everything is computed for the target rows
        only, by index arithmetic: no array as long as the panel (27M rows at 25,000 daily series)."""
        s = o + h

        def wmean(kind, end, width):
            return _window_means(y, st, end, width)[kind]

        def value(idx):
            ok = idx >= st
            return np.where(ok, y[np.clip(idx, 0, len(y) - 1)], np.nan)

        level = wmean("sum", o, self.L)
        long = _window_means(y, st, o, self.W)
        scale = long["abs"]
        scale = np.where(np.isfinite(scale) & (scale > 1e-9), scale, 1.0)
        f = {"h": h.astype(float)}
        for j in range(self.L):
            f[f"lag_{j}"] = (value(o - j) - level) / scale
        k = np.ceil(h / self.m).astype(int) if self.m > 1 else h
        step = self.m if self.m > 1 else 1
        for extra in range(3):
            f[f"season_lag_{extra}"] = (value(s - (k + extra) * step) - level) / scale
        prev_ok = (o - self.L) >= st
        prev = np.where(prev_ok, wmean("sum", np.maximum(o - self.L, st), self.L), np.nan)
        slope = (level - prev) / self.L / scale
        f["slope"] = slope
        f["trend_h"] = slope * (h + (self.L - 1) / 2)
        f["long_mean"] = (long["sum"] - level) / scale
        var = long["sq"] - long["sum"] ** 2
        f["std"] = np.sqrt(np.maximum(var, 0)) / scale
        f["log_scale"] = np.log1p(scale)
        for P in self.long_periods:
            ok = (s - P >= st) & (P >= h)
            # the level and scale a year before the origin: none when that is before the series'
            # start (np.maximum(o - P, 0) here gave the panel's first series, and only it, a
            # level read at its row 0)
            valid = ok & (o - P >= st)
            po = np.where(valid, o - P, st)
            plevel = np.where(valid, wmean("sum", po, self.L), np.nan)
            pscale = np.where(valid, wmean("abs", po, self.W), np.nan)
            pscale = np.where(pscale > 1e-9, pscale, np.nan)
            f[f"yoy_{P}"] = (value(np.where(ok, s - P, -1)) - plevel) / pscale
        for name, col in calendar_features(ds_s, self.unit).items():
            f[name] = col
        if getattr(self, "trading_days", False):  # models pickled before it existed: no such features
            # the target month's working days and those of the month its first seasonal lag reads
            month = np.asarray(ds_s, "datetime64[M]")
            f["weekdays"] = weekdays_in_month(month)
            f["weekdays_season_lag"] = weekdays_in_month(month - (k * step).astype("timedelta64[M]"))
        for name, col in self.holidays.transform(ds_s).items():
            f[name] = col
        for name, col in self._holiday_context(ds_s, h).items():
            f[name] = col
        lift = getattr(self, "lift", None)
        if lift is not None:
            # the level and the same-season lags as if their days were normal ones: each day over
            # (1 + the panel's lift there), so a Thanksgiving week reads as the week it stands for
            t = np.asarray(ds_s, "datetime64[ns]")

            def as_normal(idx, back):
                share = 1 + lift.transform(t - back.astype("timedelta64[D]"))
                ok = share >= LIFT_MIN_SHARE
                return np.where(ok, value(idx) / np.where(ok, share, 1.0), np.nan)

            normal = np.zeros(len(o))
            for j in range(self.L):
                normal += as_normal(o - j, h + j)
            f["level_adj"] = (normal / self.L - level) / scale
            for extra in range(3):
                back = (k + extra) * step
                f[f"season_lag_{extra}_adj"] = (as_normal(s - back, back) - level) / scale
        for j, name in enumerate(self.covariate_names):
            f[f"cov_{name}"] = X_s[:, j]
            lag_idx = s - k * step
            f[f"cov_{name}_season_lag"] = np.where(lag_idx >= st, X[np.clip(lag_idx, 0, max(len(X) - 1, 0)), j], np.nan)
        for j, name in enumerate(self.static_columns):
            f[f"static_{name}"] = static_codes_rows[:, j] if static_codes_rows.shape[1] else np.nan
        frame = pd.DataFrame(f)
        return frame, level, scale


def _training_rows(indptr, max_history: int, max_rows: int, rng, max_draws: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(sorted target rows, their series): rows at position >= 2 within the last `max_history` of
    each series, each eligible row up to `max_draws` times on small panels, `max_rows` drawn without
    replacement on large ones. Index arithmetic over the series: the eligible rows (27M at 25,000
    daily series) are never listed; the draw is the same as from the listed rows (rng.choice draws
    positions either way)."""
    lengths = np.diff(indptr)
    first = indptr[:-1] + np.maximum(2, lengths - max_history)  # first eligible row of each series
    counts = np.maximum(indptr[1:] - first, 0)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    n_eligible = int(offsets[-1])
    draws = int(np.clip(max_rows // max(n_eligible, 1), 1, max_draws))
    sampled = n_eligible * draws > max_rows
    if sampled:
        picked = rng.choice(n_eligible * draws, max_rows, replace=False) % n_eligible
    else:
        picked = np.tile(np.arange(n_eligible), draws)
    series = np.searchsorted(offsets, picked, side="right") - 1
    s = first[series] + (picked - offsets[series])
    if sampled:  # in row order, as the rows drawn from the list sorted
        order = np.argsort(s, kind="stable")
        s, series = s[order], series[order]
    return s, series


class LightGBMGlobal(Candidate):
    name = "LightGBM"
    relative_cost = 3
    # bagging (`bagging_for`): daily panels of BAG_MIN_SERIES series or more train BAGS boosters per
    # quantile, each on its own seeded draw of BAG_ROWS rows, and average them. The seed (125 daily
    # series): docs/engine.md "Bagging the global LightGBM model"
    BAGS = 2  # 3 scored better (seed 0.00448) at 1.5x the CPU: over the user path's 85 s (docs)
    BAG_ROWS = 50_000
    BAG_MIN_SERIES = 100
    FINAL_FROM_BACKTEST_DAYS = 730  # `_keeps_backtest_fit`

    @classmethod
    def bagging_for(cls, config, n_series) -> dict:
        """The `bags` and `bag_rows` a fit uses when its params leave them None: the one place of
        the rule. Daily panels of 100+ series only: there the boosters' variance is a measurable
        share of the error (the seed's mean wQL moves by +-0.0002 with LightGBM's seed alone):
        2 x 50k rows, the unbagged model's 100,000 rows and CPU, took it 0.00470 -> 0.00462
        (LightGBM seeds 0-2; 0.00465 -> 0.00460 over 0-9, worst seed 0.00496 -> 0.00476); 3 x 50k
        gave 0.00448 (0.00452) at 1.5x the engine's CPU, which takes both seed windows through
        the user commands over their 85 s. Fewer rows a bag lose the rare days (5 x 20k: 0.00490,
        the Christmas window). Small daily panels (elecdaily 1, nycflights 24 series) stay on one
        booster: 3 boosters averaged per quantile scored elecdaily 0.0447 against 0.0436 at 2.8x
        the CPU. Other frequencies were not measured with bags."""
        if config.frequency_unit == "D" and n_series >= cls.BAG_MIN_SERIES:
            return {"bags": cls.BAGS, "bag_rows": cls.BAG_ROWS}
        return {"bags": 1, "bag_rows": None}

    @classmethod
    def default_params(cls, config):
        # one thread: on shared/busy cores OpenMP spinning makes 2 threads several times slower
        return {
            "num_boost_round": 150,
            "learning_rate": 0.1,
            "num_leaves": 31,
            "min_data_in_leaf": 30,
            "feature_fraction": 0.9,
            "bagging_fraction": 0.7,
            "lambda_l2": 1.0,
            "max_bin": 63,
            "max_rows": 100_000,
            "max_history": 1100,
            "max_draws": 3,  # times each eligible row is drawn (with its own h) on small panels
            "refit_below_rows": 600,
            "seed": config.seed,
            "num_threads": 1,
            "target": "level",
            # daily data with a calendar: the panel's holiday lift and the lags' holiday distances
            # as features (FeatureBuilder._holiday_context; docs/engine.md "Sixth session")
            "holiday_lift": True,
            # boosters per quantile averaged, each on its own draw of `bag_rows` rows (None:
            # max_rows / bags) at seed + k; None: `bagging_for` decides at fit from the panel,
            # and the fitted params record what it chose
            "bags": None,
            "bag_rows": None,
            # daily history under FINAL_FROM_BACKTEST_DAYS: the latest backtest window's fit is the
            # final model (`_keeps_backtest_fit`)
            "final_from_backtest": True,
        }

    def _keeps_backtest_fit(self, train) -> bool:
        """Whether the engine keeps this fit, made for the latest backtest window, as the final
        model instead of refitting on all data. On daily history under two years the refit
        bought nothing measurable and cost nearly half of the engine's CPU (pizzaplace, 32 series x
        365 days: 7.04 -> 3.89 CPU s, wQL 0.29597 -> 0.29613; nycflights 0.08258 -> 0.08239;
        docs/engine.md "Eleventh session"). Longer or non-daily history refits: skipping it on
        every frequency cost visnights its target."""
        if not self.params.get("final_from_backtest", True) or self.config.frequency_unit != "D":
            return False
        return int(train.lengths.max()) < self.FINAL_FROM_BACKTEST_DAYS

    def _lgb_params(self, objective, alpha=None, seed=None):
        extra = {} if alpha is None else {"alpha": alpha}
        params = self.params if seed is None else {**self.params, "seed": seed}
        return lightgbm_params(params, objective, bagging_freq=1, **extra)

    def _with_seasonal_lags(self, frame, y, st, o, scale):
        """The seasonal target's extra features: the seasonal differences of the last
        `sdiff_seasons` seasons (seasonal modes only; the level mode's features are unchanged)."""
        m = self.features.m
        if getattr(self, "base_mode", "level") == "level" or m <= 1:
            return frame
        count = self.params.get("sdiff_seasons", 2) * self.features.L
        return frame.assign(**seasonal_difference_lags(y, st, o, m, count, scale))

    def _fit(self, train):
        lgb = import_lightgbm()
        # tiny panels fit in a fraction of a second: refit per backtest window, so the later windows
        # are scored with the history they would really have (one fit before the oldest of five
        # windows sees a fifth less of a one-year daily series). Larger panels: ~2-3x the CPU for
        # no measurable gain (bench_real visnights, departures)
        self.refit_every_window = len(train.y) < self.params["refit_below_rows"]
        self.reuses_backtest_selection = self._keeps_backtest_fit(train)
        if self.params.get("bags") is None:
            auto = self.bagging_for(self.config, train.n_series)
            self.params["bags"] = auto["bags"]
            self.params["bag_rows"] = self.params.get("bag_rows") or auto["bag_rows"]
        bags = self.params["bags"]
        if not isinstance(bags, (int, np.integer)) or bags < 1:
            raise ValueError(f"LightGBM parameter bags must be an integer of at least 1, got {bags!r}")
        # recorded as fitted (the artifact pickles the params)
        rows = self.params["bag_rows"] = int(self.params.get("bag_rows") or self.params["max_rows"] // bags)

        self.features = FeatureBuilder(self.config, train.covariate_names, train.static).fit(train.ds)
        if self.params.get("holiday_lift", True):
            self.features.fit_holiday_lift(train)
        self.base_mode = self.params["target"]
        # one booster per quantile; the mean is that of their distribution (quantile_mean). A
        # separate L2 booster disagreed with them (the mean outside p10-p90 in 42% of the seed's
        # forecasts) and was the less accurate point forecast there (WAPE 0.0107 against 0.0066).
        # Tried and dropped: outer quantiles boosted from the median booster's forecast (learns a
        # covariate's lift on every quantile, but seed wQL 0.0051-0.0057 against 0.0047)
        self.mean_from_quantiles = straddles_median(self.config.quantile_levels)
        objectives = [("quantile", q) for q in self.config.quantile_levels]
        if not self.mean_from_quantiles:
            objectives.append(("regression", None))
        # bags one after the other, each bag's dataset freed before the next is built: the peak
        # memory stays that of one bag (the 25,000-series path)
        self.bag_boosters = []
        self.n_train_rows = 0
        for k in range(bags):
            boosters, n_rows = self._fit_bag(lgb, train, objectives, self.params["seed"] + k, rows)
            self.bag_boosters.append(boosters)
            self.n_train_rows += n_rows

    def _fit_bag(self, lgb, train, objectives, seed: int, max_rows: int) -> tuple[list, int]:
        """One bag: the boosters (one per objective) trained at `seed` on its own seeded draw of
        up to `max_rows` training rows, and the number of rows it kept. With one bag at the
        params' seed this is the unbagged model, bit for bit."""
        H = self.config.horizon
        rng = np.random.default_rng(seed)
        s, series = _training_rows(
            train.indptr, self.params["max_history"], max_rows, rng, self.params.get("max_draws", 3)
        )
        st = train.indptr[series]
        h = rng.integers(1, H + 1, size=len(s))
        h = np.minimum(h, s - st)  # the origin must be inside the series
        static_rows = self.features.static_codes(train.static)[series]
        frame, level, scale = self.features.build(train.y, train.X, st, s - h, h, train.ds[s], train.X[s], static_rows)
        frame = self._with_seasonal_lags(frame, train.y, st, s - h, scale)
        base = seasonal_baseline(train.y, st, s - h, h, self.features.m, level, self.features.L, self.base_mode)
        target = (train.y[s] - base) / scale
        keep = np.isfinite(target)
        frame, target = frame[keep], target[keep]
        self.feature_names = list(frame.columns)
        categorical = [c for c in self.features.categorical if c in frame.columns]

        def budget(env):
            self.check_time()

        dataset = lightgbm_dataset(lgb, frame, target, categorical, self.params["max_bin"])
        rounds = self.params["num_boost_round"]
        # one after the other: boosters trained side by side in threads crashed LightGBM (a
        # segfault in the test suite, with torch's OpenMP loaded in the same process)
        boosters = [
            lgb.train(self._lgb_params(objective, alpha, seed), dataset, num_boost_round=rounds, callbacks=[budget])
            for objective, alpha in objectives
        ]
        del dataset, frame
        return boosters, int(len(target))

    def _predict(self, history, future):
        H = int(future.lengths.max(initial=0))
        nf = future.lengths
        series = np.repeat(np.arange(history.n_series), nf)
        st = history.indptr[series]
        o = history.indptr[series + 1] - 1  # the last observed row; h = 1 ... nf from there
        h = np.concatenate([np.arange(1, k + 1) for k in nf]) if len(nf) else np.array([], dtype=int)
        static_rows = self.features.static_codes(history.static)[series]
        frame, level, scale = self.features.build(history.y, history.X, st, o, h, future.ds, future.X, static_rows)
        frame = self._with_seasonal_lags(frame, history.y, st, o, scale)
        frame = frame[self.feature_names]
        # artifacts from before bagging hold one list of boosters
        bags = getattr(self, "bag_boosters", None) or [getattr(self, "boosters", [])]
        if len(bags) == 1:
            preds = np.column_stack([b.predict(frame, num_threads=1) for b in bags[0]])
        else:
            # each bag's quantiles sorted, then averaged per quantile: the mean of ordered
            # quantiles is ordered, so the average is a distribution as each bag's is
            nq = len(self.config.quantile_levels)
            per_bag = []
            for bag in bags:
                p = np.column_stack([b.predict(frame, num_threads=1) for b in bag])
                p[:, :nq] = np.sort(p[:, :nq], axis=1)
                per_bag.append(p)
            preds = np.mean(per_bag, axis=0)
        if getattr(self, "mean_from_quantiles", False):
            preds = np.column_stack([preds, quantile_mean(np.sort(preds, axis=1), self.config.quantile_levels)])
        base = seasonal_baseline(
            history.y, st, o, h, self.features.m, level, self.features.L, getattr(self, "base_mode", "level")
        )
        values = base[:, None] + scale[:, None] * preds
        out = np.full((history.n_series, H, preds.shape[1]), np.nan)
        offsets = np.concatenate([[0], np.cumsum(nf)])
        for i in range(history.n_series):
            k = nf[i]
            out[i, :k] = values[offsets[i] : offsets[i + 1]]
            if k < H:
                out[i, k:] = out[i, k - 1] if k else 0.0
        return out


class LightGBMSeasonal(LightGBMGlobal):
    """The same model on the seasonally differenced target (AutoGluon's RecursiveTabular
    differences=[m], made direct): measured from y[s - k*m], with recent seasonal differences as
    features. A second candidate, not a replacement: it won on 145 monthly series (us_employment)
    and lost a little on small quarterly/monthly panels, so the ensemble's greedy selection weighs
    the two on the backtest windows. Monthly and quarterly data only: as a replacement it lost on
    daily and weekly data (the seed, elecdaily, us_gasoline), where the yearly season is not m.
    And only from MIN_SERIES series: on 5-32 series (departures, visnights, prison) the second
    candidate cost 0.5-1.6% wQL (selection noise on few backtest series) and twice LightGBM's CPU.

    Daily panels of 10-99 series had it too, on one draw of each training row (nycflights 0.0920 ->
    0.0907 mean wQL over LightGBM seeds 0-2); SeasonalETS replaced it there (0.0942 -> 0.0884 with
    the US calendar, at less CPU: docs/engine.md "Daily data")."""

    name = "LightGBMSeasonal"
    MIN_SERIES = 100  # between the measured 32 (no gain) and 145 (us_employment: -12% wQL)

    @classmethod
    def suits(cls, config, n_series):
        return config.frequency_unit == "M" and config.season_length > 1 and n_series >= cls.MIN_SERIES

    @classmethod
    def default_params(cls, config):
        # sdiff_seasons: seasonal differences over the last 2 seasons (us_employment 0.00238, 1: 0.00245)
        return {**super().default_params(config), "target": "season", "sdiff_seasons": 2}
