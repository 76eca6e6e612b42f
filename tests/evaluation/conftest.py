"""Small evaluation datasets built in code: history, holdout and forecasts on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List

import numpy as np
import pandas as pd
import pytest

HORIZON = 7
HISTORY_DAYS = 28
CATEGORIES = ["Books", "Toys"]
REGIONS = ["North", "South"]


@dataclass
class Dataset:
    folder: Path
    history: Path  # train.csv (with static category/region and a time-varying promo)
    actuals: Path  # holdout.csv
    forecasts: Path  # a folder holding one Autopilot-style <input>.out file
    history_frame: pd.DataFrame
    holdout_frame: pd.DataFrame
    forecast_frame: pd.DataFrame
    items: List[str]


def build_dataset(folder: Path, n_items: int = 6, seed: int = 3, zero_item: bool = True) -> Dataset:
    """Weekly-seasonal daily series; item 0 never sells (tests zero handling); the forecast
    is the actual scaled by 1.1 plus noise, with a +-3 band."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2024-01-01", periods=HISTORY_DAYS + HORIZON, freq="D")
    items = [f"item_{k:02d}" for k in range(n_items)]
    rows = []
    for k, item in enumerate(items):
        level = 0.0 if (zero_item and k == 0) else 10.0 + 4 * k
        y = level + (level > 0) * (3 * np.sin(2 * np.pi * np.arange(len(days)) / 7) + rng.normal(0, 1, len(days)))
        for t, v, promo in zip(days, np.maximum(y, 0).round(2), rng.integers(0, 2, len(days))):
            rows.append(
                {
                    "item_id": item,
                    "timestamp": t.strftime("%Y-%m-%d"),
                    "target_value": v,
                    "promo": int(promo),
                    "price": 9.99 + k,
                    "category": CATEGORIES[k % 2],
                    "region": REGIONS[(k // 2) % 2],
                    "sku_name": f"sku-{k}",
                }
            )
    full = pd.DataFrame(rows)
    is_holdout = full.groupby("item_id").cumcount() >= HISTORY_DAYS
    history = full[~is_holdout].reset_index(drop=True)
    holdout = full.loc[is_holdout, ["item_id", "timestamp", "target_value"]].reset_index(drop=True)
    mean = holdout["target_value"].to_numpy() * 1.1 + rng.normal(0, 0.5, len(holdout)).round(2)
    forecast = holdout[["item_id", "timestamp"]].copy()
    forecast["p10"] = mean - 3
    forecast["p50"] = mean
    forecast["p90"] = mean + 3
    forecast["mean"] = mean
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "forecasts").mkdir(exist_ok=True)
    history.to_csv(folder / "train.csv", index=False)
    holdout.to_csv(folder / "holdout.csv", index=False)
    forecast.to_csv(folder / "forecasts" / "part-00000.csv.out", index=False)
    return Dataset(
        folder, folder / "train.csv", folder / "holdout.csv", folder / "forecasts", history, holdout, forecast, items
    )


@pytest.fixture
def dataset(tmp_path) -> Dataset:
    return build_dataset(tmp_path / "data")
