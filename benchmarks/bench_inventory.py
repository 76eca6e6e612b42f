"""Does the order-up-to level cover its service level over the horizon? Seed data, the engine.

    python -m benchmarks.bench_inventory                       # 5 windows, ~1 min of training each
    python -m benchmarks.bench_inventory --cutoffs 2023-12-03  # one window
    BENCH_INVENTORY_CACHE=/tmp/inv python -m benchmarks.bench_inventory   # keep the forecasts, rerun in seconds

As the pipelines run it: the model is trained on the history up to `cutoff - H`; the training
pipeline's holdout (cutoff - H, cutoff] is forecast and scored (Evaluate measures the horizon
spread factor there, processing.inventory.spread_factor); then the next horizon
(cutoff, cutoff + H] is forecast (the batch pipeline) and each aggregation's order-up-to level
is checked against the items' actual horizon totals: the share of items covered should be the
service level. `safety` is the summed safety stock over the summed expected demand.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from statistics import NormalDist

import numpy as np
import pandas as pd

from benchmarks.bench_engine import HORIZON, engine_config, load_seed
from processing import inventory

CUTOFFS = ("2023-03-05", "2023-06-04", "2023-09-03", "2023-12-03", "2023-12-17")
SERVICE_LEVELS = (0.8, 0.9, 0.95)
P_LO, P_HI = 0.1, 0.9


def window(df: pd.DataFrame, cutoff: pd.Timestamp):
    """(context: history + future rows with an empty target, actuals of the next H days)."""
    end = cutoff + pd.Timedelta(days=HORIZON)
    history = df[df["timestamp"] <= cutoff]
    future = df[(df["timestamp"] > cutoff) & (df["timestamp"] <= end)]
    context = pd.concat([history, future.assign(target_value=np.nan)]).sort_values(["item_id", "timestamp"])
    return context, future[["item_id", "timestamp", "target_value"]]


def joined(model, df: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    context, actual = window(df, cutoff)
    forecast = model.predict(context)
    forecast["timestamp"] = pd.to_datetime(forecast["timestamp"])
    frame = actual.merge(forecast, on=["item_id", "timestamp"], how="inner")
    frame["sigma"] = inventory.period_sigma(frame["p10"], frame["p90"], P_LO, P_HI)
    return frame.sort_values(["item_id", "timestamp"]).reset_index(drop=True)


def totals(frame: pd.DataFrame) -> pd.DataFrame:
    g = frame.assign(var=frame["sigma"] ** 2).groupby("item_id")
    return pd.DataFrame(
        {"actual": g["target_value"].sum(), "mean": g["mean"].sum(), "var": g["var"].sum(), "sig": g["sigma"].sum()}
    )


def error_correlation(frame: pd.DataFrame) -> float:
    """Alternative (b'): the periods' average error correlation rho (each error over its own sigma),
    for Var(total) = (1 - rho) sum sigma^2 + rho (sum sigma)^2: correlation only, no calibration."""
    ok = frame.groupby("item_id")["sigma"].transform("min") > 0
    z = frame[ok].assign(z=lambda d: (d["target_value"] - d["mean"]) / d["sigma"]).groupby("item_id")["z"]
    a, b, n = z.sum() ** 2, z.apply(lambda v: float((v**2).sum())), z.size()
    return float(np.clip((a - b).sum() / ((n - 1) * b).sum(), 0, 1))


def standardized_totals(t: pd.DataFrame) -> np.ndarray:
    u = (t["actual"] - t["mean"]) / np.sqrt(t["var"])
    return u.replace([np.inf, -np.inf], np.nan).dropna().to_numpy()


def levels(hold: pd.DataFrame, t: pd.DataFrame, level: float) -> dict:
    """Order-up-to per item for every aggregation compared."""
    h = totals(hold)
    z = NormalDist().inv_cdf(level)
    u = standardized_totals(h)
    k = inventory.spread_factor(hold["target_value"] - hold["mean"], hold["sigma"], hold["item_id"])
    rho = error_correlation(hold)
    rms = float(np.sqrt(np.mean(u**2)))
    root_sum_square = np.sqrt(t["var"])
    out = {
        "independent (before)": t["mean"] + z * inventory.total_sigma(t["var"], t["sig"], inventory.INDEPENDENT),
        "comonotone (fallback)": t["mean"] + z * inventory.total_sigma(t["var"], t["sig"], inventory.COMONOTONE),
        "correlation rho only": t["mean"] + z * np.sqrt((1 - rho) * t["var"] + rho * t["sig"] ** 2),
        "calibrated k, RMS": t["mean"] + z * rms * root_sum_square,
        "calibrated k, MAD (chosen)": t["mean"]
        + z * inventory.total_sigma(t["var"], t["sig"], inventory.CALIBRATED, k),
        "empirical quantile of u": t["mean"] + float(np.quantile(u, level)) * root_sum_square,
    }
    return {name: np.maximum(value, t["mean"]).clip(lower=0) for name, value in out.items()}


def forecasts(df: pd.DataFrame, cutoff: pd.Timestamp):
    """(holdout frame, next-horizon frame), trained once; cached under BENCH_INVENTORY_CACHE."""
    from forecasting import load_model, train

    cache = os.environ.get("BENCH_INVENTORY_CACHE")
    cached = os.path.join(cache, f"{cutoff.date()}.pkl") if cache else None
    if cached and os.path.exists(cached):
        return pd.read_pickle(cached)
    holdout_start = cutoff - pd.Timedelta(days=HORIZON)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(df[df["timestamp"] <= holdout_start], engine_config(), tmp, log=lambda *_: None)
        model = load_model(result.model_dir)
    print(f"  trained to {holdout_start.date()} in {time.perf_counter() - started:.0f}s", flush=True)
    pair = (joined(model, df, holdout_start), joined(model, df, cutoff))
    if cached:
        os.makedirs(cache, exist_ok=True)
        pd.to_pickle(pair, cached)
    return pair


def main(argv=None) -> int:
    from processing.kernel.process_env import configure_threads

    configure_threads()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cutoffs", default=",".join(CUTOFFS))
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
    df = load_seed()
    df["timestamp"] = pd.to_datetime(df["timestamp"])
    rows = []
    for text in args.cutoffs.split(","):
        cutoff = pd.Timestamp(text)
        hold, test = forecasts(df, cutoff)
        t = totals(test)
        k = inventory.spread_factor(hold["target_value"] - hold["mean"], hold["sigma"], hold["item_id"])
        inside = (test["target_value"] >= test["p10"]) & (test["target_value"] <= test["p90"])
        print(
            f"window {cutoff.date()}: holdout spread factor k {k:.2f}, error correlation {error_correlation(hold):.2f};"
            f" next horizon's per-period p10-p90 coverage {inside.mean():.3f}",
            flush=True,
        )
        for level in SERVICE_LEVELS:
            for name, order_up_to in levels(hold, t, level).items():
                rows.append(
                    {
                        "window": str(cutoff.date()),
                        "method": name,
                        "service_level": level,
                        "coverage": float((t["actual"] <= order_up_to).mean()),
                        "safety": float((order_up_to - t["mean"]).sum() / t["mean"].sum()),
                    }
                )
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200):
        for level, part in table.groupby("service_level"):
            pooled = part.groupby("method", sort=False).agg(
                coverage=("coverage", "mean"), worst=("coverage", "min"), safety=("safety", "mean")
            )
            per_window = part.pivot_table(index="method", columns="window", values="coverage", sort=False)
            print(f"\nservice level {level}: share of items whose horizon total the level covers")
            print(pooled.join(per_window).round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
