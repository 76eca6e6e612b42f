"""Holidays the training history never saw: which periods they touch, how much wider the band gets there."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting import EngineConfig, calendar, train
from forecasting.artifact import load_model
from forecasting.data import build_panel
from forecasting.ensemble import calibrate, combine, interval_scales, widen_unseen_holidays

LEVELS = (0.1, 0.5, 0.9)


def _day_numbers(start: str, end: str) -> np.ndarray:
    return calendar._days(pd.date_range(start, end).to_numpy())


def _flags(history: tuple, future: tuple) -> np.ndarray:
    seen = calendar.seen_holiday_offsets("US", _day_numbers(*history))
    return calendar.unseen_holiday_periods("US", pd.date_range(*future).to_numpy(), seen)


def test_given_one_year_from_january_when_december_follows_then_only_the_days_within_a_week_of_christmas_are_flagged():
    flags = _flags(("2024-01-01", "2024-12-10"), ("2024-12-11", "2024-12-31"))
    # Dec 11-17: 8-14 days before Christmas (beyond the cap); Dec 18-31: within a week of
    # Christmas (never seen) and of New Year's Day at offsets the year from Jan 1 never had
    assert flags.tolist() == [False] * 7 + [True] * 14


def test_given_last_december_in_the_history_then_this_december_is_not_flagged():
    assert not _flags(("2023-01-01", "2024-12-10"), ("2024-12-11", "2024-12-31")).any()


def test_given_a_history_ending_days_after_a_holiday_then_only_the_unseen_offsets_after_it_are_flagged():
    # Thanksgiving 2024 is Nov 28: the history to Dec 3 saw it up to 5 days after, not 6 or 7
    flags = _flags(("2024-01-01", "2024-12-03"), ("2024-12-04", "2024-12-10"))
    assert flags.tolist() == [True, True, False, False, False, False, False]


def _frame(dip: float, start="2024-01-01", end="2024-12-17", items=2, seed=0) -> pd.DataFrame:
    """Daily series with a weekly cycle and 2% noise; US holidays and the days either side at `dip` times the level."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, end)
    holidays = set(calendar.holiday_table("US", range(2023, 2026))["date"])
    on = np.array([any(d + pd.Timedelta(days=k) in holidays for k in (-1, 0, 1)) for d in dates])
    frames = []
    for i in range(items):
        level = 100.0 * (i + 1) * (1 + 0.2 * np.sin(2 * np.pi * np.arange(len(dates)) / 7))
        y = level * (1 + 0.02 * rng.standard_normal(len(dates))) * np.where(on, dip, 1.0)
        frames.append(pd.DataFrame({"item_id": f"item_{i}", "timestamp": dates, "target_value": y}))
    return pd.concat(frames, ignore_index=True)


def _panel(frame: pd.DataFrame):
    long = frame.rename(columns={"item_id": "unique_id", "timestamp": "ds", "target_value": "y"})
    return build_panel(long, [], pd.DataFrame(index=sorted(frame["item_id"].unique())))


def test_given_holidays_that_cut_demand_then_the_spread_widens_the_lower_quantiles_only():
    spread = calendar.holiday_spread("US", _panel(_frame(dip=0.6)), LEVELS)
    assert spread[0] < -0.2  # p10: 3 of the 15 days around each holiday fell 40%
    assert spread[1] == 0.0 and spread[2] == pytest.approx(0.0, abs=0.01)


def test_given_holidays_without_an_effect_then_the_spread_is_far_smaller():
    spread = calendar.holiday_spread("US", _panel(_frame(dip=1.0)), LEVELS)
    assert np.all(np.abs(spread) < 0.02)


def test_given_no_calendar_or_weekly_data_then_nothing_is_learnt():
    panel = _panel(_frame(dip=0.6))
    assert calendar.UnseenHolidays.learn(None, "D", panel, LEVELS) is None
    assert calendar.UnseenHolidays.learn("US", "W", panel, LEVELS) is None
    assert calendar.UnseenHolidays.learn("US", "D", panel, LEVELS) is not None


def _forecast(n=2, h=4):
    """(n, h, 4): p10 p50 p90 mean, a band of +-10 around 100."""
    p50 = np.full((n, h), 100.0)
    return np.stack([p50 - 10, p50, p50 + 10, p50], axis=-1)


