"""NPTSLevel, ThetaClassic and the default preset's members on weekly/monthly/quarterly data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting import EngineConfig
from forecasting.models import create, default_members
from forecasting.models.npts import npts_forecast, npts_level_forecast

from .test_models import _panels

LEVELS = (0.1, 0.5, 0.9)


def _growing_quarterly(n_quarters=40, growth=0.03, seed=0):
    """Quarterly season (x1.2 in Q3) on a level growing `growth` a quarter, little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_quarters)
    season = np.where(t % 4 == 2, 1.2, 1.0)
    return 100 * (1 + growth) ** t * season * (1 + 0.01 * rng.standard_normal(n_quarters))


def test_given_a_growing_seasonal_series_when_npts_level_forecasts_then_it_stays_at_todays_level():
    # given: ten years of 3% growth a quarter; the next year's level is ~1.03^40 x 100
    y = _growing_quarterly()
    truth_level = 100 * 1.03**40
    # when
    plain = npts_forecast(y, 4, 4, LEVELS, 0.3, 400)
    level = npts_level_forecast(y, 4, 4, LEVELS, 0.3, 400)
    # then: plain NPTS' median falls well below (it draws years-old values), the level-moved one does not
    assert np.mean(plain[:, 1]) < 0.85 * truth_level
    assert abs(np.mean(level[:, 1]) / truth_level - 1) < 0.08
    # and the season is kept: the Q3 step (index 2 after a series ending in Q4) is the highest
    assert int(np.argmax(level[:, 1])) == 2
    assert np.all(np.diff(level[:, :3], axis=1) >= 0)


def test_given_a_flat_seasonal_series_when_npts_level_forecasts_then_it_matches_npts():
    y = np.tile([10.0, 20.0, 30.0, 20.0], 10)
    np.testing.assert_allclose(npts_level_forecast(y, 8, 4, LEVELS, 0.3, 400), npts_forecast(y, 8, 4, LEVELS, 0.3, 400))


def test_given_non_positive_levels_or_short_series_when_npts_level_forecasts_then_it_stays_finite():
    # a season summing below zero: levels moved by their difference, not a ratio
    y = np.tile([-5.0, 1.0, 2.0, -3.0], 6) + np.arange(24) * 0.1
    assert np.isfinite(npts_level_forecast(y, 4, 4, LEVELS, 0.3, 400)).all()
    # under three seasons: plain NPTS
    short = np.arange(10.0)
    np.testing.assert_allclose(
        npts_level_forecast(short, 4, 4, LEVELS, 0.3, 400), npts_forecast(short, 4, 4, LEVELS, 0.3, 400)
    )


def _quarterly_frame(n_items=3, n_quarters=40):
    dates = pd.date_range("2010-01-01", periods=n_quarters, freq="QS")
    return pd.concat(
        pd.DataFrame(
            {"item_id": f"s{i}", "timestamp": dates, "target_value": _growing_quarterly(n_quarters, 0.01 * (i + 1), i)}
        )
        for i in range(n_items)
    )


@pytest.mark.parametrize("name", ["NPTSLevel", "ThetaClassic"])
def test_given_growing_quarterly_series_when_the_member_forecasts_then_it_beats_plain_npts(name):
    config = EngineConfig(frequency="3M", horizon=4, quantiles=("p10", "p50", "p90"))
    train, hist, fut, truth = _panels(_quarterly_frame(), config)
    values = create(name, config).fit(train).predict(hist, fut)
    plain = create("NPTS", config).fit(train).predict(hist, fut)
    error = np.mean(np.abs(values[:, :, 1] - truth) / truth)
    assert error < 0.05, f"{name}: {error:.3f} relative error"
    assert error < 0.5 * np.mean(np.abs(plain[:, :, 1] - truth) / truth)
    assert np.all(np.diff(values[:, :, :-1], axis=2) >= 0)


def test_given_the_default_preset_when_data_is_seasonal_then_npts_is_level_moved_and_theta_classic_joins_small_panels():
    daily = default_members(EngineConfig(frequency="D", horizon=7))
    assert "NPTS" in daily and "NPTSLevel" not in daily and "ThetaClassic" not in daily
    for freq in ("W", "M", "3M"):
        names = default_members(EngineConfig(frequency=freq, horizon=8))
        assert "NPTSLevel" in names and "NPTS" not in names and "ThetaClassic" in names, freq
        assert names[0] == "SeasonalNaive"
    # the Autopilot algorithm npts is still NPTS itself
    assert "NPTS" in default_members(EngineConfig(frequency="M", horizon=8, algorithms=("npts",)))
    # large panels leave ThetaClassic out (the engine asks `suits`)
    from forecasting.models import CANDIDATES

    monthly = EngineConfig(frequency="M", horizon=12)
    assert CANDIDATES["ThetaClassic"].suits(monthly, 20) and not CANDIDATES["ThetaClassic"].suits(monthly, 145)


def test_given_all_six_autopilot_algorithms_then_the_default_members_train_as_for_no_list():
    """Autopilot trains the same set with the six listed as with none; the pipeline's default lists them."""
    from processing.automl_request import TIME_SERIES_ALGORITHMS

    for freq in ("D", "W", "M"):
        preset = default_members(EngineConfig(frequency=freq, horizon=8))
        for listed in (
            TIME_SERIES_ALGORITHMS,
            tuple(reversed(TIME_SERIES_ALGORITHMS)),
            ("ETS", "npts ", *"cnn-qr deepar prophet arima".split()),
        ):
            assert default_members(EngineConfig(frequency=freq, horizon=8, algorithms=listed)) == preset, (freq, listed)
    # five of the six is a real choice: each plays its own part, no frequency members
    five = default_members(EngineConfig(frequency="M", horizon=8, algorithms=TIME_SERIES_ALGORITHMS[:-1]))
    assert "ETS" not in five and "ThetaClassic" not in five and "ARIMA" in five and "NPTS" in five
