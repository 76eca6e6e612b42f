"""Benchmark: generation and PrepareData time for the default dataset and 500 products x 5 regions x 3 years.

    python benchmarks/bench_prep.py            # both sizes
    python benchmarks/bench_prep.py --quick    # default dataset only

Prep time = read the CSV + validate/align/fill/split + write all outputs (what the step does).
Wall and CPU seconds are both shown: on a shared machine wall time depends on the load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from processing.data_prep import PrepConfig, prepare, read_input, write_outputs  # noqa: E402
from processing.generate import generate, write_frame  # noqa: E402

PREP_LIMIT_SECONDS = 30.0


class Clock:
    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def bench(products: int, regions: int, workdir: Path) -> dict:
    label = f"{products} products x {regions} regions x 3 years"
    print(f"[{label}] generating...", flush=True)
    with Clock() as gen:
        frame = generate(products=products, regions=regions).frame
    csv = workdir / f"sales_{products}_{regions}.csv"
    with Clock() as gen_write:
        write_frame(frame, csv)
    print(f"[{label}] preparing {len(frame):,} rows...", flush=True)
    config = PrepConfig()
    with Clock() as read:
        table = read_input(csv, config)
    with Clock() as core:
        result = prepare(table, config)
    with Clock() as write:
        write_outputs(result, workdir / f"out_{products}_{regions}")
    return {
        "dataset": label,
        "rows": len(frame),
        "items": result.profile["items"],
        "generate": gen.wall,
        "generate_csv": gen_write.wall,
        "read": read.wall,
        "prepare": core.wall,
        "write": write.wall,
        "prep_total": read.wall + core.wall + write.wall,
        "prep_cpu": read.cpu + core.cpu + write.cpu,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="default dataset only")
    args = parser.parse_args(argv)
    sizes = [(25, 5)] + ([] if args.quick else [(500, 5)])
    with tempfile.TemporaryDirectory(prefix="bench_prep_") as tmp:
        rows = [bench(p, r, Path(tmp)) for p, r in sizes]
    header = (
        f"{'dataset':<34} {'rows':>10} {'items':>6} {'gen s':>7} {'gen csv s':>9} {'read s':>7} "
        f"{'prep s':>7} {'write s':>8} {'PREP s':>7} {'prep cpu s':>10}"
    )
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['dataset']:<34} {r['rows']:>10,} {r['items']:>6} {r['generate']:>7.2f} {r['generate_csv']:>9.2f} "
            f"{r['read']:>7.2f} {r['prepare']:>7.2f} {r['write']:>8.2f} {r['prep_total']:>7.2f} {r['prep_cpu']:>10.2f}"
        )
    print(
        f"\nPREP = read + prepare + write (the PrepareData step); limit for 500x5x3y: {PREP_LIMIT_SECONDS:.0f} s wall. "
        f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}"
    )
    slow = [r for r in rows if r["prep_total"] > PREP_LIMIT_SECONDS]
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
