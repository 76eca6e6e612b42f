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
    try:
        model = load_model(args.model)
    except (OSError, ValueError) as exc:  # a missing or foreign model folder: one line, not a traceback
        return _fail(f"--model {exc}" if str(exc).startswith(str(args.model)) else f"--model {args.model}: {exc}")
    try:
        out = model.predict_file(args.input, args.output)
    except ValueError as exc:  # unreadable input, missing columns, bad values (TableError is one)
        return _fail(f"--input: {exc}")
    print(f"wrote {out} in {time.perf_counter() - start:.2f}s")
    return 0


def _fail(message: str) -> int:
    """Bad input is the user's to fix: one line naming the flag, exit status 2 (like argparse)."""
    print(f"python -m forecasting.predict: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
