"""The horizon total's spread: independent, comonotone and calibrated sums, and the backtest factor."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from processing import inventory

H = 14


def ar1_errors(rng, items: int, phi: float, sigma: float = 1.0, horizon: int = H) -> np.ndarray:
    """(items, horizon) stationary AR(1) errors with marginal sd `sigma`: a level error persists."""
    innovation = sigma * np.sqrt(1 - phi**2)
    out = np.empty((items, horizon))
    out[:, 0] = rng.normal(0, sigma, items)
    for t in range(1, horizon):
        out[:, t] = phi * out[:, t - 1] + rng.normal(0, innovation, items)
    return out


def ar1_total_sd(phi: float, sigma: float = 1.0, horizon: int = H) -> float:
    """The sum's sd: sigma * sqrt(sum over s, t of phi^|s - t|)."""
    lags = np.abs(np.subtract.outer(np.arange(horizon), np.arange(horizon)))
    return sigma * float(np.sqrt((phi**lags).sum()))


def test_given_a_p10_p90_band_then_the_period_sigma_is_its_width_over_the_normal_span():
    sigma = inventory.period_sigma([8.0, 5.0], [12.0, 4.0], 0.1, 0.9)
    assert sigma[0] == pytest.approx(4.0 / (2 * 1.2815516), rel=1e-6)
    assert sigma[1] == 0.0  # a crossed band has no spread, not a negative one


def test_given_identical_periods_then_comonotone_is_the_sum_of_quantiles_and_independent_root_sum_square():
    sigma, mean, z = 2.0, 10.0, NormalDist().inv_cdf(0.9)
    sum_var, sum_sigma = np.array([H * sigma**2]), np.array([H * sigma])
    comonotone = inventory.total_sigma(sum_var, sum_sigma, inventory.COMONOTONE)[0]
    independent = inventory.total_sigma(sum_var, sum_sigma, inventory.INDEPENDENT)[0]
    # comonotone: the total's 0.9 quantile is the sum of the periods' 0.9 quantiles
    assert H * mean + z * comonotone == pytest.approx(H * (mean + z * sigma))
    assert independent == pytest.approx(sigma * np.sqrt(H))
    # calibrated with the factor sqrt(H) is the comonotone sum again; with 1 the independent one
    assert inventory.total_sigma(sum_var, sum_sigma, inventory.CALIBRATED, np.sqrt(H))[0] == pytest.approx(comonotone)
    assert inventory.total_sigma(sum_var, sum_sigma, inventory.CALIBRATED, 1.0)[0] == pytest.approx(independent)


def test_given_unequal_periods_then_independent_is_root_sum_square_and_comonotone_the_plain_sum():
    sigmas = np.array([1.0, 2.0, 2.0])
    args = (np.array([(sigmas**2).sum()]), np.array([sigmas.sum()]))
    assert inventory.total_sigma(*args, inventory.INDEPENDENT)[0] == pytest.approx(3.0)
    assert inventory.total_sigma(*args, inventory.COMONOTONE)[0] == pytest.approx(5.0)


@pytest.mark.parametrize("factor", [None, 0.0, -1.0, float("nan")])
def test_given_no_usable_factor_when_calibrating_then_a_clear_error(factor):
    with pytest.raises(ValueError, match="positive spread factor"):
        inventory.total_sigma([1.0], [1.0], inventory.CALIBRATED, factor)


def test_given_an_unknown_aggregation_then_the_error_lists_the_known_ones():
    with pytest.raises(ValueError, match="calibrated, comonotone, independent"):
        inventory.total_sigma([1.0], [1.0], "sum")


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_given_ar1_errors_with_a_known_correlation_then_the_factor_is_the_total_sd_over_root_sum_square(phi):
    rng = np.random.default_rng(7)
    errors = ar1_errors(rng, 4000, phi, sigma=3.0)
    sigmas = np.full_like(errors, 3.0)
    codes = np.repeat(np.arange(len(errors)), H)
    factor = inventory.spread_factor(errors.ravel(), sigmas.ravel(), codes)
    assert factor == pytest.approx(ar1_total_sd(phi) / np.sqrt(H), rel=0.05)


@pytest.mark.parametrize("phi", [0.0, 0.6, 0.9])
def test_given_ar1_errors_when_the_factor_of_a_backtest_sets_the_levels_then_they_cover_their_service_level(phi):
    """The realized coverage of the next horizon's totals: calibrated holds its service level,
    independent falls short once errors persist, comonotone over-covers when they don't."""
    rng = np.random.default_rng(11)
    items = 3000
    scale = rng.uniform(1, 50, items)[:, None]  # items of every size: the factor is scale-free
    backtest = ar1_errors(rng, items, phi) * scale
    sigmas = np.broadcast_to(scale, backtest.shape)
    codes = np.repeat(np.arange(items), H)
    factor = inventory.spread_factor(backtest.ravel(), sigmas.ravel(), codes)
    actual_total = (ar1_errors(rng, items, phi) * scale).sum(axis=1)  # the next horizon, mean 0
    sum_var, sum_sigma = H * scale[:, 0] ** 2, H * scale[:, 0]
    for level in (0.8, 0.9, 0.95):
        z = NormalDist().inv_cdf(level)

        def coverage(aggregation, factor=None, z=z):
            return float(np.mean(actual_total <= z * inventory.total_sigma(sum_var, sum_sigma, aggregation, factor)))

        assert coverage(inventory.CALIBRATED, factor) == pytest.approx(level, abs=0.025)
        if phi >= 0.6:
            assert coverage(inventory.INDEPENDENT) < level - 0.05
        if phi == 0.0:
            assert coverage(inventory.COMONOTONE) > level + 0.03


def test_given_few_items_or_no_spread_then_no_factor_is_measured():
    rng = np.random.default_rng(3)
    errors = rng.normal(size=(inventory.MIN_ITEMS - 1, H))
    codes = np.repeat(np.arange(len(errors)), H)
    assert inventory.spread_factor(errors.ravel(), np.ones(errors.size), codes) is None
    # items whose band has no width are left out rather than divided by zero
    errors = rng.normal(size=(inventory.MIN_ITEMS + 5, H))
    sigmas = np.ones_like(errors)
    sigmas[:10] = 0.0
    codes = np.repeat(np.arange(len(errors)), H)
    assert inventory.spread_factor(errors.ravel(), sigmas.ravel(), codes) is None  # 15 usable < 20
    sigmas[:10] = 1.0
    assert inventory.spread_factor(errors.ravel(), sigmas.ravel(), codes) > 0
    assert inventory.spread_factor([], [], []) is None
