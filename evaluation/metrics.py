"""Forecast accuracy metrics as small, vectorised numpy functions.

Pure functions on arrays: the Evaluate step, the local engine (model selection) and the
tests all use the same definitions, so a number means the same thing everywhere.
Container-safe: numpy and the standard library only.

Conventions
-----------
``a`` = actuals, ``f`` = forecast, both 1-d and aligned; sums run over every point given.

* Point metrics (MAE, RMSE, MAPE, MASE, WAPE, bias, R2) are computed on the ``mean``
  forecast, as Autopilot and Amazon Forecast report them; wQL and coverage on quantiles.
* Ratios whose denominator is zero (all-zero actuals, a constant series' R2, ...) are
  *undefined* and return ``nan``; they are never turned into 0 or infinity. Callers
  report them (the Evaluate step writes ``null`` and says why).
* A NaN or infinite forecast is a broken model output, not a value to skip: ValueError.
"""

from __future__ import annotations

from typing import Any, Dict, Hashable, List, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from processing.kernel import contracts
from processing.kernel.metric_format import format_logged

__all__ = [
    "quantile_level",
    "pinball_loss",
    "wql",
    "wape",
    "mae",
    "rmse",
    "bias",
    "relative_bias",
    "r2",
    "mape",
    "mape_details",
    "MapeResult",
    "coverage",
    "seasonal_naive_scale",
    "mase",
    "MaseResult",
    "logged",
]


# ----------------------------------------------------------------------------- helpers
def _values(x: Any, name: str, *, allow_nan: bool = False) -> np.ndarray:
    """1-d float array; NaN/inf rejected with a message naming the argument."""
    arr = np.asarray(x, dtype=float).reshape(-1)
    if not allow_nan:
        bad = ~np.isfinite(arr)
        if bad.any():
            first = np.flatnonzero(bad)[:5].tolist()
            raise ValueError(
                f"{name} contains {int(bad.sum())} NaN or infinite value(s) (first positions "
                f"{first}); a forecast must be a finite number for every item and timestamp. "
                "Check the model output for failed items."
            )
    return arr


def _pair(actual: Any, forecast: Any, fname: str = "forecast") -> "tuple[np.ndarray, np.ndarray]":
    a = _values(actual, "actual")
    f = _values(forecast, fname)
    if a.shape != f.shape:
        raise ValueError(f"actual has {a.size} values but {fname} has {f.size}; they must be aligned")
    if a.size == 0:
        raise ValueError("no values to score: actual and forecast are empty")
    return a, f


def _ratio(num: float, den: float) -> float:
    """num/den, or nan when den is zero (undefined, never inf)."""
    return float(num / den) if den != 0 else float("nan")


# ----------------------------------------------------------------------------- quantiles
def quantile_level(name: str) -> float:
    """'p10' -> 0.1, 'p5' -> 0.05, 'p99' -> 0.99 (Autopilot's quantile names, ^p[1-9]\\d?$)."""
    level = contracts.quantile_fraction(str(name).strip())
    if level is None:
        raise ValueError(f"quantile name {name!r} is not of the form p1..p99 (for example p10, p50, p90)")
    return level


def pinball_loss(actual: Any, forecast: Any, level: float) -> np.ndarray:
    """Element-wise pinball (quantile) loss at ``level`` q:
    ``q * (a - f)`` if a >= f else ``(1 - q) * (f - a)``; i.e. max(q*(a-f), (q-1)*(a-f))."""
    a, f = _pair(actual, forecast, "quantile forecast")
    diff = a - f
    return np.maximum(level * diff, (level - 1.0) * diff)


