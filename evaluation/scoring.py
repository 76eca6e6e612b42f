"""Join forecasts to holdout actuals, score them overall, per item and per attribute, and
against a seasonal-naive baseline.

Pure functions over pandas frames; ``evaluation.evaluate`` is the thin script around them.
Container-safe: stdlib, numpy, pandas (1.x or 2.x APIs only), processing.kernel.contracts.

A *series* is an item id plus its grouping attributes (Autopilot's GroupingAttributeNames
split an item into several series); "item" below means that series.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from evaluation import metrics
from processing import inventory, tables
from processing.kernel import contracts

SERIES = "_series"  # internal series key column (item id + grouping values)
SOURCE = "_source_file"  # internal column: which input file a row came from
ACTUAL = "_actual"  # internal column: the holdout actual joined to a forecast row
READABLE_SUFFIXES = tables.OUTPUT_SUFFIXES

# metrics where lower is better; skill = 1 - model / baseline (bias: on absolute values)
LOWER_IS_BETTER = ("mae", "rmse", "mape", "mase", "wape", "wql")
# r2 pools every point, so across items of different sizes it mostly measures how the sizes differ
# (the seed holdout: 1.00 for the model and for seasonal naive alike); r2_item_median is each
# item's own R² over its holdout, the median over items with any variance to explain
POINT_KEYS = ("mae", "rmse", "mape", "mase", "wape", "wql", "bias", "relative_bias", "r2", "r2_item_median", "coverage")
REGRESSION_KEYS = ("mae", "mse", "rmse", "r2", "mape", "mase", "wape", "wql", "bias")
MAX_ATTRIBUTE_LEVELS = 50


@dataclass(frozen=True)
class Columns:
    """The user's column names, kept as given (never renamed in outputs)."""

    item_id: str = "item_id"
    timestamp: str = "timestamp"
    target: str = "target_value"
    grouping: Tuple[str, ...] = ()

    @property
    def keys(self) -> List[str]:
        return [self.item_id, *self.grouping]


# ----------------------------------------------------------------------------- reading
def input_files(path: "str | Path", role: str) -> List[Path]:
    """The CSV files behind a path: the file itself, or every .out/.csv file in a folder."""
    try:
        return tables.list_files(path, READABLE_SUFFIXES, role)
    except tables.TableError as error:
        raise ValueError(f"{error}; pass the file or the folder the previous step wrote") from None


def read_inputs(
    path: "str | Path", role: str, columns: Columns, required: Sequence[str], categorical: bool = False
) -> pd.DataFrame:
    """Read and concatenate CSV inputs, checking required columns per file (named in errors).

    Read with the project's one reader (processing.tables): id and grouping columns are text,
    so '007' and 7 never silently differ; a read error is one line naming the file.
    categorical: text columns as pandas categories (the training history: 27M rows at 25,000
    daily series, one Python string per row and column otherwise).
    """
    frames = []
    for file in input_files(path, role):
        frame = tables.read_file(
            file,
            columns.keys,
            name=f"{role} file {file}",
            require_rows=False,
            categorical=categorical,
            numeric=[columns.target] if categorical else (),
        )
        missing = [c for c in required if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{role} file {file} lacks column(s) {missing}; it has {list(frame.columns)}. "
                "Check the pipeline parameters naming them match the data (--param ItemIdColumn=, "
                "--param TimestampColumn=, --param TargetColumn=, --param GroupingColumns=, "
                "--param ForecastQuantiles=)."
            )
        frame[SOURCE] = (
            pd.Categorical.from_codes(np.zeros(len(frame), dtype=np.int8), [str(file)]) if categorical else str(file)
        )
        frames.append(frame)
    # one file (PrepareData's train.csv): no concatenated copy of its 27M rows at 25,000 series
    data = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True, sort=False)
    for col in columns.keys:
        if data[col].isna().any():
            row = data.index[data[col].isna()][0]
            raise ValueError(
                f"{role} file {data.at[row, SOURCE]} has an empty {col!r} on "
                f"{int(data[col].isna().sum())} row(s); every row needs its item id and grouping values"
            )
    data[columns.timestamp] = _parse_timestamps(data, columns.timestamp, role)
    data[SERIES] = series_labels(data, columns)
    return data


