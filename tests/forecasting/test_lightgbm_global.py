"""LightGBM's features at a target row against a direct computation from that series alone.

The builder works on flat arrays of all series by index arithmetic (no panel-length arrays), so
a window end or a series start off by one would silently give a row another series' values or
its own future. Here every feature of every row is recomputed from the series' own history up to
the origin: at series starts, on constant windows, at the yearly lags and at prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting import EngineConfig
from forecasting.calendar import calendar_features
from forecasting.models.lightgbm_global import FeatureBuilder, _training_rows

H = 14


def _panel_arrays():
    """Four daily series back to back: a seasonal one at 1e4 with gaps (first, at row 0, longer
    than a year), a constant 3.7, a year-plus series starting mid-panel, a constant 0."""
    rng = np.random.default_rng(3)
    t = np.arange(420)
    a = 1e4 + 500 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 50, len(t))
    a[[5, 100, 363]] = np.nan
    c = 200 + 20 * np.sin(2 * np.pi * np.arange(380) / 7) + rng.normal(0, 5, 380)
    parts = [a, np.full(40, 3.7), c, np.zeros(20)]
    y = np.concatenate(parts)
    indptr = np.concatenate([[0], np.cumsum([len(p) for p in parts])])
    start = np.datetime64("2022-01-01", "ns")
    ds = np.concatenate([start + np.arange(len(p)).astype("timedelta64[D]") for p in parts])
    X = rng.integers(0, 2, size=(len(y), 1)).astype(float)
    static = pd.DataFrame({"category": ["x", "y", "x", "z"]}, index=["a", "b", "c", "d"])
    return y, X, ds, indptr, static


def _direct(hist, X_hist, p, h, x_target, fb: FeatureBuilder) -> dict:
    """Every numeric feature from one series' history hist[0 .. p] (p = the origin's position)."""
    L, W, m = fb.L, fb.W, fb.m
    assert len(hist) == p + 1  # nothing after the origin is given, so nothing after it can be read

    def val(q):
        return hist[q] if 0 <= q <= p else np.nan

    def window(end, width):
        v = np.nan_to_num(hist[max(0, end - width + 1) : end + 1]) if end >= 0 else np.array([])
        return v

    level = window(p, L).mean()
    long = window(p, W)
    scale = np.abs(long).mean()
    scale = scale if scale > 1e-9 else 1.0
    q = p + h  # the target's position
    k = int(np.ceil(h / m)) if m > 1 else h
    step = m if m > 1 else 1
    f = {"h": float(h)}
    for j in range(L):
        f[f"lag_{j}"] = (val(p - j) - level) / scale
    for extra in range(3):
        f[f"season_lag_{extra}"] = (val(q - (k + extra) * step) - level) / scale
    prev = window(p - L, L).mean() if p - L >= 0 else np.nan
    f["slope"] = (level - prev) / L / scale
    f["trend_h"] = f["slope"] * (h + (L - 1) / 2)
    f["long_mean"] = (long.mean() - level) / scale
    f["std"] = long.std() / scale
    f["log_scale"] = np.log1p(scale)
    for P in fb.long_periods:
        if q - P >= 0 and P >= h and p - P >= 0:  # a year before the target and before the origin
            pscale = np.abs(window(p - P, W)).mean()
            pscale = pscale if pscale > 1e-9 else np.nan
            f[f"yoy_{P}"] = (val(q - P) - window(p - P, L).mean()) / pscale
        else:
            f[f"yoy_{P}"] = np.nan
    f["cov_promo"] = x_target
    lag = q - k * step
    f["cov_promo_season_lag"] = X_hist[lag] if 0 <= lag <= p else np.nan
    return f


def _assert_frame_matches(frame, expected: pd.DataFrame):
    for column in expected.columns:
        # std: the one-pass mean(y^2) - mean(y)^2 leaves ~1e-8 (relative) on constant windows; the
        # cumulative sums over the whole panel it replaced left up to 7e-5 on the seed data
        tol = 1e-7 if column == "std" else 1e-9
        np.testing.assert_allclose(
            frame[column].to_numpy(float),
            expected[column].to_numpy(float),
            rtol=1e-9,
            atol=tol,
            equal_nan=True,
            err_msg=column,
        )


@pytest.fixture
def builder():
    y, X, ds, indptr, static = _panel_arrays()
    config = EngineConfig(frequency="D", horizon=H, quantiles=("p10", "p50", "p90"))
    fb = FeatureBuilder(config, ["promo"], static).fit(ds)
    assert (fb.L, fb.W, fb.long_periods) == (7, 28, (364, 365))
    return fb, (y, X, ds, indptr, static)


def test_given_training_targets_when_features_are_built_then_each_equals_a_direct_computation_from_its_series(builder):
    fb, (y, X, ds, indptr, static) = builder
    s_list, h_list, series_list = [], [], []
    for i in range(len(indptr) - 1):
        for s in range(indptr[i] + 1, indptr[i + 1]):  # from the second row: origin = the first row
            pos = s - indptr[i]
            for h in sorted({1, 1 + s % H, H}):
                if h <= pos:
                    s_list.append(s), h_list.append(h), series_list.append(i)
    s, h, series = np.array(s_list), np.array(h_list), np.array(series_list)
    st = indptr[series]
    frame, level, scale = fb.build(y, X, st, s - h, h, ds[s], X[s], fb.static_codes(static)[series])

    rows = []
    for si, hi, i in zip(s, h, series):
        p = si - hi - indptr[i]
        rows.append(_direct(y[indptr[i] : indptr[i] + p + 1], X[indptr[i] : indptr[i] + p + 1, 0], p, hi, X[si, 0], fb))
    expected = pd.DataFrame(rows)
    _assert_frame_matches(frame, expected)
    # the rows that catch window-end and series-start slips are really among them
    first_year = (series == 0) & (s - h - st < 364) & (s - st >= 364)
    assert first_year.any() and frame.loc[first_year, "yoy_364"].isna().all()
    constant = series == 1
    assert (frame.loc[constant, "std"].abs() < 1e-7).all()
    for name, col in calendar_features(ds[s], "D").items():
        np.testing.assert_array_equal(frame[name].to_numpy(), col)
    np.testing.assert_array_equal(frame["static_category"].to_numpy(), np.array([0.0, 1.0, 0.0, 2.0])[series])


def test_given_a_history_and_future_when_features_are_built_then_they_equal_the_direct_computation(builder):
    fb, (y, X, ds, indptr, static) = builder
    future_X = np.arange(4 * H, dtype=float)[:, None] % 2
    series = np.repeat(np.arange(4), H)
    h = np.tile(np.arange(1, H + 1), 4)
    o = indptr[series + 1] - 1
    future_ds = ds[o] + h.astype("timedelta64[D]")
    frame, level, scale = fb.build(y, X, indptr[series], o, h, future_ds, future_X, fb.static_codes(static)[series])

    rows = []
    for r, (i, hi) in enumerate(zip(series, h)):
        hist = y[indptr[i] : indptr[i + 1]]
        rows.append(_direct(hist, X[indptr[i] : indptr[i + 1], 0], len(hist) - 1, hi, future_X[r, 0], fb))
    _assert_frame_matches(frame, pd.DataFrame(rows))
    for name, col in calendar_features(future_ds, "D").items():
        np.testing.assert_array_equal(frame[name].to_numpy(), col)


@pytest.mark.parametrize("max_rows,max_draws", [(50, 3), (100_000, 3), (100_000, 1), (150, 2)])
def test_given_series_offsets_when_training_rows_are_drawn_then_they_match_a_draw_from_the_listed_eligible_rows(
    max_rows, max_draws
):
    indptr = np.array([0, 3, 40, 41, 120])
    max_history = 30
    s, series = _training_rows(indptr, max_history, max_rows, np.random.default_rng(7), max_draws)

    eligible = [
        r
        for i in range(4)
        for r in range(indptr[i], indptr[i + 1])
        if r - indptr[i] >= 2 and indptr[i + 1] - r <= max_history
    ]
    draws = int(np.clip(max_rows // len(eligible), 1, max_draws))
    listed = np.tile(eligible, draws)
    if len(listed) > max_rows:
        listed = np.sort(np.random.default_rng(7).choice(listed, max_rows, replace=False))
    np.testing.assert_array_equal(s, listed)
    np.testing.assert_array_equal(series, np.searchsorted(indptr, s, side="right") - 1)


def test_given_a_daily_panel_of_12_series_when_the_seasonal_lightgbm_fits_then_it_orders_its_quantiles_and_repeats_itself(
    config,
):
    """LightGBMSeasonal asked for by name on a daily panel (the preset leaves it to monthly data):
    it trains on the same rows as LightGBM, follows the season, reproducibly."""
    from forecasting.models import create

    from .conftest import FAST_LGB, make_frame
    from .test_models import _panels

    frame = make_frame(n_items=12, n_days=90, kind="seasonal", noise=0.3)
    train, hist, fut, truth = _panels(frame, config)
    seasonal = create("LightGBMSeasonal", config, **FAST_LGB.get("LightGBM", {}))
    assert not type(seasonal).suits(config, train.n_series) and seasonal.params["max_draws"] == 3
    seasonal.fit(train)
    eligible = int(np.sum(np.maximum(train.lengths - 2, 0)))  # rows at position >= 2 (all within max_history)
    assert seasonal.n_train_rows == 3 * eligible
    values = seasonal.predict(hist, fut)
    assert np.all(np.diff(values[:, :, :3], axis=2) >= 0)
    assert np.all((values[:, :, 3] >= values[:, :, 0]) & (values[:, :, 3] <= values[:, :, 2]))
    assert np.mean(np.abs(values[:, :, 1] - truth)) < 2.5  # a weekly season of amplitude 10
    again = create("LightGBMSeasonal", config, **FAST_LGB.get("LightGBM", {})).fit(train).predict(hist, fut)
    np.testing.assert_array_equal(values, again)


@pytest.mark.parametrize("days, cap", [(365, 8), (729, 8), (731, 45)])
def test_given_under_two_years_of_daily_history_then_holiday_distances_stop_at_a_week(days, cap):
    # one year sees each holiday once: 45-day distances would name the date (nycflights, docs/engine.md)
    from forecasting.calendar import NEAR_CAP, PROXIMITY_CAP

    assert (NEAR_CAP, PROXIMITY_CAP) == (8, 45)
    ds = pd.date_range("2023-01-01", periods=days, freq="D").to_numpy()
    config = EngineConfig(frequency="D", horizon=7, quantiles=("p10", "p50", "p90"), holiday_country="US")
    fb = FeatureBuilder(config, [], pd.DataFrame(index=range(1))).fit(ds)
    assert fb.holidays.cap == cap
    f = fb.holidays.transform(pd.to_datetime(["2024-12-10"]).to_numpy())  # 12 days after Thanksgiving
    assert f["days_since_holiday"][0] == min(12, cap)


def _holiday_frame(items=10, seed=0) -> pd.DataFrame:
    """One year of daily series from January with a weekly cycle; each US holiday and the day
    after at its own share of the level, 0.4 to 0.94, and Christmas and the day after (after the
    history's end, Dec 17) at 0.67: the mean effect of the holidays the history saw."""
    from forecasting.calendar import holiday_table

    rng = np.random.default_rng(seed)
    dates = pd.date_range("2024-01-01", "2024-12-31")
    table = holiday_table("US", [2024])
    dip = {d: 0.4 + 0.06 * ((3 * k) % 10) for k, d in enumerate(table["date"][:10])}
    dip[pd.Timestamp("2024-12-25")] = 0.67
    factor = np.array([dip.get(d, dip.get(d - pd.Timedelta(days=1), 1.0)) for d in dates])
    frames = []
    for i in range(items):
        level = 100.0 * (i + 1) * (1 + 0.2 * np.sin(2 * np.pi * np.arange(len(dates)) / 7))
        y = level * (1 + 0.02 * rng.standard_normal(len(dates))) * factor
        frames.append(pd.DataFrame({"unique_id": f"item_{i}", "ds": dates, "y": y}))
    return pd.concat(frames, ignore_index=True)


def _holiday_panels(long, end="2024-12-17"):
    from forecasting.data import build_panel

    static = pd.DataFrame(index=sorted(long["unique_id"].unique()))
    hist = build_panel(long[long["ds"] <= end], [], static)
    future = build_panel(long[long["ds"] > end].assign(y=np.nan), [], static)
    return hist, future


def test_given_one_year_of_holiday_dips_then_the_features_carry_the_panels_lift_and_the_lags_holiday_distance():
    """Christmas was never in the history: its lift is the seen holidays' mean at that offset; a
    target a week after Thanksgiving has its same-weekday lag on the holiday."""
    from forecasting.models import create

    config = EngineConfig(frequency="D", horizon=14, quantiles=("p10", "p50", "p90"), holiday_country="US")
    long = _holiday_frame()
    hist, future = _holiday_panels(long)
    model = create("LightGBM", config, num_boost_round=60, min_data_in_leaf=5).fit(hist)
    lift = model.features.lift
    assert {"level_adj", "season_lag_2_adj", "season_lag_1_holiday"} <= set(model.feature_names)
    assert lift.lift["Thanksgiving Day|0"] < -0.1 and "Christmas Day|0" not in lift.lift
    st = np.zeros(14, int)
    h = np.arange(1, 15)
    o = np.full(14, len(hist.y) // 10 - 1)  # the first series' last row (Dec 17)
    frame, _, _ = model.features.build(hist.y, hist.X, st, o, h, future.ds[:14], future.X[:14], np.zeros((14, 0)))
    christmas = 7  # Dec 25 = Dec 17 + 8
    assert frame["holiday_lift"][christmas] == pytest.approx(lift.pooled[0])
    # Dec 18, a week before Christmas: the seen holidays barely moved a week before them
    assert frame["holiday_lift"][0] == pytest.approx(lift.pooled[-7]) and abs(lift.pooled[-7]) < 0.05
    # Dec 25's lag a week back (Dec 18) is 7 days from Christmas: capped at 2; its lift is 0 there
    assert frame["season_lag_0_holiday"][christmas] == 2.0
    p50 = model.predict(hist, future)[:, :, 1]
    truth = long[long["ds"] > "2024-12-17"]["y"].to_numpy().reshape(10, 14)
    assert np.abs(p50[:, 7:9] / truth[:, 7:9] - 1).mean() < 0.15  # Dec 25-26 at 0.67 of the level

    # Dec 5, a week after Thanksgiving (Nov 28): its same-weekday lag is the holiday itself
    early, after = _holiday_panels(long, end="2024-12-01")
    frame, _, _ = model.features.build(
        early.y,
        early.X,
        np.zeros(14, int),
        np.full(14, len(early.y) // 10 - 1),
        h,
        after.ds[:14],
        after.X[:14],
        np.zeros((14, 0)),
    )
    # the level window (Nov 25 - Dec 1) holds Thanksgiving and the day after: read as normal days, higher
    assert np.all(frame["level_adj"] > 0.02)
    assert frame["season_lag_0_holiday"][3] == 0.0 and frame["season_lag_0_lift"][3] == pytest.approx(
        lift.lift["Thanksgiving Day|0"]
    )


@pytest.mark.parametrize("country, days", [(None, 365), ("US", 800), ("US", 365)])
def test_given_no_calendar_or_two_years_or_one_series_then_no_holiday_lift_features(country, days):
    """One series is no panel: its lift would be its own one-year ratios (elecdaily: worse)."""
    from forecasting.data import build_panel
    from forecasting.models import create

    config = EngineConfig(frequency="D", horizon=7, quantiles=("p10", "p50", "p90"), holiday_country=country)
    dates = pd.date_range("2023-01-01", periods=days)
    long = pd.DataFrame({"unique_id": "a", "ds": dates, "y": 10 + np.arange(days) % 7.0})
    panel = build_panel(long, [], pd.DataFrame(index=["a"]))
    model = create("LightGBM", config, num_boost_round=5, min_data_in_leaf=5).fit(panel)
    assert model.features.lift is None and not any("lift" in c for c in model.feature_names)


def test_given_a_holiday_the_panel_was_closed_on_then_its_normal_day_features_are_missing_not_infinite():
    """Closed on Thanksgiving (0 in every series: lift -1): a history given at predict that sold on
    it (another batch of series) had its value over 1 + lift = 0, an infinite feature."""
    import warnings

    from forecasting.models import create

    config = EngineConfig(frequency="D", horizon=14, quantiles=("p10", "p50", "p90"), holiday_country="US")
    long = _holiday_frame()
    long.loc[long["ds"] == "2024-11-28", "y"] = 0.0
    hist, future = _holiday_panels(long, end="2024-12-01")
    model = create("LightGBM", config, num_boost_round=20, min_data_in_leaf=5).fit(hist)
    assert model.features.lift.lift["Thanksgiving Day|0"] == pytest.approx(-1.0)
    sold = hist.y.copy()
    sold[np.flatnonzero(hist.ds == np.datetime64("2024-11-28"))] = 150.0
    h = np.arange(1, 15)
    last = np.full(14, len(hist.y) // 10 - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no division by zero
        frame, _, _ = model.features.build(
            sold, hist.X, np.zeros(14, int), last, h, future.ds[:14], future.X[:14], np.zeros((14, 0))
        )
    adj = frame[["level_adj", "season_lag_0_adj", "season_lag_1_adj", "season_lag_2_adj"]].to_numpy()
    assert not np.isinf(adj).any()
    assert np.isnan(frame["level_adj"]).all()  # Nov 28 is in the level window of every target
    assert np.isfinite(frame["season_lag_0_adj"][:3]).all()  # Dec 2-4's lags a week back: normal days


@pytest.mark.parametrize(
    "days, params, keeps", [(120, {}, True), (800, {}, False), (120, {"final_from_backtest": False}, False)]
)
def test_given_short_daily_history_when_trained_then_the_backtest_lightgbm_is_the_final_model(
    tmp_path, days, params, keeps
):
    """Under two years of daily history the engine keeps LightGBM's latest backtest fit (half
    of pizzaplace's CPU, no measurable accuracy); longer history, or the option off, refits on all
    data, so the final model has seen the last window."""
    from forecasting.engine import train

    from .conftest import FAST_LGB, make_frame

    config = EngineConfig(frequency="D", horizon=7, quantiles=("p10", "p50", "p90"))
    frame = make_frame(n_items=4, n_days=days, kind="covariate", noise=0.3)  # promotions: LightGBM wins weight
    lines: list = []
    lgb = {**FAST_LGB["LightGBM"], **params}
    train(
        frame,
        config,
        tmp_path,
        candidates=["SeasonalNaive", "LightGBM"],
        candidate_params={"LightGBM": lgb},
        log=lines.append,
    )
    kept = any("LightGBM" in line and "keeps its latest backtest fit" in line for line in lines)
    refit = any("refit LightGBM" in line for line in lines)
    assert (kept, refit) == (keeps, not keeps), "\n".join(lines)


def test_given_short_history_of_another_frequency_then_lightgbm_refits():
    """The rule is measured on daily data only: a monthly fit is never kept as the final model."""
    from forecasting.models import create

    from .conftest import FAST_LGB, make_frame
    from .test_models import _panels

    frame = make_frame(n_items=4, n_days=120, kind="seasonal", noise=0.3)
    daily = EngineConfig(frequency="D", horizon=7, quantiles=("p10", "p50", "p90"))
    monthly = EngineConfig(frequency="M", horizon=7, quantiles=("p10", "p50", "p90"))
    train_panel = _panels(frame, daily)[0]
    assert create("LightGBM", daily, **FAST_LGB["LightGBM"]).fit(train_panel).reuses_backtest_selection
    assert not create("LightGBM", monthly, **FAST_LGB["LightGBM"]).fit(train_panel).reuses_backtest_selection
