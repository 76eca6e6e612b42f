"""Both seed windows through the user commands: training, approve, batch; wall time and wQL.

    python -m benchmarks.bench_seed_run                    # both windows, pipeline defaults
    python -m benchmarks.bench_seed_run --windows 1        # the first window only
    python -m benchmarks.bench_seed_run --baseline         # and bench_engine's in-process engine, same run
    python -m benchmarks.bench_seed_run --param AutoMLAlgorithms=npts --keep

Issue 14 part 3: "both windows of the seed data, training + batch (user commands), in at most
85 s". Per window of bench_engine (history to 2023-12-03 and to 2023-12-17, h=14) and in a
FORECAST_HOME of its own, exactly what a user types, each in a process of its own:

    python -m pipelines.run --param InputDataUrl=history.csv          # the pipeline's defaults
    python -m deploy.approve approve --latest                        # approving deploys the endpoint
    python -m pipelines.run --pipeline batch --param InputDataUrl=batch.csv --param OutputUrl=report

history.csv is the seed recipe's generator output (processing.generate, 25 products x 5 regions,
every column) up to the cutoff; batch.csv the same plus the next 14 days with their known
covariates and an empty target. The batch's report/forecasts.csv is scored against the
generator's actuals as bench_engine scores (wQL over p10/p50/p90, coverage of p10-p90). The
endpoint the approval started is stopped before the batch (the batch does not use it) and is
not timed. Prints per window: training wall (and the engine's seconds inside the AutoML step),
approve wall, batch wall (and the transform's seconds), wQL and coverage; then the total of the
user commands against the 85 s target. Exits 1 when a command fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_engine import CUTOFFS, HORIZON, QUANTILES  # noqa: E402
from benchmarks.bench_local_run import ENGINE_DONE, TRANSFORM_DONE  # noqa: E402

TARGET_SECONDS = 85.0


def window_files(data: pd.DataFrame, cutoff: str, folder: Path) -> tuple:
    """(history.csv, batch.csv, actuals frame) for the window after `cutoff`."""
    from processing.generate import write_frame

    end = (pd.Timestamp(cutoff) + pd.Timedelta(days=HORIZON)).strftime("%Y-%m-%d")
    history = data[data["timestamp"] <= cutoff]
    window = data[(data["timestamp"] > cutoff) & (data["timestamp"] <= end)]
    batch = pd.concat([history, window.assign(target_value=float("nan"))])
    batch = batch.sort_values(["item_id", "timestamp"], kind="stable")
    folder.mkdir(parents=True, exist_ok=True)
    write_frame(history, folder / "history.csv")
    write_frame(batch, folder / "batch.csv")
    return folder / "history.csv", folder / "batch.csv", window[["item_id", "timestamp", "target_value"]], history


def children_cpu() -> float:
    """CPU seconds of every finished process this one waited for (the commands and their steps)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run_command(args: list, home: Path, log: Path) -> tuple:
    """(seconds, exit code, CPU seconds) of `python -m ARGS` in its own process with FORECAST_HOME=home."""
    env = dict(os.environ, FORECAST_HOME=str(home))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    for name in ("FORECAST_ROLE_ARN", "FORECAST_TARGET"):
        env.pop(name, None)
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    started, cpu = time.monotonic(), children_cpu()
    with open(log, "a") as out:
        out.write(f"$ python -m {' '.join(args)}\n")
        out.flush()
        code = subprocess.run(
            [sys.executable, "-m", *args], cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode
    return time.monotonic() - started, code, children_cpu() - cpu


def home_settings(home: Path):
    """The settings a user's command resolves with FORECAST_HOME=home (this process's env untouched)."""
    from processing.kernel.settings import resolve

    return resolve(environ={**os.environ, "FORECAST_HOME": str(home)})


def latest_record(home: Path) -> dict:
    from pipelines.local import runtime

    return runtime.load_executions(home_settings(home))[0]


def step_seconds(record: dict, pattern) -> tuple:
    """(seconds matched by pattern in the step logs, {step: duration})."""
    found, steps = 0.0, {}
    for step in record.get("steps", []):
        steps[step["name"]] = step.get("duration_seconds")
        log = Path(step["log"]) if step.get("log") else None
        if log is not None and log.is_file():
            found += sum(float(m) for m in pattern.findall(log.read_text(errors="replace")))
    return found, steps


def stop_endpoint(home: Path) -> None:
    from deploy import endpoint

    settings = home_settings(home)
    endpoint.stop(settings.home_path, settings.endpoint_name)


def read_forecasts(path: Path) -> pd.DataFrame:
    forecast = pd.read_csv(path)
    forecast["timestamp"] = pd.to_datetime(forecast["timestamp"]).dt.strftime("%Y-%m-%d")
    return forecast


def run_window(data, cutoff: str, work: Path, params: list) -> dict:
    """Train, approve, stop the endpoint, batch and score one window; a dict of figures."""
    from benchmarks.bench_engine import score

    home, log = work / "home", work / "commands.log"
    history_csv, batch_csv, actual, history = window_files(data, cutoff, work / "input")
    cli = [item for p in params for item in ("--param", p)]
    row = {"window": f"to {cutoff}", "log": str(log)}
    train_s, code, row["train_cpu"] = run_command(
        ["pipelines.run", "--param", f"InputDataUrl={history_csv}", *cli], home, log
    )
    record = latest_record(home)
    row["train_s"], row["engine_s"] = train_s, step_seconds(record, ENGINE_DONE)[0]
    row["train_steps"] = step_seconds(record, ENGINE_DONE)[1]
    if code or record.get("status") != "Succeeded":
        raise RuntimeError(f"training failed (exit {code}); see {log}")
    row["approve_s"], code, row["approve_cpu"] = run_command(["deploy.approve", "approve", "--latest"], home, log)
    if code:
        raise RuntimeError(f"approve failed (exit {code}); see {log}")
    stop_endpoint(home)
    report = work / "report"
    batch_args = ["pipelines.run", "--pipeline", "batch", "--param", f"InputDataUrl={batch_csv}"]
    row["batch_s"], code, row["batch_cpu"] = run_command([*batch_args, "--param", f"OutputUrl={report}"], home, log)
    record = latest_record(home)
    row["transform_s"], row["batch_steps"] = step_seconds(record, TRANSFORM_DONE)
    if code or record.get("status") != "Succeeded":
        raise RuntimeError(f"batch failed (exit {code}); see {log}")
    forecast = read_forecasts(report / "forecasts.csv")
    row.update(score(actual, forecast[["item_id", "timestamp", *QUANTILES, "mean"]], history))
    return row


def engine_baseline(data, algorithms) -> list:
    """bench_engine's in-process engine on the same windows (train + predict wall, wQL)."""
    from benchmarks.bench_engine import KEEP, run_engine, score
    from forecasting.models.statistical import shutdown_pools

    rows = []
    frame = data[KEEP]
    for cutoff in CUTOFFS:
        end = (pd.Timestamp(cutoff) + pd.Timedelta(days=HORIZON)).strftime("%Y-%m-%d")
        history = frame[frame["timestamp"] <= cutoff]
        window = frame[(frame["timestamp"] > cutoff) & (frame["timestamp"] <= end)]
        context = pd.concat([history, window.assign(target_value=float("nan"))]).sort_values(["item_id", "timestamp"])
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="bench-seed-engine-") as tmp:
            forecast = run_engine(history, context, tmp, lambda *_: None, algorithms)
        rows.append(
            {
                "window": f"to {cutoff}",
                "wall_s": time.monotonic() - started,
                **score(window[["item_id", "timestamp", "target_value"]], forecast, history),
            }
        )
    shutdown_pools(wait=True)
    return rows


