"""Timing of the evaluation metrics (the engine calls them in its model selection) and of the
Evaluate step end to end on synthetic data.

    python -m benchmarks.bench_evaluate [--items 125] [--days 1095] [--horizon 14]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation import evaluate, metrics


def _timed(label: str, fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    print(f"{label:<44s} {best * 1000:9.2f} ms")
    return best


def bench_metrics(points: int = 1_000_000) -> None:
    rng = np.random.default_rng(0)
    a = rng.gamma(2.0, 10.0, points)
    f = a * rng.normal(1, 0.2, points)
    q = {"p10": f * 0.7, "p50": f, "p90": f * 1.3}
    print(f"metrics on {points:,} points (best of 5)")
    for name, fn in (
        ("wape", lambda: metrics.wape(a, f)),
        ("mape", lambda: metrics.mape(a, f)),
        ("rmse", lambda: metrics.rmse(a, f)),
        ("wql (3 quantiles)", lambda: metrics.wql(a, q)),
        ("seasonal_naive_scale (season 7)", lambda: metrics.seasonal_naive_scale(a, 7)),
    ):
        _timed(name, fn)


def synthetic_files(folder: Path, items: int, days: int, horizon: int, seed: int = 0) -> dict:
    """History, holdout and forecast CSVs shaped like PrepareData and batch-transform output."""
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"item_{k:05d}" for k in range(items)], days)
    stamps = np.tile(pd.date_range("2021-01-01", periods=days, freq="D").strftime("%Y-%m-%d"), items)
    level = np.repeat(rng.gamma(2.0, 50.0, items), days)
    week = np.tile(np.sin(2 * np.pi * np.arange(days) / 7), items)
    y = np.maximum(level * (1 + 0.3 * week) + rng.normal(0, 5, items * days), 0).round(2)
    frame = pd.DataFrame(
        {
            "item_id": ids,
            "timestamp": stamps,
            "target_value": y,
            "category": np.repeat([f"cat{k % 5}" for k in range(items)], days),
        }
    )
    holdout_mask = np.tile(np.arange(days) >= days - horizon, items)
    frame[~holdout_mask].to_csv(folder / "train.csv", index=False)
    hold = frame.loc[holdout_mask, ["item_id", "timestamp", "target_value"]]
    hold.to_csv(folder / "holdout.csv", index=False)
    mean = hold["target_value"].to_numpy() * rng.normal(1, 0.1, len(hold))
    fc = hold[["item_id", "timestamp"]].assign(p10=mean * 0.8, p50=mean, p90=mean * 1.2, mean=mean)
    (folder / "forecasts").mkdir()
    fc.to_csv(folder / "forecasts" / "part-00000.csv.out", index=False)
    return {"history": folder / "train.csv", "actuals": folder / "holdout.csv", "forecasts": folder / "forecasts"}


def bench_step(items: int, days: int, horizon: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = synthetic_files(Path(tmp), items, days, horizon)
        args = evaluate.build_parser().parse_args(
            [
                "--forecasts",
                str(paths["forecasts"]),
                "--actuals",
                str(paths["actuals"]),
                "--history",
                str(paths["history"]),
                "--out",
                str(Path(tmp) / "out"),
            ]
        )
        start = time.perf_counter()
        evaluate.run(args, log=lambda *_: None)
        print(
            f"Evaluate step, {items} items x {days} days, horizon {horizon}: "
            f"{time.perf_counter() - start:.2f} s (including 7 plots)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=125)
    parser.add_argument("--days", type=int, default=1095)
    parser.add_argument("--horizon", type=int, default=14)
    args = parser.parse_args()
    bench_metrics()
    bench_step(args.items, args.days, args.horizon)


if __name__ == "__main__":
    main()
