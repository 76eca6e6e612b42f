"""Wall time of the default local run (`python -m pipelines.run`) on the seed dataset, per step.

    python benchmarks/bench_local_run.py                      # fresh FORECAST_HOME in a temp folder
    python benchmarks/bench_local_run.py --home DIR --keep    # keep the state (inspect the report)
    python benchmarks/bench_local_run.py --param AutoMLAlgorithms=npts,ets
    python benchmarks/bench_local_run.py --tiny --batch          # the fixed cost (issue 14)

Runs exactly what a new user runs: the training definition rendered by pipelines.run, the
seed dataset generated into the local store (125 items x 3 years, horizon 14), every step on
the embedded local runtime. Prints a table of steps with their durations and shares, and
whether the whole run met the target (5 minutes on two cores). Exits 1 if the run failed.

--tiny trains on 2 items x 120 days with AutoMLAlgorithms=npts, --batch then runs the batch
pipeline on them, and the fixed cost is printed: the run's wall time minus the engine's own
training (the AutoML job log's "done in") and the model's prediction (the transforms' "N file(s)
in"), against the targets of 5 s for training and 3 s for batch, with the CPU seconds of each
pipeline (load-independent: the machine is shared) and of each processing step's process.

Each pipeline runs as `python -m pipelines.run ...` in a process of its own, as a user runs it:
its interpreter start and imports count. Rendered definitions are cached in the user cache
(pipelines.run.render_local): the first run after a change of the project's code pays the SDK
import (about 4 s of CPU) once.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_SECONDS = 300
FIXED_TARGETS = {"DemandForecastTraining": 5.0, "DemandForecastBatch": 3.0}
ENGINE_DONE = re.compile(r"\[local automl\] job \S+: done in ([\d.]+)s")
TRANSFORM_DONE = re.compile(r"\[local transform\] \d+ file\(s\) in ([\d.]+)s")
STEP_CPU = re.compile(r"\[runtime\] step process exited -?\d+ after ([\d.]+) s of CPU")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", help="FORECAST_HOME to use (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temp FORECAST_HOME")
    parser.add_argument("--param", action="append", default=[], help="Name=Value override (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="hide the step logs while running")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="2 items x 120 days, AutoMLAlgorithms=npts: the run is nearly all fixed cost",
    )
    parser.add_argument("--batch", action="store_true", help="then run the batch pipeline on the same items")
    parser.add_argument(
        "--step-launcher",
        choices=("fork", "spawn"),
        default=None,
        help="how processing steps start (the setting step_launcher; default: the settings')",
    )
    return parser.parse_args(argv)


def model_seconds(record: dict) -> dict:
    """Seconds of each step spent in the engine (training) or the model (transform prediction)."""
    out = {}
    for step in record["steps"]:
        log = Path(step["log"]) if step.get("log") else None
        if log is None or not log.is_file():
            continue
        text = log.read_text(errors="replace")
        found = [float(m) for m in ENGINE_DONE.findall(text)] + [float(m) for m in TRANSFORM_DONE.findall(text)]
        if found:
            out[step["name"]] = sum(found)
    return out


def cpu_seconds() -> float:
    """CPU of this process and of every process it (and they) waited for: the runtime, its steps, the
    step launcher and its children, AutoML workers. Shared cores inflate wall time; this much less."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def step_cpu(step: dict) -> str:
    """The step process's CPU seconds from its log (processing steps), or ''."""
    log = Path(step["log"]) if step.get("log") else None
    found = STEP_CPU.findall(log.read_text(errors="replace")) if log is not None and log.is_file() else []
    return f"{sum(float(x) for x in found):.2f}" if found else ""


