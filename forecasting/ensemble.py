"""Greedy ensemble selection with replacement (Caruana et al., 2004) over backtest forecasts,
and `combine`, the one way an ensemble forecast is assembled (backtests, batch, endpoint).

Run once per quantile (with its pinball loss): start empty, repeatedly add (with replacement)
the candidate whose inclusion most lowers the loss of the running average; weights = selection
counts / rounds. The mean is not chosen separately: it is the mean of the ensemble's own
quantile distribution (`quantile_mean`), so mean, quantiles and the inventory interval are one
distribution. (Separate weights for the mean once put it above p90 in most batch rows.)
Only when the quantiles do not straddle the median (say p90 alone) is the mean a weighted
average of the members' means, with weights chosen by the objective's point loss.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional

import numpy as np

from .counts import CountBand
from .models.base import finalize, quantile_mean, straddles_median


def caruana_weights(predictions: np.ndarray, loss: Callable[[np.ndarray], float], rounds: int = 20) -> np.ndarray:
    """predictions: (n_candidates, n_points) -> weights (n_candidates,) summing to 1."""
    n = predictions.shape[0]
    counts = np.zeros(n)
    current = np.zeros(predictions.shape[1])
    best_loss = np.inf
    for r in range(rounds):
        trial = [loss((current * r + predictions[i]) / (r + 1)) for i in range(n)]
        i = int(np.argmin(trial))
        if r > 0 and trial[i] >= best_loss - 1e-12 and r >= 1:
            # no candidate improves; adding the current best again keeps the weights stable
            pass
        counts[i] += 1
        current = (current * r + predictions[i]) / (r + 1)
        best_loss = min(best_loss, trial[i])
    return counts / counts.sum()


def pinball_loss(actual: np.ndarray, level: float) -> Callable[[np.ndarray], float]:
    def loss(forecast):
        diff = actual - forecast
        return float(np.sum(np.maximum(level * diff, (level - 1) * diff)))

    return loss


def point_loss(actual: np.ndarray, objective: str, scale: np.ndarray) -> Callable[[np.ndarray], float]:
    """The mean output's loss under the job objective (absolute error for wQL and WAPE)."""
    if objective == "RMSE":
        return lambda f: float(np.mean((actual - f) ** 2))
    if objective == "MAPE":
        keep = actual != 0
        return lambda f: float(np.mean(np.abs((actual[keep] - f[keep]) / actual[keep]))) if keep.any() else 0.0
    if objective == "MASE":
        s = np.where(scale > 0, scale, 1.0)
        return lambda f: float(np.mean(np.abs(actual - f) / s))
    return lambda f: float(np.sum(np.abs(actual - f)))


NARROWING_MIN_ROWS = 200  # (series, window) rows of backtests below which intervals are never narrowed
# The backtests that calibrate the interval also chose the ensemble's weights, so they flatter it:
# calibrated to cover 80% there, held-out windows of real data covered 0.57-0.73 (docs/engine.md).
# So each quantile's factor minimises the pinball loss of a level this much further from the median
# (p10 -> p6, p90 -> p94), aiming at ~88% on the backtests for ~80% beyond them.
CALIBRATION_AIM = 1.1
# Below NARROWING_MIN_ROWS rows the factors may weigh each series' errors relative to its size:
# pooled absolute errors let the largest few of 5-32 series set the interval of all (prison, 32
# quarterly series of sizes 10-13,000: wQL 0.0589 -> 0.0532 in replay), but not always for the
# better (departures 0.0234 -> 0.0236), so a CV_FOLDS-fold split of the backtest rows chooses.
CV_FOLDS = 5


