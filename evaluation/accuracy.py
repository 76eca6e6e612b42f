"""Forecast-accuracy monitoring: score forecasts earlier batch runs kept against the actuals
a later batch input brings.

Every batch run keeps its forecasts under `<prefix>/forecast-history/<execution>/`
(forecasts.csv + forecast_meta.json with the model package). When a later input has actuals
for timestamps an earlier run forecast, each (item, timestamp) is scored with the most
recent forecast made for it before this run, using evaluation.metrics (the same wQL, WAPE,
bias and coverage the Evaluate step uses): overall, per attribute value (category, region)
and per model package version.

Pure functions over pandas frames; evaluation/monitor.py does the S3 and CloudWatch I/O.
Container-safe: stdlib, numpy, pandas.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from evaluation import metrics
from processing import tables
from processing.kernel.contracts import MEAN_COLUMN
from processing.reporting import Columns, static_attributes

FORECASTS_FILE = "forecasts.csv"
META_FILE = "forecast_meta.json"
RUN = "_forecast_execution"
ACTUAL = "_actual"


def _number(value: float) -> Optional[float]:
    return float(value) if value is not None and math.isfinite(value) else None


def _moment(value: pd.Timestamp) -> str:
    """'2024-05-14' at midnight, else '2024-05-14 13:00:00' (hourly data keeps its hour)."""
    return str(value.date()) if value == value.normalize() else str(value)


def coverage_bounds(quantiles: Sequence[str]) -> Optional[tuple]:
    if len(quantiles) < 2:
        return None
    ordered = sorted(quantiles, key=metrics.quantile_level)
    return ordered[0], ordered[-1]


def latest_forecast_per_point(runs: Sequence[tuple], columns: Columns) -> pd.DataFrame:
    """[(meta, forecasts frame), ...] -> one row per key and timestamp: the forecast of the most
    recent run (by meta["created"], then execution id), with that run's model package."""
    frames = []
    for meta, frame in runs:
        frames.append(
            frame.assign(
                **{
                    RUN: meta["execution_id"],
                    "_created": str(meta.get("created", "")),
                    "model_package_arn": meta.get("model_package_arn", ""),
                    "model_package_version": str(meta.get("model_package_version", "")),
                }
            )
        )
    if not frames:
        return pd.DataFrame()
    data = pd.concat(frames, ignore_index=True, sort=False)
    data = data.sort_values(["_created", RUN], kind="mergesort")
    keys = [columns.item_id, *columns.grouping, columns.timestamp]
    return data.drop_duplicates(keys, keep="last").drop(columns=["_created"]).reset_index(drop=True)


