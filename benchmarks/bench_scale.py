"""The scaling curve: wall time and peak memory per step of the local training and batch pipelines.

    python benchmarks/bench_scale.py 1000 5000                # series counts (products x 5 regions)
    nice -n 10 python benchmarks/bench_scale.py 25000 --no-baseline
    python benchmarks/bench_scale.py 25000 --work DIR --batch-only   # the batch again on DIR's trained home
    python benchmarks/bench_scale.py 1000 --algorithms npts    # another candidate set for the engine run

For each size it generates the seed recipe's data (`processing.generate`, N/5 products x 5
regions x 3 daily years, plus 14 future days for the batch input), then runs the user's
commands as subprocesses: `python -m pipelines.run --param InputDataUrl=history.csv
--param ModelApprovalStatus=Approved` and `python -m pipelines.run --pipeline batch ...`.
A sampler reads the resident memory of every process of each run's tree (the runtime, each
step's process, the AutoML worker and its pool) every half second; a step's peak is the
largest sum over the tree while it ran. The run's largest single process comes from the
kernel's own accounting (wait4's ru_maxrss), which no sampling can miss. The baseline in the
same run is the pipeline with the cheapest AutoML candidates (`AutoMLAlgorithms=npts`: seasonal
naive and NPTS), i.e. what every step but the engine costs at that size. Each run records the
load average at its end: on a shared machine timings are read against it.

Targets (issue 14): 25,000 series train in 30 minutes and forecast in 5 on two cores, with
peak memory under 8 GB.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import psutil

ROOT = Path(__file__).resolve().parent.parent
REGIONS = 5
YEARS = 3
FUTURE_DAYS = 14
SAMPLE_SECONDS = 0.5
TARGETS = {"train_seconds": 30 * 60, "batch_seconds": 5 * 60, "peak_bytes": 8 * 1024**3}
BASELINE_ALGORITHMS = "npts"
GB = 1024**3


class TreeSampler:
    """Samples the summed RSS of a process and all its descendants (psutil) in a thread."""

    def __init__(self, pid: int, limit_bytes: Optional[int] = None):
        self.root = psutil.Process(pid)
        self.limit_bytes = limit_bytes  # past it the run is stopped: the machine is shared
        self.stopped = False
        self.samples: List[tuple] = []  # (unix time, total rss bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                processes = [self.root] + self.root.children(recursive=True)
            except psutil.Error:
                break
            for process in processes:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.samples.append((time.time(), total))
            if self.limit_bytes and total > self.limit_bytes and not self.stopped:
                self.stopped = True
                print(f"  memory {total / GB:.1f} GB > --max-gb: stopping the run (SIGINT)", flush=True)
                try:
                    self.root.send_signal(2)
                except psutil.Error:
                    pass
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float = float("-inf"), end: float = float("inf")) -> Optional[int]:
        inside = [rss for moment, rss in self.samples if start - SAMPLE_SECONDS <= moment <= end + SAMPLE_SECONDS]
        return max(inside) if inside else None


MAX_BYTES: Optional[int] = None  # --max-gb


def run_measured(command: List[str], env: dict, log: Path) -> dict:
    """Run `command`, sampling its tree; wall seconds, exit code, sampled and kernel peaks."""
    started = time.time()
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(
            command, cwd=str(ROOT), env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        with TreeSampler(process.pid, MAX_BYTES) as sampler:
            _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "seconds": time.time() - started,
        "code": process.returncode,
        "sampler": sampler,
        "max_process_bytes": usage.ru_maxrss * 1024,
    }  # Linux: KiB; covers reaped descendants


def latest_execution(home: Path) -> dict:
    records = [json.loads(p.read_text()) for p in (home / "executions").glob("*/execution.json")]
    if not records:
        raise RuntimeError(f"no execution recorded under {home}")
    return max(records, key=lambda r: r.get("start_time") or "")


def step_rows(record: dict, sampler: TreeSampler) -> List[dict]:
    rows = []
    for step in record["steps"]:
        if not step.get("start_time"):
            continue
        start = datetime.datetime.fromisoformat(step["start_time"]).timestamp()
        seconds = step.get("duration_seconds") or 0.0
        rows.append(
            {
                "step": step["name"],
                "status": step["status"],
                "seconds": seconds,
                "peak_bytes": sampler.peak(start, start + seconds + 1),
            }
        )
    return rows


def stop_endpoint(env: dict) -> None:
    """The Approved model's Deploy step started a local endpoint; the benchmark does not use it."""
    code = (
        "from deploy import endpoint; from processing.kernel.settings import resolve; "
        "s = resolve(); endpoint.stop(s.home_path, s.endpoint_name)"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=str(ROOT),
        env=env,
        check=False,
        timeout=60,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )


