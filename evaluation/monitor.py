"""MonitorForecasts step of the batch pipeline: keep this run's forecasts, score earlier runs'
forecasts against the actuals in this input, and state the input's drift since training.

    python -m evaluation.monitor --forecasts DIR --history DIR --model-dir DIR \\
        --forecast-history-uri s3://b/p/forecast-history --accuracy-history-uri s3://b/p/accuracy-history \\
        --execution-id ID --out DIR --keep-dir DIR --record-dir DIR [columns] [--level-factor 2]

Reads the stored forecasts and the accuracy history with boto3 (an S3 prefix that is still
empty would fail a ProcessingInput), and writes three outputs:

* --out: accuracy.json (`accuracy_of_previous_forecasts` or null, and the accuracy history
  including this run) and drift.json, read by the Report step;
* --keep-dir -> `<prefix>/forecast-history/<execution>/`: forecasts.csv and forecast_meta.json
  (model package ARN and version, its wQL at registration);
* --record-dir -> `<prefix>/accuracy-history/<execution>/`: accuracy.json, this run's line of
  the history (only when something was scored).

The scores go to CloudWatch (namespace DemandForecasting/Accuracy, metrics WQL, WAPE, Bias,
Coverage per ModelPackageGroup and ModelPackageVersion), where the alarm of
`python -m deploy.monitoring` compares the live wQL with the registered one. Locally the
runtime's loopback API receives the same PutMetricData and appends it to
<home>/cloudwatch/metrics.jsonl.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import boto3
import pandas as pd
from botocore.exceptions import ClientError

from evaluation import accuracy, drift
from evaluation.metrics import logged
from processing.atomic import write_json_atomic
from processing.kernel import console
from processing.kernel.cli import step_main
from processing.kernel.contracts import RESOLVED_MODEL_FILE, add_column_arguments, parse_list
from processing.kernel.settings import resolve
from processing.report import read_history
from processing.reporting import Columns, read_forecasts

logger = logging.getLogger(__name__)

NAMESPACE = "DemandForecasting/Accuracy"
ACCURACY_FILE = "accuracy.json"
DRIFT_FILE = "drift.json"
METRICS = (("WQL", "wql", "None"), ("WAPE", "wape", "None"), ("Bias", "bias", "None"), ("Coverage", "coverage", "None"))


def split_s3(uri: str, flag: str) -> tuple:
    if not str(uri).startswith("s3://"):
        raise ValueError(f"{flag} {uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key.rstrip("/")


def _objects(s3: Any, uri: str, flag: str) -> List[tuple]:
    bucket, prefix = split_s3(uri, flag)
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        keys += [item["Key"] for item in page.get("Contents") or []]
    return [(bucket, key) for key in sorted(keys)]


def _read(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def stored_runs(s3: Any, uri: str, columns: Columns, quantiles: Sequence[str], exclude: str) -> List[tuple]:
    """[(meta, forecasts)] of every earlier run kept under uri (this execution excluded)."""
    runs = []
    for bucket, key in _objects(s3, uri, "--forecast-history-uri"):
        if not key.endswith("/" + accuracy.META_FILE):
            continue
        try:
            meta = json.loads(_read(s3, bucket, key))
            if meta.get("execution_id") == exclude:
                continue
            forecasts_key = key.rsplit("/", 1)[0] + "/" + accuracy.FORECASTS_FILE
            runs.append(
                (
                    meta,
                    accuracy.read_stored_forecasts(
                        _read(s3, bucket, forecasts_key), f"s3://{bucket}/{forecasts_key}", columns, quantiles
                    ),
                )
            )
        except (ValueError, KeyError, ClientError) as error:  # one broken run must not stop forecasting
            logger.warning(f"[monitor] skipped stored forecasts s3://{bucket}/{key.rsplit('/', 1)[0]}/: {error}")
    return runs


def accuracy_records(s3: Any, uri: str) -> List[dict]:
    return [
        json.loads(_read(s3, bucket, key))
        for bucket, key in _objects(s3, uri, "--accuracy-history-uri")
        if key.endswith("/" + ACCURACY_FILE)
    ]


def metric_data(accuracy_doc: dict, group: str, now: datetime.datetime) -> List[dict]:
    """PutMetricData entries: overall per model package version of the scored forecasts."""
    data = []
    for version, scores in (accuracy_doc.get("by_model_version") or {}).items():
        dimensions = [
            {"Name": "ModelPackageGroup", "Value": group or "unknown"},
            {"Name": "ModelPackageVersion", "Value": str(version)},
        ]
        for name, key, unit in METRICS:
            if scores.get(key) is not None:
                data.append(
                    {
                        "MetricName": name,
                        "Dimensions": dimensions,
                        "Timestamp": now,
                        "Value": float(scores[key]),
                        "Unit": unit,
                    }
                )
    return data


def publish(cloudwatch: Any, accuracy_doc: dict, group: str, now: Optional[datetime.datetime] = None) -> int:
    data = metric_data(accuracy_doc, group, now or datetime.datetime.now(datetime.timezone.utc))
    for start in range(0, len(data), 20):
        cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[start : start + 20])
    return len(data)


def evaluation_per_item(sm: Any, s3: Any, model: dict) -> Optional[pd.DataFrame]:
    """The registered version's per_item.csv (beside its ModelQuality evaluation.json), if readable."""
    try:
        package = sm.describe_model_package(ModelPackageName=model["model_package_arn"])
        uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
        bucket, key = split_s3(uri, "ModelQuality statistics")
        body = _read(s3, bucket, key.rsplit("/", 1)[0] + "/per_item.csv")
    except (ClientError, KeyError, ValueError) as error:  # drift informs; the report says it is unavailable
        logger.warning(f"[monitor] no training per-item table for drift: {type(error).__name__}: {error}")
        return None
    return pd.read_csv(io.BytesIO(body), dtype=str).astype({"n": float, "actual_sum": float})


