"""DirectTabular (AutoGluon's direct multi-horizon tabular model) and the weekly preset rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting import EngineConfig
from forecasting.models import CANDIDATES, create, default_members
from forecasting.models.direct_tabular import DirectTabular, direct_lags

from ..test_models import _panels

FAST = {"num_boost_round": 60}


def _weekly_frame(n_items=2, n_weeks=260, noise=0.02, seed=0):
    """Five years of a yearly cycle (x1.3 in the summer weeks, a smooth bump) on levels 100 and 200."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2015-01-04", periods=n_weeks, freq="W-SUN")
    week = dates.isocalendar().week.to_numpy(float)
    season = 1 + 0.3 * np.exp(-(((week - 28) / 5) ** 2))
    return pd.concat(
        pd.DataFrame(
            {
                "item_id": f"s{i}",
                "timestamp": dates.strftime("%Y-%m-%d"),
                "target_value": (100 * (i + 1) * season * (1 + noise * rng.standard_normal(n_weeks))).round(4),
            }
        )
        for i in range(n_items)
    )


@pytest.fixture(scope="module")
def fitted():
    # the last 13 weeks forecast: weeks 2019-10 to 2019-12, after the summer bump; and a summer horizon
    config = EngineConfig(frequency="W", horizon=13, quantiles=("p10", "p50", "p90"))
    frame = _weekly_frame()
    summer = frame.groupby("item_id").head(238)  # ends mid-June 2019: the bump is in the horizon
    out = {}
    for key, data in (("autumn", frame), ("summer", summer)):
        train, hist, fut, truth = _panels(data, config)
        model = create("DirectTabular", config, **FAST).fit(train)
        out[key] = (model, model.predict(hist, fut), truth)
    return out


def test_given_weekly_series_when_fitted_then_each_target_is_seen_from_every_origin_and_quantiles_are_ordered(fitted):
    model, values, truth = fitted["autumn"]
    assert values.shape == (2, 13, 4)
    # rows: every (origin, step) pair with the target inside the series, 2 series x 247 training weeks
    n = 247
    assert model.n_train_rows == 2 * sum(min(13, n - 1 - o) for o in range(n - 1))
    assert np.all(np.diff(values[:, :, :3], axis=2) >= 0)  # p10 <= p50 <= p90
    assert np.all((values[:, :, 3] >= values[:, :, 0]) & (values[:, :, 3] <= values[:, :, 2]))  # mean inside
    assert np.isfinite(values).all()


def test_given_a_yearly_bump_in_the_horizon_when_forecast_then_the_median_follows_it_at_each_series_level(fitted):
    # known answer: the season (x1.3 at week 28) on levels 100 and 200, 2% noise
    model, values, truth = fitted["summer"]
    rel = np.abs(values[:, :, 1] - truth) / truth
    assert rel.mean() < 0.05, f"relative p50 error {rel.mean():.3f}"
    peak = int(np.argmax(truth[0]))
    assert values[0, peak, 1] > 1.15 * values[0, 0, 1]  # the bump, not the level before it
    assert np.all(values[1, :, 1] > 1.6 * values[0, :, 1])  # each series at its own level (x2)
    # the band holds most of the actuals (2% noise)
    inside = (truth >= values[:, :, 0]) & (truth <= values[:, :, 2])
    assert inside.mean() >= 0.6


def test_given_lags_after_the_origin_when_the_features_are_built_then_they_are_missing():
    config = EngineConfig(frequency="W", horizon=13)
    model = DirectTabular(config)
    model.lags = direct_lags(52, 8, 5)
    model.unit, model.covariate_names, model.static_columns = "W", [], []
    y = np.arange(1.0, 301.0)
    o = np.array([199, 199])
    h = np.array([1, 5])
    ds = np.array(["2020-01-05", "2020-02-02"], dtype="datetime64[ns]")
    frame, scale = model._rows(y, np.zeros(2, int), o, h, ds, np.zeros((2, 0)), np.zeros((2, 0)))
    np.testing.assert_allclose(scale, (199 + 200) / 2)  # mean |y| of the origin's last 2 periods
    assert np.isnan(frame.loc[1, "lag_1"]) and np.isnan(frame.loc[1, "lag_4"])  # after the origin
    assert frame.loc[1, "lag_5"] == pytest.approx(200 / scale[1])  # the origin itself
    assert frame.loc[0, "lag_52"] == pytest.approx(y[199 + 1 - 52] / scale[0])
    assert np.isnan(frame.loc[0, "lag_261"])  # before the series' start
    assert list(frame["step"]) == [1.0, 5.0]


def test_given_the_lag_set_then_it_is_recent_lags_and_three_around_each_season():
    lags = direct_lags(52, 8, 5)
    assert list(lags[:8]) == list(range(1, 9)) and {51, 52, 53, 259, 260, 261} <= set(lags) and len(lags) == 23
    assert list(direct_lags(4, 2, 0)) == [1, 2, 3, 4, 5, 6]


