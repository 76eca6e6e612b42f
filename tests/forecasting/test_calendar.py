"""Holiday tables: computed once per country and years, and every caller gets its own frame."""

from __future__ import annotations

import pandas as pd
import pytest

from forecasting import calendar


def test_given_repeated_requests_then_the_table_is_built_once_and_each_caller_gets_its_own_frame():
    calendar._holiday_rows.cache_clear()
    first = calendar.holiday_table("US", range(2023, 2025))
    assert pd.Timestamp("2024-12-25") in set(first["date"]) and "Christmas Day" in set(first["name"])
    first.loc[0, "name"] = "changed by a caller"
    second = calendar.holiday_table("US", [2024, 2023, 2023])  # same years, another order
    assert calendar._holiday_rows.cache_info().hits == 1
    assert "changed by a caller" not in set(second["name"]) and len(second) == len(first)
    assert second["date"].is_monotonic_increasing


def test_given_an_unknown_country_then_the_error_names_it():
    with pytest.raises(ValueError, match="'XX' is not known"):
        calendar.holiday_table("XX", [2024])


def _features(cap=None):
    days = pd.to_datetime(["2024-12-10", "2024-12-22", "2024-12-25", "2024-12-28"]).to_numpy()
    featurizer = calendar.HolidayFeaturizer("US") if cap is None else calendar.HolidayFeaturizer("US", cap=cap)
    return featurizer.fit(days).transform(days), featurizer


def test_given_the_default_cap_then_distances_reach_45_days():
    f, featurizer = _features()
    christmas = featurizer.names.index("Christmas Day")
    assert f["days_to_holiday"].tolist() == [15, 3, 0, 4]  # Dec 28: New Year's Day in 4
    assert f["days_since_holiday"][0] == 12  # Thanksgiving, Nov 28
    assert f["nearest_holiday"][1] == christmas and f["nearest_holiday"][2] == christmas


def test_given_a_short_cap_then_farther_holidays_read_as_far_and_unnamed():
    f, featurizer = _features(cap=calendar.NEAR_CAP)
    christmas = featurizer.names.index("Christmas Day")
    assert f["days_to_holiday"].tolist() == [8, 3, 0, 4]
    assert f["days_since_holiday"].tolist() == [8, 8, 0, 3]
    assert pd.isna(f["nearest_holiday"][0])  # 12 and 15 days from the nearest two: far
    assert f["nearest_holiday"][1] == christmas and f["nearest_holiday"][2] == christmas


def test_given_a_featurizer_pickled_before_the_cap_then_it_keeps_the_old_cap():
    _, featurizer = _features()
    del featurizer.__dict__["cap"]
    days = pd.to_datetime(["2024-12-10"]).to_numpy()
    assert featurizer.transform(days)["days_to_holiday"][0] == 15