def fixed_cost_table(runs: list) -> str:
    """Per run: wall, engine/model seconds, and the rest (the fixed cost) against its target; CPU."""
    rows = [("pipeline", "wall s", "engine/model s", "fixed s", "target s", "", "CPU s")]
    for name, wall, record, cpu in runs:
        model = model_seconds(record)
        fixed = wall - sum(model.values())
        target = FIXED_TARGETS.get(name)
        rows.append(
            (
                name,
                f"{wall:.1f}",
                f"{sum(model.values()):.1f}",
                f"{fixed:.1f}",
                f"{target:.0f}" if target else "-",
                "within" if target and fixed <= target else "OVER",
                f"{cpu:.1f}",
            )
        )
        for step in record["steps"]:
            seconds = step.get("duration_seconds")
            if seconds is None:
                continue
            inside = model.get(step["name"], 0.0)
            rows.append(
                (
                    f"  {step['name']}",
                    f"{seconds:.1f}",
                    f"{inside:.1f}" if inside else "",
                    f"{seconds - inside:.1f}",
                    "",
                    "",
                    step_cpu(step),
                )
            )
        outside = wall - sum(s.get("duration_seconds") or 0.0 for s in record["steps"])
        rows.append(
            ("  (start-up, rendering, bundle, between steps)", f"{outside:.1f}", "", f"{outside:.1f}", "", "", "")
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def tiny_data(home: Path) -> tuple:
    """2 items x 120 days of the seed recipe, history and a 14-day batch input."""
    from processing.generate import generate, write_frame

    folder = home / "input"
    data = generate(products=1, regions=2, start="2023-09-03", end="2023-12-31", future_days=14).frame
    write_frame(data[data["target_value"].notna()], folder / "history.csv")
    write_frame(data, folder / "batch.csv")
    return folder / "history.csv", folder / "batch.csv"


def table(record: dict, total: float, seed_seconds: float) -> str:
    rows = [("step", "type", "status", "seconds", "share")]
    for step in record["steps"]:
        seconds = step.get("duration_seconds")
        share = f"{100 * seconds / total:.0f}%" if seconds else "-"
        rows.append(
            (step["name"], step["type"], step["status"], f"{seconds:.1f}" if seconds is not None else "-", share)
        )
    rows.append(
        (
            "(rendering, bundle, seed data)",
            "",
            "",
            f"{total - (record.get('duration_seconds') or 0):.1f}",
            f"{100 * (total - (record.get('duration_seconds') or 0)) / total:.0f}%",
        )
    )
    rows.append(("TOTAL wall time", "", record["status"], f"{total:.1f}", "100%"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    lines = [
        "  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="bench-local-run-"))
    os.environ["FORECAST_HOME"] = str(home)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("FORECAST_ROLE_ARN", "FORECAST_TARGET"):
        os.environ.pop(name, None)
    from pipelines.local import runtime

    def run_main(arguments: list) -> int:
        """`python -m pipelines.run ...` in its own process, as a user runs it (its imports included)."""
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.run", *arguments],
            cwd=str(ROOT),
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))),
            stdout=subprocess.PIPE if args.quiet else None,
            stderr=subprocess.STDOUT if args.quiet else None,
            text=True,
        )
        if args.quiet:
            print(done.stdout, end="")
        return done.returncode

    from processing.kernel.settings import resolve

    cli = [item for pair in (("--param", p) for p in args.param) for item in pair]
    batch_input = None
    if args.tiny:
        history, batch_input = tiny_data(home)
        cli += ["--param", f"InputDataUrl={history}", "--param", "ModelApprovalStatus=Approved"]
        if not any(p.startswith("AutoMLAlgorithms=") for p in args.param):
            cli += ["--param", "AutoMLAlgorithms=npts"]
    if args.step_launcher:
        os.environ["FORECAST_STEP_LAUNCHER"] = args.step_launcher
    print(f"FORECAST_HOME={home}; running: python -m pipelines.run {' '.join(cli)}", flush=True)
    cpu = cpu_seconds()
    started = time.monotonic()
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if args.quiet else contextlib.nullcontext():
        code = run_main(cli)
    total = time.monotonic() - started
    cpu = cpu_seconds() - cpu
    records = runtime.load_executions(resolve())
    if not records:
        print(sink.getvalue()[-3000:])
        print(f"no execution recorded (exit code {code})")
        return 1
    record = records[0]
    runs = [(record["pipeline_name"], total, record, cpu)]
    seed = next((n for n in record.get("notes") or [] if "seed dataset" in n), "")
    print()
    print(
        f"Local run of {record['pipeline_name']} on {'the seed dataset' if seed else 'the given data'} "
        f"(execution {record['execution_id']}, {os.cpu_count()} CPUs)"
    )
    print(table(record, total, 0.0))
    verdict = "within" if total <= TARGET_SECONDS else "OVER"
    print(f"\n{verdict} the {TARGET_SECONDS // 60}-minute target ({total:.0f}s); report: {record.get('report')}")
    if args.batch and code == 0:
        if args.tiny:  # the Approved model's Deploy step started a local endpoint: the batch does not use it
            from deploy import endpoint

            endpoint.stop(resolve().home_path, resolve().endpoint_name)
        batch_cli = ["--pipeline", "batch", "--param", f"OutputUrl={home / 'report'}"]
        if batch_input is not None:
            batch_cli += ["--param", f"InputDataUrl={batch_input}"]
        cpu = cpu_seconds()
        started = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()) if args.quiet else contextlib.nullcontext():
            code = run_main(batch_cli)
        batch_total = time.monotonic() - started
        cpu = cpu_seconds() - cpu
        batch = runtime.load_executions(resolve())[0]
        runs.append((batch["pipeline_name"], batch_total, batch, cpu))
        record = batch
    if args.tiny or args.batch:
        print("\nFixed cost (everything but the engine's training and the model's prediction):")
        print(fixed_cost_table(runs))
        print(
            f"(load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs; CPU s: this "
            "process and all it waited for, the local endpoint's server excluded)"
        )
    if args.home is None and not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    return 0 if code == 0 and record["status"] == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
