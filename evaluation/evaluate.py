"""Evaluate step: score the backtest forecasts against the holdout and write the gate's input.

    python -m evaluation.evaluate --forecasts F --actuals A --history H --out DIR \\
        [--item-id-column item_id --timestamp-column timestamp --target-column target_value
         --grouping-columns "" --frequency D --quantiles p10,p50,p90
         --quality-metric WAPE --quality-threshold 0.3]

Writes DIR/evaluation.json (the QualityGate reads ``quality_gate.value``), DIR/per_item.csv
and DIR/plots/*.png. Runs in the SageMaker scikit-learn processing container (numpy, pandas; the
image's pins: pipelines/processing_image.toml), plus matplotlib from the step's requirements,
which is optional: without it the plots are skipped and the log says so. No SDK or engine imports.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from evaluation import champion, plots, scoring
from evaluation.metrics import logged
from evaluation.scoring import SERIES, Columns
from processing.atomic import replace_directory
from processing.kernel import console, contracts
from processing.kernel.cli import step_main

logger = logging.getLogger(__name__)

PLOTS_DIR = "plots"
PER_ITEM_FILE = "per_item.csv"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m evaluation.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--forecasts", required=True, help="forecast CSV, or a folder of <input>.out / .csv files")
    parser.add_argument("--actuals", required=True, help="holdout.csv or the folder holding it")
    parser.add_argument("--history", required=True, help="train.csv (training history) or its folder")
    parser.add_argument("--out", required=True, help="output folder")
    contracts.add_column_arguments(parser)
    parser.add_argument("--quantiles", default=",".join(contracts.DEFAULT_QUANTILES))
    parser.add_argument("--quality-metric", default="WAPE", help=f"one of {sorted(contracts.QUALITY_METRICS)}")
    parser.add_argument(
        "--quality-threshold",
        type=float,
        default=0.3,
        help="gate passes when the metric <= threshold (fractions for WAPE, MAPE, WQL)",
    )
    parser.add_argument(
        "--champion",
        default="",
        help="folder of champion.json and the champion's forecasts (ChampionForecast step); empty: no champion",
    )
    parser.add_argument(
        "--challenger-tolerance",
        type=float,
        default=0.0,
        help="the candidate passes when its metric <= champion's x (1 + tolerance)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the sample of items plotted")
    return parser


def run(args: argparse.Namespace, log: Callable[[str], None] = logger.info) -> dict:
    """Load, evaluate, write; returns the report (also written to evaluation.json)."""
    started = time.time()
    columns = Columns(
        args.item_id_column,
        args.timestamp_column,
        args.target_column,
        tuple(contracts.parse_list(args.grouping_columns)),
    )
    quantiles = contracts.parse_list(args.quantiles)
    scoring.gate_metric(args.quality_metric)
    contracts.season_length(args.frequency)
    champion.check_tolerance(args.challenger_tolerance)

    log(f"[evaluate] reading forecasts {args.forecasts}, actuals {args.actuals}, history {args.history}")
    forecasts = scoring.load_forecasts(args.forecasts, columns, quantiles)
    actuals = scoring.load_actuals(args.actuals, columns)
    history = scoring.load_history(args.history, columns)
    log(
        f"[evaluate] {forecasts[SERIES].nunique()} items, {len(actuals)} holdout points, "
        f"{len(history)} history rows; scoring"
    )
    evaluation = scoring.evaluate(
        forecasts, actuals, history, columns, quantiles, args.frequency, args.quality_metric, args.quality_threshold
    )
    compare_with_champion(args, evaluation.report, actuals, history, columns, quantiles, log)
    log("[evaluate] drawing plots")
    write_outputs(evaluation, Path(args.out), columns, quantiles, seed=args.seed)

    report = evaluation.report
    gate = report["quality_gate"]
    fm = report["forecast_metrics"]
    log(
        "[evaluate] "
        + "  ".join(f"{k.upper()}={logged(fm[k]['value'])}" for k in ("wape", "wql", "mape", "mase", "rmse"))
    )
    log(
        f"[evaluate] skill vs seasonal naive: WAPE {logged(report['skill']['wape']['value'])}, "
        f"wQL {logged(report['skill']['wql']['value'])}"
    )
    for warning in report["warnings"]:
        log(f"[evaluate] warning: {warning}")
    log(f"[evaluate] quality gate: {gate['message']}: {'PASSED' if gate['passed'] else 'NOT PASSED'}")
    log(f"[evaluate] wrote {args.out} in {time.time() - started:.1f}s")
    return report


def compare_with_champion(
    args: argparse.Namespace,
    report: dict,
    actuals,
    history,
    columns: Columns,
    quantiles: Sequence[str],
    log: Callable[[str], None] = logger.info,
) -> dict:
    """Score the champion's forecasts with the same code and add the `champion` section."""
    info, scored, reason = ({"status": "none", "reason": "no champion folder given"}, None, "")
    if args.champion:
        info, scored, reason = champion.score_champion(
            args.champion,
            actuals,
            history,
            columns,
            quantiles,
            args.frequency,
            args.quality_metric,
            args.quality_threshold,
        )
    section = champion.comparison(
        report, scored.report if scored else None, info, args.quality_metric, args.challenger_tolerance, reason
    )
    champion.attach(report, section)
    if section["status"] == "compared":
        log(
            f"[evaluate] champion version {section['version']}: {section['metric']} "
            f"challenger {logged(section['challenger_value'])} vs champion {logged(section['champion_value'])} "
            f"(limit {logged(section['limit'])} with tolerance {section['tolerance']:g}): "
            f"{'challenger wins' if section['passed'] else 'champion stays'}"
        )
    else:
        log(f"[evaluate] no champion comparison ({section['status']}): {section['reason']}")
    return section


def write_outputs(
    evaluation: scoring.Evaluation, out: Path, columns: Columns, quantiles: Sequence[str], seed: int = 0
) -> None:
    """Write everything into a staging folder, then move it into place.

    A fresh ``out`` is renamed into place in one step. An existing ``out`` (a processing
    output mount, or a rerun) is filled entry by entry with os.replace, evaluation.json
    last, so a reader never sees a report without its CSV and plots.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fresh = not out.exists()
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=str(out.parent if fresh else out)))
    os.chmod(stage, 0o755)  # mkdtemp makes 0700; the report is meant to be read by others
    try:
        per_item = evaluation.per_item.drop(columns=[SERIES])
        per_item.to_csv(stage / PER_ITEM_FILE, index=False, float_format="%.6g")
        try:
            plots.write_plots(evaluation, columns, quantiles, stage / PLOTS_DIR, seed=seed)
        except ImportError as error:  # charts are a convenience; the gate must not depend on them
            evaluation.report["warnings"].append(
                f"plots skipped: {error} (matplotlib comes from processing/requirements/evaluate.txt, which "
                "could not be installed); the metrics and the quality gate are complete"
            )
            (stage / PLOTS_DIR).mkdir(exist_ok=True)
        with open(stage / contracts.EVALUATION_FILE, "w") as handle:
            json.dump(evaluation.report, handle, indent=2, allow_nan=False)
        if fresh:
            os.rename(stage, out)
            return
        for name in (PER_ITEM_FILE, PLOTS_DIR, contracts.EVALUATION_FILE):
            target = out / name
            if target.is_dir():
                replace_directory(stage / name, target)
            else:
                os.replace(stage / name, target)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)


@step_main("[evaluate] error", ValueError)
def main(argv: Optional[List[str]] = None) -> int:
    console.setup()
    args = build_parser().parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