def _parse_timestamps(data: pd.DataFrame, column: str, role: str) -> pd.Series:
    parsed = pd.to_datetime(data[column], errors="coerce")
    bad = parsed.isna()
    if bad.any():
        row = data.index[bad][0]
        raise ValueError(
            f"{role} file {data.at[row, SOURCE]}: column {column!r} has {int(bad.sum())} value(s) "
            f"that are not timestamps (first: {data.at[row, column]!r}); use YYYY-MM-DD[ HH:MM:SS]"
        )
    return parsed


def _numeric(data: pd.DataFrame, column: str, role: str, allow_missing: bool) -> pd.Series:
    values = pd.to_numeric(data[column], errors="coerce")
    text = values.isna() & data[column].notna()
    bad = text | ((not allow_missing) & values.isna()) | np.isinf(values.fillna(0.0))
    if bad.any():
        row = data.index[bad][0]
        raise ValueError(
            f"{role} file {data.at[row, SOURCE]}: column {column!r} has {int(bad.sum())} missing, "
            f"non-numeric or infinite value(s) (first: item {data.at[row, SERIES]!r}, "
            f"value {data.at[row, column]!r}); every {role} value must be a finite number"
        )
    return values.astype(float)


def _text(values: pd.Series) -> pd.Series:
    """values.astype(str); a category's texts are made once per category, not once per row."""
    if isinstance(values.dtype, pd.CategoricalDtype) and not values.isna().any():
        texts = np.asarray(values.cat.categories.astype(str), dtype=object)
        return pd.Series(texts[values.cat.codes.to_numpy()], index=values.index, name=values.name)
    return values.astype(str)


def series_labels(data: pd.DataFrame, columns: Columns) -> pd.Series:
    """Readable series key: 'item' or 'item | group1 | group2'."""
    label = _text(data[columns.item_id])
    for col in columns.grouping:
        label = label + " | " + _text(data[col])
    return label


def load_forecasts(path: "str | Path", columns: Columns, quantiles: Sequence[str]) -> pd.DataFrame:
    """Forecast rows (Autopilot batch-transform layout), quantile columns found by name."""
    for name in quantiles:
        metrics.quantile_level(name)
    required = [*columns.keys, columns.timestamp, *quantiles, contracts.MEAN_COLUMN]
    data = read_inputs(path, "forecasts", columns, required)
    for col in [*quantiles, contracts.MEAN_COLUMN]:
        data[col] = _numeric(data, col, "forecasts", allow_missing=False)
    _reject_duplicates(data, columns, "forecasts")
    return data


def load_actuals(path: "str | Path", columns: Columns) -> pd.DataFrame:
    """Holdout actuals: keys, timestamp, target (finite)."""
    data = read_inputs(path, "actuals", columns, [*columns.keys, columns.timestamp, columns.target])
    data[columns.target] = _numeric(data, columns.target, "actuals", allow_missing=False)
    _reject_duplicates(data, columns, "actuals")
    return data


def load_history(path: "str | Path", columns: Columns) -> pd.DataFrame:
    """Training history (train.csv): gaps in the target are allowed, text is not."""
    data = read_inputs(path, "history", columns, [*columns.keys, columns.timestamp, columns.target], categorical=True)
    data[columns.target] = _numeric(data, columns.target, "history", allow_missing=True)
    _reject_duplicates(data, columns, "history")
    data = _without_features(data, columns)  # the full frame is freed before the sort copies
    return data.sort_values([SERIES, columns.timestamp], kind="mergesort").reset_index(drop=True)


