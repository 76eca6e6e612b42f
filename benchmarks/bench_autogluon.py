"""The engine against AutoGluon-TimeSeries medium_quality (no foundation models) on the same windows.

    python -m venv ~/.venvs/autogluon                             # AutoGluon in its own environment
    ~/.venvs/autogluon/bin/pip install -r benchmarks/requirements-autogluon.txt
    python -m benchmarks.bench_autogluon --ag-python ~/.venvs/autogluon/bin/python --datasets seed,visnights
    FORECAST_AG_PYTHON=~/.venvs/autogluon/bin/python python -m benchmarks.bench_autogluon --datasets all --json out.json

Datasets: `seed` (the seed recipe data, 125 daily series, h=14, the two windows of
benchmarks/bench_engine.py, promotion and is_holiday known covariates, category and region
static) and every dataset of benchmarks/bench_real.py (`all`: seed and its 8; `new`: its 4 the
engine was not tuned on; `single`: its 13 one-series sets; `panels`: its weekly and daily
20-series panels), and `counts` (`counts-steady`,
`counts-intermittent`, `counts-mixed`: benchmarks/bench_counts.py's seeded integer panels, seed 0,
40 items x 400 days, h=14), each on its last `--windows` horizons
(bench_real.windows: the same splits bench_real scores). Per window this process exports the
history, the window's known covariates and the static attributes as Parquet, then runs this
same file with `--worker DIR` under the AutoGluon interpreter: TimeSeriesPredictor(
prediction_length=h, quantile_levels=[0.1, 0.5, 0.9], eval_metric="WQL", freq) fitted with
presets="medium_quality", the foundation models excluded (EXCLUDED) and a fixed random seed.
Seasonal naive, AutoETS and the engine run here on the same windows, and everything is scored
by bench_real.score (wQL over p10/p50/p90 as forecasting.metrics.wql, MASE, p10-p90 coverage).
Seconds are each method's wall fit + predict (AutoGluon's timed inside its worker, so not its
interpreter start); the engine's are `train` + `load_model(...).predict`. CPU seconds count the
process and its children (AutoGluon's worker pools included): on a shared machine they compare
better than wall seconds.

The worker imports only the standard library, numpy, pandas and autogluon: keep it that way.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

QUANTILE_LEVELS = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
PRESET = "medium_quality"
# AutoGluon 1.6's pretrained (foundation) model types (autogluon/timeseries/models/{chronos,toto,toto2}):
# medium_quality's "light" hyperparameters would otherwise add Chronos2 (chronos-2-small) and Toto2,
# next to SeasonalNaive, ETS, Theta, RecursiveTabular, DirectTabular and the weighted ensemble.
EXCLUDED = ["Chronos", "Chronos2", "Toto", "Toto2"]
AG_PYTHON_ENV = "FORECAST_AG_PYTHON"
METHODS = ("seasonal naive", "AutoETS", "engine", "AutoGluon")


# --- export: the exact windows, as files the AutoGluon worker reads ---------------------------


def split_columns(frame: pd.DataFrame) -> tuple[list, list]:
    """(known covariates, static attributes): text columns are per-item attributes, numbers covariates."""
    extra = [c for c in frame.columns if c not in ("item_id", "timestamp", "target_value")]
    static = [c for c in extra if not pd.api.types.is_numeric_dtype(frame[c])]
    for column in static:
        if (frame.groupby("item_id")[column].nunique() > 1).any():
            raise ValueError(f"column {column!r}: a text column must be constant per item (a static attribute)")
    return [c for c in extra if c not in static], static


def export_window(window, frequency: str, horizon: int, directory: Path, seed: int = 0) -> Path:
    """Write one bench_real.Window for the worker: history, future known covariates, statics, spec."""
    from forecasting.config import EngineConfig

    directory.mkdir(parents=True, exist_ok=True)
    known, static = split_columns(window.history)
    history = window.history[["item_id", "timestamp", "target_value", *known]]
    future = window.context[window.context["target_value"].isna()][["item_id", "timestamp", *known]]
    history.to_parquet(directory / "history.parquet", index=False)
    future.to_parquet(directory / "future.parquet", index=False)
    if static:
        window.history.groupby("item_id")[static].first().reset_index().to_parquet(
            directory / "static.parquet", index=False
        )
    spec = {
        "prediction_length": horizon,
        "freq": EngineConfig(frequency=frequency).pandas_frequency,
        "known_covariates": known,
        "static": static,
        "quantile_levels": list(QUANTILE_LEVELS.values()),
        "preset": PRESET,
        "excluded_model_types": EXCLUDED,
        "seed": seed,
    }
    (directory / "spec.json").write_text(json.dumps(spec, indent=1))
    return directory


def read_export(directory: Path) -> tuple:
    """(spec, history, future, static or None) as the worker sees them."""
    spec = json.loads((directory / "spec.json").read_text())
    history = pd.read_parquet(directory / "history.parquet")
    future = pd.read_parquet(directory / "future.parquet")
    static = pd.read_parquet(directory / "static.parquet") if (directory / "static.parquet").exists() else None
    return spec, history, future, static


def forecast_array(forecast: pd.DataFrame, items, horizon: int) -> np.ndarray:
    """Worker output (item_id, timestamp, p10, p50, p90, mean) as bench_real's (items, horizon, 4) array."""
    part = forecast.sort_values(["item_id", "timestamp"]).set_index("item_id").loc[list(items)]
    if len(part) != len(items) * horizon:
        raise RuntimeError(f"AutoGluon returned {len(part)} rows for {len(items)} items x {horizon} steps")
    return part[[*QUANTILE_LEVELS, "mean"]].to_numpy(float).reshape(len(items), horizon, 4)


