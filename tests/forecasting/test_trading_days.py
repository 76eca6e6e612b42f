"""Working days in monthly data: the count itself, and the members that read it follow a month's
total of a weekday-heavy flow from year to year, which the month of the year alone cannot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting import EngineConfig
from forecasting.calendar import monthly_steps, weekdays_in_month
from forecasting.models import create

from .test_models import _panels


def test_given_known_months_then_the_working_days_are_counted_monday_to_friday():
    ds = pd.to_datetime(["2015-01-01", "2015-02-01", "2016-02-01", "2015-08-01", "2026-11-30"]).to_numpy()
    # Jan 2015: 22; Feb 2015 (starts on a Sunday): 20; Feb 2016 (leap year): 21; Aug 2015: 21;
    # a month-end label counts its own month (Nov 2026: 21)
    np.testing.assert_array_equal(weekdays_in_month(ds), [22, 20, 21, 21, 21])


@pytest.mark.parametrize(
    ("frequency", "expected"), [("M", True), ("1M", True), ("3M", False), ("W", False), ("D", False)]
)
def test_given_a_frequency_then_only_one_month_steps_count_working_days(frequency, expected):
    assert monthly_steps(frequency) is expected


def _weekday_flow(n_items=6, n_months=96, seed=0):
    """Each item's daily rate on working days (weekends sell nothing) times the month's working
    days, with 0.3% noise: the month of the year alone leaves the +-1 working day a year (+-5%)."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2012-01-01", periods=n_months, freq="MS")
    days = weekdays_in_month(dates.to_numpy())
    return pd.concat(
        pd.DataFrame(
            {
                "item_id": f"s{i}",
                "timestamp": dates,
                "target_value": (50 + 10 * i) * days * (1 + 0.003 * rng.standard_normal(n_months)),
            }
        )
        for i in range(n_items)
    )


@pytest.mark.parametrize("name", ["DynamicRegression", "LightGBM"])
def test_given_a_weekday_flow_when_a_member_forecasts_monthly_then_it_follows_the_working_days(name, monkeypatch):
    config = EngineConfig(frequency="M", horizon=12, quantiles=("p10", "p50", "p90"))
    train, hist, fut, truth = _panels(_weekday_flow(), config)

    def error():
        values = create(name, config).fit(train).predict(hist, fut)
        return float(np.mean(np.abs(values[:, :, 1] - truth) / truth))

    with_days = error()
    # the same member without the count (the gate both members read, switched off): the control
    module = "regression" if name == "DynamicRegression" else "lightgbm_global"
    monkeypatch.setattr(f"forecasting.models.{module}.monthly_steps", lambda _frequency: False)
    without = error()
    assert with_days < 0.5 * without, f"{name}: {with_days:.4f} with working days, {without:.4f} without"
    assert with_days < 0.015, f"{name}: p50 off the working-day flow by {with_days:.4f}"
