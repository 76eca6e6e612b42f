"""evaluation.metrics: hand-computed values, edge cases, and an independent cross-check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_pinball_loss,
    mean_squared_error,
    r2_score,
)

from evaluation import metrics

# The worked example used throughout:
#   actual   a = [2, 4, 0, 6]         sum|a| = 12, mean(a) = 3
#   forecast f = [3, 2, 1, 8]         f - a  = [1, -2, 1, 2], |f - a| = [1, 2, 1, 2] (sum 6)
A = [2.0, 4.0, 0.0, 6.0]
F = [3.0, 2.0, 1.0, 8.0]
#   p10 = [1, 3, 0, 4]                a - p10 = [1, 1, 0, 2]  (all >= 0)
#   p90 = [3, 5, 2, 5.5]              a - p90 = [-1, -1, -2, 0.5]
P10 = [1.0, 3.0, 0.0, 4.0]
P90 = [3.0, 5.0, 2.0, 5.5]


def test_given_worked_example_when_point_metrics_then_match_hand_arithmetic():
    # MAE  = (1 + 2 + 1 + 2) / 4 = 1.5
    assert metrics.mae(A, F) == pytest.approx(1.5)
    # RMSE = sqrt((1 + 4 + 1 + 4) / 4) = sqrt(2.5)
    assert metrics.rmse(A, F) == pytest.approx(math.sqrt(2.5))
    # WAPE = 6 / 12 = 0.5
    assert metrics.wape(A, F) == pytest.approx(0.5)
    # bias = (1 - 2 + 1 + 2) / 4 = 0.5 (over-forecast); relative = 2 / 12
    assert metrics.bias(A, F) == pytest.approx(0.5)
    assert metrics.relative_bias(A, F) == pytest.approx(2 / 12)
    # R2 = 1 - SSres/SStot = 1 - 10 / ((2-3)^2 + (4-3)^2 + (0-3)^2 + (6-3)^2) = 1 - 10/20 = 0.5
    assert metrics.r2(A, F) == pytest.approx(0.5)


def test_given_a_zero_actual_when_mape_then_it_is_skipped_and_counted():
    # non-zero points: |3-2|/2 = 0.5, |2-4|/4 = 0.5, |8-6|/6 = 1/3  -> mean = (4/3)/3 = 4/9
    result = metrics.mape_details(A, F)
    assert result.value == pytest.approx(4 / 9)
    assert (result.used, result.skipped) == (3, 1)
    assert metrics.mape(A, F) == pytest.approx(4 / 9)


def test_given_quantiles_when_wql_then_mean_of_per_quantile_weighted_losses():
    # pinball p10 = 0.1 * [1, 1, 0, 2]                          = 0.4  (all under-forecasts)
    # pinball p90 = 0.1 * (1 + 1 + 2) + 0.9 * 0.5 = 0.4 + 0.45    = 0.85
    # wQL[p10] = 2 * 0.4 / 12 = 0.8/12 ; wQL[p90] = 2 * 0.85 / 12 = 1.7/12
    # wql = (0.8 + 1.7) / 2 / 12 = 1.25 / 12
    assert metrics.wql(A, {"p10": P10, "p90": P90}) == pytest.approx(1.25 / 12)
    assert metrics.wql(A, {"p10": P10}) == pytest.approx(0.8 / 12)


def test_given_median_only_when_wql_then_it_equals_wape():
    # pinball at 0.5 is |e| / 2, so 2 * sum / sum|a| = WAPE
    assert metrics.wql(A, {"p50": F}) == pytest.approx(metrics.wape(A, F))


def test_given_interval_when_coverage_then_share_inside_closed_interval():
    # 2 in [1,3], 4 in [3,5], 0 in [0,2] (closed at the edge), 6 not in [4,5.5] -> 3/4
    assert metrics.coverage(A, P10, P90) == pytest.approx(0.75)


@pytest.mark.parametrize("name,level", [("p10", 0.1), ("p50", 0.5), ("p90", 0.9), ("p5", 0.05), ("p99", 0.99)])
def test_given_quantile_name_when_level_then_fraction(name, level):
    assert metrics.quantile_level(name) == pytest.approx(level)


@pytest.mark.parametrize("bad", ["0.1", "p0", "p100", "P10x", "q10", ""])
def test_given_bad_quantile_name_when_level_then_error_shows_the_form(bad):
    with pytest.raises(ValueError, match="not of the form p1..p99"):
        metrics.quantile_level(bad)


def test_given_all_zero_actuals_when_volume_metrics_then_undefined_not_infinite():
    zeros, f = [0.0, 0.0, 0.0], [1.0, 0.0, 2.0]
    assert math.isnan(metrics.wape(zeros, f))
    assert math.isnan(metrics.wql(zeros, {"p50": f}))
    assert math.isnan(metrics.relative_bias(zeros, f))
    result = metrics.mape_details(zeros, f)
    assert math.isnan(result.value) and (result.used, result.skipped) == (0, 3)
    # MAE = (1 + 0 + 2) / 3 = 1 is still defined
    assert metrics.mae(zeros, f) == pytest.approx(1.0)


def test_given_perfect_forecast_of_zeros_when_scored_then_errors_are_zero():
    assert metrics.mae([0, 0], [0, 0]) == 0.0
    assert metrics.rmse([0, 0], [0, 0]) == 0.0
    assert metrics.coverage([0, 0], [0, 0], [0, 0]) == 1.0


def test_given_constant_actuals_when_r2_then_undefined_and_others_defined():
    a, f = [5.0, 5.0, 5.0], [4.0, 5.0, 7.0]
    assert math.isnan(metrics.r2(a, f))
    # WAPE = (1 + 0 + 2) / 15 = 0.2 ; MAPE = (1/5 + 0 + 2/5) / 3 = 0.2
    assert metrics.wape(a, f) == pytest.approx(0.2)
    assert metrics.mape(a, f) == pytest.approx(0.2)


def test_given_one_point_when_scored_then_defined_metrics_and_undefined_r2():
    # a = 5, f = 4: MAE = RMSE = 1, WAPE = MAPE = 1/5, bias = -1
    assert metrics.mae([5], [4]) == 1.0 and metrics.rmse([5], [4]) == 1.0
    assert metrics.wape([5], [4]) == pytest.approx(0.2) and metrics.mape([5], [4]) == pytest.approx(0.2)
    assert metrics.bias([5], [4]) == -1.0
    assert math.isnan(metrics.r2([5], [4]))


@pytest.mark.parametrize("fn", [metrics.mae, metrics.rmse, metrics.wape, metrics.mape, metrics.bias, metrics.r2])
def test_given_nan_forecast_when_scored_then_clear_error(fn):
    with pytest.raises(ValueError, match=r"forecast contains 1 NaN or infinite value\(s\) \(first positions \[1\]\)"):
        fn([1.0, 2.0, 3.0], [1.0, float("nan"), 3.0])


def test_given_nan_quantile_when_wql_then_error_names_the_quantile():
    with pytest.raises(ValueError, match="quantile forecast 'p90' contains 1 NaN"):
        metrics.wql([1.0, 2.0], {"p10": [1.0, 1.0], "p90": [float("inf"), 2.0]})


def test_given_misaligned_or_empty_inputs_when_scored_then_clear_error():
    with pytest.raises(ValueError, match="actual has 2 values but forecast has 3"):
        metrics.mae([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="no values to score"):
        metrics.wape([], [])
    with pytest.raises(ValueError, match="at least one quantile"):
        metrics.wql([1.0], {})


# ----------------------------------------------------------------------------- MASE
def test_given_history_when_seasonal_naive_scale_then_in_sample_seasonal_mae():
    h = [1, 2, 3, 1, 2, 5]
    # season 3: |1-1|, |2-2|, |5-3| -> (0 + 0 + 2) / 3
    assert metrics.seasonal_naive_scale(h, 3) == pytest.approx(2 / 3)
    # season 1: |1|,|1|,|-2|,|1|,|3| -> 8 / 5
    assert metrics.seasonal_naive_scale(h, 1) == pytest.approx(1.6)
    # season 7 > length 6: falls back to lag 1
    assert metrics.seasonal_naive_scale(h, 7) == pytest.approx(1.6)
    # constant history -> 0 ; one point -> undefined ; gaps drop their pairs: [1, nan, 3, 4] lag 1 -> |4-3| = 1
    assert metrics.seasonal_naive_scale([4, 4, 4, 4], 2) == 0.0
    assert math.isnan(metrics.seasonal_naive_scale([4], 7))
    assert metrics.seasonal_naive_scale([1, float("nan"), 3, 4], 1) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="season must be a positive integer"):
        metrics.seasonal_naive_scale(h, 0)


def test_given_items_when_mase_then_mean_of_item_mae_over_training_scale_and_zero_scale_reported():
    # A: history [1,2,3,1,2,5] season 3 -> scale 2/3 ; holdout a=[2,3] f=[3,3] -> MAE 0.5 -> MASE 0.75
    # B: history constant -> scale 0 -> excluded and reported
    # C: history [10,20,10,30] season 3 -> |30-10| = 20 ; a=[10,10] f=[20,40] -> MAE 20 -> MASE 1.0
    # MASE = (0.75 + 1.0) / 2 = 0.875
    ids = ["A", "A", "B", "B", "C", "C"]
    a = [2, 3, 7, 7, 10, 10]
    f = [3, 3, 6, 8, 20, 40]
    histories = {"A": [1, 2, 3, 1, 2, 5], "B": [7, 7, 7, 7], "C": [10, 20, 10, 30]}
    result = metrics.mase(a, f, ids, histories, season=3)
    assert result.value == pytest.approx(0.875)
    assert result.per_item["A"] == pytest.approx(0.75) and result.per_item["C"] == pytest.approx(1.0)
    assert math.isnan(result.per_item["B"])
    assert result.zero_scale_items == ["B"] and result.short_history_items == []
    assert result.scales["A"] == pytest.approx(2 / 3)


def test_given_same_holdout_when_mase_then_scale_comes_from_training_history_not_actuals():
    # Holdout a=[2,3], f=[3,3]: MAE 0.5. A naive forecast scored on the ACTUALS (the recipe's
    # mistake) would scale by |3-2| = 1 -> MASE 0.5. The training history [1,2,3,1,2,5] at
    # season 3 scales by 2/3 -> MASE 0.75; a different history gives a different MASE.
    result = metrics.mase([2, 3], [3, 3], ["A", "A"], {"A": [1, 2, 3, 1, 2, 5]}, season=3)
    assert result.value == pytest.approx(0.75)
    assert result.value != pytest.approx(0.5)
    other = metrics.mase([2, 3], [3, 3], ["A", "A"], {"A": [0, 0, 0, 4, 4, 4]}, season=3)
    assert other.value == pytest.approx(0.5 / 4)


def test_given_item_without_history_when_mase_then_error_names_the_item():
    with pytest.raises(ValueError, match="item 'Z' has holdout actuals but no training history"):
        metrics.mase([1.0], [1.0], ["Z"], {"A": [1, 2]}, season=1)


def test_given_only_unscorable_items_when_mase_then_undefined_and_listed():
    result = metrics.mase([1.0, 2.0], [1.0, 2.0], ["A", "B"], {"A": [3, 3, 3], "B": [9]}, season=1)
    assert math.isnan(result.value)
    assert result.zero_scale_items == ["A"] and result.short_history_items == ["B"]


# ----------------------------------------------------------------------------- review
def test_given_random_data_when_compared_with_sklearn_then_metrics_agree():
    rng = np.random.default_rng(7)
    a = rng.gamma(2.0, 10.0, size=500)
    a[::17] = 0.0
    f = a * rng.normal(1.0, 0.2, size=500) + rng.normal(0, 2, size=500)
    p10, p90 = f - 8.0, f + 8.0
    assert metrics.mae(a, f) == pytest.approx(mean_absolute_error(a, f))
    assert metrics.rmse(a, f) == pytest.approx(math.sqrt(mean_squared_error(a, f)))
    assert metrics.r2(a, f) == pytest.approx(r2_score(a, f))
    nz = a != 0
    assert metrics.mape(a, f) == pytest.approx(mean_absolute_percentage_error(a[nz], f[nz]))
    # wQL_q = 2 * n * mean_pinball_q / sum|a|
    expected = np.mean(
        [2 * len(a) * mean_pinball_loss(a, p, alpha=q) / np.abs(a).sum() for p, q in ((p10, 0.1), (f, 0.5), (p90, 0.9))]
    )
    assert metrics.wql(a, {"p10": p10, "p50": f, "p90": p90}) == pytest.approx(expected)