def wql(actual: Any, quantile_forecasts: Mapping[str, Any]) -> float:
    """Weighted quantile loss, averaged over the quantiles (Autopilot's AverageWeightedQuantileLoss).

    ``wQL[q] = 2 * sum(pinball_q(a, f_q)) / sum(|a|)``; ``wql = mean over q of wQL[q]``.
    Keys are quantile names ('p10', 'p50', 'p90'). Volume-weighted: big sellers count more,
    zero actuals are fine as long as not every actual is zero (then nan). 0 is perfect;
    at p50 alone it equals WAPE.
    """
    if not quantile_forecasts:
        raise ValueError("wql needs at least one quantile forecast (for example {'p50': ...})")
    a = _values(actual, "actual")
    denom = float(np.abs(a).sum())
    losses = []
    for name, values in quantile_forecasts.items():
        loss = pinball_loss(a, _values(values, f"quantile forecast {name!r}"), quantile_level(name))
        losses.append(2.0 * float(loss.sum()))
    return _ratio(float(np.mean(losses)), denom)


def coverage(actual: Any, lower: Any, upper: Any) -> float:
    """Share of actuals inside the closed interval [lower, upper] (for p10-p90, nominally 0.8)."""
    a, lo = _pair(actual, lower, "lower quantile forecast")
    _, hi = _pair(actual, upper, "upper quantile forecast")
    return float(np.mean((a >= lo) & (a <= hi)))


# ----------------------------------------------------------------------------- point metrics
def wape(actual: Any, forecast: Any) -> float:
    """Weighted absolute percentage error, as a fraction: ``sum|a - f| / sum|a|``.

    The volume-weighted error planners should read first: 0.12 means the absolute errors
    add up to 12% of the units sold. Zero actuals are fine; all-zero actuals -> nan.
    """
    a, f = _pair(actual, forecast)
    return _ratio(float(np.abs(a - f).sum()), float(np.abs(a).sum()))


def mae(actual: Any, forecast: Any) -> float:
    """Mean absolute error ``mean|a - f|``, in units of the target."""
    a, f = _pair(actual, forecast)
    return float(np.abs(a - f).mean())


def rmse(actual: Any, forecast: Any) -> float:
    """Root mean squared error ``sqrt(mean((a - f)^2))``, in units; punishes large misses."""
    a, f = _pair(actual, forecast)
    return float(np.sqrt(np.mean((a - f) ** 2)))


def bias(actual: Any, forecast: Any) -> float:
    """Mean error ``mean(f - a)`` in units: positive = over-forecasting, negative = under."""
    a, f = _pair(actual, forecast)
    return float(np.mean(f - a))


def relative_bias(actual: Any, forecast: Any) -> float:
    """Bias as a fraction of volume ``sum(f - a) / sum|a|`` (0.05 = 5% over-forecast)."""
    a, f = _pair(actual, forecast)
    return _ratio(float((f - a).sum()), float(np.abs(a).sum()))


def r2(actual: Any, forecast: Any) -> float:
    """Coefficient of determination ``1 - sum((a - f)^2) / sum((a - mean(a))^2)``.

    1 is perfect, 0 is no better than the holdout mean, negative is worse. Undefined (nan)
    when the actuals are constant (including a single point): there is no variance to explain.
    """
    a, f = _pair(actual, forecast)
    ss_tot = float(np.sum((a - a.mean()) ** 2))
    if ss_tot == 0:
        return float("nan")
    return 1.0 - float(np.sum((a - f) ** 2)) / ss_tot


class MapeResult(NamedTuple):
    """MAPE with the bookkeeping that makes it honest: how many zero actuals were skipped."""

    value: float  # fraction (0.12 = 12%); nan when every actual is zero
    used: int  # points with a non-zero actual
    skipped: int  # points skipped because the actual is zero


def mape_details(actual: Any, forecast: Any) -> MapeResult:
    """``mean(|a - f| / |a|)`` over points with ``a != 0``, as a fraction, plus the counts.

    Zero actuals have no percentage error; they are skipped and counted (never divided by).
    """
    a, f = _pair(actual, forecast)
    nonzero = a != 0
    used = int(nonzero.sum())
    value = float(np.mean(np.abs(a[nonzero] - f[nonzero]) / np.abs(a[nonzero]))) if used else float("nan")
    return MapeResult(value, used, int(a.size - used))


def mape(actual: Any, forecast: Any) -> float:
    """Mean absolute percentage error as a fraction, skipping zero actuals (see mape_details)."""
    return mape_details(actual, forecast).value


