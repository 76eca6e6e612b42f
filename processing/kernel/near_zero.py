"""The near-zero rule every report and chart shares: which items' forecasts are too small to scale on.

An item (or a chart panel) whose forecast is not positive, or below NEAR_ZERO_SHARE of the
average item's, is "near zero": a relative interval width divides by ~0 there, and an
autoscaled chart axis blows its noise up into swings as large as a real item's. The batch
report's tables and charts and the evaluation's forecast charts all use this one rule.
Stdlib only: the arguments may be floats or pandas Series (the comparisons broadcast).
"""

from __future__ import annotations

from typing import Any

NEAR_ZERO_SHARE = 0.01
# A near-zero panel's y axis starts at 0 and reaches at least one unit of demand, so a forecast
# of 0.01 with a band of 0.01 around it draws as the flat line it is.
NEAR_ZERO_AXIS_TOP = 1.0


def near_zero(total: Any, average: float) -> Any:
    """True where ``total`` is not positive or below NEAR_ZERO_SHARE of ``average`` (a negative
    average counts as 0). Floats give a bool, Series a boolean Series."""
    threshold = NEAR_ZERO_SHARE * max(float(average), 0.0)
    if isinstance(total, (int, float)):
        return bool(total <= 0 or total < threshold)
    return (total <= 0) | (total < threshold)


def near_zero_among(totals: Any) -> Any:
    """near_zero of each of ``totals`` (a pandas Series) against their average, negatives counted as 0."""
    return near_zero(totals, float(totals.clip(lower=0).mean()) if len(totals) else 0.0)


def near_zero_note(what: str = "item") -> str:
    """The words a chart panel's title adds: why its axis looks the way it does."""
    return f"near zero: forecast below {NEAR_ZERO_SHARE:.0%} of the average {what}'s; axis from 0"


def near_zero_ylim(top: float) -> tuple:
    """A near-zero panel's y limits, given its autoscaled top: from 0 to at least NEAR_ZERO_AXIS_TOP."""
    return 0.0, max(float(top), NEAR_ZERO_AXIS_TOP)