def join_actuals(forecasts: pd.DataFrame, actuals: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """Forecast rows that have an actual now (inner join on the keys and timestamp)."""
    if forecasts.empty:
        return forecasts
    keys = [columns.item_id, *columns.grouping, columns.timestamp]
    # only rows that can match: an actual at a forecast timestamp, picked before any copy
    # (25,000 series: a dropna over the whole history copied 27M rows of every column)
    wanted = (
        actuals[columns.target].notna().to_numpy()
        & actuals[columns.timestamp].isin(pd.unique(forecasts[columns.timestamp])).to_numpy()
    )
    observed = actuals.iloc[np.flatnonzero(wanted)][keys + [columns.target]]
    observed = observed.rename(columns={columns.target: ACTUAL})
    return forecasts.merge(observed, on=keys, how="inner")


def score_points(frame: pd.DataFrame, quantiles: Sequence[str]) -> Dict[str, Any]:
    """wQL, WAPE, bias and p10-p90 coverage of scored points (evaluation.metrics definitions)."""
    a = frame[ACTUAL].to_numpy(dtype=float)
    f = frame[MEAN_COLUMN].to_numpy(dtype=float)
    bounds = coverage_bounds(quantiles)
    return {
        "points": int(len(frame)),
        "wql": _number(metrics.wql(a, {q: frame[q].to_numpy(dtype=float) for q in quantiles})) if quantiles else None,
        "wape": _number(metrics.wape(a, f)),
        "bias": _number(metrics.bias(a, f)),
        "coverage": _number(
            metrics.coverage(a, frame[bounds[0]].to_numpy(dtype=float), frame[bounds[1]].to_numpy(dtype=float))
        )
        if bounds
        else None,
        "coverage_interval": list(bounds) if bounds else [],
    }


def accuracy_of_previous_forecasts(
    runs: Sequence[tuple],
    actuals: pd.DataFrame,
    columns: Columns,
    quantiles: Sequence[str],
    after: Optional[str] = None,
) -> Optional[Dict[str, Any]]:
    """The summary's `accuracy_of_previous_forecasts`, or None when no stored forecast has a new actual.

    `after`: the last period an earlier batch run already scored (the accuracy history's
    latest `end`); only later periods count, so each history line measures the actuals that
    arrived since, and accuracy over time is not a cumulative average."""
    scored = join_actuals(latest_forecast_per_point(runs, columns), actuals, columns)
    if after and not scored.empty:
        scored = scored[scored[columns.timestamp] > pd.Timestamp(after)]
    if scored.empty:
        return None
    overall = score_points(scored, quantiles)
    newest = scored.sort_values(RUN).iloc[-1]
    result: Dict[str, Any] = {
        "periods": int(scored[columns.timestamp].nunique()),
        "items": int(scored.groupby([columns.item_id, *columns.grouping]).ngroups),
        **{k: overall[k] for k in ("wql", "wape", "bias", "coverage")},
        "coverage_interval": overall["coverage_interval"],
        "points": overall["points"],
        "start": _moment(scored[columns.timestamp].min()),
        "end": _moment(scored[columns.timestamp].max()),
        "model_package_arn": str(newest["model_package_arn"]),
        "forecast_executions": sorted(map(str, scored[RUN].unique())),
        "by_model_version": {},
        "by_attribute": {},
    }
    for (arn, version), part in scored.groupby(["model_package_arn", "model_package_version"], sort=True):
        result["by_model_version"][str(version or arn)] = dict(
            score_points(part, quantiles), model_package_arn=arn, items=int(part[columns.item_id].nunique())
        )
    statics = static_attributes(actuals, columns)
    attributes = [c for c in statics.columns if c != columns.item_id and c not in scored.columns]
    with_attributes = scored.merge(statics, on=columns.item_id, how="left")
    for attribute in [*columns.grouping, *attributes]:
        result["by_attribute"][attribute] = {
            str(level): dict(score_points(part, quantiles), items=int(part[columns.item_id].nunique()))
            for level, part in with_attributes.groupby(attribute, sort=True)
        }
    return result


def history_record(
    accuracy: Mapping[str, Any], execution_id: str, created: str, registered_metrics: Mapping[str, Any]
) -> Dict[str, Any]:
    """One line of the accuracy history: what this run measured, and the value at registration."""
    return {
        "execution_id": execution_id,
        "created": created,
        **{
            k: accuracy.get(k)
            for k in (
                "periods",
                "items",
                "points",
                "start",
                "end",
                "wql",
                "wape",
                "bias",
                "coverage",
                "model_package_arn",
                "forecast_executions",
            )
        },
        "by_model_version": accuracy.get("by_model_version", {}),
        "registered_wql": registered_metrics.get("wql"),
        "registered_wape": registered_metrics.get("wape"),
    }


def history_frame(records: List[Mapping[str, Any]]) -> pd.DataFrame:
    """The accuracy history as a table, oldest first (for the report's chart)."""
    if not records:
        return pd.DataFrame(columns=["execution_id", "created", "end", "wql", "wape", "registered_wql"])
    frame = pd.DataFrame(
        [
            {
                k: r.get(k)
                for k in (
                    "execution_id",
                    "created",
                    "start",
                    "end",
                    "periods",
                    "items",
                    "wql",
                    "wape",
                    "bias",
                    "coverage",
                    "model_package_arn",
                    "registered_wql",
                )
            }
            for r in records
        ]
    )
    return frame.sort_values(["created", "execution_id"], kind="mergesort").reset_index(drop=True)


def tidy_forecasts(forecasts: pd.DataFrame, columns: Columns, quantiles: Sequence[str]) -> pd.DataFrame:
    """The columns a stored forecast keeps: keys, timestamp, quantiles, mean."""
    keep = [columns.item_id, *columns.grouping, columns.timestamp, *quantiles, MEAN_COLUMN]
    return forecasts[keep].sort_values([columns.item_id, *columns.grouping, columns.timestamp]).reset_index(drop=True)


def read_stored_forecasts(payload: bytes, name: str, columns: Columns, quantiles: Sequence[str]) -> pd.DataFrame:
    """A kept forecasts.csv (S3 object bytes) through the one reader: ids and grouping as text."""
    frame = tables.read_csv_bytes(payload, name, [columns.item_id, *columns.grouping])
    missing = [c for c in (columns.item_id, columns.timestamp, *quantiles, MEAN_COLUMN) if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: stored forecasts lack column(s) {missing}; they have {list(frame.columns)}")
    frame[columns.timestamp] = pd.to_datetime(frame[columns.timestamp])
    for column in (*quantiles, MEAN_COLUMN):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame[np.isfinite(frame[MEAN_COLUMN])]