def interval_scales(
    values: np.ndarray,
    actual: np.ndarray,
    levels,
    grid=None,
    max_rows: int = 2000,
    aim: float = CALIBRATION_AIM,
    relative: Optional[bool] = None,
    extra: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Per horizon step and quantile, the factor c on its distance from the centre minimising
    pinball loss: (n, H, q + 1) backtest forecasts and (n, H) actuals -> (H, q) factors.

    The centre is the quantile nearest 0.5 (or the mean). Backtest forecasts are out of sample,
    so this is conformal-style calibration. Errors grow with the step ahead faster or slower
    than a model's own intervals do, so one factor for all steps leaves the far steps too narrow
    and the near ones too wide; a free factor per step would follow the noise of a few windows.
    So the factor is linear in the step: chosen on a grid for the first and the last step (the
    same grid for both gives the one-factor answer). It widens intervals that proved too narrow
    and narrows those that proved too wide, by at most a fifth, and only with backtests of at
    least NARROWING_MIN_ROWS (series, window) rows (a few windows are thin evidence for more
    certainty). Each quantile's factor minimises the pinball loss at its level pushed `aim`
    times further from the median (CALIBRATION_AIM): aim=1 aims p10-p90 at 80% coverage on the
    backtests, the default at ~88% there, for ~80% on the windows that follow.
    relative: each row (series and window) divided by its mean forecast first, so every series
    counts by its relative errors; None: absolute from NARROWING_MIN_ROWS rows, below that
    whichever `relative_fits_better` (on many series relative cost 4-9%: us_employment).
    extra: (n, H, q) offsets `widen_unseen_holidays` adds to the scaled band (0: none), so the
    factors are the best ones for the band as it is issued.
    """
    levels = np.asarray(levels, float)
    targets = np.clip(0.5 + (levels - 0.5) * float(aim), 0.005, 0.995)
    values = np.asarray(values, float)
    actual = np.asarray(actual, float)
    if values.ndim == 2:  # (points, q + 1): no step axis, nor on extra's (points, q)
        values, actual = values[:, None, :], actual[:, None]
        extra = None if extra is None else np.asarray(extra, float)[:, None, :]
    extra = _offsets(extra)
    if relative is None:
        relative = values.shape[0] < NARROWING_MIN_ROWS and relative_fits_better(
            values, actual, levels, grid=grid, aim=aim, extra=extra
        )
    if relative:
        size = np.mean(np.abs(values[..., -1]), axis=1, keepdims=True)
        size = np.where(np.isfinite(size) & (size > 0), size, 1.0)
        values, actual = values / size[..., None], actual / size
        extra = None if extra is None else extra / size[..., None]
    if grid is None:
        # narrowing needs evidence: on 5 windows of 8 series it was what left real data's
        # intervals too narrow (aus_accommodation coverage 0.52, 0.54 without it)
        low = 0.8 if values.shape[0] >= NARROWING_MIN_ROWS else 1.0
        grid = np.linspace(low, 3.0, int(round((3.0 - low) / 0.05)) + 1)
    if values.shape[0] > max_rows:  # thousands of series: a seeded sample fixes the factors as well
        keep = np.sort(np.random.default_rng(0).choice(values.shape[0], max_rows, replace=False))
        values, actual = values[keep], actual[keep]
        extra = None if extra is None else extra[keep]
    H = values.shape[1]
    centre = _centre(values, levels)
    resid = actual - centre
    frac = np.linspace(0.0, 1.0, H) if H > 1 else np.zeros(1)
    grid = np.asarray(grid, float)
    factors = np.ones((H, len(levels)))
    for j, q in enumerate(targets):
        dev = values[..., j] - centre
        if not np.any(dev):
            continue
        # c(step) = first + (last - first) * frac; loss for every (first, last) pair on the grid
        best, best_loss = (1.0, 1.0), np.inf
        for first in grid:
            c = first + (grid[:, None] - first) * frac[None, :]  # (last, H)
            off = _widened(c[:, None, :] * dev[None, :, :], None if extra is None else extra[None, ..., j])
            diff = resid[None, :, :] - off  # (last, n, H)
            loss = np.sum(np.maximum(q * diff, (q - 1) * diff), axis=(1, 2))
            k = int(np.argmin(loss))
            if loss[k] < best_loss:
                best, best_loss = (first, grid[k]), loss[k]
        factors[:, j] = best[0] + (best[1] - best[0]) * frac
    return factors


def relative_fits_better(values: np.ndarray, actual: np.ndarray, levels, **kwargs) -> bool:
    """Whether relative factors beat absolute ones on held-out backtest rows: CV_FOLDS folds of
    rows (round robin, so each fold mixes series and windows), each scored by the absolute
    pinball loss of the calibrated quantiles (wQL's weighting). (n, H, q + 1), (n, H) arrays."""
    levels = np.asarray(levels, float)
    extra = _offsets(kwargs.pop("extra", None))
    folds = np.arange(values.shape[0]) % CV_FOLDS
    loss = {False: 0.0, True: 0.0}
    for k in range(CV_FOLDS):
        train, test = folds != k, folds == k
        if not test.any() or train.sum() < 2:
            continue
        for relative in loss:
            part = None if extra is None else extra[train]
            factors = interval_scales(values[train], actual[train], levels, relative=relative, extra=part, **kwargs)
            calibrated = apply_interval_scales(values[test], factors, levels)
            if extra is not None:
                calibrated = _widen(calibrated, extra[test], levels)
            for j, q in enumerate(levels):
                diff = actual[test] - calibrated[..., j]
                loss[relative] += float(np.sum(np.maximum(q * diff, (q - 1) * diff)))
    return loss[True] < loss[False]


# On thin backtests of several series the interval is also at least as wide as the panel's relative
# errors say (`relative_floor`): the factors scale every series' member interval alike, so a series
# whose members claim a narrow band keeps it (aus_accommodation: intervals of 14-23% of the level
# against misses of 6-12%; held-out coverage 0.59 -> 0.68 over 4 windows, wQL -4%). One series gives
# the floor nothing the factors do not already know from the same errors, so it needs two.
FLOOR_MIN_SERIES = 2
# The floor aims at the nominal levels: it is a second view of the same backtests (in relative
# units, pooled over series), joined to the factors' interval, which already aims wider
FLOOR_AIM = 1.0


def calibrate(
    values: np.ndarray, actual: np.ndarray, levels, n_series: int, holiday_spread: Optional[np.ndarray] = None
) -> np.ndarray:
    """The calibration table the ensemble's forecasts go through (`apply_interval_scales`):
    (n, H, q + 1) backtest forecasts of the ensemble and (n, H) actuals -> the (H, q) factors of
    `interval_scales`, or on thin backtests (under NARROWING_MIN_ROWS rows) of at least
    FLOOR_MIN_SERIES series, (2, H, q): the factors stacked on the `relative_floor` offsets,
    both fitted to the errors with the pooled bias of the forecast mean taken out
    (`unbiased_actual`): a few windows' shared bias is not a width to issue.
    holiday_spread: the backtests' (n, H, q) `widen_unseen_holidays` spread (None: none), which
    `combine` adds after the table: both are fitted for the band with it."""
    extra = None if holiday_spread is None else holiday_offsets(values, holiday_spread, levels)
    if np.asarray(values).shape[0] >= NARROWING_MIN_ROWS or n_series < FLOOR_MIN_SERIES:
        return interval_scales(values, actual, levels, extra=extra)
    spread = unbiased_actual(values, actual, levels)
    factors = interval_scales(values, spread, levels, extra=extra)
    return np.stack([factors, relative_floor(values, spread, levels, extra=extra)])


def backtest_bias(values: np.ndarray, actual: np.ndarray) -> float:
    """The pooled backtests' bias of the forecast mean (the last column) as a share of the
    forecasts' size: sum(actual - mean) / sum |mean|; (n, H, q + 1), (n, H) -> a float (0 when
    there is nothing to weigh). The mean, not p50: a skewed band (low counts) has its mean away
    from p50, and that distance is the band's shape, not a bias."""
    values = np.asarray(values, float)
    mean = values[..., -1]
    size = float(np.sum(np.abs(mean)))
    return float(np.sum(np.asarray(actual, float) - mean)) / size if size > 0 else 0.0


def unbiased_actual(values: np.ndarray, actual: np.ndarray, levels) -> np.ndarray:
    """The backtest actuals with the pooled `backtest_bias` taken out (b |centre| per point), so
    the calibration reads the band's spread, not the location error of a few windows.

    Why: on thin backtests a shared bias (chicago's ridership growth under-forecast in all 5
    windows: raw p90 missed 0.18-0.19, p10 0.06-0.07) was read as one-sided width, p90 x1.3-1.65
    against p10 x1.0-1.15, and carried into windows where the level turned (docs/engine.md,
    "Sixth session: upper-quantile calibration"). The centre is not moved by it: only the band
    is fitted about the de-biased errors. (n, H, q + 1), (n, H) -> (n, H)."""
    values = np.asarray(values, float)
    centre = _centre(values, np.asarray(levels, float))
    return np.asarray(actual, float) - backtest_bias(values, actual) * np.abs(centre)


def relative_floor(
    values: np.ndarray, actual: np.ndarray, levels, aim: float = FLOOR_AIM, extra: Optional[np.ndarray] = None
) -> np.ndarray:
    """Per horizon step and quantile, the offset c, a share of the centre's size, that minimises
    the (absolute) pinball loss of centre + c |centre| over the pooled backtests: conformal
    quantiles of the relative errors, weighted by size as wQL weighs them. Linear in the step, as
    the factors are (a first and a last step on a grid: -1..0 below the median, 0..2 above).
    (n, H, q + 1), (n, H) -> (H, q) offsets, 0 at the centre's level; `apply_interval_scales`
    moves each quantile out to at least that distance, never in."""
    levels = np.asarray(levels, float)
    targets = np.clip(0.5 + (levels - 0.5) * float(aim), 0.005, 0.995)
    values = np.asarray(values, float)
    actual = np.asarray(actual, float)
    centre = _centre(values, levels)
    size = np.abs(centre)
    resid = actual - centre
    extra = _offsets(extra)
    H = values.shape[1]
    frac = np.linspace(0.0, 1.0, H) if H > 1 else np.zeros(1)
    offsets = np.zeros((H, len(levels)))
    for j, (level, q) in enumerate(zip(levels, targets)):
        if abs(level - 0.5) < 1e-9 or not np.any(size):
            continue
        grid = np.linspace(-1.0, 0.0, 51) if level < 0.5 else np.linspace(0.0, 2.0, 101)
        best, best_loss = (0.0, 0.0), np.inf
        for first in grid:
            c = first + (grid[:, None] - first) * frac[None, :]  # (last, H)
            off = _widened(c[:, None, :] * size[None, :, :], None if extra is None else extra[None, ..., j])
            diff = resid[None, :, :] - off
            loss = np.sum(np.maximum(q * diff, (q - 1) * diff), axis=(1, 2))
            k = int(np.argmin(loss))
            if loss[k] < best_loss:
                best, best_loss = (first, grid[k]), loss[k]
        offsets[:, j] = best[0] + (best[1] - best[0]) * frac
    return offsets


def describe_calibration(table: np.ndarray, quantiles) -> str:
    """The log line's text: each quantile's factor (and floor) at the first and the last step."""
    table = np.asarray(table, float)
    factors = table[0] if table.ndim == 3 else np.atleast_2d(table)
    text = ", ".join(f"{q} x{f0:.2f}->{f1:.2f}" for q, f0, f1 in zip(quantiles, factors[0], factors[-1]))
    if table.ndim == 3:
        floor = table[1]
        fitted = [f"{q} {f0:+.2f}->{f1:+.2f}" for q, f0, f1 in zip(quantiles, floor[0], floor[-1]) if f0 or f1]
        text += "; relative floor " + (", ".join(fitted) or "none")
    return text


def _per_step(table: np.ndarray, h: int) -> np.ndarray:
    """(H, q) -> (h, q): steps past H keep the last step's row."""
    return table[np.minimum(np.arange(h), table.shape[0] - 1)]


def apply_interval_scales(values: np.ndarray, factors: np.ndarray, levels) -> np.ndarray:
    """factors: (q,) for every step, (H, q) per step (steps past H keep the last step's), or
    (2, H, q) from `calibrate`: the factors, then each quantile moved out to at least its
    `relative_floor` offset x |centre| from the centre."""
    levels = np.asarray(levels, float)
    centre = _centre(values, levels)
    factors = np.asarray(factors, float)
    floor = None
    if factors.ndim == 3:
        factors, floor = factors[0], _per_step(factors[1], values.shape[-2])
    if factors.ndim == 2:
        factors = _per_step(factors, values.shape[-2])  # (h, q), broadcast over series
    out = values.copy()
    out[..., :-1] = centre[..., None] + factors * (values[..., :-1] - centre[..., None])
    if floor is not None:
        bound = centre[..., None] + floor * np.abs(centre)[..., None]
        below, above = floor < 0, floor > 0  # (h, q): where a floor was fitted, on its side
        quantiles = out[..., :-1]
        out[..., :-1] = np.where(
            below, np.minimum(quantiles, bound), np.where(above, np.maximum(quantiles, bound), quantiles)
        )
    return out


def _centre(values: np.ndarray, levels: np.ndarray) -> np.ndarray:
    nearest = int(np.argmin(np.abs(levels - 0.5)))
    return values[..., nearest] if abs(levels[nearest] - 0.5) < 1e-9 else values[..., -1]


def combine(
    members: Mapping[str, np.ndarray],
    weights: Mapping[str, np.ndarray],
    levels,
    factors: Optional[np.ndarray] = None,
    non_negative: bool = False,
    holiday_spread: Optional[np.ndarray] = None,
    count_band: Optional[CountBand] = None,
    count_rows: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Members' (n, h, q + 1) forecasts -> the ensemble's coherent (n, h, q + 1) forecast.

    Weighted quantile averaging per level, the calibration factors, the widening near holidays
    the history never saw (`holiday_spread`, (n, h, q) or None), sorting, and then the mean
    of that distribution (when the levels straddle the median), clipped at zero for targets
    that never go below it; `finalize` keeps the mean inside the outer quantiles. On the
    low-count integer series (`count_rows`, (n,) bool) a `count_band` then replaces that
    distribution by a count distribution with the same p50 or mean as its mean (`counts`).
    """
    total: Optional[np.ndarray] = None
    for name, values in members.items():
        w = np.asarray(weights[name], float)
        total = values * w if total is None else total + values * w
    if total is None:
        raise ValueError("combine() needs at least one member forecast")
    if factors is not None:
        total = apply_interval_scales(total, np.asarray(factors, float), levels)
    if holiday_spread is not None:
        total = widen_unseen_holidays(total, holiday_spread, levels)
    total = finalize(total, non_negative)
    if straddles_median(levels):
        total[..., -1] = quantile_mean(total[..., :-1], levels, 0.0 if non_negative else None)
    total = finalize(total, non_negative, levels)
    return with_counts(total, count_band, count_rows, levels, non_negative)


def with_counts(
    values: np.ndarray,
    count_band: Optional[CountBand],
    count_rows: Optional[np.ndarray],
    levels,
    non_negative: bool = False,
) -> np.ndarray:
    """`combine`'s last stage on its finished forecast: the low-count rows' count distribution (none
    without a band), finalized again. The engine applies it to backtests it has combined already."""
    if count_band is None or count_rows is None:
        return values
    return finalize(count_band.apply(values, count_rows, levels), non_negative, levels)


def holiday_offsets(values: np.ndarray, spread: np.ndarray, levels) -> np.ndarray:
    """(n, h, q) absolute offsets of a (n, h, q) relative `holiday_spread`: a share of |centre|."""
    centre = _centre(np.asarray(values, float), np.asarray(levels, float))
    return np.asarray(spread, float) * np.abs(centre)[..., None]


def widen_unseen_holidays(values: np.ndarray, spread: np.ndarray, levels) -> np.ndarray:
    """Each quantile's distance d from the centre becomes sqrt(d^2 + (s |centre|)^2), on the side
    of s: (n, h, q + 1) forecasts, (n, h, q) relative offsets s (`calendar.UnseenHolidays`: the
    spread of the history's holiday effects where a period lies near a holiday it never saw;
    0: unchanged). An effect of unknown size added to the members' own uncertainty as an
    independent one; the centre stays, and each quantile only moves away from it."""
    return _widen(values, holiday_offsets(values, spread, levels), levels)


def _widen(values: np.ndarray, offsets: np.ndarray, levels) -> np.ndarray:
    centre = _centre(values, np.asarray(levels, float))
    out = values.copy()
    out[..., :-1] = centre[..., None] + _widened(values[..., :-1] - centre[..., None], offsets)
    return out


def _widened(dev: np.ndarray, offsets: Optional[np.ndarray]) -> np.ndarray:
    """Distances from the centre with the offsets joined in: sqrt(dev^2 + e^2) on e's side, dev where e is 0."""
    if offsets is None:
        return dev
    return np.where(offsets != 0, np.sign(offsets) * np.sqrt(dev**2 + offsets**2), dev)


def _offsets(extra: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """extra as (n, H, q) floats, or None when absent or all zero (the fits then run as before)."""
    if extra is None:
        return None
    extra = np.asarray(extra, float)
    return extra if np.any(extra) else None
