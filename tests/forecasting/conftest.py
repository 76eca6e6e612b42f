"""Tiny synthetic series with known answers, built in code."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecasting import EngineConfig


def make_frame(n_items=3, n_days=120, kind="seasonal", seed=0, start="2023-01-01", noise=0.5) -> pd.DataFrame:
    """Daily series in the user's columns. kind: seasonal | trend | covariate."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=n_days, freq="D")
    t = np.arange(n_days)
    frames = []
    for i in range(n_items):
        level = 50.0 + 10 * i
        promo = (rng.random(n_days) < 0.15).astype(int)
        if kind == "seasonal":
            y = level + 10 * np.sin(2 * np.pi * t / 7)
        elif kind == "trend":
            y = level + 2.0 * t
        elif kind == "covariate":
            y = level + 30.0 * promo
        else:
            raise ValueError(kind)
        y = y + rng.normal(0, noise, n_days)
        frames.append(
            pd.DataFrame(
                {
                    "item_id": f"item_{i}",
                    "timestamp": dates.strftime("%Y-%m-%d"),
                    "target_value": y.round(3),
                    "promotion": promo,
                    "category": "cat_a" if i % 2 else "cat_b",
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def split_context(frame: pd.DataFrame, horizon: int):
    """(history, context with empty future targets, actual future) per item."""
    last = frame.groupby("item_id")["timestamp"].transform(lambda s: sorted(s)[-horizon])
    future = frame["timestamp"] >= last
    context = frame.copy()
    context.loc[future, "target_value"] = np.nan
    return frame[~future].reset_index(drop=True), context, frame[future].reset_index(drop=True)


@pytest.fixture
def config():
    return EngineConfig(frequency="D", horizon=7, quantiles=("p10", "p50", "p90"))


FAST_LGB = {"LightGBM": {"num_boost_round": 30, "min_data_in_leaf": 5, "max_rows": 5000}}