def print_table(rows: list) -> float:
    header = ("window", "train s", "engine s", "approve s", "batch s", "transform s", "CPU s", "wQL", "coverage")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r["window"],
                f"{r['train_s']:.1f}",
                f"{r['engine_s']:.1f}",
                f"{r['approve_s']:.1f}",
                f"{r['batch_s']:.1f}",
                f"{r['transform_s']:.1f}",
                f"{r['train_cpu'] + r['approve_cpu'] + r['batch_cpu']:.1f}",
                f"{r['wQL']:.4f}",
                f"{r['coverage']:.2f}",
            )
        )
    total = sum(r["train_s"] + r["approve_s"] + r["batch_s"] for r in rows)
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for k, line in enumerate(lines):
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
        if k == 0:
            print("-" * (sum(widths) + 2 * (len(widths) - 1)))
    mean_wql = sum(r["wQL"] for r in rows) / len(rows)
    mean_cov = sum(r["coverage"] for r in rows) / len(rows)
    print(f"mean wQL {mean_wql:.4f}, coverage {mean_cov:.2f}")
    verdict = "within" if total <= TARGET_SECONDS else "OVER"
    print(
        f"total of the user commands (train + approve + batch, {len(rows)} window(s)): {total:.1f} s, "
        f"{verdict} the {TARGET_SECONDS:.0f} s target"
    )
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, choices=(1, 2), default=2, help="1: the first window only")
    parser.add_argument("--param", action="append", default=[], help="training Name=Value override (repeatable)")
    parser.add_argument("--work", help="folder for the homes, inputs and reports (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--baseline", action="store_true", help="also bench_engine's in-process engine, same run")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    from benchmarks.bench_engine import load_seed  # noqa: F401  (the same generator call)
    from processing.generate import generate_sales

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-seed-run-"))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; work {work}",
        flush=True,
    )
    data = generate_sales(products=25)
    rows = []
    try:
        for k, cutoff in enumerate(CUTOFFS[: args.windows], 1):
            row = run_window(data, cutoff, work / f"w{k}", args.param)
            rows.append(row)
            steps = ", ".join(f"{n} {s:.1f}" for n, s in row["train_steps"].items() if s is not None)
            print(f"window to {cutoff}: training steps: {steps}", flush=True)
            steps = ", ".join(f"{n} {s:.1f}" for n, s in row["batch_steps"].items() if s is not None)
            print(f"window to {cutoff}: batch steps: {steps}", flush=True)
    except RuntimeError as exc:
        print(f"bench_seed_run: {exc}")
        return 1
    print()
    total = print_table(rows)
    result = {"windows": rows, "total_s": total, "load": os.getloadavg()}
    if args.baseline:
        algorithms = next(
            (p.split("=", 1)[1].split(",") for p in args.param if p.startswith("AutoMLAlgorithms=")),
            ["cnn-qr", "deepar", "prophet", "npts", "arima", "ets"],
        )
        base = engine_baseline(data, algorithms)
        result["engine_in_process"] = base
        for b in base:
            print(
                f"bench_engine in-process engine {b['window']}: train + predict {b['wall_s']:.1f} s, "
                f"wQL {b['wQL']:.4f}, coverage {b['coverage']:.2f}"
            )
    print(f"(load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    if not args.work and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
