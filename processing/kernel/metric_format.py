"""How a forecast metric is shown to a user, one rule for every table that shows one.

Shares of demand (WAPE, wQL, MAPE, coverage, relative bias) in percent with two decimals; the
others (MASE, a ratio; MAE, RMSE and bias, in units) with two decimals and thousands separators.
`python -m deploy.approve list`, Studio's /registry page and the local runtime's gate lines use
it; machine outputs (`list --json`, evaluation.json, the CSVs) keep the stored numbers.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

# The metrics a version is summarised by, in this order, with their labels.
LISTED_METRICS = {"wape": "WAPE", "wql": "wQL", "mape": "MAPE", "coverage": "coverage", "mase": "MASE", "mae": "MAE"}
LABELS = {**LISTED_METRICS, "rmse": "RMSE", "bias": "bias", "relative_bias": "relative bias", "r2": "R²"}
SHARE_METRICS = frozenset({"wape", "wql", "mape", "coverage", "relative_bias"})


def metric_key(name: Any) -> str:
    """'WAPE', 'metric_wape' and 'wape' are the same metric."""
    key = str(name).strip().lower()
    return key[len("metric_") :] if key.startswith("metric_") else key


def format_metric(name: Any, value: Any) -> str:
    """0.00987 as WAPE -> '0.99%'; 15.6355 as MAE -> '15.64'; text that is no number is shown as is."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-" if value is None else str(value)
    if math.isnan(number):
        return "-"
    return f"{number:.2%}" if metric_key(name) in SHARE_METRICS else f"{number:,.2f}"


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
