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
