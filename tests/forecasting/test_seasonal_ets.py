"""SeasonalETS: ETS(A,N,A), one fixed form, on daily panels of 10-99 series."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting import EngineConfig
from forecasting.models import CANDIDATES, create, default_members

from .test_models import _panels


def _shifted_weekly(n_items=12, n_days=150, shift_day=120, seed=0) -> pd.DataFrame:
    """A weekly season (amplitude 10) on a level that steps up by 30 on `shift_day`: the truth of
    the next week is the new level plus the season."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2023-01-01", periods=n_days, freq="D")
    t = np.arange(n_days)
    frames = []
    for i in range(n_items):
        level = 50.0 + 5 * i + np.where(t >= shift_day, 30.0, 0.0)
        y = level + 10 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.5, n_days)
        frames.append(
            pd.DataFrame({"item_id": f"item_{i}", "timestamp": dates.strftime("%Y-%m-%d"), "target_value": y})
        )
    return pd.concat(frames, ignore_index=True)


def test_given_a_level_step_under_a_weekly_season_when_seasonal_ets_forecasts_then_it_follows_the_new_level_and_the_season():
    config = EngineConfig(frequency="D", horizon=7, quantiles=("p10", "p50", "p90"))
    train, hist, fut, truth = _panels(_shifted_weekly(), config)
    model = create("SeasonalETS", config).fit(train)
    values = model.predict(hist, fut)
    assert values.shape == (12, 7, 4)
    # the median within 2 of the truth (the step is 30, the season's amplitude 10, the noise 0.5)
    assert np.mean(np.abs(values[:, :, 1] - truth)) < 2.0
    # the season is followed, not averaged away: the forecast's weekly range is most of the truth's
    assert np.mean(np.ptp(values[:, :, 1], axis=1)) > 0.8 * np.mean(np.ptp(truth, axis=1))
    assert np.all(np.diff(values[:, :, :3], axis=2) >= 0)
    # one fixed form: nothing is chosen at training, and the forecast repeats itself
    np.testing.assert_array_equal(values, create("SeasonalETS", config).fit(train).predict(hist, fut))


def test_given_daily_panels_when_the_default_preset_lists_members_then_seasonal_ets_suits_10_to_99_series_only():
    daily = EngineConfig(frequency="D", horizon=14)
    assert "SeasonalETS" in default_members(daily)
    cls = CANDIDATES["SeasonalETS"]
    assert cls.suits(daily, 24) and cls.suits(daily, 10) and cls.suits(daily, 99)  # nycflights: 24
    assert not cls.suits(daily, 1)  # elecdaily: it lost there
    assert not cls.suits(daily, 125)  # the seed: LightGBM carries it, and the CPU budget
    for freq in ("W", "M", "3M", "H"):
        assert not cls.suits(EngineConfig(frequency=freq, horizon=8), 24), freq
    # an explicit algorithm list is not changed (the training pipeline's list keeps ETS itself)
    assert "SeasonalETS" not in default_members(EngineConfig(frequency="D", horizon=14, algorithms=("ets",)))


def test_given_more_than_a_year_of_daily_history_when_seasonal_ets_forecasts_then_it_fits_the_last_365_points():
    """The fit window is a year: on 150 points the weekly indices rest on ~21 cycles, and the member
    lost to AutoETS on the whole history (pizzaplace 0.2966 against 0.2885 at 365 points)."""
    from statsforecast.models import AutoETS

    config = EngineConfig(frequency="D", horizon=7, quantiles=("p10", "p50", "p90"))
    rng = np.random.default_rng(3)
    n_days = 420
    t = np.arange(n_days)
    dates = pd.date_range("2022-01-01", periods=n_days, freq="D").strftime("%Y-%m-%d")
    frame = pd.concat(
        [
            pd.DataFrame(
                {
                    "item_id": f"item_{i}",
                    "timestamp": dates,
                    "target_value": 40.0 + 8 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 4, n_days) + i,
                }
            )
            for i in range(10)
        ],
        ignore_index=True,
    )
    train, hist, fut, _ = _panels(frame, config)
    values = create("SeasonalETS", config).fit(train).predict(hist, fut)
    y = hist.y.reshape(hist.n_series, -1)
    year = np.array([AutoETS(season_length=7, model="ANA").forecast(y=s[-365:], h=7)["mean"] for s in y])
    short = np.array([AutoETS(season_length=7, model="ANA").forecast(y=s[-150:], h=7)["mean"] for s in y])
    assert np.max(np.abs(year - short)) > 0.05  # the two windows give different forecasts here
    np.testing.assert_allclose(values[:, :, 3], year, rtol=1e-6, atol=1e-6)
