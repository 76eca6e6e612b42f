"""Benchmark the local engine against seasonal naive and statsforecast AutoETS on the seed data.

    python -m benchmarks.bench_engine                 # both windows, engine + baselines
    python -m benchmarks.bench_engine --skip-ets      # faster iteration
    python -m benchmarks.bench_engine --scale 500     # 500 products x 5 regions x 3 years: train time, memory
    python -m benchmarks.bench_engine --algorithms npts,ets   # one stand-in per name (all six = the default members)

Windows: history up to 2023-12-03 and up to 2023-12-17, 14-day horizon, p10/p50/p90;
promotion and is_holiday are known covariates, category and region static attributes.
day_of_week/month/quarter are dropped: they are calendar functions of the timestamp, which the
engine derives itself (as Autopilot does), so they would only duplicate features.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time

import numpy as np
import pandas as pd

CUTOFFS = ("2023-12-03", "2023-12-17")
HORIZON = 14
QUANTILES = ("p10", "p50", "p90")
KEEP = ["item_id", "timestamp", "target_value", "promotion", "is_holiday", "category", "region"]


def load_seed(products=25) -> pd.DataFrame:
    """The seed recipe's data (25 products x 5 regions by default) from the project's generator."""
    from processing.generate import generate_sales

    return generate_sales(products=products)[KEEP].copy()


def score(actual: pd.DataFrame, forecast: pd.DataFrame, history: pd.DataFrame) -> dict:
    from forecasting.metrics import seasonal_naive_scales, wape, wql

    m = actual.merge(forecast, on=["item_id", "timestamp"], how="left")
    if m[list(QUANTILES)].isna().any().any():
        raise RuntimeError("forecast is missing rows of the window")
    y = m["target_value"].to_numpy()
    hist = history.sort_values(["item_id", "timestamp"]).groupby("item_id")["target_value"]
    scales = pd.Series(seasonal_naive_scales([g.to_numpy() for _, g in hist], 7), index=list(hist.groups))
    err = (m["target_value"] - m["mean"]).abs().groupby(m["item_id"]).mean()
    return {
        "wQL": wql(y, {q: m[q].to_numpy() for q in QUANTILES}),
        "WAPE": wape(y, m["mean"].to_numpy()),
        "MASE": float((err / scales.reindex(err.index)).mean()),
        "coverage": float(((y >= m["p10"]) & (y <= m["p90"])).mean()),
    }


def engine_config(algorithms=None):
    from forecasting import EngineConfig

    return EngineConfig(
        frequency="D",
        horizon=HORIZON,
        quantiles=QUANTILES,
        holiday_country="US",
        algorithms=tuple(algorithms) if algorithms else None,
    )


def run_engine(history: pd.DataFrame, context: pd.DataFrame, workdir: str, log, algorithms=None) -> pd.DataFrame:
    from forecasting import load_model, train

    config = engine_config(algorithms)
    result = train(history, config, workdir, log=log)
    return load_model(result.model_dir).predict(context)


def run_statsforecast(history: pd.DataFrame, which: str) -> pd.DataFrame:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, SeasonalNaive

    model = AutoETS(season_length=7) if which == "ets" else SeasonalNaive(season_length=7)
    frame = history.rename(columns={"item_id": "unique_id", "timestamp": "ds", "target_value": "y"})
    frame = frame[["unique_id", "ds", "y"]].assign(ds=lambda d: pd.to_datetime(d["ds"]))
    out = StatsForecast(models=[model], freq="D", n_jobs=1).forecast(df=frame, h=HORIZON, level=[80])
    name = type(model).__name__
    out = out.rename(
        columns={
            "unique_id": "item_id",
            "ds": "timestamp",
            f"{name}-lo-80": "p10",
            f"{name}-hi-80": "p90",
            name: "mean",
        }
    )
    out["p50"] = out["mean"]
    out["timestamp"] = pd.to_datetime(out["timestamp"]).dt.strftime("%Y-%m-%d")
    return out[["item_id", "timestamp", *QUANTILES, "mean"]]


def benchmark(skip_ets: bool, quiet: bool, algorithms=None) -> pd.DataFrame:
    df = load_seed()
    rows = []
    log = (lambda *_: None) if quiet else print
    for cutoff in CUTOFFS:
        end = (pd.Timestamp(cutoff) + pd.Timedelta(days=HORIZON)).strftime("%Y-%m-%d")
        history = df[df["timestamp"] <= cutoff]
        window = df[(df["timestamp"] > cutoff) & (df["timestamp"] <= end)]
        actual = window[["item_id", "timestamp", "target_value"]]
        context = pd.concat([history, window.assign(target_value=np.nan)]).sort_values(["item_id", "timestamp"])
        methods = [
            ("engine", lambda: run_engine(history, context, tempfile.mkdtemp(prefix="bench-engine-"), log, algorithms)),
            ("seasonal naive", lambda: run_statsforecast(history, "naive")),
        ]
        if not skip_ets:
            methods.append(("AutoETS", lambda: run_statsforecast(history, "ets")))
        for name, fn in methods:
            start, cpu = time.perf_counter(), time.process_time()
            forecast = fn()
            wall = time.perf_counter() - start
            rows.append(
                {
                    "method": name,
                    "window": f"to {cutoff}",
                    **score(actual, forecast, history),
                    "wall_s": wall,
                    "cpu_s": time.process_time() - cpu,
                }
            )
            print(
                f"{name:>15} to {cutoff}: "
                + ", ".join(f"{k} {v:.4f}" for k, v in rows[-1].items() if isinstance(v, float)),
                flush=True,
            )
    return pd.DataFrame(rows)


def scale_run(products: int, algorithms=None):
    """Train time and peak memory for products x 5 regions series over 3 years."""
    from forecasting import train

    t0 = time.perf_counter()
    df = load_seed(products)
    print(
        f"generated {df['item_id'].nunique()} series x {df['timestamp'].nunique()} days "
        f"in {time.perf_counter() - t0:.0f}s",
        flush=True,
    )
    config = engine_config(algorithms)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        train(df, config, tmp)
    wall = time.perf_counter() - start
    from forecasting.models.statistical import shutdown_pools

    shutdown_pools(wait=True)  # finished workers report their peak memory to RUSAGE_CHILDREN
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    worker_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    print(
        f"scale: {df['item_id'].nunique()} series trained in {wall:.0f}s, peak RSS {peak_gb:.2f} GB"
        + (
            f" (+ largest worker process {worker_gb:.2f} GB, forked: pages shared with the parent count in both)"
            if worker_gb
            else ""
        )
    )


def main(argv=None) -> int:
    from processing.kernel.process_env import configure_threads

    configure_threads()  # before LightGBM loads OpenMP in this process
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-ets", action="store_true", help="skip the (slow) AutoETS baseline")
    parser.add_argument("--quiet", action="store_true", help="hide the engine's progress output")
    parser.add_argument(
        "--scale",
        type=int,
        default=None,
        metavar="PRODUCTS",
        help="instead: time training on PRODUCTS x 5 regions x 3 years (500 -> 2,500 series)",
    )
    parser.add_argument(
        "--algorithms",
        default=None,
        metavar="LIST",
        help="comma-separated Autopilot algorithm names (default: the engine's default preset), "
        "e.g. npts,ets (all six, the training pipeline's default, train the default members too)",
    )
    args = parser.parse_args(argv)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()] if args.algorithms else None
    if algorithms:
        print(f"algorithms: {','.join(algorithms)}", flush=True)
    if args.scale:
        scale_run(args.scale, algorithms)
        return 0
    table = benchmark(args.skip_ets, args.quiet, algorithms)
    summary = table.groupby("method", sort=False).agg(
        wQL=("wQL", "mean"),
        WAPE=("WAPE", "mean"),
        MASE=("MASE", "mean"),
        coverage=("coverage", "mean"),
        wall_s=("wall_s", "sum"),
        cpu_s=("cpu_s", "sum"),
    )
    with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
        print("\nper window:\n" + table.to_string(index=False))
        print("\nmean over windows (wall and CPU of this process: both windows):\n" + summary.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