def test_given_the_default_preset_then_direct_tabular_joins_weekly_panels_under_100_series_only():
    weekly = EngineConfig(frequency="W", horizon=13)
    assert "DirectTabular" in default_members(weekly)
    assert CANDIDATES["DirectTabular"].suits(weekly, 1) and not CANDIDATES["DirectTabular"].suits(weekly, 100)
    for freq in ("D", "M", "3M"):
        assert "DirectTabular" not in default_members(EngineConfig(frequency=freq, horizon=8)), freq


def test_given_weekly_history_shorter_than_its_seasonal_lags_then_direct_tabular_is_left_out():
    config = EngineConfig(frequency="W", horizon=13)
    needed = 5 * config.season_length + 1 + config.horizon  # its deepest lag, then a horizon
    long_panel = _panels(_weekly_frame(n_weeks=needed + 13), config)[0]
    short_panel = _panels(_weekly_frame(n_weeks=needed + 12), config)[0]
    assert DirectTabular.suits_panel(config, long_panel)
    assert not DirectTabular.suits_panel(config, short_panel)


def test_given_quarterly_data_then_npts_level_decays_as_on_other_frequencies():
    # a slower quarterly decay won visnights 0.2% and lost aus_arrivals 1.9% (docs/engine.md "Sixth session")
    for freq in ("3M", "M", "W"):
        assert create("NPTSLevel", EngineConfig(frequency=freq, horizon=8)).params["decay"] == 0.3


def test_given_more_rows_than_max_rows_then_every_series_keeps_its_latest_origins():
    """Trimmed by position from each series' start, a 300-week series' late origins crowded a
    60-week one out of the rows entirely."""
    from forecasting.models.direct_tabular import training_pairs

    indptr = np.array([0, 300, 360])
    series, o, h = training_pairs(indptr, H=4, max_history=1000, max_rows=200)
    assert len(o) == 200 and np.all(o + h < indptr[series + 1])
    assert set(series) == {0, 1}
    for i in (0, 1):  # the last origin of each series, with its step 1
        assert ((series == i) & (o == indptr[i + 1] - 2) & (h == 1)).any()
    untrimmed = training_pairs(indptr, H=4, max_history=1000, max_rows=10_000)
    assert len(untrimmed[0]) == (299 * 4 - 6) + (59 * 4 - 6)  # each origin's steps inside its series


def test_given_more_rows_than_max_rows_then_the_rest_are_a_seeded_draw_over_the_whole_history():
    """The nearest rows alone kept 20 weekly series' last 4 years of 15; a draw over all of them
    scores as the untrimmed rows at half the fit time (docs/engine.md, "Seventeenth session")."""
    from forecasting.models.direct_tabular import training_pairs

    indptr = np.array([0, 800, 1600])
    H = 13
    series, o, h = training_pairs(indptr, H=H, max_history=1000, max_rows=2000, seed=3)
    assert len(o) == 2000
    assert len(set(zip(series, o, h))) == 2000  # no row twice
    position = o - indptr[series]
    for i in (0, 1):  # each series reaches back over its history, not only its last 2000 / (2 x 13) origins
        assert position[series == i].min() < 100 and position[series == i].max() == 798
    again = training_pairs(indptr, H=H, max_history=1000, max_rows=2000, seed=3)
    other = training_pairs(indptr, H=H, max_history=1000, max_rows=2000, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip((series, o, h), again))
    assert not np.array_equal(o, other[1])


@pytest.mark.parametrize("lengths", [[300, 60], [5, 1, 2, 14, 13, 100], [0, 1], [2000, 900]])
def test_pair_count_is_the_untrimmed_row_count(lengths):
    from forecasting.models.direct_tabular import pair_count, training_pairs

    indptr = np.concatenate([[0], np.cumsum(lengths)])
    for H in (1, 4, 13):
        for max_history in (1000, 50, 3):
            assert pair_count(lengths, H, max_history) == len(training_pairs(indptr, H, max_history, 10**9)[0])


def test_given_more_rows_than_max_rows_then_the_backtest_fit_is_kept_and_under_it_the_model_is_refitted():
    config = EngineConfig(frequency="W", horizon=13, quantiles=("p10", "p50", "p90"))
    train = _panels(_weekly_frame(), config)[0]  # 2 x 247 weeks: 6,240 rows
    capped = create("DirectTabular", config, **FAST, max_rows=3000).fit(train)
    whole = create("DirectTabular", config, **FAST).fit(train)
    assert capped.n_train_rows == 3000 and capped.reuses_backtest_selection
    assert (
        whole.n_train_rows == 2 * sum(min(13, 246 - o) for o in range(246)) == 6240
        and not whole.reuses_backtest_selection
    )
