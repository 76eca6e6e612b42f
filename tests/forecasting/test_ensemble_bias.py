"""The calibration reads the backtests' spread, not a bias the few windows share (issue 14, sixth session)."""

from __future__ import annotations

import numpy as np
import pytest

from forecasting.ensemble import apply_interval_scales, backtest_bias, calibrate, unbiased_actual

LEVELS = np.array([0.1, 0.5, 0.9])


def _backtests(rng, n_series=10, windows=5, H=6, claimed=0.08, true_sd=0.08):
    """Thin backtests: rows of sizes 50-2000, p50 = mean = size, p10/p90 at -+1.28 claimed x size,
    actuals size (1 + true_sd N(0, 1)): symmetric errors about the centre, no bias."""
    size = np.tile(rng.uniform(50, 2000, n_series), windows)[:, None] * np.ones((1, H))
    z = 1.2816
    values = np.stack([size * (1 - z * claimed), size, size * (1 + z * claimed), size], axis=-1)
    actual = size * (1 + true_sd * rng.normal(0, 1, size.shape))
    return values, actual


def test_given_thin_backtests_with_a_shared_bias_when_calibrated_then_the_table_is_that_of_the_unbiased_errors():
    rng = np.random.default_rng(21)
    values, actual = _backtests(rng)
    size = np.abs(values[..., 1])
    # given: the same errors, once as they are and once 6% above (all windows under-forecast)
    biased = actual + 0.06 * size
    table = calibrate(values, actual, LEVELS, n_series=10)
    assert table.shape == (2, 6, 3)
    # then: the bias is not read as width; the old fit widened p90 alone (x1.6-1.8 against p10's x1.0)
    np.testing.assert_allclose(calibrate(values, biased, LEVELS, n_series=10), table)
    factors = calibrate(values, biased, LEVELS, n_series=10)[0]
    assert np.max(np.abs(factors[:, 2] - factors[:, 0])) <= 0.2


def test_given_a_biased_thin_calibration_when_applied_to_unbiased_windows_then_both_sides_miss_alike():
    rng = np.random.default_rng(22)
    values, actual = _backtests(rng)
    table = calibrate(values, actual + 0.06 * np.abs(values[..., 1]), LEVELS, n_series=10)
    fresh_values, fresh = _backtests(np.random.default_rng(23), windows=40)
    out = apply_interval_scales(fresh_values, table, LEVELS)
    above, below = np.mean(fresh > out[..., 2]), np.mean(fresh < out[..., 0])
    assert abs(above - below) < 0.04
    assert 0.72 <= 1 - above - below <= 0.92


def test_given_a_skewed_band_when_the_bias_is_measured_then_it_is_that_of_the_mean_not_of_p50():
    # low counts: p50 2, mean 2.5; actuals average 2.5, so the forecast is unbiased though p50 is low
    values = np.tile([1.0, 2.0, 5.0, 2.5], (4, 3, 1))
    actual = np.array([[1.0, 2.0, 4.5], [2.0, 3.0, 2.5], [4.0, 1.0, 2.5], [2.0, 3.0, 2.5]])
    assert backtest_bias(values, actual) == pytest.approx(0.0)
    assert backtest_bias(values, actual + 0.25) == pytest.approx(0.1)
    # the errors are moved by that share of the centre (p50), point by point
    np.testing.assert_allclose(unbiased_actual(values, actual + 0.25, LEVELS), actual + 0.25 - 0.1 * 2.0)
    assert backtest_bias(np.zeros((1, 2, 4)), np.ones((1, 2))) == 0.0


def test_given_one_series_or_many_rows_when_biased_then_the_calibration_still_reads_the_errors_as_they_are():
    # the rule acts where the floor does (thin backtests of 2+ series): a single series' few rows
    # cannot tell a bias from its spread, and 200+ rows (the seed, us_employment) keep the fit tuned on them
    from forecasting.ensemble import NARROWING_MIN_ROWS, interval_scales

    rng = np.random.default_rng(24)
    values, actual = _backtests(rng, n_series=1, windows=5)
    biased = actual + 0.06 * np.abs(values[..., 1])
    np.testing.assert_allclose(calibrate(values, biased, LEVELS, n_series=1), interval_scales(values, biased, LEVELS))
    values, actual = _backtests(rng, n_series=NARROWING_MIN_ROWS // 5, windows=5)
    biased = actual + 0.06 * np.abs(values[..., 1])
    np.testing.assert_allclose(
        calibrate(values, biased, LEVELS, n_series=NARROWING_MIN_ROWS // 5), interval_scales(values, biased, LEVELS)
    )
