"""The engine fills gaps the way the PrepareData step does: one rule, processing.data_prep.apply_fill."""
from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.config import EngineConfig
from forecasting.data import ColumnRoles, _apply_filling


def _long(values_a, values_b):
    n_a, n_b = len(values_a), len(values_b)
    return pd.DataFrame({"unique_id": ["a"] * n_a + ["b"] * n_b,
                         "ds": list(pd.date_range("2024-01-01", periods=n_a)) + list(pd.date_range("2024-01-01", periods=n_b)),
                         "y": list(values_a) + list(values_b)})


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
    assert _apply_filling(long, config, ColumnRoles([], [], []), training=True)["y"].iloc[74] == 1.0  # the zeros are 65+ back


def test_zero_and_value_fills_are_unchanged():
    long = _long([1.0, np.nan, 3.0], [np.nan, 2.0])
    zero = _apply_filling(long.copy(), EngineConfig(), ColumnRoles([], [], []), training=False)
    assert zero["y"].tolist() == [1.0, 0.0, 3.0, 0.0, 2.0]
    config = EngineConfig(filling={"target_value": {"middlefill": "value", "middlefill_value": "7"}})
    assert _apply_filling(long, config, ColumnRoles([], [], []), training=False)["y"].tolist() == [1.0, 7.0, 3.0, 7.0, 2.0]
