"""How a number is shown to a user, one rule for every page, table and log line that shows one.

Shares of demand (WAPE, wQL, MAPE, coverage, relative bias; the report's service level and
changes) in percent with two decimals, a non-zero share too small for them as "<0.01%"; the
others (MASE, a ratio; MAE, RMSE, bias and levels, in units) with two decimals and thousands
separators. Nothing reads "-0.00". A missing value (None, NaN) is "-". Log lines keep four
significant digits (`format_logged`). `python -m deploy.approve list`, Studio's /registry page,
the local runtime's gate lines, the batch report and its monitor section use these; machine
outputs (`list --json`, evaluation.json, the CSVs) keep the stored numbers.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

# The metrics a version is summarised by, in this order, with their labels.
LISTED_METRICS = {"wape": "WAPE", "wql": "wQL", "mape": "MAPE", "coverage": "coverage", "mase": "MASE", "mae": "MAE"}
LABELS = {
    **LISTED_METRICS,
    "rmse": "RMSE",
    "bias": "bias",
    "relative_bias": "relative bias",
    "r2": "R²",
    "r2_item_median": "R² per item (median)",
}
# Left out of the run's summary line, kept in evaluation.json: R² pooled over items of different
# sizes reads 1.00 for any forecast that gets the sizes right (the per-item median is shown)
SUMMARY_HIDDEN = frozenset({"r2"})
SHARE_METRICS = frozenset({"wape", "wql", "mape", "coverage", "relative_bias"})


def metric_key(name: Any) -> str:
    """'WAPE', 'metric_wape' and 'wape' are the same metric."""
    key = str(name).strip().lower()
    return key[len("metric_") :] if key.startswith("metric_") else key


MISSING_TYPES = ("NAType", "NaTType")  # pandas.NA, pandas.NaT


def _number(value: Any) -> Optional[float]:
    """The value as a float, or None when it is missing (None, NaN) or no number (text, a flag)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _missing(value: Any) -> str:
    """What a value that is no number shows: '-' when missing (None, NaN, pandas' NA and NaT, which
    the report tables' nullable columns hold), else the text as is."""
    try:
        missing = value is None or math.isnan(float(value))
    except (TypeError, ValueError):
        missing = type(value).__name__ in MISSING_TYPES  # pandas is not imported here (the kernel stays light)
    return "-" if missing else str(value)


def format_share(value: Any, decimals: int = 2) -> str:
    """0.0312 -> '3.12%'; 0.00001 -> '<0.01%' (a share is not zero until it is), -0.00001 -> '-<0.01%'."""
    number = _number(value)
    if number is None:
        return _missing(value)
    text = f"{number:.{decimals}%}"
    zero = f"{0:.{decimals}%}"
    if text in (zero, "-" + zero):
        smallest = f"{10.0**-decimals:.{decimals}f}%"
        return zero if number == 0 else f"<{smallest}" if number > 0 else f"-<{smallest}"
    return text


def format_units(value: Any, decimals: int = 2) -> str:
    """7000 -> '7,000.00'; -0.001 -> '0.00' (never '-0.00')."""
    number = _number(value)
    if number is None:
        return _missing(value)
    text = f"{number:,.{decimals}f}"
    return text.lstrip("-") if text.strip("-0.,") == "" else text


def format_metric(name: Any, value: Any, decimals: int = 2) -> str:
    """0.00987 as WAPE -> '0.99%'; 15.6355 as MAE -> '15.64'; text that is no number is shown as is.
    `decimals` more than 2 only where two values must read apart (evaluation.champion)."""
    return format_share(value, decimals) if metric_key(name) in SHARE_METRICS else format_units(value, decimals)


def format_logged(value: Any) -> str:
    """A metric in a step's log line: four significant digits, 'undefined' when there is none (None,
    NaN: a zero denominator); never '-0'."""
    number = _number(value)
    if number is None:
        return "undefined" if _missing(value) == "-" else str(value)
    text = f"{number:.4g}"
    return "0" if text == "-0" else text


def metric_label(name: Any) -> str:
    key = metric_key(name)
    return LABELS.get(key, str(name))


def metrics_text(metrics: Mapping[str, Any]) -> str:
    """'WAPE 0.99%, wQL 0.69%, ...' from RegisterModel's metric_* strings (0.00987475 and the like)."""
    parts = []
    for name, label in LISTED_METRICS.items():
        value = metrics.get(f"metric_{name}")
        if value is not None:
            parts.append(f"{label} {format_metric(name, value)}")
    return ", ".join(parts)
