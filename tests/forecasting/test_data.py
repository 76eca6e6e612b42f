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


# --- the panel built on the long arrays (engine._prepare) -------------------------------------
def _training_frame(n_series: int, n_days: int, seed: int = 0) -> pd.DataFrame:
    """Sorted, regular daily rows (PrepareData's output layout) with two covariates and a static."""
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"{i:03d}" for i in range(n_series)], n_days)
    return pd.DataFrame(
        {
            "item_id": ids,
            "timestamp": np.tile(pd.date_range("2024-01-01", periods=n_days).strftime("%Y-%m-%d"), n_series),
            "target_value": rng.gamma(2.0, 10.0, n_series * n_days).round(1),
            "promotion": rng.integers(0, 2, n_series * n_days),
            "price": rng.normal(10.0, 1.0, n_series * n_days),
            "category": np.where(np.arange(n_series * n_days) // n_days % 2 == 0, "books", "toys"),
        }
    )


def test_given_unsorted_rows_with_duplicates_and_gaps_then_the_panel_is_the_hand_made_one():
    from forecasting.engine import _prepare

    rows = pd.DataFrame(
        {
            "item_id": ["b", "a", "a", "b", "a"],
            "timestamp": ["2024-01-02", "2024-01-04", "2024-01-01", "2024-01-01", "2024-01-01"],
            "target_value": [2.0, 3.0, 1.0, 1.0, 0.5],
            "promotion": [0, 1, 0, 1, 1],
            "price": [5.0, np.nan, 4.0, 6.0, 4.0],
        }
    )
    _, roles, _, panel = _prepare(rows, EngineConfig(), "test")
    assert roles.covariates == ["promotion", "price"]
    assert panel.uids.tolist() == ["a", "b"] and panel.indptr.tolist() == [0, 4, 6]
    # a: 01-01 twice (summed 1.5), 01-02 and 01-03 missing (filled 0), 01-04 = 3
    assert panel.y.tolist() == [1.5, 0.0, 0.0, 3.0, 1.0, 2.0]
    assert panel.ds.astype("datetime64[D]").astype(str).tolist() == [
        "2024-01-01",
        "2024-01-02",
        "2024-01-03",
        "2024-01-04",
        "2024-01-01",
        "2024-01-02",
    ]
    assert panel.X[:, 0].tolist() == [0.5, 0.0, 0.0, 1.0, 1.0, 0.0]  # promotion averaged on the duplicate day
    assert panel.X[:, 1].tolist() == [4.0, 0.0, 0.0, 0.0, 6.0, 5.0]  # a's empty price on 01-04 middlefilled 0


def test_given_sorted_rows_with_trailing_empty_targets_then_those_rows_are_not_history():
    from forecasting.engine import _prepare

    rows = pd.DataFrame(
        {
            "item_id": ["a", "a", "a", "b", "b", "b"],
            "timestamp": ["2024-01-01", "2024-01-02", "2024-01-03"] * 2,
            "target_value": [1.0, np.nan, 3.0, 4.0, np.nan, np.nan],
            "price": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    _, _, _, panel = _prepare(rows, EngineConfig(), "test")
    assert panel.indptr.tolist() == [0, 3, 4]
    assert panel.y.tolist() == [1.0, 0.0, 3.0, 4.0]  # a's gap middlefilled, b's tail dropped
    assert panel.X[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert panel.X.flags["F_CONTIGUOUS"]


def test_given_duplicate_rows_whose_targets_are_all_empty_then_that_period_is_no_sale_of_zero():
    from forecasting.engine import _prepare

    # b's last day comes twice, both rows without a target: not yet history, as one empty row is
    rows = pd.DataFrame(
        {
            "item_id": ["a", "a", "b", "b", "b", "b"],
            "timestamp": ["2024-01-01", "2024-01-01", "2024-01-01", "2024-01-02", "2024-01-03", "2024-01-03"],
            "target_value": [1.0, np.nan, 4.0, 2.0, np.nan, np.nan],
        }
    )
    _, _, _, panel = _prepare(rows, EngineConfig(), "test")
    assert panel.indptr.tolist() == [0, 1, 3]
    assert panel.y.tolist() == [1.0, 4.0, 2.0]  # a: 1 + empty = 1; b's empty 01-03 left out, not a 0


def test_given_sorted_regular_rows_then_the_panel_equals_the_long_frames_exactly():
    from forecasting.data import build_panel, infer_roles, static_frame, to_long_frame
    from forecasting.engine import _prepare

    frame = _training_frame(6, 40)
    frame.loc[[5, 50, 130], "target_value"] = np.nan  # middle gaps
    frame.loc[[7, 90], "price"] = np.nan
    config = EngineConfig()
    _, roles, static, panel = _prepare(frame, config, "test")
    long = to_long_frame(frame, config, infer_roles(frame, config), "test", training=True)
    expected = build_panel(long, roles.covariates, static_frame(frame, config, roles)[roles.static])
    assert panel.uids.tolist() == expected.uids.tolist() == [f"{i:03d}" for i in range(6)]
    np.testing.assert_array_equal(panel.indptr, expected.indptr)
    np.testing.assert_array_equal(panel.ds, expected.ds)
    assert panel.y.tobytes() == expected.y.tobytes()  # bit for bit, the dtype too
    assert panel.X.dtype == np.float64 and panel.X.tobytes(order="F") == expected.X.tobytes(order="F")
    assert panel.X.flags["F_CONTIGUOUS"] and expected.X.flags["F_CONTIGUOUS"]
    assert panel.y[5] == 0.0 and panel.X[7, 1] == 0.0  # middlefill zero
    np.testing.assert_array_equal(panel.X[:, 0], frame["promotion"].to_numpy(float))  # integers exact as floats


def test_the_panel_of_sorted_input_costs_no_long_frame_copy():
    """_prepare's peak sets a 25,000-series training's. Measured in 8-byte columns of the input's
    rows (tracemalloc sees numpy's buffers): through a long frame (and its boolean-row copy, its
    block consolidation and frame[covariates].to_numpy()) it was ~20; on the arrays ~12, of which
    5 are the panel kept (ds, y, two covariates, the ids) and ~8 column roles' and statics' hashing."""
    import tracemalloc

    from forecasting.engine import _prepare

    frame = _training_frame(40, 2500)  # 100,000 rows
    for name in ("item_id", "timestamp", "category"):  # as read_table reads a CSV
        frame[name] = frame[name].astype("category")
    column = len(frame) * 8
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        _, _, _, panel = _prepare(frame, EngineConfig(), "test")
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert panel.n_series == 40 and len(panel.y) == len(frame)
    assert peak < 14 * column, f"peak {peak / column:.1f} columns"


def test_given_ids_that_look_like_numbers_in_a_csv_then_every_one_is_its_own_series(tmp_path):
    from forecasting.engine import _prepare

    frame = _training_frame(4, 30)
    frame["item_id"] = frame["item_id"].map({"000": "007", "001": "7", "002": "0.10", "003": "0.1"})
    frame = frame.sort_values(["item_id", "timestamp"], kind="stable")
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    _, _, static, panel = _prepare(path, EngineConfig(), str(path))
    assert sorted(panel.uids.tolist()) == ["0.1", "0.10", "007", "7"]
    assert sorted(static["item_id"].tolist()) == ["0.1", "0.10", "007", "7"]
    assert panel.lengths.tolist() == [30] * 4