def _release_arrow_memory() -> None:
    """Hand pyarrow's freed buffers back to the system (its pool keeps them: ~1 GB at 25,000 series)."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):
        pass


def run(
    args: argparse.Namespace, s3: Any, sm: Any, cloudwatch: Any = None, log: Callable[[str], None] = logger.info
) -> dict:
    columns = Columns(
        args.item_id_column, args.timestamp_column, args.target_column, tuple(parse_list(args.grouping_columns))
    )
    model = (
        json.loads((Path(args.model_dir) / RESOLVED_MODEL_FILE).read_text())
        if Path(args.model_dir).is_dir()
        else json.loads(Path(args.model_dir).read_text())
    )
    quantiles = parse_list(args.quantiles or model.get("forecast_quantiles") or "p10,p50,p90")
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    history = read_history(Path(args.history), columns, text_attributes_only=True)  # numeric attributes unused here
    _release_arrow_memory()
    forecasts = accuracy.tidy_forecasts(read_forecasts(Path(args.forecasts), columns, quantiles), columns, quantiles)

    keep = Path(args.keep_dir)
    keep.mkdir(parents=True, exist_ok=True)
    stamps = forecasts[columns.timestamp]
    midnight = bool((stamps.dt.normalize() == stamps).all())  # dates, or dates and times (as the report writes)
    printable = forecasts.assign(
        **{columns.timestamp: stamps.dt.strftime("%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M:%S")}
    )
    printable.to_csv(keep / accuracy.FORECASTS_FILE, index=False)
    write_json_atomic(
        keep / accuracy.META_FILE,
        {
            "execution_id": args.execution_id,
            "created": created,
            "quantiles": quantiles,
            "model_package_arn": model.get("model_package_arn"),
            "model_package_version": model.get("model_package_version"),
            "registered_metrics": model.get("metrics") or {},
        },
    )

    runs = stored_runs(s3, args.forecast_history_uri, columns, quantiles, exclude=args.execution_id)
    records = [r for r in accuracy_records(s3, args.accuracy_history_uri) if r.get("execution_id") != args.execution_id]
    scored_until = max((str(r["end"]) for r in records if r.get("end")), default=None)
    scored = accuracy.accuracy_of_previous_forecasts(runs, history, columns, quantiles, after=scored_until)
    if scored:
        # the metrics the model that made the newest scored forecasts had at registration
        registered = next(
            (
                m.get("registered_metrics") or {}
                for m, _ in sorted(runs, key=lambda r: (str(r[0].get("created")), r[0]["execution_id"]), reverse=True)
                if m.get("model_package_arn") == scored["model_package_arn"]
            ),
            {},
        )
        scored["registered_wql"] = registered.get("wql")
        record = accuracy.history_record(scored, args.execution_id, created, registered)
        records = records + [record]
        write_json_atomic(Path(args.record_dir) / ACCURACY_FILE, record)
        log(
            f"[monitor] scored {scored['points']} point(s) of {len(scored['forecast_executions'])} earlier run(s): "
            f"wQL {logged(scored['wql'])}, WAPE {logged(scored['wape'])}, bias {logged(scored['bias'])}, "
            f"coverage {logged(scored['coverage'])}"
        )
        if cloudwatch is not None:
            try:
                log(
                    f"[monitor] published {publish(cloudwatch, scored, model.get('model_package_group'))} "
                    f"CloudWatch metric value(s) to {NAMESPACE}"
                )
            except ClientError as error:  # the forecasts and the report still matter more than the metric
                log(
                    f"[monitor] WARNING: accuracy metrics not published to CloudWatch ({error}); "
                    "the accuracy alarm will not see this run. Check the role's cloudwatch:PutMetricData."
                )
    else:
        Path(args.record_dir).mkdir(parents=True, exist_ok=True)
        log(
            f"[monitor] no earlier forecast has a new actual in this input ({len(runs)} stored run(s); "
            f"periods up to {scored_until or '-'} were scored before)"
        )

    statement = drift.input_drift(evaluation_per_item(sm, s3, model), history, forecasts, columns, args.level_factor)
    out = Path(args.out)
    write_json_atomic(
        out / ACCURACY_FILE,
        {
            "accuracy_of_previous_forecasts": scored,
            "history": sorted(records, key=lambda r: (str(r.get("created")), str(r.get("execution_id")))),
        },
    )
    write_json_atomic(out / DRIFT_FILE, statement)
    if statement.get("available"):
        log(
            f"[monitor] drift: {statement['new_items_count']} new item(s), {statement['disappeared_items_count']} "
            f"disappeared, {statement['level_shifts_count']} level shift(s) beyond x{statement['level_factor']:g}"
        )
    return {"accuracy": scored, "drift": statement}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m evaluation.monitor", description=__doc__.split("\n")[0])
    parser.add_argument("--forecasts", required=True, help="this run's transform output (.out files)")
    parser.add_argument("--history", required=True, help="the batch input (history with actuals + future rows)")
    parser.add_argument("--model-dir", required=True, help=f"folder of {RESOLVED_MODEL_FILE}")
    parser.add_argument("--forecast-history-uri", required=True)
    parser.add_argument("--accuracy-history-uri", required=True)
    parser.add_argument("--execution-id", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--keep-dir", required=True)
    parser.add_argument("--record-dir", required=True)
    parser.add_argument("--quantiles", default="")
    parser.add_argument(
        "--level-factor",
        type=float,
        default=drift.DEFAULT_FACTOR,
        help="a recent level above or below the training level by this factor is stated",
    )
    add_column_arguments(parser, frequency=False)
    return parser.parse_args(argv)


@step_main("MonitorForecasts failed", ValueError)
def main(argv: Optional[Sequence[str]] = None, s3: Any = None, sm: Any = None, cloudwatch: Any = None) -> int:
    console.setup()
    args = parse_args(argv)
    if args.level_factor <= 1:
        print(f"MonitorForecasts failed: --level-factor={args.level_factor} must be > 1", file=sys.stderr)
        return 2
    region = resolve().effective_region
    run(
        args,
        s3 or boto3.client("s3", region_name=region),
        sm or boto3.client("sagemaker", region_name=region),
        cloudwatch or boto3.client("cloudwatch", region_name=region),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
