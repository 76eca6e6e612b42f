"""The engine fills gaps the way the PrepareData step does: one rule, processing.data_prep.apply_fill."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.config import EngineConfig
from forecasting.data import ColumnRoles, _apply_filling


def _long(values_a, values_b):
    n_a, n_b = len(values_a), len(values_b)
    return pd.DataFrame(
        {
            "unique_id": ["a"] * n_a + ["b"] * n_b,
            "ds": list(pd.date_range("2024-01-01", periods=n_a)) + list(pd.date_range("2024-01-01", periods=n_b)),
            "y": list(values_a) + list(values_b),
        }
    )


def test_a_mean_middlefill_is_the_series_own_recent_mean_not_the_columns():
    # a: 1, 2, gap, 3 -> the gap gets the mean of a's observed values so far (1, 2) = 1.5;
    # the whole column's mean (with b's 100s) would be 41.2
    long = _long([1.0, 2.0, np.nan, 3.0], [100.0, 100.0, np.nan, 100.0])
    config = EngineConfig(filling={"target_value": {"middlefill": "mean"}})
    filled = _apply_filling(long, config, ColumnRoles([], [], []), training=True)
    assert filled["y"].tolist() == [1.0, 2.0, 1.5, 3.0, 100.0, 100.0, 100.0, 100.0]


def test_the_statistic_looks_back_at_most_64_values():
    history = [0.0] * 10 + [1.0] * 64
    long = _long(history + [np.nan, 5.0], [1.0])
    config = EngineConfig(filling={"target_value": {"middlefill": "max"}})
    assert _apply_filling(long, config, ColumnRoles([], [], []), training=True)["y"].iloc[74] == 1.0
    config = EngineConfig(filling={"target_value": {"middlefill": "min"}})
    assert (
        _apply_filling(long, config, ColumnRoles([], [], []), training=True)["y"].iloc[74] == 1.0
    )  # the zeros are 65+ back


def test_zero_and_value_fills_are_unchanged():
    long = _long([1.0, np.nan, 3.0], [np.nan, 2.0])
    zero = _apply_filling(long.copy(), EngineConfig(), ColumnRoles([], [], []), training=False)
    assert zero["y"].tolist() == [1.0, 0.0, 3.0, 0.0, 2.0]
    config = EngineConfig(filling={"target_value": {"middlefill": "value", "middlefill_value": "7"}})
    assert _apply_filling(long, config, ColumnRoles([], [], []), training=False)["y"].tolist() == [
        1.0,
        7.0,
        3.0,
        7.0,
        2.0,
    ]


# --- bad input: one error naming the row (as the file numbers it: the header is row 1), column and value
def _input(**columns):
    frame = pd.DataFrame(
        {
            "item_id": "a",
            "timestamp": [f"2024-01-0{d}" for d in range(1, 6)],
            "target_value": [1.0, 2.0, 3.0, 4.0, 5.0],
            "promotion": [0, 1, 0, 1, 0],
        }
    )
    for name, values in columns.items():
        frame[name] = pd.Series(values, dtype=object)
    return frame


def _refusal(frame: pd.DataFrame, covariates=("promotion",)) -> str:
    import pytest

    from forecasting.data import to_long_frame

    with pytest.raises(ValueError) as raised:
        to_long_frame(
            frame, EngineConfig(horizon=2), ColumnRoles(list(covariates), [], []), "input.csv", training=False
        )
    return str(raised.value)


def test_given_mixed_timestamp_formats_then_the_first_odd_row_is_named_with_its_value():
    stamps = ["2024-01-01 13:37:00", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    message = _refusal(_input(timestamp=stamps))
    assert "row 2" in message and "'2024-01-01 13:37:00'" in message
    assert "row 3" not in message.split("'2024-01-01 13:37:00'")[0]  # the valid row 3 is not the culprit
    assert "column 'timestamp'" in message and "one format" in message


def test_given_an_unreadable_timestamp_after_good_ones_then_its_row_is_named():
    message = _refusal(_input(timestamp=["2024-01-01", "2024-01-02", "soon", "2024-01-04", "2024-01-05"]))
    assert "row 4" in message and "'soon'" in message


def test_given_a_boolean_target_then_refused_naming_row_and_column():
    message = _refusal(_input(target_value=[1.0, 2.0, True, 4.0, None]))
    assert "column 'target_value'" in message and "row 4" in message and "True" in message


def test_given_a_non_numeric_covariate_then_refused_as_such_naming_row_and_column():
    message = _refusal(_input(promotion=[0, 1, 0, "yes", 0]))
    assert "column 'promotion'" in message and "row 5" in message and "'yes'" in message
    assert "not a number" in message and "empty future values" not in message


def test_given_booleans_and_empty_cells_in_a_covariate_then_they_are_accepted():
    from forecasting.data import to_long_frame

    frame = _input(promotion=[True, False, None, 1, ""])
    long = to_long_frame(
        frame, EngineConfig(horizon=2), ColumnRoles(["promotion"], [], []), "input.csv", training=False
    )
    assert long["promotion"].tolist()[:2] == [1.0, 0.0] and long["promotion"].tolist()[3] == 1.0
