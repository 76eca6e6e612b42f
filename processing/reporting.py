"""Turn batch forecasts into what planners act on: tidy table, summary, inventory suggestions.

Pure functions over pandas frames; `processing/report.py` is the thin step script and
`processing/report_charts.py` draws the pictures. Runs in the processing container
(pandas, numpy, pyarrow; the charts' matplotlib comes from requirements/report.txt).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from processing import inventory, tables
from processing.kernel import contracts
from processing.kernel.contracts import MEAN_COLUMN
from processing.kernel.near_zero import NEAR_ZERO_SHARE, near_zero_among

# A move of more than this share against the last comparable period is a spike or a drop.
MOVE_THRESHOLD = 0.25
TOP_N = 10
# A central forecast beyond the recent history's range by more than that range (at least
# SUSPICIOUS_MIN_SPREAD units, or a quarter of the recent level) is far outside it.
RECENT_PERIODS = 28
SUSPICIOUS_MIN_SPREAD = 1.0


class ReportInputError(ValueError):
    """The forecasts or the history are not what the report needs; the message says why."""


@dataclass(frozen=True)
class Columns:
    item_id: str
    timestamp: str
    target: str
    grouping: Sequence[str] = ()


def quantile_level(name: str) -> float:
    """'p10' -> 0.10: Autopilot names quantiles pNN."""
    level = contracts.quantile_fraction(name)
    if level is None:
        raise ReportInputError(f"quantile {name!r} is not of the form p1..p99 (for example p10, p50, p90)")
    return level


def read_forecasts(path: Path, columns: Columns, quantiles: Sequence[str]) -> pd.DataFrame:
    """Read one forecast CSV or every `.out`/`.csv` file under a folder (transform output)."""
    try:  # the one reader (processing.tables): ids and grouping as text, one-line errors naming the file
        files = tables.list_files(path, tables.OUTPUT_SUFFIXES, "forecasts")
        joined = _read_joined(files, [columns.item_id, *columns.grouping])
        if joined is not None:
            files, read = files[:1], [joined]
        else:
            read = [tables.read_file(file, [columns.item_id, *columns.grouping]) for file in files]
    except tables.TableError as error:
        raise ReportInputError(str(error)) from None
    frames = []
    for file, frame in zip(files, read):
        needed = [columns.item_id, columns.timestamp, *columns.grouping, *quantiles, MEAN_COLUMN]
        missing = [name for name in needed if name not in frame.columns]
        if missing:
            raise ReportInputError(
                f"{file}: forecast file lacks column(s) {missing}; it has {list(frame.columns)}. "
                "Quantile columns are found by the configured names (ForecastQuantiles)."
            )
        frames.append(frame[needed])
    table = pd.concat(frames, ignore_index=True)
    table[columns.timestamp] = pd.to_datetime(table[columns.timestamp])
    return table.sort_values([columns.item_id, columns.timestamp]).reset_index(drop=True)


def _read_joined(files: Sequence[Path], text_columns: Sequence[str]) -> Optional[pd.DataFrame]:
    """Plain CSV files with one and the same header line, each with rows, parsed as one text (a
    transform writes one file per request: 415 at 25,000 series, each a parser call of its own
    otherwise); None when they are not, and each file is read alone."""
    if len(files) < 2 or any(str(f).lower().endswith(".gz") for f in files):
        return None
    header, bodies = None, []
    for file in files:
        data = Path(file).read_bytes()
        first, newline, body = data.partition(b"\n")
        if header is None:
            header = first
        if first != header or not newline or not body.strip():
            return None
        bodies.append(body if body.endswith(b"\n") else body + b"\n")
    try:
        return tables.read_csv_bytes(header + b"\n" + b"".join(bodies), str(files[0]), text_columns)
    except tables.TableError:
        return None  # read each alone: the error then names the file it is in


def sorted_codes(values: pd.Series) -> Tuple[np.ndarray, np.ndarray]:
    """pd.factorize(values, sort=True) as for the values' text: codes in the sorted order of the
    distinct values present, -1 where missing. A categorical column (the history's Parquet read)
    is factorized through its categories, not through an object array of every row (27M rows)."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        codes, uniques = pd.factorize(values, sort=True)
        return codes, np.asarray(uniques, dtype=object)
    raw = values.cat.codes.to_numpy()
    categories = values.cat.categories.to_numpy(dtype=object)
    used = np.flatnonzero(np.bincount(raw[raw >= 0], minlength=len(categories)))
    ranks, uniques = pd.factorize(categories[used], sort=True)
    lookup = np.full(len(categories) + 1, -1, dtype=np.int64)  # the last entry: raw code -1 (missing)
    lookup[used] = ranks
    return lookup[raw], np.asarray(uniques, dtype=object)


def _equality_codes(values: pd.Series) -> Tuple[np.ndarray, np.ndarray]:
    """(values to compare, missing) for one column: a categorical column's codes (equal codes,
    equal values), else its values."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        return codes, codes < 0
    array = values.to_numpy()
    return array, pd.isna(array)


def _as_text_column(values: pd.Series) -> pd.Series:
    """A categorical column as the plain text column reading the CSV gives (missing: NaN)."""
    return values.astype(object) if isinstance(values.dtype, pd.CategoricalDtype) else values


def static_attributes(history: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """Non-numeric attributes constant per item (category, region...), one row per item.

    Text columns may be plain text or categorical (read_history(..., lean=True)): the result is
    the same, text columns as plain text."""
    candidates = [
        c
        for c in history.columns
        if c not in (columns.item_id, columns.timestamp, columns.target, *columns.grouping)
        and not pd.api.types.is_numeric_dtype(history[c])
    ]
    if not candidates:
        return pd.DataFrame({columns.item_id: _as_text_column(history[columns.item_id]).unique()})
    # groupby(item).nunique(dropna=False) <= 1 and .first(), by array operations over the rows in
    # item order: a value differing from the row before within an item (25k items, 27M rows:
    # a groupby per column cost ~40 s)
    codes, items = sorted_codes(history[columns.item_id])
    rows = np.flatnonzero(codes >= 0)  # groupby leaves out rows without an item id
    if len(rows) > 1 and not bool(np.all(codes[rows][1:] >= codes[rows][:-1])):
        rows = rows[np.argsort(codes[rows], kind="stable")]
    codes = codes[rows]
    same_item = codes[1:] == codes[:-1]
    constant = []
    for c in candidates:
        values, missing = _equality_codes(history[c])
        values, missing = values[rows], missing[rows]
        same = (values[1:] == values[:-1]) | (missing[1:] & missing[:-1])
        if not bool(np.any(same_item & ~same)):
            constant.append(c)
    firsts = rows[np.flatnonzero(np.r_[True, ~same_item])] if len(rows) else rows
    out = pd.DataFrame({columns.item_id: items if len(rows) else []})
    for c in constant:
        out[c] = _as_text_column(history[c].iloc[firsts].reset_index(drop=True))
    return out


def tidy_table(
    forecasts: pd.DataFrame, statics: pd.DataFrame, columns: Columns, quantiles: Sequence[str]
) -> pd.DataFrame:
    """One row per item and timestamp: item, attributes, grouping, timestamp, quantiles, mean."""
    table = forecasts.merge(statics, on=columns.item_id, how="left")
    attributes = [c for c in statics.columns if c != columns.item_id]
    order = [columns.item_id, *attributes, *columns.grouping, columns.timestamp, *quantiles, MEAN_COLUMN]
    return table[order]


def attribute_columns(table: pd.DataFrame, columns: Columns, quantiles: Sequence[str]) -> List[str]:
    fixed = {columns.item_id, columns.timestamp, MEAN_COLUMN, *quantiles}
    return [c for c in table.columns if c not in fixed]


def totals_by(table: pd.DataFrame, attribute: str, quantiles: Sequence[str]) -> Dict[str, dict]:
    """Horizon totals of the mean (and of each quantile column, summed) per attribute value."""
    sums = table.groupby(attribute)[[MEAN_COLUMN, *quantiles]].sum()
    return {str(key): {col: round(float(row[col]), 4) for col in sums.columns} for key, row in sums.iterrows()}


def coherent(table: pd.DataFrame, quantiles: Sequence[str]) -> tuple:
    """(table, rows changed): quantiles sorted per row and the mean moved inside the outer ones.

    The engine's forecasts already are one coherent distribution; forecasts from elsewhere
    (an Autopilot model) may not be, and the inventory and the charts read them as one.
    """
    ordered = sorted(quantiles, key=quantile_level)
    values = table[ordered].to_numpy(dtype=float)
    fixed = np.sort(values, axis=1)
    mean = table[MEAN_COLUMN].to_numpy(dtype=float)
    inside = mean
    if len(ordered) > 1 and quantile_level(ordered[0]) <= 0.5 <= quantile_level(ordered[-1]):
        inside = np.clip(mean, fixed[:, 0], fixed[:, -1])
    changed = (fixed != values).any(axis=1) | (inside != mean)
    out = table.copy()
    out[ordered] = fixed
    out[MEAN_COLUMN] = inside
    return out, int(changed.sum())


def item_totals(table: pd.DataFrame, columns: Columns, quantiles: Sequence[str]) -> pd.DataFrame:
    """Per item: horizon total of the mean, relative p_lo-p_hi width, min and max quantile.

    The relative width is the horizon's summed interval width over its summed central quantile;
    it is left empty for near-zero items (`near_zero`), whose ratio would divide by ~0.
    """
    lower, upper, middle = interval_columns(quantiles)
    frame = table.assign(_width=(table[upper] - table[lower]).clip(lower=0))
    grouped = frame.groupby(columns.item_id)
    centre = grouped[middle].mean()
    near_zero = near_zero_among(centre)  # an item's average central forecast against the average item's
    out = pd.DataFrame(
        {
            "expected_demand": grouped[MEAN_COLUMN].sum(),
            "relative_interval_width": (grouped["_width"].sum() / grouped[middle].sum()).where(~near_zero),
            "near_zero": near_zero,
            "min_quantile": grouped[list(quantiles)].min().min(axis=1),
            "max_quantile": grouped[list(quantiles)].max().max(axis=1),
        }
    )
    return out.reset_index()


def interval_columns(quantiles: Sequence[str]):
    ordered = sorted(quantiles, key=quantile_level)
    middle = min(ordered, key=lambda q: abs(quantile_level(q) - 0.5))
    return ordered[0], ordered[-1], middle


def relative_to_group(
    totals: pd.DataFrame, statics: pd.DataFrame, columns: Columns, attribute: Optional[str]
) -> pd.DataFrame:
    """Each item's expected demand divided by the average item of its group (1.0 = typical).

    Near-zero items (item_totals' `near_zero`) are left out, as from the uncertainty table: among
    items forecast at ~0 (a category of zero-demand books) the ratio ranks noise.
    """
    frame = totals[~totals["near_zero"]].merge(statics, on=columns.item_id, how="left")
    if attribute is None:
        frame["group"] = "all"
        attribute = "group"
    frame["relative_demand"] = frame["expected_demand"] / frame.groupby(attribute)["expected_demand"].transform("mean")
    return frame[[columns.item_id, attribute, "expected_demand", "relative_demand"]]


def take_rows(frame: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """frame[mask] with a new RangeIndex, column by column on the arrays: pandas' boolean row
    selection of a 27M-row frame (25,000 series) cost seconds a column, this a tenth of that."""
    return pd.DataFrame({name: frame[name].array[mask] for name in frame.columns})


def observed_rows(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """frame.dropna(subset=[target]) with a new RangeIndex (take_rows: the fast way at 27M rows)."""
    return take_rows(frame, frame[target].notna().to_numpy())


def _observed(history: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """The rows with an actual, by item and time: only the three columns read (a copy of every
    column of a 27M-row history would be several GB). A categorical item column is ordered by
    its text, as a plain one (through its codes). The index is new (positions)."""
    keep = [columns.item_id, columns.timestamp, columns.target]
    observed = observed_rows(history[keep], columns.target)
    categorical = isinstance(observed[columns.item_id].dtype, pd.CategoricalDtype)
    if categorical:
        codes = sorted_codes(observed[columns.item_id])[0]
        items, missing_item = codes, bool((codes < 0).any())
    else:
        items = observed[columns.item_id].to_numpy()
        missing_item = bool(pd.isna(items).any()) if len(items) else False
    times = observed[columns.timestamp].to_numpy()
    try:
        ordered = len(items) < 2 or (
            not missing_item
            and not pd.isna(times).any()
            and bool(np.all((items[1:] > items[:-1]) | ((items[1:] == items[:-1]) & (times[1:] >= times[:-1]))))
        )
    except TypeError:  # ids of mixed types: pandas' sort decides
        ordered = False
    # already in order (the batch input is): the (stable) sort would keep the rows as they are
    if ordered:
        return observed
    if not categorical:
        return observed.sort_values(keep[:2], ignore_index=True)
    # by the text's order (the categories' own order may differ), missing ids last as sort_values puts them
    key = np.where(codes < 0, codes.max() + 1, codes)
    order = observed.assign(_item=key).sort_values(["_item", columns.timestamp]).index
    return take_rows(observed, order.to_numpy())


def observed_history(history: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """_observed once for last_period_totals and recent_history (each would sort the history again)."""
    return _observed(history, columns)


def _last_rows(observed: pd.DataFrame, columns: Columns, periods: int) -> pd.DataFrame:
    """observed.groupby(item).tail(periods) by positions: the rows are sorted by item (25k items: ~10x faster)."""
    items = _equality_codes(observed[columns.item_id])[0]
    if not len(items):
        return observed
    ends = np.r_[np.flatnonzero(items[1:] != items[:-1]), len(items) - 1]
    run_end = np.repeat(ends, np.diff(np.r_[-1, ends]))
    return take_rows(observed, run_end - np.arange(len(items)) < periods)


def _by_item(frame: pd.DataFrame, columns: Columns):
    """frame.groupby(item id); a categorical id groups only the items present (observed=True)."""
    return frame.groupby(columns.item_id, observed=True)


def _text_index(result):
    """A per-item result as grouping plain text ids gives it: a categorical index as text, sorted."""
    if isinstance(result.index, pd.CategoricalIndex):
        return result.set_axis(result.index.astype(object)).sort_index()
    return result


def last_period_totals(
    history: pd.DataFrame, columns: Columns, horizon: int, observed: Optional[pd.DataFrame] = None
) -> pd.Series:
    """Actual demand over each item's last `horizon` observed periods: the comparable period.

    `observed`: observed_history(history), when the caller already has it."""
    observed = _observed(history, columns) if observed is None else observed
    return _text_index(_by_item(_last_rows(observed, columns, horizon), columns)[columns.target].sum())


def movers(totals: pd.DataFrame, previous: pd.Series, columns: Columns) -> pd.DataFrame:
    """Change of expected demand against the last comparable period, per item."""
    frame = totals[[columns.item_id, "expected_demand"]].copy()
    frame["previous_demand"] = frame[columns.item_id].map(previous)
    frame["change"] = (frame["expected_demand"] - frame["previous_demand"]) / frame["previous_demand"].where(
        frame["previous_demand"] > 0
    )
    return frame


def recent_history(
    history: pd.DataFrame,
    columns: Columns,
    periods: int = RECENT_PERIODS,
    observed: Optional[pd.DataFrame] = None,
) -> pd.DataFrame:
    """Per item: min, max and mean of the last `periods` observed values (`observed` as in last_period_totals)."""
    observed = _observed(history, columns) if observed is None else observed
    recent = _by_item(_last_rows(observed, columns, periods), columns)[columns.target]
    return _text_index(pd.DataFrame({"low": recent.min(), "high": recent.max(), "level": recent.mean()}))


def suspicious_items(
    table: pd.DataFrame, columns: Columns, quantiles: Sequence[str], recent: Optional[pd.DataFrame] = None
) -> List[dict]:
    """Items whose forecast looks wrong: negative values, flat zero after a non-zero history, or a
    central forecast (mean or median) far outside the item's recent history (`recent_history`):
    beyond its recent range by more than that range, at least SUSPICIOUS_MIN_SPREAD units or a
    quarter of its recent level (a forecast of 9 after a month of zeros is flagged, 0.5 is not).

    Per-item reductions are array operations over the rows sorted by item (25k items: no
    per-item frame); a missing central value makes the item's range test not apply, as before."""
    _, _, middle = interval_columns(quantiles)
    if table.empty:
        return []
    codes, items = pd.factorize(table[columns.item_id], sort=True)
    keep = codes >= 0  # groupby leaves out rows without an item id
    order = np.argsort(codes[keep], kind="stable")
    codes = codes[keep][order]
    values = table[list(quantiles) + [MEAN_COLUMN]].to_numpy(dtype=float)[keep][order]
    central = table[[middle, MEAN_COLUMN]].to_numpy(dtype=float)[keep][order]
    count = len(items)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    negative = np.bincount(codes, weights=(values < 0).any(axis=1), minlength=count) > 0
    flat_zero = np.bincount(codes, weights=~(np.abs(values) <= 1e-8).all(axis=1), minlength=count) == 0  # np.allclose
    top = np.maximum.reduceat(central.max(axis=1), starts)  # NaN when any central value is missing
    bottom = np.minimum.reduceat(central.min(axis=1), starts)
    if recent is not None:
        past = recent.reindex(pd.Index(items))
        has_past = pd.Index(items).isin(recent.index)
        low, high, level = (past[c].to_numpy(dtype=float) for c in ("low", "high", "level"))
    else:
        has_past = np.zeros(count, dtype=bool)
        low = high = level = np.full(count, np.nan)
    spread = np.maximum(np.maximum(high - low, SUSPICIOUS_MIN_SPREAD), 0.25 * np.abs(level))
    flat_zero &= ~has_past | (high > 0)
    up = has_past & (top > high + spread)
    down = has_past & ~up & (bottom < low - spread)
    found = []
    for k in np.flatnonzero(negative | flat_zero | up | down).tolist():
        reasons = []
        if negative[k]:
            reasons.append("negative forecast values")
        if flat_zero[k]:
            reasons.append("forecast is flat zero")
        if up[k]:
            reasons.append(f"forecast up to {top[k]:.4g} against a recent range of {low[k]:.4g} to {high[k]:.4g}")
        elif down[k]:
            reasons.append(f"forecast down to {bottom[k]:.4g} against a recent range of {low[k]:.4g} to {high[k]:.4g}")
        found.append({"item_id": str(items[k]), "reasons": reasons})
    return found


def inventory_aggregation(model: dict) -> Tuple[str, Optional[float], str]:
    """(aggregation, spread factor, basis) for `inventory_suggestions`, from the resolved model.

    Calibrated with the factor the model version's holdout measured (registry metadata
    `horizon_spread_factor`, written by Evaluate and RegisterModel, read by ResolveModel);
    a version without it (registered before that existed, or a holdout too small to measure)
    falls back to comonotone, and the basis says so."""
    raw = model.get(contracts.HORIZON_SPREAD_KEY)
    try:
        factor = float(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        factor = None
    if factor is not None and np.isfinite(factor) and factor > 0:
        return (
            inventory.CALIBRATED,
            factor,
            f"calibrated: the horizon total's sigma is {factor:.2f} x the root-sum-square of the periods' "
            "sigmas, the spread of the horizon-total errors on the model's holdout backtest (errors persist "
            "across the horizon, so the periods are not summed as independent)",
        )
    why = "no horizon spread factor" if raw in (None, "") else f"an unreadable horizon spread factor ({raw!r})"
    return (
        inventory.COMONOTONE,
        None,
        f"comonotone (fallback: the model version carries {why}; it was registered before Evaluate measured "
        "one, or its holdout had too few items): the horizon total's sigma is the sum of the periods' "
        "sigmas, so the level is the sum of the periods' quantiles, the bound for perfectly correlated errors",
    )


def inventory_suggestions(
    table: pd.DataFrame,
    columns: Columns,
    quantiles: Sequence[str],
    service_level: float,
    aggregation: str = inventory.COMONOTONE,
    spread_factor: Optional[float] = None,
) -> pd.DataFrame:
    """Expected horizon demand and the order-up-to level covering it at `service_level`.

    Mean and spread come from the one forecast distribution per period (`coherent`: the mean
    lies inside the outer quantiles): each period's sigma from the outer quantiles read as a
    normal distribution, the horizon total normal with the summed mean and the sigma of
    `aggregation` (processing.inventory: calibrated with `spread_factor`, comonotone or
    independent; `inventory_aggregation` picks it from the model). The order-up-to level is
    that total's `service_level` quantile, never below the expected demand and never negative.
    """
    if not 0.5 <= service_level < 1.0:
        raise ReportInputError(
            f"ServiceLevel {service_level} must be in [0.5, 1): the share of demand "
            "scenarios the stock should cover, for example 0.9"
        )
    lower, upper, _ = interval_columns(quantiles)
    if quantile_level(upper) <= quantile_level(lower):
        raise ReportInputError("inventory suggestions need at least two distinct forecast quantiles")
    sigma = inventory.period_sigma(table[lower], table[upper], quantile_level(lower), quantile_level(upper))
    grouped = table[[columns.item_id, MEAN_COLUMN]].assign(_sigma=sigma, _var=sigma**2).groupby(columns.item_id)
    sums = grouped[[MEAN_COLUMN, "_sigma", "_var"]].sum()
    expected = sums[MEAN_COLUMN].clip(lower=0)
    total_sigma = pd.Series(
        inventory.total_sigma(sums["_var"], sums["_sigma"], aggregation, spread_factor), index=sums.index
    )
    z = NormalDist().inv_cdf(service_level)
    order_up_to = (expected + z * total_sigma).clip(lower=0)
    out = pd.DataFrame(
        {
            "expected_demand": expected.round(2),
            "demand_std": total_sigma.round(2),
            "safety_stock": (order_up_to - expected).round(2),
            "order_up_to_level": order_up_to.round(2),
            "service_level": service_level,
        }
    )
    return out.reset_index()


def _records(frame: pd.DataFrame, limit: int = TOP_N) -> List[dict]:
    frame = frame.head(limit).replace({np.nan: None})
    return [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def build_summary(
    table: pd.DataFrame,
    totals: pd.DataFrame,
    moves: pd.DataFrame,
    statics: pd.DataFrame,
    columns: Columns,
    quantiles: Sequence[str],
    horizon: int,
    model: dict,
    recent: Optional[pd.DataFrame] = None,
) -> dict:
    """The planner's summary: totals, standouts, uncertainty, movers and suspicious forecasts.

    `totals` comes from item_totals, `moves` from movers (computed once, also charted),
    `recent` from recent_history.
    """
    attributes = attribute_columns(table, columns, quantiles)
    group_attribute = attributes[0] if attributes else None
    relative = relative_to_group(totals, statics, columns, group_attribute).sort_values("relative_demand")
    moved = moves.dropna(subset=["change"])
    uncertain = totals.dropna(subset=["relative_interval_width"]).sort_values(
        "relative_interval_width", ascending=False
    )
    lower, upper, middle = interval_columns(quantiles)
    return {
        "items_forecast": int(table[columns.item_id].nunique()),
        "rows": int(len(table)),
        "horizon": int(horizon),
        "forecast_start": str(table[columns.timestamp].min().date()),
        "forecast_end": str(table[columns.timestamp].max().date()),
        "quantiles": list(quantiles),
        "model_package_arn": model.get("model_package_arn"),
        "model_metrics": model.get("metrics", {}),
        "total_expected_demand": round(float(table[MEAN_COLUMN].sum()), 4),
        "totals_by": {attribute: totals_by(table, attribute, quantiles) for attribute in attributes},
        "relative_to": group_attribute or "all items",
        "relative_basis": "expected demand over the horizon / the average item's of the same "
        f"{group_attribute or 'set'}; near-zero items are left out",
        "highest_relative_demand": _records(relative.iloc[::-1]),
        "lowest_relative_demand": _records(relative),
        "most_uncertain": _records(uncertain[[columns.item_id, "expected_demand", "relative_interval_width"]]),
        "uncertainty_measure": f"({upper} - {lower}) / {middle}, summed over the horizon; items whose "
        f"forecast is near zero (below {NEAR_ZERO_SHARE:.0%} of the average item's) "
        "are left out",
        "near_zero_items": int(totals["near_zero"].sum()),
        "demand_spikes": _records(moved[moved["change"] > MOVE_THRESHOLD].sort_values("change", ascending=False)),
        "demand_drops": _records(moved[moved["change"] < -MOVE_THRESHOLD].sort_values("change")),
        "movement_basis": f"expected demand over the horizon against the last {horizon} observed periods; "
        f"a spike or drop is a change beyond {MOVE_THRESHOLD:.0%}",
        "suspicious_forecasts": suspicious_items(table, columns, quantiles, recent),
    }