def cpu_seconds() -> float:
    """CPU seconds of this process and its children, finished (reaped) or still running (worker pools)."""
    import psutil

    me = psutil.Process()
    times = me.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in me.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.Error:  # ended meanwhile
            continue
        total += child_times.user + child_times.system
    return total


# --- the worker: runs under AutoGluon's interpreter -------------------------------------------


def worker(directory: Path) -> None:
    """Fit AutoGluon on the exported history, forecast the window, write forecast.parquet + timing.json."""
    from autogluon.timeseries import TimeSeriesDataFrame, TimeSeriesPredictor

    spec, history, future, static = read_export(directory)
    train = TimeSeriesDataFrame.from_data_frame(history, id_column="item_id", timestamp_column="timestamp")
    if static is not None:
        train.static_features = static.set_index("item_id")
    known = spec["known_covariates"]
    predictor = TimeSeriesPredictor(
        prediction_length=spec["prediction_length"],
        freq=spec["freq"],
        target="target_value",
        known_covariates_names=known or None,
        quantile_levels=spec["quantile_levels"],
        eval_metric="WQL",
        path=str(directory / "model"),
        verbosity=1,
    )
    start, cpu = time.perf_counter(), cpu_seconds()
    predictor.fit(
        train,
        presets=spec["preset"],
        excluded_model_types=spec["excluded_model_types"],
        random_seed=spec["seed"],
    )
    fitted = time.perf_counter()
    future_known = (
        TimeSeriesDataFrame.from_data_frame(future, id_column="item_id", timestamp_column="timestamp")
        if known
        else None
    )
    out = predictor.predict(train, known_covariates=future_known)
    done, cpu = time.perf_counter(), cpu_seconds() - cpu
    names = {str(level): q for q, level in QUANTILE_LEVELS.items()}
    frame = out.reset_index().rename(columns={**names, "timestamp": "timestamp", "item_id": "item_id"})
    frame[["item_id", "timestamp", *QUANTILE_LEVELS, "mean"]].to_parquet(directory / "forecast.parquet", index=False)
    board = predictor.leaderboard()
    (directory / "timing.json").write_text(
        json.dumps(
            {
                "fit_s": fitted - start,
                "predict_s": done - fitted,
                "cpu_s": cpu,
                "best_model": predictor.model_best,
                "models": board["model"].tolist(),
            }
        )
    )


def run_autogluon(ag_python: str, directory: Path, items, horizon: int, quiet: bool) -> tuple:
    """Run the worker in AutoGluon's interpreter; its forecast as an array and its fit/predict seconds."""
    command = [ag_python, os.path.abspath(__file__), "--worker", str(directory)]
    result = subprocess.run(command, capture_output=quiet, text=True)
    if result.returncode:
        tail = (result.stderr or "").strip().splitlines()[-1:] or ["see its output above"]
        raise RuntimeError(f"AutoGluon worker failed on {directory}: {tail[0]}")
    timing = json.loads((directory / "timing.json").read_text())
    forecast = pd.read_parquet(directory / "forecast.parquet")
    forecast["timestamp"] = pd.to_datetime(forecast["timestamp"])
    return forecast_array(forecast, items, horizon), timing


