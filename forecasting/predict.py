"""CLI: python -m forecasting.predict --model DIR --input X.csv --output Y.csv"""

from __future__ import annotations

import argparse
import sys
import time

from processing.kernel import console
from processing.kernel.process_env import configure_threads

from .artifact import load_model


def main(argv=None) -> int:
    configure_threads()  # before LightGBM loads OpenMP
    console.setup()
    parser = argparse.ArgumentParser(prog="python -m forecasting.predict", description=__doc__)
    parser.add_argument("--model", required=True, help="model directory written by forecasting.train")
    parser.add_argument("--input", required=True, help="context CSV: history + future rows with covariates")
    parser.add_argument("--output", required=True, help="forecast CSV (Autopilot batch layout)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model = load_model(args.model)
    out = model.predict_file(args.input, args.output)
    print(f"wrote {out} in {time.perf_counter() - start:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
