"""PrepareData step script: parse arguments, call processing.data_prep, exit non-zero on bad input.

    python -m processing.prepare --input sales.csv --output-dir out/ --horizon 14

Runs in the SageMaker scikit-learn processing container (stdlib, numpy, pandas; pyarrow only
for Parquet input) and locally with plain paths. Bad input prints one clear message (no
traceback) to stderr and exits with status 2; nothing is written then.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Optional, Sequence

from processing.data_prep import (
    AGGREGATIONS,
    DUPLICATE_POLICIES,
    NEGATIVE_POLICIES,
    DataValidationError,
    PrepConfig,
    run,
)
from processing.kernel import console
from processing.kernel.cli import step_main
from processing.kernel.contracts import add_column_arguments, parse_list
from processing.kernel.inputs import named_input

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m processing.prepare",
        description="Validate, align, fill and split sales data for AutoML training.",
    )
    parser.add_argument("--input", required=True, help="CSV/Parquet file or folder of them (.gz ok)")
    parser.add_argument(
        "--input-url",
        default=None,
        help="what the user gave as InputDataUrl (S3 URI or path): messages name it instead of --input's folder",
    )
    parser.add_argument("--output-dir", required=True, help="writes train/, holdout/, backtest/, profile/ here")
    add_column_arguments(parser)
    parser.add_argument("--horizon", type=int, default=14, help="ForecastHorizon: periods held out and forecast")
    parser.add_argument(
        "--aggregation",
        default="sum",
        choices=AGGREGATIONS,
        help="target rule for rows in the same period (default sum)",
    )
    parser.add_argument("--filling", default="", help="Autopilot Transformations.Filling JSON overriding defaults")
    parser.add_argument("--duplicates", default="aggregate", choices=DUPLICATE_POLICIES)
    parser.add_argument(
        "--negative-targets",
        default="clip",
        choices=NEGATIVE_POLICIES,
        help="negative sales: reject, clip to 0 (default) or keep",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> PrepConfig:
    filling = None
    if args.filling and args.filling.strip():
        try:
            filling = json.loads(args.filling)
        except json.JSONDecodeError as error:
            raise DataValidationError(
                f'--filling is not valid JSON ({error}); example: {{"target_value": {{"middlefill": "mean"}}}}'
            ) from None
        if not isinstance(filling, dict):
            raise DataValidationError("--filling must be a JSON object mapping column names to fill rules")
    return PrepConfig(
        item_id=args.item_id_column,
        timestamp=args.timestamp_column,
        target=args.target_column,
        grouping=tuple(parse_list(args.grouping_columns)),
        frequency=args.frequency,
        horizon=args.horizon,
        aggregation=args.aggregation,
        filling=filling,
        duplicates=args.duplicates,
        negative_targets=args.negative_targets,
    )


@step_main("PrepareData failed", DataValidationError, EXIT_BAD_INPUT)
def main(argv: Optional[Sequence[str]] = None) -> int:
    console.setup()
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    with named_input(args.input, args.input_url, DataValidationError):  # not the container's input folder
        run(args.input, args.output_dir, config_from_args(args))
    print(f"done in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
