"""Input drift since training: new, gone and moved items, from the evaluation's per_item table."""

from __future__ import annotations

import pandas as pd
import pytest

from evaluation import drift
from processing.reporting import Columns

COLUMNS = Columns("item_id", "timestamp", "target_value")


def _history(levels, days=6):
    return pd.DataFrame(
        [
            {"item_id": item, "timestamp": pd.Timestamp("2024-01-01") + pd.Timedelta(days=d), "target_value": level}
            for item, level in levels.items()
            for d in range(days)
        ]
    )


def test_given_new_gone_and_moved_items_then_each_is_stated():
    per_item = pd.DataFrame({"item_id": ["a", "b", "c", "z"], "n": [3, 3, 3, 3], "actual_sum": [30.0, 30.0, 0.0, 3.0]})
    history = _history({"a": 11.0, "b": 35.0, "c": 4.0, "new": 5.0, "refused": 1.0})
    forecasts = pd.DataFrame({"item_id": ["a", "b", "c", "new"]})
    statement = drift.input_drift(per_item, history, forecasts, COLUMNS, factor=2.0)

    assert statement["disappeared_items"] == ["z"]
    assert {n["item_id"]: n["handling"].split(":")[0] for n in statement["new_items"]} == {
        "new": "forecast by the model from its own history (not seen in training)",
        "refused": "refused",
    }
    assert statement["new_items_refused"] == ["refused"]
    moved = {s["item_id"]: s for s in statement["level_shifts"]}
    assert set(moved) == {"b", "c"}  # a: 11 vs 10 is no move; b: 35 vs 10 is x3.5; c: from zero to 4
    assert moved["b"]["ratio"] == 3.5 and moved["c"]["ratio"] is None
    assert statement["level_periods"] == 3


def test_given_no_per_item_table_then_drift_is_unavailable_and_says_why():
    statement = drift.input_drift(None, _history({"a": 1.0}), pd.DataFrame({"item_id": ["a"]}), COLUMNS)
    assert statement == {"available": False, "reason": "the model's evaluation has no per_item.csv to compare with"}


def test_given_unsorted_duplicate_and_missing_rows_then_recent_levels_are_the_per_period_means():
    columns = Columns("item_id", "timestamp", "target_value")
    day = pd.Timestamp("2024-01-01")
    rows = [("a", day + pd.Timedelta(days=d), float(d)) for d in range(5)] + [("b", day, 7.0), ("b", day, 1.0)]
    rows += [("c", day, float("nan"))]
    history = pd.DataFrame(rows, columns=["item_id", "timestamp", "target_value"]).sample(frac=1.0, random_state=1)
    levels = drift.recent_levels(history, columns, periods=2)
    assert levels.to_dict() == {"a": 3.5, "b": 8.0}  # a: mean of days 3 and 4; b: one period summed; c: none
    one_row_per_period = history[history["item_id"] == "a"]
    assert drift.recent_levels(one_row_per_period, columns, periods=3).to_dict() == {"a": 3.0}


def test_given_unsorted_history_with_repeated_periods_and_number_ids_then_levels_are_the_per_item_means():
    """The coded-id path (one hash of the ids) gives what a groupby over text ids gives."""
    import numpy as np

    rng = np.random.default_rng(1)
    rows = [
        (item, pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(d)), float(rng.integers(0, 9)))
        for item in (7, 12, 3)
        for d in range(6)
    ]
    rows += [
        (12, pd.Timestamp("2024-01-06"), 5.0),
        (3, pd.Timestamp("2024-01-07"), np.nan),
    ]  # a repeated period, a missing actual
    history = pd.DataFrame(rows, columns=["item_id", "timestamp", "target_value"]).sample(frac=1.0, random_state=0)
    text = history.assign(item_id=history["item_id"].astype(str))
    expected = {}
    for item, part in text.dropna(subset=["target_value"]).groupby("item_id"):
        per_period = part.groupby("timestamp")["target_value"].sum()
        expected[item] = float(per_period.tail(3).mean())

    assert drift.recent_levels(text, COLUMNS, 3).to_dict() == pytest.approx(expected)
    coded = drift.recent_levels(history, COLUMNS, 3, drift._text_ids(history["item_id"]))
    assert coded.to_dict() == pytest.approx(expected)

    per_item = pd.DataFrame(
        {
            "item_id": ["3", "7", "12", "99"],
            "n": [3, 3, 3, 3],
            "actual_sum": [3.0 * expected["3"], 0.1, 3.0 * expected["12"], 3.0],
        }
    )
    statement = drift.input_drift(per_item, history, pd.DataFrame({"item_id": ["3", "7", "12"]}), COLUMNS)
    assert statement["disappeared_items"] == ["99"] and statement["new_items_count"] == 0
    assert [s["item_id"] for s in statement["level_shifts"]] == ["7"]


def test_given_only_unsorted_distinct_periods_then_the_last_periods_are_averaged():
    history = _history({"b": 2.0, "a": 4.0}, days=5).iloc[::-1]
    assert drift.recent_levels(history, COLUMNS, 2, drift._text_ids(history["item_id"])).to_dict() == {
        "a": 4.0,
        "b": 2.0,
    }
