"""Unit tests of the pure data-prep functions on tiny frames built in code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from processing.data_prep import (
    DataValidationError,
    InputTable,
    PrepConfig,
    default_filling,
    period_labels,
    period_ordinals,
    prepare,
    resolve_filling,
)


def table(frame: pd.DataFrame) -> InputTable:
    """Wrap a frame as if read from one CSV file (line numbers: header is line 1)."""
    return InputTable(
        frame.reset_index(drop=True),
        ["sales.csv"],
        np.zeros(len(frame), dtype=int),
        np.arange(len(frame)) + 2,
        [False],
        [],
    )


def daily(item: str, start: str, values, **columns) -> pd.DataFrame:
    days = pd.date_range(start, periods=len(values), freq="D").strftime("%Y-%m-%d")
    return pd.DataFrame({"item_id": item, "timestamp": days, "target_value": values, **columns})


def series_of(frame: pd.DataFrame, item: str, column: str = "target_value") -> list:
    return frame.loc[frame["item_id"] == item, column].tolist()


# ------------------------------------------------------------------------------ alignment
def test_gaps_inside_a_series_are_middle_filled_with_zero_by_default():
    # given an item with days 3 and 4 missing
    frame = daily("a", "2023-01-01", [float(v) for v in range(1, 21)]).drop(index=[2, 3])
    # when prepared with a 2-day horizon
    result = prepare(table(frame), PrepConfig(horizon=2))
    # then the gap is back on the grid, zero-filled, and counted
    train = result.train
    assert train["timestamp"].iloc[:5].dt.strftime("%d").tolist() == ["01", "02", "03", "04", "05"]
    assert series_of(train, "a")[:5] == [1.0, 2.0, 0.0, 0.0, 5.0]
    assert result.profile["filled_values"]["target_value"] == 2


def test_series_that_end_early_are_back_filled_to_the_dataset_end():
    frame = pd.concat([daily("a", "2023-01-01", [1.0] * 20), daily("b", "2023-01-01", [2.0] * 16)])
    result = prepare(table(frame), PrepConfig(horizon=2))
    backtest = result.backtest
    assert len(backtest[backtest["item_id"] == "b"]) == 20
    assert series_of(result.holdout, "b") == [0.0, 0.0]  # days 19-20 were back-filled with zero
    assert series_of(result.train, "b")[-2:] == [0.0, 0.0]  # days 17-18 too


def test_series_start_at_their_first_observation_no_front_fill():
    frame = pd.concat([daily("a", "2023-01-01", [1.0] * 30), daily("b", "2023-01-11", [2.0] * 20)])
    result = prepare(table(frame), PrepConfig(horizon=3))
    assert result.train.groupby("item_id")["timestamp"].min().dt.strftime("%m-%d").to_dict() == {
        "a": "01-01",
        "b": "01-11",
    }


def test_hourly_rows_are_aggregated_to_the_daily_grid_with_the_aggregation_rule():
    hours = pd.date_range("2023-01-01", periods=24 * 20, freq="h")
    frame = pd.DataFrame(
        {
            "item_id": "a",
            "timestamp": hours.strftime("%Y-%m-%d %H:%M:%S"),
            "target_value": np.arange(len(hours)) % 24 * 1.0,
        }
    )
    for aggregation, expected in (("sum", 276.0), ("avg", 11.5), ("max", 23.0), ("min", 0.0), ("first", 0.0)):
        result = prepare(table(frame), PrepConfig(horizon=2, aggregation=aggregation))
        assert result.train["target_value"].iloc[0] == expected, aggregation
        assert len(result.train) + len(result.holdout) == 20
    assert any("not on the D grid" in w for w in result.profile["warnings"])


def test_weekly_periods_are_labelled_by_their_sunday():
    ords, multiple = period_ordinals(np.array(["2024-01-01", "2024-01-07", "2024-01-08"], dtype="datetime64[ns]"), "W")
    labels = period_labels(ords, "W").astype("datetime64[D]").astype(str).tolist()
    assert multiple == 1 and labels == ["2024-01-07", "2024-01-07", "2024-01-14"]


def test_monthly_data_on_any_day_is_labelled_by_the_first_of_the_month():
    ords, _ = period_ordinals(np.array(["2024-02-29", "2024-03-15"], dtype="datetime64[ns]"), "M")
    assert period_labels(ords, "M").astype("datetime64[D]").astype(str).tolist() == ["2024-02-01", "2024-03-01"]


# -------------------------------------------------------------------------------- filling
def test_default_filling_is_autopilot_shaped_and_shared_with_the_request():
    assert default_filling("sales", ["price"]) == {
        "sales": {"middlefill": "zero", "backfill": "zero"},
        "price": {"middlefill": "zero", "backfill": "zero", "futurefill": "zero"},
    }


@pytest.mark.parametrize(
    "method, expected",
    [
        ("value", 7.0),
        ("mean", float(np.mean(np.arange(6, 70)))),  # the 64 most recent entries before the gap
        ("median", float(np.median(np.arange(6, 70)))),
        ("min", 6.0),
        ("max", 69.0),
    ],
)
def test_middle_fill_methods_use_the_64_most_recent_entries(method, expected):
    values = [float(v) for v in range(70)] + [np.nan] + [float(v) for v in range(71, 100)]
    frame = daily("a", "2023-01-01", values).dropna()
    rules = {"middlefill": method, **({"middlefill_value": "7"} if method == "value" else {})}
    result = prepare(table(frame), PrepConfig(horizon=5, filling={"target_value": rules}))
    assert series_of(result.train, "a")[70] == pytest.approx(expected)


@pytest.mark.parametrize("key", ["middlefill", "backfill"])
def test_nan_fill_of_the_target_is_refused_naming_the_parameter(key):
    """Autopilot's Filling allows zero, value, median, mean, min, max; 'nan' is Amazon Forecast's (issue 18)."""
    frame = daily("a", "2023-01-01", [1.0] * 30).drop(index=[10, 11])
    with pytest.raises(
        DataValidationError,
        match=rf"--filling: target_value.{key}='nan' is not one of "
        r"\('zero', 'value', 'median', 'mean', 'min', 'max'\).*Amazon "
        "Forecast method",
    ):
        prepare(table(frame), PrepConfig(horizon=3, filling={"target_value": {key: "nan"}}))


def test_lean_int_dtype_is_the_smallest_that_holds_the_values():
    from processing.data_prep import lean_int_dtype

    assert lean_int_dtype(np.array([0, 1])) == np.int8
    assert lean_int_dtype(np.array([-129, 5])) == np.int16
    assert lean_int_dtype(np.array([0, 2**31])) == np.int64
    assert lean_int_dtype(np.array([], dtype=np.int64)) == np.int64


def test_covariate_gaps_use_their_own_rules_and_keep_integer_type():
    frame = daily("a", "2023-01-01", [1.0] * 20, promotion=[0, 1] * 10).drop(index=[4])
    result = prepare(table(frame), PrepConfig(horizon=2, filling={"promotion": {"middlefill": "max"}}))
    promotion = series_of(result.train, "a", "promotion")
    assert promotion[4] == 1 and result.train["promotion"].dtype.kind == "i"


@pytest.mark.parametrize(
    "filling, message",
    [
        ({"price": {"middlefill": "nan"}}, "price.middlefill='nan' is not one of"),
        ({"target_value": {"frontfill": "zero"}}, "frontfill only for the target and only 'none'"),
        ({"target_value": {"backfill": "value"}}, "needs backfill_value"),
        ({"target_value": {"middlefill": "interpolate"}}, "is not one of"),
        ({"prices": {"middlefill": "zero"}}, "did you mean 'price'?"),
        ({"target_value": {"futurefill": "zero"}}, "futurefill is for covariates"),
    ],
)
def test_invalid_filling_rules_are_rejected_with_the_reason(filling, message):
    with pytest.raises(DataValidationError, match=message.replace("(", r"\(").replace("?", r"\?")):
        resolve_filling(filling, "target_value", ["price"])


# --------------------------------------------------------------------------------- split
def test_split_holds_out_the_last_horizon_periods_and_backtest_carries_covariates():
    frame = pd.concat(
        [
            daily("b", "2023-01-01", [float(v) for v in range(30)], price=np.arange(30) * 1.5, region="N"),
            daily("a", "2023-01-01", [5.0] * 30, price=np.arange(30) * 1.0, region="S"),
        ]
    )
    result = prepare(table(frame), PrepConfig(horizon=4))
    profile = result.profile
    assert profile["columns"]["covariates"] == ["price"] and profile["columns"]["static"] == ["region"]
    assert list(result.train.columns) == ["item_id", "timestamp", "target_value", "price", "region"]
    assert result.train["item_id"].tolist() == ["a"] * 26 + ["b"] * 26  # sorted by item
    assert series_of(result.holdout, "b") == [26.0, 27.0, 28.0, 29.0]
    assert list(result.holdout.columns) == ["item_id", "timestamp", "target_value"]
    backtest = result.backtest[result.backtest["item_id"] == "b"]
    assert backtest["target_value"].iloc[-4:].isna().all() and backtest["target_value"].iloc[:-4].notna().all()
    assert backtest["price"].iloc[-4:].tolist() == [39.0, 40.5, 42.0, 43.5]
    assert (profile["train_end"], profile["holdout_start"], profile["end"]) == (
        "2023-01-26",
        "2023-01-27",
        "2023-01-30",
    )


def test_grouping_columns_identify_series_with_the_item():
    frame = pd.concat(
        [daily("a", "2023-01-01", [1.0] * 20, store="s1"), daily("a", "2023-01-01", [2.0] * 20, store="s2")]
    )
    result = prepare(table(frame), PrepConfig(horizon=2, grouping=("store",)))
    assert list(result.holdout.columns) == ["item_id", "store", "timestamp", "target_value"]
    assert result.holdout["target_value"].tolist() == [1.0, 1.0, 2.0, 2.0]
    assert result.profile["items"] == 2


def test_items_with_too_little_history_are_dropped_with_the_reason():
    frame = pd.concat([daily("long", "2023-01-01", [1.0] * 40), daily("short", "2023-02-01", [1.0] * 9)])
    result = prepare(table(frame), PrepConfig(horizon=5))
    assert result.profile["items"] == 1
    (dropped,) = result.profile["dropped_items"]
    assert dropped["item_id"] == "short" and "needs at least 10 (5 history + 5 holdout)" in dropped["reason"]


def test_timestamps_keep_their_time_only_when_some_time_is_not_midnight():
    from processing.data_prep import format_timestamps

    days = np.array(["2024-01-01", "2024-01-02"], dtype="datetime64[ns]")
    hours = np.array(["2024-01-01T00:00", "2024-01-01T13:30"], dtype="datetime64[ns]")
    assert format_timestamps(days).tolist() == ["2024-01-01", "2024-01-02"]
    assert format_timestamps(hours).tolist() == ["2024-01-01 00:00:00", "2024-01-01 13:30:00"]


def test_hourly_frequency_keeps_hours_in_the_output():
    hours = pd.date_range("2023-01-01", periods=100, freq="h").strftime("%Y-%m-%d %H:%M:%S")
    frame = pd.DataFrame({"item_id": "a", "timestamp": hours, "target_value": np.arange(100.0)})
    result = prepare(table(frame), PrepConfig(frequency="H", horizon=24))
    assert len(result.holdout) == 24 and result.profile["end"] == "2023-01-05 03:00:00"