def generate(series: int, folder: Path, env: dict, reuse: bool = False) -> dict:
    if series % REGIONS:
        raise SystemExit(f"series count {series} must be a multiple of {REGIONS} (products x {REGIONS} regions)")
    folder.mkdir(parents=True, exist_ok=True)
    if reuse and (folder / "batch.csv").is_file() and (folder / "history.csv").is_file():
        print(f"  reusing {folder / 'history.csv'} and batch.csv", flush=True)
        return {"seconds": 0.0, "code": 0, "max_process_bytes": None}
    command = [
        sys.executable,
        "-m",
        "processing.generate",
        "--products",
        str(series // REGIONS),
        "--regions",
        str(REGIONS),
        "--years",
        str(YEARS),
        "--future-days",
        str(FUTURE_DAYS),
        "--out",
        str(folder / "batch.csv"),
        "--history-out",
        str(folder / "history.csv"),
    ]
    result = run_measured(command, env, folder / "generate.log")
    if result["code"] != 0:
        raise SystemExit(f"generator failed; see {folder / 'generate.log'}")
    return result


def pipeline_run(label: str, folder: Path, env: dict, algorithms: Optional[str], batch_only: bool = False) -> dict:
    """Training then batch in a fresh FORECAST_HOME (or, batch_only, the batch alone in the kept one)."""
    home = folder / f"home-{label}"
    if batch_only:
        if not (home / "registry.sqlite").is_file():
            raise SystemExit(f"bench_scale: --batch-only needs a trained {home} (run once without it, with --work)")
    else:
        shutil.rmtree(home, ignore_errors=True)
    env = dict(env, FORECAST_HOME=str(home))
    out: Dict[str, dict] = {}
    train = [
        sys.executable,
        "-m",
        "pipelines.run",
        "--param",
        f"InputDataUrl={folder / 'history.csv'}",
        "--param",
        "ModelApprovalStatus=Approved",
    ]
    if algorithms:
        train += ["--param", f"AutoMLAlgorithms={algorithms}"]
    batch = [
        sys.executable,
        "-m",
        "pipelines.run",
        "--pipeline",
        "batch",
        "--param",
        f"InputDataUrl={folder / 'batch.csv'}",
        "--param",
        f"OutputUrl={folder / ('report-' + label)}",
    ]
    runs = [("batch", batch)] if batch_only else [("training", train), ("batch", batch)]
    for pipeline, command in runs:
        print(f"  {label}: {pipeline} ...", flush=True)
        log = folder / f"{label}-{pipeline}.log"
        try:
            result = run_measured(command, env, log)
        finally:
            if pipeline == "training":
                stop_endpoint(env)
        record = latest_execution(home) if (home / "executions").is_dir() else {"steps": [], "status": "none"}
        out[pipeline] = {
            **result,
            "load_average": load_average(),  # the machine's 1/5/15-minute load when the run ended
            "status": record.get("status"),
            "steps": step_rows(record, result["sampler"]),
            "peak_bytes": result["sampler"].peak(),
            "log": str(log),
        }
        print(
            f"  {label}: {pipeline} {record.get('status')} in {result['seconds']:.0f}s "
            f"(load average {'/'.join(f'{v:.1f}' for v in out[pipeline]['load_average'])})",
            flush=True,
        )
        if result["code"] != 0:
            print(f"  {label}: {pipeline} exited {result['code']}; see {log}", flush=True)
            break
    return out


def load_average() -> List[float]:
    """1, 5 and 15-minute load averages: timings on a shared machine are read against them."""
    return [round(v, 2) for v in os.getloadavg()]


def gb(value: Optional[int]) -> str:
    return "-" if value is None else f"{value / GB:.2f}"


def format_table(rows: List[tuple]) -> str:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            str(c).ljust(w) if i == 0 or i == 1 or i == 2 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def step_table(results: dict) -> str:
    rows = [("series", "run", "step", "seconds", "peak GB (tree)")]
    for series, runs in results.items():
        for label, pipelines in runs.items():
            if label == "generate":
                rows.append(
                    (
                        series,
                        "generate",
                        "processing.generate",
                        f"{pipelines['seconds']:.1f}",
                        gb(pipelines["max_process_bytes"]),
                    )
                )
                continue
            for pipeline, result in pipelines.items():
                for step in result["steps"]:
                    rows.append(
                        (series, f"{label} {pipeline}", step["step"], f"{step['seconds']:.1f}", gb(step["peak_bytes"]))
                    )
                rows.append(
                    (
                        series,
                        f"{label} {pipeline}",
                        "TOTAL (wall, incl. start-up)",
                        f"{result['seconds']:.1f}",
                        gb(result["peak_bytes"]),
                    )
                )
    return format_table(rows)


def curve_table(results: dict) -> str:
    rows = [
        (
            "series",
            "run",
            "rows",
            "train s",
            "train peak GB",
            "largest process GB",
            "batch s",
            "batch peak GB",
            "load at end",
            "verdict",
        )
    ]
    for series, runs in results.items():
        for label, pipelines in runs.items():
            if label == "generate":
                continue
            train, batch = pipelines.get("training"), pipelines.get("batch")
            fails = []
            ran = [run for run in (train, batch) if run]  # --batch-only: the batch alone
            if not batch or any(run["status"] != "Succeeded" for run in ran):
                fails.append("a run failed")
            else:
                if train and train["seconds"] > TARGETS["train_seconds"]:
                    fails.append("train > 30 min")
                if batch["seconds"] > TARGETS["batch_seconds"]:
                    fails.append("batch > 5 min")
                if max(run["peak_bytes"] or 0 for run in ran) > TARGETS["peak_bytes"]:
                    fails.append("memory > 8 GB")
            largest = max((p["max_process_bytes"] for p in pipelines.values()), default=None)
            rows.append(
                (
                    series,
                    label,
                    f"{series * (365 * YEARS):,}",
                    f"{train['seconds']:.0f}" if train else "-",
                    gb(train and train["peak_bytes"]),
                    gb(largest),
                    f"{batch['seconds']:.0f}" if batch else "-",
                    gb(batch and batch["peak_bytes"]),
                    "/".join(f"{v:.1f}" for v in (batch or train or {}).get("load_average", [])) or "-",
                    "; ".join(fails) or "within targets",
                )
            )
    return format_table(rows)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sizes", nargs="+", type=int, help="series counts (multiples of 5), e.g. 1000 5000 25000")
    parser.add_argument(
        "--algorithms", default=None, help="AutoMLAlgorithms of the engine run (default: the pipeline's default)"
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help=f"skip the AutoMLAlgorithms={BASELINE_ALGORITHMS} run"
    )
    parser.add_argument(
        "--baseline-up-to",
        type=int,
        default=5000,
        help="run the baseline only up to this many series (default %(default)s)",
    )
    parser.add_argument("--work", help="folder for data and FORECAST_HOMEs (default: a temp folder, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument(
        "--max-gb",
        type=float,
        default=None,
        help="stop a run (SIGINT) whose processes together pass this many GB (shared machines)",
    )
    parser.add_argument(
        "--batch-only",
        action="store_true",
        help="only the batch pipeline, in the work folder's trained home (implies --reuse-data, --no-baseline)",
    )
    parser.add_argument(
        "--reuse-data",
        action="store_true",
        help="keep history.csv and batch.csv already in the work folder (same sizes)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    global MAX_BYTES
    MAX_BYTES = int(args.max_gb * GB) if args.max_gb else None
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-scale-"))
    env = {k: v for k, v in os.environ.items() if k not in ("FORECAST_ROLE_ARN", "FORECAST_TARGET")}
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    print(f"bench_scale: sizes {args.sizes}, {os.cpu_count()} CPUs, work folder {work}", flush=True)
    results: Dict[int, dict] = {}
    try:
        for series in args.sizes:
            folder = work / f"s{series}"
            print(f"{series} series: generating ...", flush=True)
            results[series] = {"generate": generate(series, folder, env, args.reuse_data or args.batch_only)}
            runs = [("engine", args.algorithms)]
            if not args.no_baseline and not args.batch_only and series <= args.baseline_up_to:
                runs.append(("baseline", BASELINE_ALGORITHMS))
            for label, algorithms in runs:
                results[series][label] = pipeline_run(label, folder, env, algorithms, args.batch_only)
    finally:
        if results:
            print()
            print(step_table(results))
            print()
            print(curve_table(results))
            print(
                f"\nbaseline = AutoMLAlgorithms={BASELINE_ALGORITHMS} (seasonal naive + NPTS); peak GB (tree) = "
                "largest sampled sum of RSS over the run's processes; largest process = wait4 ru_maxrss"
            )
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        str(s): {
                            label: (
                                {"seconds": r["seconds"], "max_process_bytes": r["max_process_bytes"]}
                                if label == "generate"
                                else {p: {k: v for k, v in x.items() if k != "sampler"} for p, x in r.items()}
                            )
                            for label, r in runs.items()
                        }
                        for s, runs in results.items()
                    },
                    indent=2,
                    default=str,
                )
            )
        if not args.work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ok = all(
        p.get("code") == 0
        for runs in results.values()
        for label, r in runs.items()
        if label != "generate"
        for p in r.values()
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
