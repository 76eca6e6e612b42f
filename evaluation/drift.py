"""Input drift, stated: what changed in the batch input since the model was trained.

"What the model saw" is the Evaluate step's per_item.csv of the registered version (beside
its evaluation.json, the package's ModelQuality statistics): every item of training, with
its level over the last ForecastHorizon periods of training data (the holdout). Compared
with the batch input:

* new items (not in training): forecast by the model from their own history, or refused
  (the transform returned no forecast for them) - said per item;
* items that disappeared (trained on, absent from the input);
* items whose recent level (mean of the same number of latest observed periods) moved by
  more than `factor` x either way from the training level.

Pure functions over pandas frames. Container-safe: stdlib, numpy, pandas.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import pandas as pd

from processing.reporting import Columns

DEFAULT_FACTOR = 2.0
LIST_LIMIT = 50


def training_levels(per_item: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    """per_item.csv -> item, training level (mean actual per period over the holdout), periods."""
    missing = [c for c in (columns.item_id, "n", "actual_sum") if c not in per_item.columns]
    if missing:
        raise ValueError(f"the evaluation's per_item.csv lacks column(s) {missing}; it has {list(per_item.columns)}")
    frame = per_item.assign(**{columns.item_id: per_item[columns.item_id].astype(str)})
    grouped = frame.groupby(columns.item_id).agg(actual_sum=("actual_sum", "sum"), n=("n", "max"))
    return pd.DataFrame(
        {"training_level": grouped["actual_sum"] / grouped["n"].where(grouped["n"] > 0), "periods": grouped["n"]}
    )


def recent_levels(history: pd.DataFrame, columns: Columns, periods: int, ids: Optional[pd.Series] = None) -> pd.Series:
    """Per item: mean of the target over its last `periods` observed timestamps.

    ids: the item column to use instead of history's (input_drift's coded text ids); the
    rows are picked by array masks, not frame copies (25,000 series: 27M rows)."""
    ids = history[columns.item_id] if ids is None else ids
    codes, items = pd.factorize(ids, sort=True)  # items without an observed value are never indexed
    known = ~pd.isna(history[columns.target]).to_numpy() & (codes >= 0)
    codes = codes[known]
    stamps = history[columns.timestamp].to_numpy()[known]
    values = history[columns.target].to_numpy()[known].astype(float)
    step, later = np.diff(codes), stamps[1:] >= stamps[:-1]
    if not bool(np.all((step > 0) | ((step == 0) & later))):  # the batch input comes in order: no sort
        order = np.lexsort((stamps, codes))
        codes, stamps, values = codes[order], stamps[order], values[order]
    if len(codes) and bool(np.any((codes[1:] == codes[:-1]) & (stamps[1:] == stamps[:-1]))):
        # several rows for one item and time: summed per period first (the rare case)
        observed = pd.DataFrame(  # the observed rows (rows of one item and time in input order), ids as text
            {columns.item_id: np.asarray(items, dtype=object)[codes], columns.timestamp: stamps, columns.target: values}
        )
        per_period = observed.groupby([columns.item_id, columns.timestamp])[columns.target].sum().reset_index()
        return per_period.groupby(columns.item_id)[columns.target].apply(lambda s: float(s.tail(periods).mean()))
    # one row per item and period (the batch input's layout): the last `periods` rows of each
    # item by positions, each mean as Series.mean computes it (25k items: no per-item Series)
    if not len(codes):
        return pd.Series([], index=pd.Index([], dtype=object, name=columns.item_id), name=columns.target, dtype=float)
    ends = np.r_[np.flatnonzero(codes[1:] != codes[:-1]) + 1, len(codes)]
    begins = np.maximum(np.r_[0, ends[:-1]], ends - max(int(periods), 0))
    means = [float(values[b:e].sum() / (e - b)) if e > b else np.nan for b, e in zip(begins.tolist(), ends.tolist())]
    index = pd.Index(np.asarray(items, dtype=object)[codes[ends - 1]], name=columns.item_id)
    return pd.Series(means, index=index, name=columns.target, dtype=float)


def _text_ids(values: pd.Series) -> pd.Series:
    """values.astype(str), hashed once: a category per distinct id text, categories in text order
    (25,000 series: 27M ids; astype, unique and a sorted factorize each hashed them again)."""
    codes, uniques = pd.factorize(values)
    texts = [str(u) for u in uniques.tolist()]
    if len(set(texts)) != len(texts) or bool((codes < 0).any()):  # 7 and '7', or missing ids: plain astype
        return values.astype(str)
    order = np.argsort(np.array(texts, dtype=object), kind="stable")
    rank = np.empty(len(texts), dtype=np.int64)
    rank[order] = np.arange(len(texts))
    categories = pd.Index(np.array(texts, dtype=object)[order], dtype=object)
    return pd.Series(pd.Categorical.from_codes(rank[codes], categories), index=values.index, name=values.name)


def input_drift(
    per_item: Optional[pd.DataFrame],
    history: pd.DataFrame,
    forecasts: pd.DataFrame,
    columns: Columns,
    factor: float = DEFAULT_FACTOR,
) -> Dict[str, Any]:
    """The summary's `input_drift` section; `available` False (with a reason) without per_item."""
    if per_item is None:
        return {"available": False, "reason": "the model's evaluation has no per_item.csv to compare with"}
    trained = training_levels(per_item, columns)
    seen = set(trained.index)
    ids = _text_ids(history[columns.item_id])
    present = set(ids.cat.categories) if isinstance(ids.dtype, pd.CategoricalDtype) else set(ids.unique())
    forecast = set(forecasts[columns.item_id].astype(str))
    new = sorted(present - seen)
    gone = sorted(seen - present)
    periods = int(trained["periods"].max()) if len(trained) else 1
    recent = recent_levels(history, columns, periods, ids)
    shifts = []
    for item in sorted(seen & present):
        before, now = trained.at[item, "training_level"], recent.get(item)
        if now is None or pd.isna(before):
            continue
        if before == 0:
            moved = now > 0
            ratio = None
        else:
            ratio = now / before
            moved = ratio > factor or ratio < 1.0 / factor
        if moved:
            shifts.append(
                {
                    "item_id": item,
                    "training_level": round(float(before), 4),
                    "recent_level": round(float(now), 4),
                    "ratio": round(float(ratio), 3) if ratio is not None else None,
                }
            )
    shifts.sort(key=lambda s: -abs((s["ratio"] or 1e9) - 1) if s["ratio"] != 0 else -1e9)
    return {
        "available": True,
        "training_items": len(seen),
        "input_items": len(present),
        "new_items": [
            {
                "item_id": item,
                "handling": (
                    "forecast by the model from its own history (not seen in training)"
                    if item in forecast
                    else "refused: the model returned no forecast"
                ),
            }
            for item in new[:LIST_LIMIT]
        ],
        "new_items_count": len(new),
        "new_items_refused": sorted(i for i in new if i not in forecast)[:LIST_LIMIT],
        "disappeared_items": gone[:LIST_LIMIT],
        "disappeared_items_count": len(gone),
        "level_shifts": shifts[:LIST_LIMIT],
        "level_shifts_count": len(shifts),
        "level_factor": factor,
        "level_periods": periods,
        "level_basis": f"mean per period over the last {periods} observed periods, against the same "
        "window at the end of training (the holdout)",
    }