def test_given_flagged_periods_when_combined_then_only_they_widen_and_the_distribution_stays_coherent():
    values = _forecast()
    spread = np.zeros((2, 4, 3))
    spread[0, 1] = [-0.24, 0.0, 0.05]
    out = combine({"m": values}, {"m": np.ones(4)}, LEVELS, None, True, spread)
    base = combine({"m": values}, {"m": np.ones(4)}, LEVELS, None, True)
    changed = np.any(out != base, axis=-1)
    assert changed.tolist() == [[False, True, False, False], [False, False, False, False]]
    assert out[0, 1, 0] == pytest.approx(100 - np.hypot(10, 24))  # sqrt(10^2 + (0.24 x 100)^2) below
    assert out[0, 1, 2] == pytest.approx(100 + np.hypot(10, 5))
    assert out[0, 1, 1] == 100.0  # the centre stays
    assert np.all(np.diff(out[..., :3], axis=-1) >= 0)
    assert np.all((out[..., 3] >= out[..., 0]) & (out[..., 3] <= out[..., 2]))
    assert out[0, 1, 3] < base[0, 1, 3]  # the mean follows the longer lower tail


def test_given_crossed_member_quantiles_then_the_widening_keeps_each_quantile_on_its_side():
    values = _forecast(1, 1)
    values[0, 0, :3] = [104.0, 100.0, 97.0]  # p10 above p50, p90 below
    out = widen_unseen_holidays(values, np.array([[[-0.1, 0.0, 0.1]]]), LEVELS)
    assert out[0, 0, 0] < 100.0 < out[0, 0, 2]


def test_given_misses_only_at_flagged_periods_then_the_factors_fitted_with_the_widening_stay_lower():
    rng = np.random.default_rng(1)
    n, h = 60, 4
    values = np.repeat(_forecast(n, h), 1, axis=0)
    actual = 100 + 6 * rng.standard_normal((n, h))
    flagged = np.zeros((n, h), bool)
    flagged[:, 2] = True
    actual[flagged] -= 30  # an unseen holiday's dip
    spread = np.where(flagged[..., None], np.array([-0.35, 0.0, 0.0]), 0.0)
    without = interval_scales(values, actual, LEVELS, relative=False)
    joined = calibrate(values, actual, LEVELS, 1, spread)
    assert without[:, 0].max() > 1.5  # the holiday's misses widen every period's p10
    assert joined[:, 0].max() < without[:, 0].max()
    np.testing.assert_allclose(
        calibrate(values, actual, LEVELS, 1, np.zeros((n, h, 3))), calibrate(values, actual, LEVELS, 1)
    )


def _context(frame: pd.DataFrame, end: str, horizon: int) -> pd.DataFrame:
    history = frame[frame["timestamp"] <= end]
    future = pd.date_range(pd.Timestamp(end) + pd.Timedelta(days=1), periods=horizon)
    rows = [
        pd.DataFrame({"item_id": i, "timestamp": future, "target_value": np.nan}) for i in history["item_id"].unique()
    ]
    return pd.concat([history, *rows], ignore_index=True)


def test_given_a_trained_model_when_forecasting_after_thanksgiving_then_the_band_widens_on_the_unseen_days_only(
    tmp_path,
):
    frame = _frame(dip=0.6, end="2024-12-03")
    config = EngineConfig(frequency="D", horizon=14, quantiles=("p10", "p50", "p90"), holiday_country="US")
    train(frame, config, tmp_path, candidates=["SeasonalNaive", "NPTS"], log=lambda *_: None)
    model = load_model(tmp_path / "model")
    assert model.unseen_holidays is not None and model.unseen_holidays.spread[0] < 0
    context = _context(frame, "2024-12-03", 14)
    out = model.predict(context)
    model.unseen_holidays = None
    plain = model.predict(context)
    wider = (out["p90"] - out["p10"]).to_numpy() > (plain["p90"] - plain["p10"]).to_numpy() + 1e-9
    same = np.isclose(out[["p10", "p50", "p90", "mean"]].to_numpy(), plain[["p10", "p50", "p90", "mean"]].to_numpy())
    # Dec 4-5: 6-7 days after Thanksgiving, which the history ending Dec 3 saw only to 5 days after
    days = pd.to_datetime(out["timestamp"]).dt.day.to_numpy()
    assert set(days[wider]) == {4, 5}
    assert same[~np.isin(days, [4, 5])].all()
    assert (out["p50"] == plain["p50"]).all()
    assert (out["p10"] <= out["p50"]).all() and (out["p50"] <= out["p90"]).all()
    assert ((out["mean"] >= out["p10"]) & (out["mean"] <= out["p90"])).all()


