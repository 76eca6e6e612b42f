"""SeasonalDrift: seasonal naive moved by the training panel's growth over its last season."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting import EngineConfig
from forecasting.models import CANDIDATES, create, default_members
from forecasting.models.base import seasonal_naive_quantiles
from forecasting.models.naive import panel_growth, seasonal_drift_quantiles

from .test_models import _panels

LEVELS = (0.1, 0.5, 0.9)
SEASON = np.array([1.0, 0.8, 1.3, 0.9])


def _growing(n_quarters=40, yearly=1.10, size=100.0, noise=0.0, seed=0):
    """A quarterly season on a level growing by `yearly` a year (smoothly, quarter by quarter)."""
    t = np.arange(n_quarters)
    wobble = 1 + noise * np.random.default_rng(seed).standard_normal(n_quarters)
    return size * yearly ** (t / 4) * SEASON[t % 4] * wobble


def test_given_series_growing_at_one_rate_when_the_panel_growth_is_measured_then_it_is_that_rate():
    # given: a small and a large series growing 10% a year, and one with a zero (left out)
    values = [_growing(size=10.0), _growing(size=5000.0), np.r_[_growing(size=50.0)[:-1], 0.0]]
    # then
    assert abs(panel_growth(values, 4) - np.log(1.10)) < 1e-9
    # the total's growth: a big flat series and a small growing one weigh by their sizes
    flat, growing = _growing(8, yearly=1.0, size=900.0), _growing(8, yearly=1.5, size=100.0)
    mixed = panel_growth([flat, growing], 4)
    assert abs(mixed - np.log((flat[4:].sum() + growing[4:].sum()) / (flat[:4].sum() + growing[:4].sum()))) < 1e-12
    assert 0 < mixed < 0.2 * np.log(1.5)
    assert panel_growth([np.ones(3)], 4) == 0.0  # nothing with two seasons: no growth


def test_given_growth_that_changes_when_averaged_over_three_seasons_then_it_is_the_mean_of_each():
    # given: three years of 0%, 10% and 30% growth after a first year of 100s (quarterly, flat within years)
    y = np.repeat([100.0, 100.0, 110.0, 143.0], 4)
    # then: one season sees the last year's 30%; three see the mean of the three yearly log growths
    assert abs(panel_growth([y], 4) - np.log(1.3)) < 1e-12
    assert abs(panel_growth([y], 4, years=3) - np.mean(np.log([1.0, 1.1, 1.3]))) < 1e-12


def test_given_a_known_growth_when_seasonal_drift_forecasts_then_it_continues_season_and_growth():
    # given: 10 years of 10% a year, exactly; the truth of the next two years is known
    y = _growing(48)
    truth = _growing(56)[48:]
    # when
    out = seasonal_drift_quantiles(y[:48], 8, 4, LEVELS, np.log(1.10), 400)
    naive = seasonal_naive_quantiles(y[:48], 8, 4, LEVELS)
    # then: within a rounding of the truth, where seasonal naive's point is 9% and 17% short
    np.testing.assert_allclose(out[:, 1], truth, rtol=1e-9)
    assert np.all(naive[:4, -1] < 0.92 * truth[:4]) and np.all(naive[4:, -1] < 0.84 * truth[4:])
    assert np.all(np.diff(out[:, :3], axis=1) >= 0)


def test_given_a_non_positive_or_short_series_when_seasonal_drift_forecasts_then_it_is_seasonal_naive():
    with_zero = np.r_[_growing(20), 0.0, _growing(20)[1:]]
    for y in (with_zero, _growing(10)):
        np.testing.assert_allclose(
            seasonal_drift_quantiles(y, 8, 4, LEVELS, 0.2, 400), seasonal_naive_quantiles(y, 8, 4, LEVELS)
        )


def _frame(rates=(1.08, 1.10, 1.12), n_quarters=48):
    dates = pd.date_range("2010-01-01", periods=n_quarters, freq="QS")
    return pd.concat(
        pd.DataFrame(
            {"item_id": f"s{i}", "timestamp": dates, "target_value": _growing(n_quarters, r, 100 * (i + 1), 0.01, i)}
        )
        for i, r in enumerate(rates)
    )


@pytest.mark.parametrize("name", ["SeasonalDrift", "SeasonalDriftLong"])
def test_given_a_growing_quarterly_panel_when_the_member_forecasts_then_it_beats_seasonal_naive(name):
    config = EngineConfig(frequency="3M", horizon=8, quantiles=("p10", "p50", "p90"))
    train, hist, fut, truth = _panels(_frame(), config)
    model = create(name, config).fit(train)
    values = model.predict(hist, fut)
    naive = create("SeasonalNaive", config).fit(train).predict(hist, fut)
    error = np.mean(np.abs(values[:, :, 1] - truth) / truth)
    assert error < 0.03, f"{error:.3f} relative error"
    assert error < 0.5 * np.mean(np.abs(naive[:, :, 1] - truth) / truth)
    assert abs(model.growth - np.log(1.10)) < 0.02  # the panel's growth, learned at fit
    # an item's forecast does not depend on the other items of a request
    alone = model.predict(hist.subset([1]), fut.subset([1]))
    np.testing.assert_allclose(alone[0], values[1])


def test_given_the_default_preset_when_data_is_monthly_or_quarterly_then_seasonal_drift_joins():
    for freq in ("M", "3M"):
        names = default_members(EngineConfig(frequency=freq, horizon=8))
        assert "SeasonalDrift" in names and "SeasonalDriftLong" in names, freq
    for freq in ("W", "D"):
        names = default_members(EngineConfig(frequency=freq, horizon=8))
        assert "SeasonalDrift" not in names and "SeasonalDriftLong" not in names, freq
    assert not CANDIDATES["SeasonalDrift"].suits(EngineConfig(frequency="Y", horizon=2), 10)