# ----------------------------------------------------------------------------- MASE
def seasonal_naive_scale(history: Any, season: int) -> float:
    """In-sample MAE of the seasonal-naive forecast on a *training history*: the MASE scale.

    ``scale = mean_{t >= m} |y_t - y_{t-m}|`` with ``m = season``. When the history is not
    longer than one season, the lag-1 naive forecast is used instead (m = 1), as GluonTS
    does. NaN history values (gaps) drop the pairs they touch. Fewer than two usable
    points -> nan. A constant history gives 0 (reported by ``mase``, never divided by).
    """
    if int(season) < 1:
        raise ValueError(f"season must be a positive integer, got {season!r}")
    y = _values(history, "history", allow_nan=True)
    m = int(season) if y.size > int(season) else 1
    if y.size <= m:
        return float("nan")
    diffs = np.abs(y[m:] - y[:-m])
    diffs = diffs[np.isfinite(diffs)]
    return float(diffs.mean()) if diffs.size else float("nan")


class MaseResult(NamedTuple):
    """MASE over items, with the items it could not score and why."""

    value: float  # mean of per-item MASE over scorable items; nan if none
    per_item: Dict[Hashable, float]  # item -> MASE (nan for unscorable items)
    scales: Dict[Hashable, float]  # item -> seasonal-naive in-sample MAE of its history
    zero_scale_items: List[Hashable]  # history constant (scale 0): MASE undefined, excluded
    short_history_items: List[Hashable]  # fewer than two history points: scale undefined


def mase(
    actual: Any, forecast: Any, item_ids: Sequence[Hashable], histories: Mapping[Hashable, Any], season: int
) -> MaseResult:
    """Mean absolute scaled error, averaged over items.

    For each item i: ``MASE_i = MAE_i(holdout) / seasonal_naive_scale(training history_i, m)``;
    ``MASE = mean_i MASE_i`` over items whose scale is positive. The scale comes from the
    item's TRAINING history (what a forecaster knew), never from the holdout actuals.
    Items with a zero scale (constant history) or too short a history are excluded from the
    average and listed; they never become infinity. MASE < 1: better than the in-sample
    seasonal-naive forecast.
    """
    a, f = _pair(actual, forecast)
    ids = np.asarray(item_ids, dtype=object).reshape(-1)
    if ids.size != a.size:
        raise ValueError(f"item_ids has {ids.size} values but actual has {a.size}; they must be aligned")
    # group points by item without a Python loop over points
    uniques, inverse = np.unique(ids.astype(str), return_inverse=True)
    first_index = np.zeros(uniques.size, dtype=int)
    first_index[inverse[::-1]] = np.arange(ids.size)[::-1]
    originals = ids[first_index]
    abs_sum = np.bincount(inverse, weights=np.abs(a - f), minlength=uniques.size)
    counts = np.bincount(inverse, minlength=uniques.size)
    item_mae = abs_sum / counts

    per_item: Dict[Hashable, float] = {}
    scales: Dict[Hashable, float] = {}
    zero_scale: List[Hashable] = []
    short: List[Hashable] = []
    scorable = []
    for k, item in enumerate(originals.tolist()):
        if item not in histories:
            raise ValueError(
                f"item {item!r} has holdout actuals but no training history; MASE needs the "
                "training history of every scored item (pass the train.csv of the same run)"
            )
        scale = seasonal_naive_scale(histories[item], season)
        scales[item] = scale
        if np.isnan(scale):
            short.append(item)
            per_item[item] = float("nan")
        elif scale == 0:
            zero_scale.append(item)
            per_item[item] = float("nan")
        else:
            per_item[item] = float(item_mae[k] / scale)
            scorable.append(per_item[item])
    value = float(np.mean(scorable)) if scorable else float("nan")
    return MaseResult(value, per_item, scales, zero_scale, short)


def logged(value: Optional[float]) -> str:
    """A metric in a step's log line: four significant digits, "undefined" for None (a zero denominator);
    the rule lives with the other number formats (processing.kernel.metric_format)."""
    return format_logged(value)