def test_given_no_calendar_when_trained_then_no_spread_is_kept_and_the_metadata_says_none(tmp_path):
    import json

    frame = _frame(dip=0.6, end="2024-12-03")
    config = EngineConfig(frequency="D", horizon=14, quantiles=("p10", "p50", "p90"))
    train(frame, config, tmp_path, candidates=["SeasonalNaive", "NPTS"], log=lambda *_: None)
    assert load_model(tmp_path / "model").unseen_holidays is None
    assert json.loads((tmp_path / "model" / "metadata.json").read_text())["unseen_holiday_spread"] is None


def _mixed_frame() -> pd.DataFrame:
    """item_dip falls 40% around each holiday, item_flat does not (flights on Veterans Day)."""
    dip = _frame(dip=0.6, items=1).assign(item_id="item_dip")
    flat = _frame(dip=1.0, items=1, seed=1).assign(item_id="item_flat")
    return pd.concat([dip, flat], ignore_index=True)


def test_given_one_series_moved_by_holidays_and_one_not_then_each_gets_its_own_spread():
    pooled, own = calendar.holiday_spreads("US", _panel(_mixed_frame()), LEVELS)
    assert set(own) == {"item_dip", "item_flat"}
    assert own["item_dip"][0] < -0.2
    assert np.all(np.abs(own["item_flat"]) < 0.02)
    assert own["item_dip"][0] < pooled[0] < own["item_flat"][0]  # pooled: between the two


def test_given_series_spreads_when_rows_are_asked_then_each_series_gets_its_own_and_unknown_ones_the_pooled():
    holidays = calendar.UnseenHolidays.learn("US", "D", _panel(_mixed_frame()), LEVELS)
    ds = np.tile(pd.date_range("2024-12-20", periods=4).to_numpy("datetime64[ns]"), 3)  # Christmas week, unseen
    rows = holidays.spread_rows(ds, 3, np.array(["item_flat", "item_dip", "item_new"]))
    assert rows[1, :, 0] == pytest.approx(holidays.series_spread["item_dip"][0])
    assert np.all(np.abs(rows[0]) < 0.02)
    assert rows[2, :, 0] == pytest.approx(holidays.spread[0])  # a series the training never saw
    assert holidays.spread_rows(ds, 3)[0, 0, 0] == pytest.approx(holidays.spread[0])  # no ids: pooled


def test_given_more_series_than_are_read_then_only_the_pooled_spread_is_kept(monkeypatch):
    monkeypatch.setattr(calendar, "SPREAD_MAX_SERIES", 1)
    pooled, own = calendar.holiday_spreads("US", _panel(_mixed_frame()), LEVELS)
    assert own is None and pooled[0] < -0.1


def test_given_holidays_that_cut_demand_then_the_lift_is_learnt_per_holiday_and_pooled_for_an_unseen_one():
    lift = calendar.HolidayLift("US").fit(_panel(_frame(dip=0.6)))
    assert lift.lift["Thanksgiving Day|0"] == pytest.approx(-0.4, abs=0.05)
    assert lift.lift["Thanksgiving Day|1"] == pytest.approx(-0.4, abs=0.05)
    assert abs(lift.lift["Thanksgiving Day|5"]) < 0.05
    assert "Christmas Day|0" not in lift.lift  # the history ends Dec 17
    days = pd.to_datetime(["2024-12-11", "2024-12-25", "2024-12-26", "2024-12-29"]).to_numpy()
    on = lift.transform(days)
    # Dec 11 is no holiday's; Christmas and the day after take the seen holidays' mean at offsets 0 and 1
    assert on[0] == 0.0
    assert on[1] == pytest.approx(lift.pooled[0]) and on[1] < -0.3
    assert on[2] == pytest.approx(lift.pooled[1]) and on[2] < -0.3
    assert abs(on[3]) < 0.05  # 4 days after Christmas, 3 before New Year's Day: no dip there


def test_given_no_calendar_then_the_lift_is_zero():
    lift = calendar.HolidayLift(None).fit(_panel(_frame(dip=0.6)))
    assert not lift.lift and np.all(lift.transform(pd.date_range("2024-12-20", "2024-12-31").to_numpy()) == 0)
