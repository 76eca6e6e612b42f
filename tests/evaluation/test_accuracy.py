"""Scoring stored forecasts against later actuals: latest forecast per point, metrics, breakdowns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation import accuracy, metrics
from processing.reporting import Columns

COLUMNS = Columns("item_id", "timestamp", "target_value")
Q = ["p10", "p50", "p90"]


def _forecast(items, start, days, level):
    rows = [
        {
            "item_id": i,
            "timestamp": pd.Timestamp(start) + pd.Timedelta(days=d),
            "mean": level,
            "p10": level - 2,
            "p50": level,
            "p90": level + 2,
        }
        for i in items
        for d in range(days)
    ]
    return pd.DataFrame(rows)


def _actuals(items, start, days, value):
    return pd.DataFrame(
        [
            {
                "item_id": i,
                "timestamp": pd.Timestamp(start) + pd.Timedelta(days=d),
                "target_value": value + k,
                "category": "A" if k % 2 else "B",
            }
            for k, i in enumerate(items)
            for d in range(days)
        ]
    )


def test_given_two_runs_covering_a_day_then_the_newer_forecast_is_scored():
    old = (
        {
            "execution_id": "e1",
            "created": "2024-01-01T00:00:00",
            "model_package_arn": "arn/1",
            "model_package_version": 1,
        },
        _forecast(["a", "b"], "2024-01-02", 3, 10.0),
    )
    new = (
        {
            "execution_id": "e2",
            "created": "2024-01-03T00:00:00",
            "model_package_arn": "arn/2",
            "model_package_version": 2,
        },
        _forecast(["a", "b"], "2024-01-04", 3, 20.0),
    )
    actuals = _actuals(["a", "b"], "2024-01-01", 5, 12.0)  # actuals up to 2024-01-05
    result = accuracy.accuracy_of_previous_forecasts([old, new], actuals, COLUMNS, Q)

    points = accuracy.join_actuals(accuracy.latest_forecast_per_point([old, new], COLUMNS), actuals, COLUMNS)
    assert len(points) == 2 * 4  # 01-02, 01-03 from e1; 01-04, 01-05 from e2 (newer wins)
    assert set(points.loc[points["timestamp"] >= "2024-01-04", "_forecast_execution"]) == {"e2"}
    a = points["_actual"].to_numpy()
    assert result["wql"] == pytest.approx(metrics.wql(a, {q: points[q].to_numpy() for q in Q}))
    assert result["wape"] == pytest.approx(metrics.wape(a, points["mean"].to_numpy()))
    assert result["periods"] == 4 and result["items"] == 2 and result["model_package_arn"] == "arn/2"
    assert sorted(result["by_model_version"]) == ["1", "2"]
    assert result["by_model_version"]["1"]["points"] == 4
    assert sorted(result["by_attribute"]["category"]) == ["A", "B"]


def test_given_no_actual_for_any_stored_forecast_then_there_is_nothing_to_report():
    run = ({"execution_id": "e1", "created": "x"}, _forecast(["a"], "2024-02-01", 3, 1.0))
    assert accuracy.accuracy_of_previous_forecasts([run], _actuals(["a"], "2024-01-01", 5, 1.0), COLUMNS, Q) is None
    assert accuracy.accuracy_of_previous_forecasts([], _actuals(["a"], "2024-01-01", 5, 1.0), COLUMNS, Q) is None


def test_given_stored_forecasts_without_a_quantile_then_the_error_names_it():
    frame = _forecast(["a"], "2024-01-01", 2, 1.0).drop(columns=["p90"])
    with pytest.raises(ValueError, match=r"run-1/forecasts.csv: stored forecasts lack column\(s\) \['p90'\]"):
        accuracy.read_stored_forecasts(frame.to_csv(index=False).encode(), "run-1/forecasts.csv", COLUMNS, Q)


def test_given_stored_forecasts_then_item_ids_stay_text():
    frame = _forecast(["007"], "2024-01-01", 2, 1.0)
    read = accuracy.read_stored_forecasts(frame.to_csv(index=False).encode(), "f.csv", COLUMNS, Q)
    assert list(read[COLUMNS.item_id].unique()) == ["007"]


def test_the_history_frame_is_oldest_first():
    frame = accuracy.history_frame(
        [
            {"execution_id": "b", "created": "2024-02", "wql": np.float64(0.2)},
            {"execution_id": "a", "created": "2024-01", "wql": 0.1},
        ]
    )
    assert list(frame["execution_id"]) == ["a", "b"]


def test_given_periods_scored_before_then_only_the_new_actuals_count():
    run = (
        {"execution_id": "e1", "created": "2024-01-01", "model_package_arn": "arn/1", "model_package_version": 1},
        _forecast(["a"], "2024-01-02", 6, 10.0),
    )
    actuals = _actuals(["a"], "2024-01-01", 7, 12.0)  # actuals up to 2024-01-07
    everything = accuracy.accuracy_of_previous_forecasts([run], actuals, COLUMNS, Q)
    later = accuracy.accuracy_of_previous_forecasts([run], actuals, COLUMNS, Q, after=everything["start"])
    assert everything["periods"] == 6 and later["periods"] == 5 and later["start"] == "2024-01-03"
    assert accuracy.accuracy_of_previous_forecasts([run], actuals, COLUMNS, Q, after=everything["end"]) is None


def test_join_actuals_is_the_inner_join_with_every_observed_actual():
    """Only rows at forecast timestamps are picked before the join: the same rows, order and
    values as joining every observed actual (missing actuals, other days, repeated keys)."""
    days = pd.date_range("2024-01-01", periods=6)
    forecasts = pd.DataFrame(
        {
            "item_id": ["b", "a", "a", "c", "b"],
            "timestamp": days[[4, 3, 4, 5, 4]],
            "p50": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    actuals = pd.DataFrame(
        {
            "item_id": ["a"] * 6 + ["b"] * 6 + ["b"],
            "timestamp": list(days) * 2 + [days[4]],
            "target_value": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, np.nan, 12.0, 13.0],
            "region": ["x"] * 13,
        }
    )
    keys = ["item_id", "timestamp"]
    every = actuals.dropna(subset=["target_value"])[keys + ["target_value"]].rename(
        columns={"target_value": accuracy.ACTUAL}
    )
    expected = forecasts.merge(every, on=keys, how="inner")
    joined = accuracy.join_actuals(forecasts, actuals, COLUMNS)
    pd.testing.assert_frame_equal(joined, expected)
    assert joined[accuracy.ACTUAL].tolist() == [13.0, 4.0, 5.0, 13.0]  # b's missing day-5 actual is not scored
