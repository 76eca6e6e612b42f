"""One coherent predictive distribution: the mean of the quantiles, the ensemble's combination, the guard."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import lognorm, norm

from forecasting.ensemble import combine, interval_scales
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


def _gaussian_backtests(rng, sizes, claimed_sd, true_sd, H=8):
    """Rows of size s: p50 = s, the members' p10/p90 at s -+ z claimed_sd s, actuals s (1 + true_sd N(0, 1))."""
    z = 1.2816
    size = np.asarray(sizes, float)[:, None] * np.ones((1, H))
    claimed = np.asarray(claimed_sd, float)[:, None] * size
    values = np.stack([size - z * claimed, size, size + z * claimed, size], axis=-1)
    actual = size * (1 + np.asarray(true_sd, float)[:, None] * rng.normal(0, 1, size.shape))
    return values, actual


def test_given_gaussian_relative_errors_of_known_sigma_when_the_floor_is_fitted_then_it_is_their_quantile():
    from forecasting.ensemble import relative_floor

    # every row's error is N(0, 0.1) of its level: the p10/p90 offsets are -+1.2816 x 0.1
    rng = np.random.default_rng(11)
    sizes = rng.uniform(10, 1000, 150)
    values, actual = _gaussian_backtests(rng, sizes, np.full(150, 0.05), np.full(150, 0.1))
    floor = relative_floor(values, actual, LEVELS)
    assert floor.shape == (8, 3)
    assert floor[:, 1].tolist() == [0.0] * 8  # the centre keeps no offset
    assert floor[:, 0] == pytest.approx(-0.128, abs=0.03)
    assert floor[:, 2] == pytest.approx(0.128, abs=0.03)


def test_given_thin_backtests_where_some_series_claim_too_narrow_a_band_when_calibrated_then_all_cover_about_80():
    from forecasting.ensemble import apply_interval_scales, calibrate, interval_scales

    # given: 8 series x 5 windows (40 rows, thin), all with N(0, 0.1) relative errors; the members
    # claim 0.1 for the four large series and 0.03 for the four small ones (a narrow seasonal-naive
    # band); the pooled factors follow the large series' absolute errors and leave the small narrow
    rng = np.random.default_rng(12)
    sizes = np.tile([1000.0, 800.0, 900.0, 1200.0, 20.0, 30.0, 25.0, 15.0], 5)
    claimed = np.tile([0.1] * 4 + [0.03] * 4, 5)
    values, actual = _gaussian_backtests(rng, sizes, claimed, np.full(40, 0.1))
    table = calibrate(values, actual, LEVELS, n_series=8)
    assert table.shape == (2, 8, 3)
    # when: fresh draws of the same process (the windows after the backtests)
    fresh_values, fresh = _gaussian_backtests(
        rng, np.repeat(sizes[:8], 50), np.repeat(claimed[:8], 50), np.full(400, 0.1)
    )
    small = np.repeat(claimed[:8], 50) < 0.05

    def covered(t, rows):
        out = apply_interval_scales(fresh_values, t, LEVELS)
        return np.mean((fresh[rows] >= out[rows, :, 0]) & (fresh[rows] <= out[rows, :, 2]))

    # then: with the floor every group covers about 80%; the factors alone leave the small ones short
    factors_only = interval_scales(values, actual, LEVELS)
    assert covered(factors_only, small) < 0.6
    assert 0.72 <= covered(table, small) <= 0.88
    assert 0.72 <= covered(table, ~small) <= 0.92
    assert 0.72 <= covered(table, slice(None)) <= 0.9