# --- the comparison ---------------------------------------------------------------------------


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and method: mean wQL/MASE/coverage over windows, summed fit+predict seconds, and
    each method's wQL and seconds relative to AutoGluon's on the same dataset."""
    table = rows.groupby(["dataset", "method"], sort=False).agg(
        wQL=("wQL", "mean"),
        MASE=("MASE", "mean"),
        coverage=("coverage", "mean"),
        fit_predict_s=("fit_predict_s", "sum"),
        cpu_s=("cpu_s", lambda x: x.sum(min_count=1)),  # NaN, not 0, where a run recorded none
        windows=("window", "nunique"),
    )
    ag = table.xs("AutoGluon", level="method") if "AutoGluon" in table.index.get_level_values("method") else None
    if ag is not None:
        base = ag.reindex(table.index.get_level_values("dataset"))
        table["wQL_vs_AG"] = table["wQL"].to_numpy() / base["wQL"].to_numpy()
        table["time_vs_AG"] = table["fit_predict_s"].to_numpy() / base["fit_predict_s"].to_numpy()
        table["cpu_vs_AG"] = table["cpu_s"].to_numpy() / base["cpu_s"].to_numpy()
    return table


def markdown(table: pd.DataFrame, dataset: str) -> str:
    """One dataset's rows of `summarize` as a Markdown table (what the notes and docs paste)."""
    part = table.xs(dataset, level="dataset")
    order = ("wQL", "MASE", "coverage", "fit_predict_s", "cpu_s", "wQL_vs_AG", "time_vs_AG", "cpu_vs_AG")
    columns = [c for c in order if c in part]
    heads = {
        "fit_predict_s": "fit+predict s",
        "wQL_vs_AG": "wQL / AG",
        "time_vs_AG": "time / AG",
        "cpu_s": "CPU s",
        "cpu_vs_AG": "CPU / AG",
        "coverage": "p10-p90 coverage",
    }
    ratio = "{:.2f}x"
    fmt = {"fit_predict_s": "{:.1f}", "cpu_s": "{:.1f}", "MASE": "{:.3f}"}
    fmt.update(wQL_vs_AG=ratio, time_vs_AG=ratio, cpu_vs_AG=ratio)
    lines = [
        "| method | " + " | ".join(heads.get(c, c) for c in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for method, row in part.iterrows():
        cells = [fmt.get(c, "{:.4f}").format(row[c]) if pd.notna(row[c]) else "-" for c in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def overview(table: pd.DataFrame) -> str:
    """One Markdown row per dataset: each method's wQL, then the engine's wQL, wall and CPU over AutoGluon's."""
    methods = [m for m in METHODS if m in table.index.get_level_values("method")]
    lines = [
        "| data | " + " | ".join(f"{m} wQL" for m in methods) + " | engine / AG: wQL | wall | CPU |",
        "|---" * (len(methods) + 4) + "|",
    ]
    for dataset in table.index.get_level_values("dataset").unique():
        part = table.xs(dataset, level="dataset")
        cells = [f"{part.loc[m, 'wQL']:.4f}" if m in part.index else "-" for m in methods]
        ratios = [
            f"{part.loc['engine', c]:.2f}x"
            if {"engine", "AutoGluon"} <= set(part.index) and c in part and pd.notna(part.loc["engine", c])
            else "-"
            for c in ("wQL_vs_AG", "time_vs_AG", "cpu_vs_AG")
        ]
        lines.append(f"| {dataset} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


COUNTS = ("counts-steady", "counts-intermittent", "counts-mixed")  # bench_counts' kinds, seed 0


def load_dataset(name: str):
    """(bench_real.Dataset, cutoffs or None for bench_real's last horizons)."""
    from benchmarks import bench_engine, bench_real

    if name == "seed":
        frame = bench_engine.load_seed()
        return bench_real.Dataset("seed", "D", bench_engine.HORIZON, frame, holiday_country="US"), bench_engine.CUTOFFS
    if name in COUNTS:
        from benchmarks import bench_counts

        frame = bench_counts.count_panel(name.removeprefix("counts-"), seed=0)
        return bench_real.Dataset(name, "D", bench_engine.HORIZON, frame), None
    return bench_real.load(name), None


def compare(name: str, windows: int, ag_python: str, workdir: Path, skip_ets: bool, quiet: bool, seed: int):
    from benchmarks import bench_real
    from forecasting.config import EngineConfig

    data, cutoffs = load_dataset(name)
    frame = bench_real.prepare(data)
    season = EngineConfig(frequency=data.frequency).season_length
    cutoffs = cutoffs or bench_real.last_cutoffs(frame, data.horizon, windows)
    known, static = split_columns(frame)
    print(
        f"\n{name}: {frame['item_id'].nunique()} series x {frame['timestamp'].nunique()} periods, "
        f"frequency {data.frequency}, horizon {data.horizon}, known covariates {known or '-'}, static {static or '-'}",
        flush=True,
    )
    log = (lambda *_: None) if quiet else print
    rows = []
    for number, w in enumerate(bench_real.windows(frame, data.horizon, cutoffs)):
        where = export_window(w, data.frequency, data.horizon, workdir / name / f"window{number}", seed)
        history, items = w.history, w.items
        methods = [
            ("seasonal naive", lambda: bench_real.run_statsforecast(data, history, items, "naive", season)),
            ("AutoETS", lambda: bench_real.run_statsforecast(data, history, items, "ets", season)),
            (
                "engine",
                lambda: bench_real.run_engine(data, history, w.context, items, str(where / "engine"), log),
            ),
            ("AutoGluon", lambda: run_autogluon(ag_python, where, items, data.horizon, quiet)),
        ]
        for method, fn in methods:
            if skip_ets and method == "AutoETS":
                continue
            cpu = cpu_seconds()
            forecast, walls = fn()
            seconds = walls.get("train_s", walls.get("fit_s", 0.0)) + walls["predict_s"]
            # AutoGluon: its worker's own count (fit + predict, not the interpreter start); the others: this process's
            cpu = walls["cpu_s"] if method == "AutoGluon" else cpu_seconds() - cpu
            rows.append(
                {
                    "dataset": name,
                    "window": f"to {w.cutoff.date()}",
                    "method": method,
                    **bench_real.score(w.actual, forecast, bench_real.past_values(w), season),
                    "fit_predict_s": seconds,
                    "cpu_s": cpu,
                    **({"best_model": walls["best_model"]} if "best_model" in walls else {}),
                }
            )
            print(
                f"  {method:>15} {rows[-1]['window']}: wQL {rows[-1]['wQL']:.4f}, MASE {rows[-1]['MASE']:.3f}, "
                f"coverage {rows[-1]['coverage']:.3f}, fit+predict {seconds:.1f}s, CPU {cpu:.1f}s"
                + (f" (best: {walls['best_model']})" if "best_model" in walls else ""),
                flush=True,
            )
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # internal: run under AutoGluon
    parser.add_argument(
        "--datasets",
        default="seed",
        help="comma-separated names, all (seed and bench_real's `all`), new, single or panels (bench_real's groups), "
        "counts (bench_counts' three integer panels)",
    )
    parser.add_argument("--windows", type=int, default=2, help="bench_real datasets' rolling windows (seed: its 2)")
    parser.add_argument(
        "--ag-python",
        default=os.environ.get(AG_PYTHON_ENV),
        help=f"the interpreter that has autogluon.timeseries (default: ${AG_PYTHON_ENV})",
    )
    parser.add_argument("--seed", type=int, default=0, help="AutoGluon's random_seed (default 0)")
    parser.add_argument("--skip-ets", action="store_true", help="skip the AutoETS baseline")
    parser.add_argument("--quiet", action="store_true", help="hide the engine's and AutoGluon's progress output")
    parser.add_argument("--json", type=Path, help="also write every window's scores and the summary here")
    parser.add_argument("--append", type=Path, help="append each dataset's Markdown table here as it finishes")
    parser.add_argument("--workdir", type=Path, help="keep the exported windows and models here (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return 0

    from benchmarks import bench_real

    groups = {**bench_real.GROUPS, "all": ("seed", *bench_real.DATASETS), "counts": COUNTS}
    names = bench_real.parse_datasets(parser, args.datasets, ("seed", *bench_real.KNOWN, *COUNTS), args.windows, groups)
    if not args.ag_python:
        parser.error(f"--ag-python: no AutoGluon interpreter given (or set {AG_PYTHON_ENV}); see the module docstring")
    if not (os.path.isfile(args.ag_python) and os.access(args.ag_python, os.X_OK)):
        parser.error(f"--ag-python {args.ag_python}: not an executable file")

    from processing.kernel.process_env import configure_threads

    configure_threads()  # before LightGBM loads OpenMP in this process
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-autogluon-"))
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; exports in {workdir}", flush=True)
    rows = []
    for name in names:
        part = compare(name, args.windows, args.ag_python, workdir, args.skip_ets, args.quiet, args.seed)
        rows.append(part)
        table = markdown(summarize(part), name)
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\n{name}:\n{table}\nload average {load}", flush=True)
        if args.append:
            with open(args.append, "a") as out:
                out.write(f"\n### {name} ({part['window'].nunique()} windows, load average {load})\n\n{table}\n")
    everything = pd.concat(rows, ignore_index=True)
    summary = summarize(everything)
    if len(names) > 1:
        print("\nall datasets:\n" + overview(summary), flush=True)
    if args.json:
        payload = {
            "windows": everything.to_dict(orient="records"),
            "summary": summary.reset_index().to_dict(orient="records"),
            "autogluon": {"preset": PRESET, "excluded_model_types": EXCLUDED, "seed": args.seed},
        }
        args.json.write_text(json.dumps(payload, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
