"""Small synthetic sales, the PrepareData folder layout, and tiny engine models for endpoint/API tests."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pandas as pd

HORIZON = 7
QUANTILES = ("p10", "p50", "p90")
ITEMS = ("apple", "bread", "milk")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sales(days: int = 84, scale: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Daily sales of a few items: weekly pattern, a promotion covariate, a static category."""
    rng = np.random.default_rng(seed)
    stamps = pd.date_range("2024-01-01", periods=days, freq="D")
    rows = []
    for index, item in enumerate(ITEMS):
        level = 20.0 + 10 * index
        promotion = (rng.random(days) < 0.1).astype(int)
        weekly = 1 + 0.3 * np.sin(2 * np.pi * np.arange(days) / 7)
        target = np.round(scale * (level * weekly * (1 + 0.5 * promotion) + rng.normal(0, 1, days)), 2)
        rows.append(pd.DataFrame({"item_id": item, "timestamp": stamps.strftime("%Y-%m-%d"),
                                  "target_value": np.maximum(target, 0), "promotion": promotion,
                                  "category": "food" if item != "apple" else "fruit"}))
    return pd.concat(rows, ignore_index=True)


def write_prepared(frame: pd.DataFrame, root: Path, horizon: int = HORIZON) -> Path:
    """The PrepareData output layout (train/, holdout/, backtest/, profile/) for `frame`."""
    frame = frame.sort_values(["item_id", "timestamp"]).reset_index(drop=True)
    last = frame.groupby("item_id")["timestamp"].transform(lambda s: s.rank(method="first", ascending=False))
    in_holdout = last <= horizon
    for name in ("train", "holdout", "backtest", "profile"):
        (root / name).mkdir(parents=True, exist_ok=True)
    frame[~in_holdout].to_csv(root / "train" / "train.csv", index=False)
    frame.loc[in_holdout, ["item_id", "timestamp", "target_value"]].to_csv(root / "holdout" / "holdout.csv",
                                                                          index=False)
    backtest = frame.copy()
    backtest.loc[in_holdout, "target_value"] = np.nan
    backtest.to_csv(root / "backtest" / "part-00000.csv", index=False)
    profile = {"columns": {"item_id": "item_id", "timestamp": "timestamp", "target": "target_value",
                           "grouping": [], "covariates": ["promotion"], "static": ["category"]},
               "frequency": "D", "horizon": horizon, "items": int(frame["item_id"].nunique()),
               "periods": int(frame["timestamp"].nunique()), "start": frame["timestamp"].min(),
               "end": frame["timestamp"].max(), "dropped_items": [], "warnings": []}
    (root / "profile" / "profile.json").write_text(json.dumps(profile))
    return root


def engine_config(horizon: int = HORIZON, quantiles: tuple = QUANTILES):
    from forecasting import EngineConfig

    return EngineConfig(horizon=horizon, frequency="D", quantiles=quantiles,
                        algorithms=("SeasonalNaive", "NPTS"), backtest_windows=1)


def train_model(frame: pd.DataFrame, out_dir: Path, horizon: int = HORIZON, quantiles: tuple = QUANTILES) -> Path:
    """A tiny real engine model trained on all of `frame`; returns its model directory."""
    from forecasting import train

    result = train(frame, engine_config(horizon, quantiles), out_dir, time_limit_seconds=60, log=lambda *a, **k: None)
    return Path(result.model_dir)


def inference_csv(frame: pd.DataFrame, horizon: int = HORIZON) -> bytes:
    """Autopilot inference input: every item's history plus `horizon` future rows with an empty target."""
    parts = []
    for item, rows in frame.groupby("item_id"):
        last = pd.Timestamp(rows["timestamp"].iloc[-1])
        future = pd.DataFrame({"item_id": item,
                               "timestamp": pd.date_range(last, periods=horizon + 1, freq="D")[1:].strftime("%Y-%m-%d"),
                               "target_value": np.nan, "promotion": 0, "category": rows["category"].iloc[-1]})
        parts += [rows, future]
    return pd.concat(parts, ignore_index=True).to_csv(index=False).encode()
