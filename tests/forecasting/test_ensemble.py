"""One coherent predictive distribution: the mean of the quantiles, the ensemble's combination, the guard."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import lognorm, norm

from forecasting.ensemble import combine
from forecasting.models.base import finalize, quantile_mean

LEVELS = (0.1, 0.5, 0.9)


@pytest.mark.parametrize("dist", [norm(3, 2), norm(-50, 0.1)])
def test_given_a_symmetric_distribution_when_its_mean_is_taken_from_quantiles_then_it_is_exact(dist):
    assert quantile_mean(dist.ppf(LEVELS)[None], LEVELS)[0] == pytest.approx(dist.mean())
    five = (0.05, 0.25, 0.5, 0.75, 0.95)
    assert quantile_mean(dist.ppf(five)[None], five)[0] == pytest.approx(dist.mean())


def test_given_a_skewed_distribution_when_its_mean_is_taken_from_quantiles_then_it_follows_the_skew():
    dist = lognorm(0.5, scale=10.0)
    mean = quantile_mean(dist.ppf(LEVELS)[None], LEVELS)[0]
    assert mean == pytest.approx(dist.mean(), rel=0.01)
    assert mean > dist.median()  # right skew: mean above the median, as demand's is


def test_given_any_sorted_quantiles_then_their_mean_lies_inside_the_outer_ones():
    rng = np.random.default_rng(0)
    q = np.sort(rng.normal(0, 10, (2000, 3)) ** 3, axis=1)
    mean = quantile_mean(q, LEVELS)
    assert ((mean >= q[:, 0]) & (mean <= q[:, -1])).all()
    clipped = quantile_mean(np.maximum(q, 0), LEVELS, lower_bound=0.0)
    assert (clipped >= 0).all() and (clipped <= np.maximum(q, 0)[:, -1] + 1e-9).all()


def test_given_a_zero_floor_when_the_lower_tail_would_cross_it_then_the_tail_is_clipped():
    # p10 = 0, p50 = 4: the lower tail line would go negative; clipped it adds nothing below 0
    # (segments 0.4 x 2 and 0.4 x 6, upper tail 0.1 x 8 plus its slope 10 x 0.1^2 / 2)
    q = np.array([[0.0, 4.0, 8.0]])
    assert quantile_mean(q, LEVELS, lower_bound=0.0)[0] > quantile_mean(q, LEVELS)[0]
    assert quantile_mean(q, LEVELS, lower_bound=0.0)[0] == pytest.approx(
        0.4 * 2 + 0.4 * 6 + (0.1 * 8 + 10 * 0.1**2 / 2)
    )


def test_given_members_whose_means_disagree_with_their_bands_when_combined_then_one_distribution_results():
    # member A: mean far above its p90 (the old LightGBM L2 booster); member B coherent
    a = np.array([[[9.0, 10.0, 11.0, 20.0]]])
    b = np.array([[[5.0, 10.0, 15.0, 10.0]]])
    # per-output weights as the greedy selection picks them; the old code weighted the mean by the last column
    weights = {"A": np.array([0.9, 0.9, 0.9, 0.1]), "B": np.array([0.1, 0.1, 0.1, 0.9])}
    out = combine({"A": a, "B": b}, weights, LEVELS)
    p10, p50, p90, mean = out[0, 0]
    assert (p10, p50, p90) == pytest.approx((8.6, 10.0, 11.4))
    assert mean == pytest.approx(quantile_mean(np.array([p10, p50, p90]), LEVELS))
    assert p10 <= mean <= p90


def test_given_calibration_factors_and_a_zero_floor_when_combined_then_order_floor_and_band_hold():
    rng = np.random.default_rng(3)
    members = {n: np.sort(rng.normal(1, 3, (20, 7, 4)), axis=2) for n in ("A", "B")}
    for v in members.values():
        v[..., -1] = rng.normal(1, 10, (20, 7))  # means anywhere
    weights = {"A": np.array([0.3, 0.6, 0.8, 0.5]), "B": np.array([0.7, 0.4, 0.2, 0.5])}
    out = combine(members, weights, LEVELS, factors=np.array([1.5, 1.0, 0.7]), non_negative=True)
    assert (np.diff(out[..., :3], axis=2) >= 0).all()
    assert (out >= 0).all()
    assert ((out[..., -1] >= out[..., 0]) & (out[..., -1] <= out[..., 2])).all()


def test_given_a_mean_outside_the_band_when_finalized_with_levels_then_it_moves_to_the_nearer_bound():
    values = np.array([[[1.0, 2.0, 3.0, 7.0], [1.0, 2.0, 3.0, -4.0], [1.0, 2.0, 3.0, 2.5]]])
    assert finalize(values, levels=LEVELS)[0, :, -1].tolist() == [3.0, 1.0, 2.5]
    # quantiles all above the median: no two-sided band, the mean is left alone
    assert finalize(values, levels=(0.6, 0.7, 0.9))[0, :, -1].tolist() == [7.0, -4.0, 2.5]


def test_given_thin_backtests_of_mixed_sizes_when_calibrated_then_small_series_count_by_their_relative_errors():
    from forecasting.ensemble import NARROWING_MIN_ROWS, apply_interval_scales, interval_scales

    # given: 40 rows (< NARROWING_MIN_ROWS): one series of size 1,000 whose interval is right, 39 of
    # size 10 whose errors are twice what their interval claims
    rng = np.random.default_rng(5)
    H, z, n = 8, 1.2816, 40
    assert n < NARROWING_MIN_ROWS
    size = np.r_[1000.0, np.full(n - 1, 10.0)][:, None]
    claimed = 0.1 * size * np.ones((n, H))
    true_sd = np.where(np.arange(n)[:, None] == 0, 0.1, 0.2) * size
    actual = size + rng.normal(0, 1, (n, H)) * true_sd
    values = np.stack([size - z * claimed, size + 0 * claimed, size + z * claimed, size + 0 * claimed], axis=-1)
    levels = (0.1, 0.5, 0.9)
    # when
    absolute = interval_scales(values, actual, levels, aim=1.0, relative=False)
    relative = interval_scales(values, actual, levels, aim=1.0, relative=True)
    # then: pooled absolute errors follow the big series (about 1); relative ones the 39 small (about 2)
    assert absolute[:, 2].mean() < 1.4
    assert relative[:, 2].mean() > 1.6
    small = slice(1, None)
    covered = lambda f: np.mean(  # noqa: E731
        (actual[small] >= apply_interval_scales(values, f, levels)[small, :, 0])
        & (actual[small] <= apply_interval_scales(values, f, levels)[small, :, 2])
    )
    assert covered(relative) > 0.7 > covered(absolute)
    # and many rows keep the pooled absolute errors (the default above NARROWING_MIN_ROWS)
    many = np.repeat(values, 6, axis=0), np.repeat(actual, 6, axis=0)
    np.testing.assert_allclose(
        interval_scales(*many, levels, aim=1.0), interval_scales(*many, levels, aim=1.0, relative=False)
    )


def test_given_thin_backtests_when_calibrated_by_default_then_held_out_rows_choose_relative_or_absolute():
    from forecasting.ensemble import interval_scales, relative_fits_better

    rng = np.random.default_rng(6)
    H, z, n = 8, 1.2816, 40
    levels = (0.1, 0.5, 0.9)

    def backtests(n_big, big_sd, small_sd):
        big = np.arange(n) < n_big  # rows 0..n_big-1 of size 1,000 (spread over the folds), the rest 10
        size = np.where(big, 1000.0, 10.0)[:, None]
        claimed = 0.1 * size * np.ones((n, H))
        actual = size + rng.normal(0, 1, (n, H)) * np.where(big[:, None], big_sd, small_sd) * size
        values = np.stack([size - z * claimed, size + 0 * claimed, size + z * claimed, size + 0 * claimed], axis=-1)
        return values, actual

    # one big series (right) among 39 small ones (too narrow): factors fitted without it say ~1
    # for it, but the held-out small rows want ~2 -> relative
    assert relative_fits_better(*backtests(1, 0.1, 0.2), levels, aim=1.0)
    # eight big series too narrow, the small ones right: absolute errors (wQL's weighting) win
    big_wrong = backtests(8, 0.2, 0.1)
    assert not relative_fits_better(*big_wrong, levels, aim=1.0)
    default = interval_scales(*big_wrong, levels, aim=1.0)
    np.testing.assert_allclose(default, interval_scales(*big_wrong, levels, aim=1.0, relative=False))
    assert default[:, 2].mean() > 1.6  # widened for the big series
