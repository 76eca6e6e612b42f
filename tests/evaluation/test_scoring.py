"""evaluation.scoring: reading, joining, baseline, per-item and per-attribute scores, gate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evaluation import metrics, scoring
from evaluation.scoring import ACTUAL, SERIES, Columns
from processing.kernel import contracts

COLS = Columns()
Q = ["p10", "p50", "p90"]


def _load(ds):
    return (
        scoring.load_forecasts(ds.forecasts, COLS, Q),
        scoring.load_actuals(ds.actuals, COLS),
        scoring.load_history(ds.history, COLS),
    )


def test_given_history_when_static_attributes_then_category_and_region_only(dataset):
    history = scoring.load_history(dataset.history, COLS)
    # promo varies in time, price is a float, sku_name is unique per item: none is a breakdown
    assert scoring.static_attributes(history, COLS) == ["category", "region"]


def test_given_joined_frame_when_per_item_metrics_then_equal_to_metric_functions(dataset):
    fc, act, hist = _load(dataset)
    joined = scoring.join_forecasts(fc, act, COLS)
    histories = {k: g.to_numpy() for k, g in hist.groupby(SERIES)["target_value"]}
    scores = scoring.score(joined, histories, Q, season=7)
    for item, rows in joined.groupby(SERIES):
        a, f = rows[ACTUAL].to_numpy(), rows["mean"].to_numpy()
        got = scores.per_item.loc[item]
        assert got["mae"] == pytest.approx(metrics.mae(a, f))
        assert got["rmse"] == pytest.approx(metrics.rmse(a, f))
        assert got["bias"] == pytest.approx(metrics.bias(a, f))
        assert got["coverage"] == pytest.approx(metrics.coverage(a, rows["p10"], rows["p90"]))
        for key, fn in (("wape", metrics.wape), ("mape", metrics.mape), ("r2", metrics.r2)):
            expected = fn(a, f)
            assert (math.isnan(got[key]) and math.isnan(expected)) or got[key] == pytest.approx(expected)
        expected_wql = metrics.wql(a, {q: rows[q] for q in Q})
        assert (math.isnan(got["wql"]) and math.isnan(expected_wql)) or got["wql"] == pytest.approx(expected_wql)
    # the never-selling item: WAPE undefined, all 7 MAPE points skipped, MASE scale 0 reported
    zero = scores.per_item.loc["item_00"]
    assert math.isnan(zero["wape"]) and zero["mape_skipped"] == 7 and zero["mase_scale"] == 0
    assert scores.mase_zero_scale_items == ["item_00"]
    assert scores.mape_skipped == 7


def test_given_a_missing_item_when_joined_then_error_names_item_and_file(dataset):
    fc, act, _ = _load(dataset)
    fc = fc[fc["item_id"] != "item_05"]
    with pytest.raises(
        ValueError,
        match=r"7 holdout point\(s\) in \[.*holdout.csv'\] have no forecast; "
        r"items with no forecast at all: \['item_05'\]",
    ):
        scoring.join_forecasts(fc, act, COLS)


def test_given_an_extra_timestamp_when_joined_then_error_names_forecast_file(dataset):
    fc, act, _ = _load(dataset)
    extra = fc.iloc[[0]].copy()
    extra["timestamp"] = pd.Timestamp("2030-01-01")
    with pytest.raises(
        ValueError,
        match=r"1 forecast row\(s\) in \[.*part-00000.csv.out'\] match no holdout "
        r"actual \(first: item_00 @ 2030-01-01",
    ):
        scoring.join_forecasts(pd.concat([fc, extra], ignore_index=True), act, COLS)


def test_given_forecasts_without_a_quantile_column_when_loaded_then_error_names_file_and_column(dataset):
    path = dataset.forecasts / "part-00000.csv.out"
    dataset.forecast_frame.drop(columns=["p90"]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"forecasts file .*part-00000.csv.out lacks column\(s\) \['p90'\]"):
        scoring.load_forecasts(dataset.forecasts, COLS, Q)


def test_given_nan_forecast_when_loaded_then_error_names_file_column_and_item(dataset):
    frame = dataset.forecast_frame.copy()
    frame.loc[3, "mean"] = np.nan
    frame.to_csv(dataset.forecasts / "part-00000.csv.out", index=False)
    with pytest.raises(
        ValueError,
        match=r"part-00000.csv.out: column 'mean' has 1 missing, non-numeric or "
        r"infinite value\(s\) \(first: item 'item_00'",
    ):
        scoring.load_forecasts(dataset.forecasts, COLS, Q)


def test_given_duplicate_rows_when_loaded_then_error(dataset):
    frame = pd.concat([dataset.holdout_frame, dataset.holdout_frame.iloc[[0]]])
    frame.to_csv(dataset.actuals, index=False)
    with pytest.raises(ValueError, match=r"actuals file .*holdout.csv has 2 rows that repeat an item and timestamp"):
        scoring.load_actuals(dataset.actuals, COLS)


def test_given_empty_folder_when_read_then_error_says_what_was_expected(tmp_path):
    with pytest.raises(ValueError, match="forecasts folder .*: no .out, .out.gz, .csv"):
        scoring.load_forecasts(tmp_path, COLS, Q)


def test_given_history_when_seasonal_naive_then_repeats_last_season_with_residual_band():
    # history 1,2,3,4,5,9 (season 3): last season [4,5,9] -> holdout h=1..4 gets 4,5,9,4
    # seasonal differences y[t]-y[t-3] = [3,3,6]; quantiles: 0.1 -> 3, 0.5 -> 3, 0.9 -> 3 + 0.8*3 = 5.4
    days = pd.date_range("2024-01-01", periods=10, freq="D")
    history = pd.DataFrame({SERIES: "A", "timestamp": days[:6], "target_value": [1, 2, 3, 4, 5, 9.0]})
    holdout = pd.DataFrame({SERIES: "A", "timestamp": days[6:]})
    out = scoring.seasonal_naive_forecast(history, holdout, COLS, season=3, quantiles=Q)
    assert out["mean"].tolist() == [4, 5, 9, 4]
    assert out["p10"].tolist() == pytest.approx([7, 8, 12, 7])
    assert out["p90"].tolist() == pytest.approx([9.4, 10.4, 14.4, 9.4])


def test_given_unsorted_series_and_a_short_one_when_seasonal_naive_then_each_uses_its_own_lag():
    # A (6 points, season 3): last season [4,5,9] -> 4,5 ; B (2 points <= season): lag 1 -> last value 7, 7
    # B's lag-1 differences [7-3] = [4] -> every quantile offset 4 -> band 11 ; gap in A filled forward
    days = pd.date_range("2024-01-01", periods=8, freq="D")
    history = pd.DataFrame(
        {
            SERIES: ["B", "A", "A", "A", "A", "A", "A", "B"],
            "timestamp": [days[0], days[5], days[4], days[3], days[2], days[1], days[0], days[1]],
            "target_value": [3.0, 9.0, 5.0, 4.0, np.nan, 2.0, 1.0, 7.0],
        }
    )
    holdout = pd.DataFrame({SERIES: ["B", "A", "B", "A"], "timestamp": [days[2], days[6], days[3], days[7]]})
    out = scoring.seasonal_naive_forecast(history, holdout, COLS, season=3, quantiles=Q)
    assert out[SERIES].tolist() == ["A", "A", "B", "B"]
    assert out["mean"].tolist() == [4, 5, 7, 7]
    assert out["p50"].tolist()[2:] == [11, 11]


def test_given_holdout_item_missing_from_history_when_baseline_then_error_names_it():
    days = pd.date_range("2024-01-01", periods=3, freq="D")
    history = pd.DataFrame({SERIES: ["A", "A"], "timestamp": days[:2], "target_value": [1.0, 2.0]})
    holdout = pd.DataFrame({SERIES: ["Z"], "timestamp": days[2:]})
    with pytest.raises(ValueError, match=r"item\(s\) \['Z'\] are in the holdout but not in the training history"):
        scoring.seasonal_naive_forecast(history, holdout, COLS, season=7, quantiles=Q)


def test_given_grouping_columns_when_scored_then_each_item_and_group_is_a_series(tmp_path):
    cols = Columns(grouping=("store",))
    days = pd.date_range("2024-01-01", periods=10, freq="D").strftime("%Y-%m-%d")
    hist = pd.DataFrame(
        [
            {"item_id": "A", "store": s, "timestamp": d, "target_value": float(i + (s == "s2") * 10)}
            for s in ("s1", "s2")
            for i, d in enumerate(days[:8])
        ]
    )
    hold = pd.DataFrame(
        [{"item_id": "A", "store": s, "timestamp": d, "target_value": 5.0} for s in ("s1", "s2") for d in days[8:]]
    )
    fc = hold[["item_id", "store", "timestamp"]].copy()
    fc["p10"], fc["p50"], fc["p90"], fc["mean"] = 4.0, 5.0, 6.0, np.where(fc["store"] == "s1", 5.0, 7.0)
    hist.to_csv(tmp_path / "train.csv", index=False)
    hold.to_csv(tmp_path / "holdout.csv", index=False)
    fc.to_csv(tmp_path / "f.csv", index=False)
    ev = scoring.evaluate(
        scoring.load_forecasts(tmp_path / "f.csv", cols, Q),
        scoring.load_actuals(tmp_path / "holdout.csv", cols),
        scoring.load_history(tmp_path / "train.csv", cols),
        cols,
        Q,
        "D",
        "MAE",
        1.0,
    )
    per_item = ev.per_item.set_index(SERIES)
    # s1 perfect, s2 off by 2 on both days -> MAE 0 and 2 ; overall MAE 1 -> gate at 1.0 passes (<=)
    assert per_item.loc["A | s1", "mae"] == 0 and per_item.loc["A | s2", "mae"] == 2
    assert list(ev.per_item.columns[:3]) == [SERIES, "item_id", "store"]
    assert ev.report["quality_gate"] == {
        "metric": "MAE",
        "key": "mae",
        "value": 1.0,
        "defined": True,
        "threshold": 1.0,
        "passed": True,
        "message": "MAE = 1 is within QualityThreshold 1",
    }


def test_given_model_and_baseline_when_skill_then_relative_improvement():
    model = {"mae": 1.0, "rmse": 2.0, "mape": float("nan"), "mase": 0.5, "wape": 0.2, "wql": 0.3, "bias": -1.0}
    base = {"mae": 2.0, "rmse": 2.0, "mape": 0.5, "mase": 0.0, "wape": 0.1, "wql": 0.6, "bias": 4.0}
    got = scoring.skill(model, base)
    # 1 - 1/2 = 0.5 ; 1 - 2/2 = 0 ; undefined model -> None ; zero baseline -> None ;
    # 1 - 0.2/0.1 = -1 (worse) ; 1 - 0.3/0.6 = 0.5 ; bias on magnitudes 1 - 1/4 = 0.75
    assert got == {"mae": 0.5, "rmse": 0.0, "mape": None, "mase": None, "wape": -1.0, "wql": 0.5, "bias": 0.75}


@pytest.mark.parametrize("metric", ["WAPE", "wape", " Wql "])
def test_given_metric_in_any_case_when_gate_then_maps_to_forecast_metric(metric):
    gate = scoring.quality_gate({"wape": 0.25, "wql": 0.35}, metric, 0.3)
    expected_key = contracts.QUALITY_METRICS[metric.strip().upper()]
    assert gate["key"] == expected_key and gate["passed"] is (expected_key == "wape")


def test_given_unknown_metric_when_gate_then_error_lists_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"unknown quality metric 'SMAPE'; valid QualityMetric values are "
        r"\['MAE', 'MAPE', 'MASE', 'RMSE', 'WAPE', 'WQL'\]",
    ):
        scoring.quality_gate({"wape": 0.1}, "SMAPE", 0.3)


def test_given_undefined_metric_when_gate_then_a_number_no_threshold_admits_a_flag_and_the_reason():
    import json

    gate = scoring.quality_gate({"wape": float("nan")}, "WAPE", 0.3)
    assert gate["value"] == contracts.QUALITY_GATE_UNDEFINED_VALUE and gate["defined"] is False
    assert gate["passed"] is False and gate["message"].startswith("WAPE is undefined on this holdout")
    # what the QualityGate reads is a JSON number, comparable with any threshold
    assert isinstance(json.loads(json.dumps(gate))["value"], float)
    assert not gate["value"] <= 1e300


def test_given_nested_json_when_get_path_then_follows_dots_and_names_missing_key():
    doc = {"quality_gate": {"value": 0.2}}
    assert scoring.get_path(doc, contracts.QUALITY_GATE_VALUE_PATH) == 0.2
    with pytest.raises(KeyError, match="no key 'value'"):
        scoring.get_path({"quality_gate": {}}, "quality_gate.value")


def test_given_crossing_quantiles_when_evaluated_then_counted_and_warned(dataset):
    fc, act, hist = _load(dataset)
    fc.loc[:2, "p10"] = fc.loc[:2, "p90"] + 1  # 3 rows with p10 above p90 (and p50)
    ev = scoring.evaluate(fc, act, hist, COLS, Q, "D", "WAPE", 0.3)
    assert ev.report["details"]["crossing_quantile_rows"] == 3
    assert any(w.startswith("3 forecast row(s) have crossing quantiles") for w in ev.report["warnings"])


def test_given_a_history_file_when_loaded_then_text_is_categorical_and_attributes_come_back_plain(tmp_path):
    # given two attributes of which only two of the four combinations occur
    rows = ["item_id,timestamp,target_value,category,region"]
    for item, category, region in (("a", "books", "North"), ("b", "toys", "South")):
        rows += [f"{item},2024-01-0{d},{d}.5,{category},{region}" for d in range(1, 4)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    columns = Columns(item_id="item_id", timestamp="timestamp", target="target_value", grouping=())
    # when the history is loaded (27M rows at 25,000 daily series: categories, not a string per row)
    history = scoring.load_history(tmp_path / "train.csv", columns)
    assert isinstance(history["category"].dtype, pd.CategoricalDtype)
    assert history["target_value"].tolist() == [1.5, 2.5, 3.5] * 2
    # then the per-series attribute table holds plain values: no unobserved combinations
    table = scoring.attribute_table(history, ["category", "region"])
    assert table["category"].dtype == object
    assert table.groupby(["category", "region"]).size().to_dict() == {("books", "North"): 1, ("toys", "South"): 1}


def test_given_holdout_errors_that_persist_over_the_horizon_then_the_spread_factor_measures_the_totals():
    """Every item misses by the same level error over its horizon (perfectly correlated errors):
    the total's error is H x sigma, sqrt(H) times the root-sum-square of the periods' sigmas."""
    rng = np.random.default_rng(5)
    items, horizon, sigma = 60, 7, 2.0
    level_error = rng.normal(0, sigma, items)
    rows = []
    for i in range(items):
        for t in range(horizon):
            mean = 50.0 + i
            half = sigma * 1.2815516  # p10/p90 of a normal with this sigma
            rows.append((f"item{i}", t, mean + level_error[i], mean - half, mean, mean + half, mean))
    joined = pd.DataFrame(rows, columns=[SERIES, "step", ACTUAL, "p10", "p50", "p90", "mean"])
    section = scoring.horizon_totals(joined, Q)
    expected = 1.482602 * np.median(np.abs(level_error * horizon / (sigma * np.sqrt(horizon))))
    assert section["spread_factor"] == pytest.approx(expected, rel=1e-4)
    assert section["spread_factor"] == pytest.approx(np.sqrt(horizon), rel=0.3)  # ~ sqrt(H) for this draw
    assert scoring.horizon_totals(joined[joined[SERIES].isin(["item1", "item2"])], Q)["spread_factor"] is None
    assert scoring.horizon_totals(joined, ["p50"])["spread_factor"] is None  # no band to read a sigma from


def test_given_a_holdout_when_evaluated_then_the_report_has_its_horizon_totals(dataset):
    fc, act, hist = _load(dataset)
    report = scoring.evaluate(fc, act, hist, COLS, Q, "D", "WAPE", 0.3).report
    assert set(report["horizon_totals"]) == {"spread_factor", "basis"}


def test_given_a_history_with_covariates_when_loaded_then_only_what_the_scoring_reads_is_kept(tmp_path):
    # given two series with a static attribute, an integer covariate varying in time and a float one
    rows = ["item_id,timestamp,target_value,promotion,price,region,pack"]
    for item, region, pack in (("a", "North", 6), ("b", "South", 12), ("c", "North", 6)):
        rows += [f"{item},2024-01-0{d},{d},{d % 2},{d}.25,{region},{pack}" for d in range(1, 5)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    columns = Columns(item_id="item_id", timestamp="timestamp", target="target_value", grouping=())
    # when it is loaded (the seed's 5 covariates at 25,000 series: 1.1 GB carried through the sort)
    history = scoring.load_history(tmp_path / "train.csv", columns)
    # then the covariates are gone and what is constant per series, numbers too, stays for breakdowns
    assert "promotion" not in history.columns and "price" not in history.columns
    assert {"region", "pack"} <= set(history.columns)
    assert scoring.static_attributes(history, columns) == ["region", "pack"]
    assert history["target_value"].tolist() == [1.0, 2.0, 3.0, 4.0] * 3


def test_given_items_of_different_sizes_when_scored_then_per_item_r2_median_is_not_the_pooled_r2():
    # a flat forecast at each item's level explains none of its own variation (R² <= 0 per item),
    # yet pooled R² is near 1: the sizes (10 against 10,000) carry the pooled variance
    rng = np.random.default_rng(0)
    rows = []
    for item, level in (("small", 10.0), ("large", 10_000.0), ("mid", 500.0)):
        actual = level * (1 + 0.1 * rng.standard_normal(14))
        rows += [
            {SERIES: item, ACTUAL: a, "mean": level, "p10": level * 0.9, "p50": level, "p90": level * 1.1}
            for a in actual
        ]
    rows += [{SERIES: "flat", ACTUAL: 3.0, "mean": 3.0, "p10": 2.0, "p50": 3.0, "p90": 4.0} for _ in range(14)]
    frame = pd.DataFrame(rows)
    histories = {item: rows[ACTUAL].to_numpy() for item, rows in frame.groupby(SERIES)}
    scores = scoring.score(frame, histories, Q, season=7)
    per_item = scores.per_item["r2"]
    assert math.isnan(per_item["flat"])  # no variance to explain: left out of the median
    assert scores.overall["r2"] > 0.99
    assert scores.overall["r2_item_median"] == pytest.approx(float(np.median(per_item.drop("flat"))))
    assert scores.overall["r2_item_median"] < 0.05