def test_given_one_series_or_many_rows_when_calibrated_then_the_factors_alone_are_kept():
    from forecasting.ensemble import NARROWING_MIN_ROWS, calibrate, interval_scales

    rng = np.random.default_rng(13)
    values, actual = _gaussian_backtests(rng, np.full(5, 100.0), np.full(5, 0.05), np.full(5, 0.1))
    np.testing.assert_allclose(calibrate(values, actual, LEVELS, n_series=1), interval_scales(values, actual, LEVELS))
    n = NARROWING_MIN_ROWS
    values, actual = _gaussian_backtests(rng, rng.uniform(10, 100, n), np.full(n, 0.05), np.full(n, 0.1))
    assert calibrate(values, actual, LEVELS, n_series=n // 2).shape == (8, 3)


def test_given_a_floor_when_applied_then_quantiles_only_move_out_and_combine_stays_coherent():
    from forecasting.ensemble import apply_interval_scales

    values = np.array([[[90.0, 100.0, 101.0, 100.0], [50.0, 100.0, 150.0, 100.0]]])  # (1 series, 2 steps)
    table = np.stack([np.ones((2, 3)), np.array([[-0.05, 0.0, 0.05], [-0.05, 0.0, 0.05]])])
    out = apply_interval_scales(values, table, LEVELS)
    # step 1: p10 already 10 below (kept), p90 1 above (moved out to 5); step 2: both wider (kept)
    assert out[0, 0, :3].tolist() == [90.0, 100.0, 105.0]
    assert out[0, 1, :3].tolist() == [50.0, 100.0, 150.0]
    # a horizon longer than the table keeps its last step's row
    longer = np.repeat(values[:, :1], 4, axis=1)
    assert apply_interval_scales(longer, table, LEVELS)[0, :, 2].tolist() == [105.0] * 4
    rng = np.random.default_rng(14)
    members = {n: np.sort(rng.normal(1, 3, (20, 7, 4)), axis=2) for n in ("A", "B")}
    weights = {"A": np.array([0.3, 0.6, 0.8, 0.5]), "B": np.array([0.7, 0.4, 0.2, 0.5])}
    floors = np.tile([-0.5, 0.0, 0.8], (7, 1))
    out = combine(members, weights, LEVELS, factors=np.stack([np.full((7, 3), 0.9), floors]), non_negative=True)
    assert (np.diff(out[..., :3], axis=2) >= 0).all()
    assert (out >= 0).all()
    assert ((out[..., -1] >= out[..., 0]) & (out[..., -1] <= out[..., 2])).all()


def test_given_a_calibration_table_when_described_then_factors_and_fitted_floors_are_named():
    from forecasting.ensemble import describe_calibration

    factors = np.array([[1.0, 1.0, 1.2], [1.1, 1.0, 1.5]])
    assert describe_calibration(factors, ("p10", "p50", "p90")) == "p10 x1.00->1.10, p50 x1.00->1.00, p90 x1.20->1.50"
    floors = np.array([[-0.04, 0.0, 0.04], [-0.04, 0.0, 0.08]])
    text = describe_calibration(np.stack([factors, floors]), ("p10", "p50", "p90"))
    assert text.endswith("; relative floor p10 -0.04->-0.04, p90 +0.04->+0.08")
    assert describe_calibration(np.stack([factors, 0 * floors]), ("p10", "p50", "p90")).endswith("floor none")


def test_given_points_without_a_step_axis_and_holiday_offsets_when_calibrated_then_they_match_one_step():
    # (points, q + 1) forecasts with (points, q) offsets are one horizon step: the offsets must
    # follow the points, not broadcast across them
    rng = np.random.default_rng(3)
    n = 40
    centre = rng.uniform(50, 150, n)
    values = np.stack([centre * 0.85, centre, centre * 1.15, centre], axis=-1)
    actual = centre * (1 + rng.normal(0, 0.2, n))
    extra = np.zeros((n, 3))
    extra[: n // 2, 0], extra[: n // 2, 2] = -0.2 * centre[: n // 2], 0.2 * centre[: n // 2]
    flat = interval_scales(values, actual, LEVELS, relative=False, extra=extra)
    stepped = interval_scales(values[:, None], actual[:, None], LEVELS, relative=False, extra=extra[:, None])
    np.testing.assert_allclose(flat, stepped)
    assert not np.allclose(flat, interval_scales(values, actual, LEVELS, relative=False))
