"""Wall time of the default local run (`python -m pipelines.run`) on the seed dataset, per step.

    python benchmarks/bench_local_run.py                      # fresh FORECAST_HOME in a temp folder
    python benchmarks/bench_local_run.py --home DIR --keep    # keep the state (inspect the report)
    python benchmarks/bench_local_run.py --param AutoMLAlgorithms=npts,ets

Runs exactly what a new user runs: the training definition rendered by pipelines.run, the
seed dataset generated into the local store (125 items x 3 years, horizon 14), every step on
the embedded local runtime. Prints a table of steps with their durations and shares, and
whether the whole run met the target (5 minutes on two cores). Exits 1 if the run failed.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_SECONDS = 300


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", help="FORECAST_HOME to use (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temp FORECAST_HOME")
    parser.add_argument("--param", action="append", default=[], help="Name=Value override (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="hide the step logs while running")
    return parser.parse_args(argv)


def table(record: dict, total: float, seed_seconds: float) -> str:
    rows = [("step", "type", "status", "seconds", "share")]
    for step in record["steps"]:
        seconds = step.get("duration_seconds")
        share = f"{100 * seconds / total:.0f}%" if seconds else "-"
        rows.append((step["name"], step["type"], step["status"], f"{seconds:.1f}" if seconds is not None else "-",
                     share))
    rows.append(("(rendering, bundle, seed data)", "", "", f"{total - (record.get('duration_seconds') or 0):.1f}",
                 f"{100 * (total - (record.get('duration_seconds') or 0)) / total:.0f}%"))
    rows.append(("TOTAL wall time", "", record["status"], f"{total:.1f}", "100%"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    lines = ["  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]
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
    from pipelines.run import main as run_main
    from processing.kernel.settings import resolve

    cli = [item for pair in (("--param", p) for p in args.param) for item in pair]
    print(f"FORECAST_HOME={home}; running: python -m pipelines.run {' '.join(cli)}", flush=True)
    started = time.monotonic()
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if args.quiet else contextlib.nullcontext():
        code = run_main(cli)
    total = time.monotonic() - started
    records = runtime.load_executions(resolve())
    if not records:
        print(sink.getvalue()[-3000:])
        print(f"no execution recorded (exit code {code})")
        return 1
    record = records[0]
    seed = next((n for n in record.get("notes") or [] if "seed dataset" in n), "")
    print()
    print(f"Local run of {record['pipeline_name']} on {'the seed dataset' if seed else 'the given data'} "
          f"(execution {record['execution_id']}, {os.cpu_count()} CPUs)")
    print(table(record, total, 0.0))
    verdict = "within" if total <= TARGET_SECONDS else "OVER"
    print(f"\n{verdict} the {TARGET_SECONDS // 60}-minute target ({total:.0f}s); report: {record.get('report')}")
    if args.home is None and not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    return 0 if code == 0 and record["status"] == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
