"""Wall time of the local batch pipeline on 500 products x 5 regions (2,500 series), 14-day horizon.

    python benchmarks/bench_batch.py [--products 500] [--regions 5] [--algorithms npts,ets] [--home DIR]

Trains and approves a model with the local training pipeline first (timed separately), then
runs the batch pipeline and prints a table of step durations from the execution record.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--regions", type=int, default=5)
    parser.add_argument(
        "--algorithms", default="", help="AutoMLAlgorithms for the training run (default: the pipeline's)"
    )
    parser.add_argument("--home", help="FORECAST_HOME to use (default: a fresh temporary folder)")
    args = parser.parse_args()

    home = Path(args.home or tempfile.mkdtemp(prefix="bench-batch-"))
    os.environ["FORECAST_HOME"] = str(home)
    os.environ.pop("FORECAST_ROLE_ARN", None)

    from pipelines.local.runtime import load_executions
    from pipelines.run import main as run
    from processing.generate import generate_sales, write_frame
    from processing.kernel.settings import resolve

    started = time.perf_counter()
    frame = generate_sales(products=args.products, regions=args.regions, future_days=14)
    history = frame[frame["target_value"].notna()]
    data = home / "input"
    write_frame(history, data / "history.csv")
    write_frame(frame, data / "batch.csv")
    generated = time.perf_counter() - started
    series = frame["item_id"].nunique()

    train_args = ["--param", f"InputDataUrl={data / 'history.csv'}", "--param", "ModelApprovalStatus=Approved"]
    if args.algorithms:
        train_args += ["--param", f"AutoMLAlgorithms={args.algorithms}"]
    started = time.perf_counter()
    try:
        if run(train_args) != 0:
            print("training run failed", file=sys.stderr)
            return 1
    finally:  # the Approved model's Deploy step started a local endpoint; the batch doesn't need it
        from deploy import endpoint

        endpoint.stop(resolve().home_path, resolve().endpoint_name)
    trained = time.perf_counter() - started

    started = time.perf_counter()
    code = run(
        [
            "--pipeline",
            "batch",
            "--param",
            f"InputDataUrl={data / 'batch.csv'}",
            "--param",
            f"OutputUrl={home / 'report'}",
        ]
    )
    batch = time.perf_counter() - started
    record = load_executions(resolve())[0]

    print()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"data: {series} series, {len(history):,} history rows + {len(frame) - len(history):,} future rows "
        f"(generated in {generated:.1f} s)"
    )
    print(f"training pipeline (model to approve): {trained:.1f} s")
    print()
    print("| batch step | status | wall (s) |")
    print("|---|---|---|")
    for step in record["steps"]:
        print(f"| {step['name']} | {step['status']} | {step.get('duration_seconds') or 0:.1f} |")
    print(f"| **batch pipeline, end to end** | {'Succeeded' if code == 0 else 'Failed'} | **{batch:.1f}** |")
    return code


if __name__ == "__main__":
    sys.exit(main())