def _without_features(history: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """The history without its features: the scoring reads keys, timestamps and target, the
    breakdowns columns constant per series (static_attributes never takes a float column or one
    varying within a series). The seed's 5 covariates at 27M rows are 1.1 GB, only sorted and
    carried along otherwise."""
    fixed = {*columns.keys, columns.timestamp, columns.target, SERIES, SOURCE}
    codes = None
    drop = []
    for col in history.columns:
        if col in fixed:
            continue
        if pd.api.types.is_float_dtype(history[col]):
            drop.append(col)
            continue
        codes = pd.factorize(history[SERIES])[0] if codes is None else codes
        if history.groupby(codes)[col].nunique(dropna=False).max() > 1:
            drop.append(col)
    return history.drop(columns=drop) if drop else history


def _reject_duplicates(data: pd.DataFrame, columns: Columns, role: str) -> None:
    dup = data.duplicated([SERIES, columns.timestamp], keep=False)
    if dup.any():
        row = data.index[dup][0]
        raise ValueError(
            f"{role} file {data.at[row, SOURCE]} has {int(dup.sum())} rows that repeat an item and "
            f"timestamp (first: {data.at[row, SERIES]!r} at {data.at[row, columns.timestamp]}); "
            "each item needs one row per timestamp"
        )


# ----------------------------------------------------------------------------- joining
def _examples(frame: pd.DataFrame, columns: Columns, limit: int = 5) -> str:
    rows = frame[[SERIES, columns.timestamp]].head(limit)
    return ", ".join(f"{s} @ {t}" for s, t in zip(rows[SERIES], rows[columns.timestamp]))


def join_forecasts(forecasts: pd.DataFrame, actuals: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """One row per holdout point with its forecast; any missing or extra point is an error.

    Returns the forecast columns plus ``_actual``, sorted by series and timestamp.
    """
    keys = [SERIES, columns.timestamp]
    merged = forecasts.merge(
        actuals[keys + [columns.target, SOURCE]].rename(columns={columns.target: ACTUAL, SOURCE: "_actual_file"}),
        on=keys,
        how="outer",
        indicator=True,
        sort=False,
    )
    problems = []
    only_actual = merged[merged["_merge"] == "right_only"]
    only_forecast = merged[merged["_merge"] == "left_only"]
    if len(only_actual):
        absent = sorted(set(only_actual[SERIES]) - set(forecasts[SERIES]))
        problems.append(
            f"{len(only_actual)} holdout point(s) in {sorted(set(only_actual['_actual_file']))} have no "
            f"forecast"
            + (
                f"; items with no forecast at all: {absent[:10]}" + (" ..." if len(absent) > 10 else "")
                if absent
                else ""
            )
            + f" (first: {_examples(only_actual, columns)})"
        )
    if len(only_forecast):
        extra = sorted(set(only_forecast[SERIES]) - set(actuals[SERIES]))
        problems.append(
            f"{len(only_forecast)} forecast row(s) in {sorted(set(only_forecast[SOURCE]))} match no holdout actual"
            + (f"; items unknown to the holdout: {extra[:10]}" + (" ..." if len(extra) > 10 else "") if extra else "")
            + f" (first: {_examples(only_forecast, columns)})"
        )
    if problems:
        raise ValueError(
            "forecasts and holdout actuals do not cover the same items and timestamps: "
            + "; ".join(problems)
            + ". Forecast the same items and horizon as the holdout (same ForecastHorizon, "
            "frequency and item/grouping columns)."
        )
    joined = merged.drop(columns=["_merge", "_actual_file"])
    return joined.sort_values(keys, kind="mergesort").reset_index(drop=True)


# ----------------------------------------------------------------------------- attributes
def static_attributes(history: pd.DataFrame, columns: Columns, max_levels: int = MAX_ATTRIBUTE_LEVELS) -> List[str]:
    """Attribute columns worth breaking errors down by (for the seed: category, region).

    Grouping columns, plus history columns that are constant per series, not float-valued
    (numbers varying by item are features, not categories), and that split the series into
    between 2 and ``max_levels`` groups with fewer groups than series (an attribute unique
    per series is just another item id).
    """
    codes = pd.factorize(history[SERIES])[0]  # integer keys: grouping 27M rows by strings costs 10x
    n_series = int(codes.max()) + 1 if len(codes) else 0
    skip = {columns.item_id, columns.timestamp, columns.target, SERIES, SOURCE}
    found = []
    for col in [*columns.grouping, *[c for c in history.columns if c not in columns.grouping]]:
        if col in skip or col in found:
            continue
        values = history[col]
        if pd.api.types.is_float_dtype(values):
            continue
        levels = values.nunique(dropna=True)
        if not (2 <= levels <= max_levels and levels < n_series):
            continue
        if col not in columns.grouping and history.groupby(codes)[col].nunique(dropna=False).max() > 1:
            continue
        found.append(col)
    return found


def attribute_table(history: pd.DataFrame, attributes: Sequence[str]) -> pd.DataFrame:
    """series -> attribute values (one row per series; plain values, not categories, so that
    breakdowns by several attributes never list combinations that do not occur)."""
    if not attributes:
        return pd.DataFrame(index=pd.Index(sorted(history[SERIES].unique()), name=SERIES))
    table = history.groupby(SERIES, sort=True, observed=True)[list(attributes)].first()
    for column in table.columns:
        if isinstance(table[column].dtype, pd.CategoricalDtype):
            table[column] = table[column].astype(object)
    return table


# ----------------------------------------------------------------------------- baseline
def _effective_season(n: int, season: int) -> int:
    """Seasonal lag when the history is longer than a season, else lag 1 (as for the MASE scale)."""
    return season if n > season else 1


def seasonal_naive_forecast(
    history: pd.DataFrame, holdout: pd.DataFrame, columns: Columns, season: int, quantiles: Sequence[str]
) -> pd.DataFrame:
    """Seasonal-naive forecast of the holdout: repeat each series' last season of history.

    ``f(T+h) = y(T + h - m * ceil(h / m))`` for h = 1..H (the value one season earlier).
    Quantiles = the point forecast plus that quantile of the series' in-sample seasonal
    differences ``y_t - y_{t-m}`` (clipped at 0 when the history never goes negative), so
    wQL and coverage have a fair probabilistic baseline. Gaps (NaN) in the history are
    filled forward (then backward) for this purpose. Returns the holdout keys with ``mean`` and quantile columns.
    """
    levels = [metrics.quantile_level(q) for q in quantiles]
    ts = columns.timestamp
    # all series in one flat array with offsets (no per-series Python loop)
    codes, uniques = pd.factorize(history[SERIES])
    order = np.lexsort((history[ts].to_numpy(), codes))
    codes = codes[order]
    y = history[columns.target].to_numpy(dtype=float)[order]
    y = pd.Series(y).groupby(codes).ffill().groupby(codes).bfill().to_numpy()
    counts = np.bincount(codes, minlength=len(uniques))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if np.isnan(y).any():
        raise ValueError(f"item {uniques[codes[np.isnan(y)][0]]!r} has no observed target in the training history")
    lag = np.where(counts > season, season, 1)

    out = holdout[[SERIES, ts]].sort_values([SERIES, ts], kind="mergesort")
    step = out.groupby(SERIES, sort=False).cumcount().to_numpy()
    row_code = pd.Index(uniques).get_indexer(out[SERIES])
    if (row_code < 0).any():
        missing = sorted(set(out[SERIES][row_code < 0]))
        raise ValueError(
            f"item(s) {missing[:10]} are in the holdout but not in the training history; "
            "pass the train.csv written by the same PrepareData run"
        )
    point = y[starts[row_code] + counts[row_code] - lag[row_code] + step % lag[row_code]]

    position = np.arange(len(y)) - starts[codes]  # index within its series
    valid = np.flatnonzero(position >= lag[codes])
    diffs = pd.Series(y[valid] - y[valid - lag[codes[valid]]])
    offsets = np.zeros((len(uniques), len(levels)))
    for j, level in enumerate(levels):
        per_series = diffs.groupby(codes[valid]).quantile(level)
        offsets[per_series.index.to_numpy(dtype=int), j] = per_series.to_numpy()
    bands = point[:, None] + offsets[row_code]
    non_negative = pd.Series(y).groupby(codes).min().to_numpy() >= 0
    bands = np.where(non_negative[row_code][:, None], np.maximum(bands, 0.0), bands)

    result = out.copy()
    result[contracts.MEAN_COLUMN] = point
    for j, name in enumerate(quantiles):
        result[name] = bands[:, j]
    return result.reset_index(drop=True)


# ----------------------------------------------------------------------------- scoring
@dataclass
class Scores:
    """Metrics of one forecast (the model's or the baseline's) on the holdout."""

    overall: Dict[str, float]
    per_item: pd.DataFrame
    wql_by_quantile: Dict[str, float]
    mape_skipped: int
    mase_zero_scale_items: List[str] = field(default_factory=list)
    mase_short_history_items: List[str] = field(default_factory=list)


def coverage_bounds(quantiles: Sequence[str]) -> Optional[Tuple[str, str]]:
    """The outermost quantiles (p10, p90 for the default) or None with fewer than two."""
    if len(quantiles) < 2:
        return None
    ordered = sorted(quantiles, key=metrics.quantile_level)
    return ordered[0], ordered[-1]


def score(frame: pd.DataFrame, histories: Mapping[str, np.ndarray], quantiles: Sequence[str], season: int) -> Scores:
    """Overall and per-series metrics of ``frame`` (one row per point: _series, _actual,
    mean, quantile columns). Point metrics on ``mean``, wQL and coverage on the quantiles."""
    a = frame[ACTUAL].to_numpy(dtype=float)
    f = frame[contracts.MEAN_COLUMN].to_numpy(dtype=float)
    qf = {q: frame[q].to_numpy(dtype=float) for q in quantiles}
    bounds = coverage_bounds(quantiles)
    mape = metrics.mape_details(a, f)
    mase = metrics.mase(a, f, frame[SERIES].to_numpy(), histories, season)
    overall = {
        "mae": metrics.mae(a, f),
        "mse": metrics.rmse(a, f) ** 2,
        "rmse": metrics.rmse(a, f),
        "mape": mape.value,
        "mase": mase.value,
        "wape": metrics.wape(a, f),
        "wql": metrics.wql(a, qf) if quantiles else float("nan"),
        "bias": metrics.bias(a, f),
        "relative_bias": metrics.relative_bias(a, f),
        "r2": metrics.r2(a, f),
        "coverage": metrics.coverage(a, qf[bounds[0]], qf[bounds[1]]) if bounds else float("nan"),
    }
    per_item = per_item_metrics(frame, quantiles, mase.scales)
    overall["r2_item_median"] = item_median(per_item["r2"])
    return Scores(
        overall=overall,
        per_item=per_item,
        wql_by_quantile={q: metrics.wql(a, {q: qf[q]}) for q in quantiles},
        mape_skipped=mape.skipped,
        mase_zero_scale_items=sorted(map(str, mase.zero_scale_items)),
        mase_short_history_items=sorted(map(str, mase.short_history_items)),
    )


def item_median(values: pd.Series) -> float:
    """The median over the items where the metric is defined (nan when it is nowhere)."""
    finite = values.to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(np.median(finite)) if finite.size else float("nan")


def per_item_metrics(frame: pd.DataFrame, quantiles: Sequence[str], scales: Mapping[str, float]) -> pd.DataFrame:
    """The same metrics per series, vectorised with one groupby (no per-item Python loop).

    Definitions match ``evaluation.metrics`` exactly (tests check this)."""
    a = frame[ACTUAL].to_numpy(dtype=float)
    f = frame[contracts.MEAN_COLUMN].to_numpy(dtype=float)
    err = f - a
    nonzero = a != 0
    parts = pd.DataFrame(
        {
            SERIES: frame[SERIES].to_numpy(),
            "n": 1,
            "actual_sum": a,
            "forecast_sum": f,
            "_abs_actual": np.abs(a),
            "_abs_err": np.abs(err),
            "_sq_err": err**2,
            "_err": err,
            "_nonzero": nonzero.astype(int),
            "_ape": np.where(nonzero, np.abs(err) / np.where(nonzero, np.abs(a), 1.0), 0.0),
        }
    )
    for q in quantiles:
        parts["_pin_" + q] = metrics.pinball_loss(a, frame[q].to_numpy(dtype=float), metrics.quantile_level(q))
    bounds = coverage_bounds(quantiles)
    if bounds:
        parts["_covered"] = ((a >= frame[bounds[0]].to_numpy()) & (a <= frame[bounds[1]].to_numpy())).astype(int)
    parts["_sq_dev"] = (a - parts.groupby(SERIES)["actual_sum"].transform("mean").to_numpy()) ** 2
    sums = parts.groupby(SERIES, sort=True).sum()

    def ratio(num: pd.Series, den: pd.Series) -> pd.Series:
        return num / den.where(den != 0)

    out = pd.DataFrame(index=sums.index)
    out["n"] = sums["n"]
    out["actual_sum"] = sums["actual_sum"]
    out["forecast_sum"] = sums["forecast_sum"]
    out["mae"] = sums["_abs_err"] / sums["n"]
    out["rmse"] = np.sqrt(sums["_sq_err"] / sums["n"])
    out["mape"] = ratio(sums["_ape"], sums["_nonzero"])
    out["mape_skipped"] = sums["n"] - sums["_nonzero"]
    scale = pd.Series({k: scales.get(k, float("nan")) for k in out.index}, dtype=float)
    out["mase_scale"] = scale
    out["mase"] = ratio(out["mae"], scale)
    out["wape"] = ratio(sums["_abs_err"], sums["_abs_actual"])
    if quantiles:
        pin = sums[["_pin_" + q for q in quantiles]].mean(axis=1)
        out["wql"] = ratio(2.0 * pin, sums["_abs_actual"])
    else:
        out["wql"] = float("nan")
    out["bias"] = sums["_err"] / sums["n"]
    out["relative_bias"] = ratio(sums["_err"], sums["_abs_actual"])
    out["r2"] = 1.0 - ratio(sums["_sq_err"], sums["_sq_dev"])
    out["coverage"] = sums["_covered"] / sums["n"] if bounds else float("nan")
    out.index.name = SERIES
    return out


def group_metrics(
    frame: pd.DataFrame, per_item: pd.DataFrame, attributes: pd.DataFrame, quantiles: Sequence[str]
) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """Pooled metrics per attribute value: {attribute: {value: {items, wape, wql, ...}}}.

    Volume metrics (WAPE, wQL, MAE, ...) pool the points of the group's series; MASE is the
    mean of the group's per-series MASE, like the overall MASE."""
    result: Dict[str, Dict[str, Dict[str, Any]]] = {}
    bounds = coverage_bounds(quantiles)
    for attr in attributes.columns:
        values = frame[SERIES].map(attributes[attr])
        result[attr] = {}
        for level in sorted(values.dropna().unique(), key=str):
            mask = (values == level).to_numpy()
            sub = frame[mask]
            a = sub[ACTUAL].to_numpy(dtype=float)
            f = sub[contracts.MEAN_COLUMN].to_numpy(dtype=float)
            qf = {q: sub[q].to_numpy(dtype=float) for q in quantiles}
            items = sorted(set(sub[SERIES]))
            result[attr][str(level)] = {
                "items": len(items),
                "actual_sum": float(a.sum()),
                "wape": metrics.wape(a, f),
                "wql": metrics.wql(a, qf) if quantiles else float("nan"),
                "mae": metrics.mae(a, f),
                "rmse": metrics.rmse(a, f),
                "mape": metrics.mape(a, f),
                "mase": _nanmean(per_item.loc[items, "mase"]),
                "bias": metrics.bias(a, f),
                "relative_bias": metrics.relative_bias(a, f),
                "coverage": metrics.coverage(a, qf[bounds[0]], qf[bounds[1]]) if bounds else float("nan"),
            }
    return result


def _nanmean(values: Any) -> float:
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


def _nanstd(values: Any) -> float:
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.std()) if arr.size else float("nan")


def skill(model: Mapping[str, float], baseline: Mapping[str, float]) -> Dict[str, Optional[float]]:
    """Skill vs the baseline, ``1 - model / baseline`` for lower-is-better metrics (bias on
    absolute values): 0.3 = 30% less error than seasonal naive, < 0 = worse. None when
    either side is undefined or the baseline is perfect (0)."""
    out: Dict[str, Optional[float]] = {}
    for key in (*LOWER_IS_BETTER, "bias"):
        m, b = model.get(key), baseline.get(key)
        if key == "bias" and m is not None and b is not None:
            m, b = abs(m), abs(b)
        ok = m is not None and b is not None and math.isfinite(m) and math.isfinite(b) and b != 0
        out[key] = 1.0 - m / b if ok else None
    return out


def gate_metric(metric: str) -> Tuple[str, str]:
    """QualityMetric parameter value ('WAPE', case-insensitive) -> (name, forecast_metrics key)."""
    name = str(metric).strip().upper()
    if name not in contracts.QUALITY_METRICS:
        raise ValueError(
            f"unknown quality metric {metric!r}; valid QualityMetric values are {sorted(contracts.QUALITY_METRICS)}"
        )
    return name, contracts.QUALITY_METRICS[name]


def quality_gate(forecast_metrics: Mapping[str, float], metric: str, threshold: float) -> Dict[str, Any]:
    """The QualityGate's input: the chosen metric's value and whether it is within threshold.

    ``passed = value <= threshold`` (every gate metric is lower-is-better). The value the
    gate compares is always a number, on SageMaker and locally: an undefined metric (WAPE of
    an all-zero holdout, say) is written as contracts.QUALITY_GATE_UNDEFINED_VALUE, which no
    threshold admits, with ``defined: false``; ``message`` says why, and the QualityTooLow
    step quotes it.
    """
    name, key = gate_metric(metric)
    value = forecast_metrics[key]
    defined = value is not None and math.isfinite(value)
    threshold = float(threshold)
    passed = bool(defined and value <= threshold)
    if not defined:
        message = (
            f"{name} is undefined on this holdout (see the evaluation warnings: for example every actual "
            f"is zero, so {name} has no denominator); the gate does not pass. Choose a QualityMetric that "
            "is defined on such data (MAE, RMSE)"
        )
    elif passed:
        message = f"{name} = {value:.6g} is within QualityThreshold {threshold:g}"
    else:
        message = f"{name} = {value:.6g} is above QualityThreshold {threshold:g}"
    gate = {
        "metric": name,
        "key": key,
        "value": float(value) if defined else contracts.QUALITY_GATE_UNDEFINED_VALUE,
        "defined": bool(defined),
        "threshold": threshold,
        "passed": passed,
        "message": message,
    }
    if not defined:
        gate["reason"] = message
    return gate


def crossing_rows(frame: pd.DataFrame, quantiles: Sequence[str]) -> int:
    """Rows where a lower quantile exceeds a higher one (Autopilot's never cross; a bug if so)."""
    ordered = sorted(quantiles, key=metrics.quantile_level)
    bad = np.zeros(len(frame), dtype=bool)
    for low, high in zip(ordered, ordered[1:]):
        bad |= frame[low].to_numpy(dtype=float) > frame[high].to_numpy(dtype=float)
    return int(bad.sum())


# ----------------------------------------------------------------------------- the whole evaluation
@dataclass
class Evaluation:
    """Everything the script writes: the report dict, the per-item table and plot inputs."""

    report: Dict[str, Any]
    per_item: pd.DataFrame
    joined: pd.DataFrame
    history: pd.DataFrame
    attributes: pd.DataFrame


def evaluate(
    forecasts: pd.DataFrame,
    actuals: pd.DataFrame,
    history: pd.DataFrame,
    columns: Columns,
    quantiles: Sequence[str],
    frequency: str,
    quality_metric: str,
    quality_threshold: float,
) -> Evaluation:
    """Join, score model and seasonal-naive baseline, break down by attribute, gate."""
    quantiles = list(quantiles)
    season = contracts.season_length(frequency)
    gate_metric(quality_metric)  # fail on a bad QualityMetric before any work
    joined = join_forecasts(forecasts, actuals, columns)
    histories = {k: g.to_numpy(dtype=float) for k, g in history.groupby(SERIES, sort=False)[columns.target]}
    model = score(joined, histories, quantiles, season)

    base_fc = seasonal_naive_forecast(history, joined, columns, season, quantiles)
    base_frame = base_fc.merge(joined[[SERIES, columns.timestamp, ACTUAL]], on=[SERIES, columns.timestamp])
    baseline = score(base_frame, histories, quantiles, season)

    attrs = static_attributes(history, columns)
    attr_table = attribute_table(history, attrs)

    per_item = model.per_item.copy()
    for key in ("mae", "wape", "wql", "mase"):
        per_item["baseline_" + key] = baseline.per_item[key]
    per_item["skill_wape"] = 1.0 - per_item["wape"] / per_item["baseline_wape"].where(per_item["baseline_wape"] != 0)
    per_item = per_item.join(attr_table, how="left")
    key_frame = joined.groupby(SERIES, sort=True)[columns.keys].first()
    per_item = key_frame.join(per_item.drop(columns=[c for c in columns.keys if c in per_item.columns]))
    per_item = per_item.reset_index()  # keeps the internal _series label (dropped from the CSV)

    warnings = []
    if model.mape_skipped:
        warnings.append(
            f"MAPE skipped {model.mape_skipped} of {len(joined)} points whose actual is zero; "
            "read WAPE and wQL for intermittent items"
        )
    if model.mase_zero_scale_items:
        warnings.append(
            f"MASE excludes {len(model.mase_zero_scale_items)} item(s) whose training history "
            f"is constant (seasonal-naive scale 0): {model.mase_zero_scale_items[:10]}"
        )
    if model.mase_short_history_items:
        warnings.append(
            f"MASE excludes {len(model.mase_short_history_items)} item(s) with fewer than two "
            f"history points: {model.mase_short_history_items[:10]}"
        )
    crossing = crossing_rows(joined, quantiles)
    if crossing:
        warnings.append(
            f"{crossing} forecast row(s) have crossing quantiles (a lower quantile above a "
            "higher one); wQL and coverage are computed as given"
        )
    for key, value in model.overall.items():
        if not math.isfinite(value):
            warnings.append(f"{key} is undefined on this holdout and is reported as null")

    overall = model.overall
    report: Dict[str, Any] = {
        "forecast_metrics": {k: {"value": overall[k]} for k in POINT_KEYS},
        "regression_metrics": {
            k: {
                "value": overall[k],
                "standard_deviation": _nanstd(model.per_item["rmse"] ** 2 if k == "mse" else model.per_item[k]),
            }
            for k in REGRESSION_KEYS
        },
        "baseline": {
            "method": "seasonal_naive",
            "season_length": season,
            "forecast_metrics": {k: {"value": baseline.overall[k]} for k in POINT_KEYS},
        },
        "skill": {k: {"value": v} for k, v in skill(overall, baseline.overall).items()},
        "quality_gate": quality_gate(overall, quality_metric, quality_threshold),
        "horizon_totals": horizon_totals(joined, quantiles),
        "by_attribute": group_metrics(joined, model.per_item, attr_table, quantiles),
        "details": {
            "items": int(joined[SERIES].nunique()),
            "points": int(len(joined)),
            "start": str(joined[columns.timestamp].min()),
            "end": str(joined[columns.timestamp].max()),
            "frequency": frequency,
            "season_length": season,
            "quantiles": quantiles,
            "coverage_interval": list(coverage_bounds(quantiles) or []),
            "coverage_nominal": (
                metrics.quantile_level(coverage_bounds(quantiles)[1])
                - metrics.quantile_level(coverage_bounds(quantiles)[0])
            )
            if coverage_bounds(quantiles)
            else None,
            "wql_by_quantile": model.wql_by_quantile,
            "mape_skipped_points": model.mape_skipped,
            "crossing_quantile_rows": crossing,
            "mase_zero_scale_items": model.mase_zero_scale_items,
            "mase_short_history_items": model.mase_short_history_items,
            "attributes": attrs,
            "columns": {
                "item_id": columns.item_id,
                "timestamp": columns.timestamp,
                "target": columns.target,
                "grouping": list(columns.grouping),
            },
            "point_forecast": contracts.MEAN_COLUMN,
            "fractions": ["mape", "wape", "wql", "relative_bias", "coverage"],
        },
        "warnings": warnings,
    }
    return Evaluation(
        report=json_safe(report), per_item=per_item, joined=joined, history=history, attributes=attr_table
    )


def horizon_totals(joined: pd.DataFrame, quantiles: Sequence[str]) -> Dict[str, Any]:
    """How the holdout's errors add up over the horizon: the batch report's inventory reads it.

    spread_factor (processing.inventory.spread_factor): the items' horizon-total errors in units
    of the root-sum-square of their periods' sigmas (read from the outer quantiles); 1 would mean
    independent, well-calibrated periods. RegisterModel stores it with the model version."""
    bounds = coverage_bounds(quantiles)
    factor = None
    if bounds is not None:
        lower, upper = bounds
        sigma = inventory.period_sigma(
            joined[lower], joined[upper], metrics.quantile_level(lower), metrics.quantile_level(upper)
        )
        errors = joined[ACTUAL].to_numpy(dtype=float) - joined[contracts.MEAN_COLUMN].to_numpy(dtype=float)
        factor = inventory.spread_factor(errors, sigma, joined[SERIES].to_numpy())
    return {
        "spread_factor": factor,
        "basis": "1.4826 x median over items of |sum of errors (actual - mean) over the horizon| / "
        "sqrt(sum of the periods' sigma^2), sigma = (p_hi - p_lo) / (z_hi - z_lo)"
        + ("" if factor is not None else f"; not measured: fewer than {inventory.MIN_ITEMS} items with a spread"),
    }


def json_safe(value: Any) -> Any:
    """NaN/inf -> None (strict JSON has no NaN), numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def get_path(document: Mapping[str, Any], dotted: str) -> Any:
    """Read a JsonGet-style dotted path ('quality_gate.value') from a parsed JSON document."""
    node: Any = document
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(f"JSON path {dotted!r}: no key {part!r}")
        node = node[part]
    return node
