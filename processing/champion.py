"""ChampionForecast step of the training pipeline: the Approved champion forecasts the same holdout.

    python -m processing.champion --model-package-group NAME --backtest-uri s3://.../backtest/ \\
        --output-uri s3://.../ChampionForecast/transform --execution-id ID --role-arn ARN \\
        --instance-type ml.m5.xlarge --horizon 14 --quantiles p10,p50,p90 --frequency D --result-dir DIR

Finds the newest Approved package of the group (the champion). When there is one whose
forecast configuration (horizon, frequency, quantiles) matches this run, it creates a model
from the package ARN (every container), runs a transform job over the same whole-series
backtest files the candidate forecasts, waits, and copies the `<file>.out` forecasts into
DIR/forecasts. DIR/champion.json always exists (so Evaluate's input is never an empty
prefix, which fails a processing job on SageMaker) and says what happened:

    {"status": "available" | "none" | "unavailable", "reason": ..., "model_package_arn": ...,
     "model_package_version": ..., "transform_job_name": ..., "registered_metrics": {...}}

Doing the model and transform inside this step keeps the DAG static: without a champion
nothing is created and the step still succeeds. Retry-safe: names derive from the execution
id and an existing model or transform job is reused. Container-safe: stdlib + boto3.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import boto3
from botocore.exceptions import ClientError

from processing.atomic import staged_file, write_json_atomic
from processing.create_model import create_model_request, ensure_model
from processing.kernel import console, contracts
from processing.kernel.aws_validation import validate_request
from processing.kernel.cli import step_main
from processing.kernel.settings import resolve
from processing.resolve_model import describe_resolved

logger = logging.getLogger(__name__)

POLL_SECONDS = 30
MAX_WAIT_SECONDS = 6 * 60 * 60
Log = Callable[[str], None]


def job_name_for(execution_id: str) -> str:
    """'fc-champion-<execution id>' within the 63 characters of model and transform job names."""
    cleaned = re.sub(r"[^a-zA-Z0-9-]", "-", execution_id).strip("-") or "manual"
    return f"fc-champion-{cleaned}"[:63].rstrip("-")


def newest_approved(sm: Any, group: str) -> Optional[dict]:
    """The newest Approved package of `group`, or None (also when the group does not exist yet)."""
    try:
        listed = sm.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )
    except ClientError as error:
        if "does not exist" in str(error).lower() or "not found" in str(error).lower():
            return None
        raise
    summaries = listed.get("ModelPackageSummaryList") or []
    if not summaries:
        return None
    return sm.describe_model_package(ModelPackageName=summaries[0]["ModelPackageArn"])


def configuration_mismatch(resolved: dict, horizon: int, quantiles: Sequence[str], frequency: str) -> Optional[str]:
    """Why the champion cannot forecast this holdout comparably (None when it can).

    A package without the metadata (registered by hand) is assumed comparable."""
    problems = []
    if resolved.get("forecast_horizon") and str(resolved["forecast_horizon"]) != str(horizon):
        problems.append(f"horizon {resolved['forecast_horizon']} (this run: {horizon})")
    if resolved.get("forecast_frequency") and resolved["forecast_frequency"] != frequency:
        problems.append(f"frequency {resolved['forecast_frequency']} (this run: {frequency})")
    theirs = set(contracts.parse_list(resolved.get("forecast_quantiles")))
    if theirs and not set(quantiles) <= theirs:
        problems.append(f"quantiles {','.join(sorted(theirs))} (this run: {','.join(quantiles)})")
    return "the champion was trained for " + ", ".join(problems) if problems else None


def transform_request(
    name: str, model_name: str, data_uri: str, output_uri: str, instance_type: str, tags: Optional[dict] = None
) -> dict:
    """The same transform the BacktestForecast step runs, with the champion's model."""
    request: dict = {
        "TransformJobName": name,
        "ModelName": model_name,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": data_uri}},
            "ContentType": "text/csv",
            "SplitType": "None",
        },
        "TransformOutput": {"S3OutputPath": output_uri, "Accept": "text/csv", "AssembleWith": "None"},
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": 1},
        "MaxPayloadInMB": contracts.TRANSFORM_MAX_PAYLOAD_MB,  # as BacktestForecast (contracts.TRANSFORM_*)
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": contracts.TRANSFORM_INVOCATIONS_TIMEOUT_SECONDS},
    }
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    validate_request("sagemaker", "CreateTransformJob", request)
    return request


def run_transform(
    sm: Any,
    request: dict,
    poll_seconds: float = POLL_SECONDS,
    max_wait_seconds: float = MAX_WAIT_SECONDS,
    log: Log = logger.info,
) -> dict:
    """Start the transform (or re-attach on retry) and wait; returns its last description."""
    name = request["TransformJobName"]
    try:
        described = sm.describe_transform_job(TransformJobName=name)
        log(f"transform job {name} already exists (retried step): waiting for it")
    except ClientError:
        sm.create_transform_job(**request)
        log(f"started transform job {name} with the champion's model")
        described = sm.describe_transform_job(TransformJobName=name)
    deadline = time.monotonic() + max_wait_seconds
    while described.get("TransformJobStatus") in ("InProgress", "Stopping"):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"transform job {name} still {described['TransformJobStatus']} after {max_wait_seconds:.0f}s"
            )
        time.sleep(poll_seconds)
        described = sm.describe_transform_job(TransformJobName=name)
    return described


def split_s3(uri: str) -> tuple:
    if not uri.startswith("s3://"):
        raise ValueError(f"--output-uri {uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key.rstrip("/")


def download_forecasts(s3: Any, output_uri: str, folder: Path) -> int:
    """Copy every <file>.out under output_uri into folder (keeping relative paths)."""
    bucket, prefix = split_s3(output_uri)
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for item in page.get("Contents") or []:
            key = item["Key"]
            if not key.endswith(".out"):
                continue
            target = folder / key[len(prefix) + 1 :]
            with staged_file(target) as temporary:  # get_object: one plain GET per file
                temporary.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            count += 1
    return count


def forecast_with_champion(
    sm: Any,
    s3: Any,
    args: argparse.Namespace,
    tags: Optional[dict] = None,
    log: Log = logger.info,
    poll_seconds: float = POLL_SECONDS,
) -> dict:
    """Everything the step does; returns the champion.json document (forecasts written beside it)."""
    quantiles = contracts.parse_list(args.quantiles)
    package = newest_approved(sm, args.model_package_group)
    if package is None:
        log(f"model package group {args.model_package_group} has no Approved version: no champion")
        return {"status": "none", "reason": f"model package group {args.model_package_group!r} has no Approved version"}
    resolved = describe_resolved(package)
    document = {
        "status": "unavailable",
        "model_package_arn": resolved["model_package_arn"],
        "model_package_version": resolved["model_package_version"],
        "registered_metrics": resolved["metrics"],
    }
    log(f"champion: {resolved['model_package_arn']} (version {resolved['model_package_version']})")
    mismatch = configuration_mismatch(resolved, args.horizon, quantiles, args.frequency)
    if mismatch:
        log(f"not comparable: {mismatch}")
        return dict(document, reason=mismatch + "; the champion cannot forecast this holdout comparably")
    name = job_name_for(args.execution_id)
    model = ensure_model(sm, create_model_request(name, resolved["model_package_arn"], args.role_arn, tags))
    request = transform_request(name, model, args.backtest_uri, args.output_uri, args.instance_type, tags)
    described = run_transform(sm, request, poll_seconds=poll_seconds, log=log)
    document["transform_job_name"] = name
    if described.get("TransformJobStatus") != "Completed":
        reason = (
            f"the champion's transform job {name} {described.get('TransformJobStatus')}: "
            f"{described.get('FailureReason', 'no reason given')}"
        )
        log(reason)
        return dict(document, reason=reason)
    count = download_forecasts(s3, args.output_uri, Path(args.result_dir) / contracts.CHAMPION_FORECASTS_DIR)
    if not count:
        return dict(document, reason=f"the champion's transform job {name} wrote no .out file under {args.output_uri}")
    log(f"champion forecast {count} file(s)")
    return dict(document, status="available", reason="", forecast_files=count)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m processing.champion", description=__doc__.split("\n")[0])
    parser.add_argument("--model-package-group", required=True)
    parser.add_argument("--backtest-uri", required=True, help="S3 prefix of the whole-series backtest files")
    parser.add_argument("--output-uri", required=True, help="S3 prefix the champion's transform writes to")
    parser.add_argument("--execution-id", required=True)
    parser.add_argument("--role-arn", required=True)
    parser.add_argument("--instance-type", default="ml.m5.xlarge")
    parser.add_argument("--horizon", type=int, required=True)
    parser.add_argument("--quantiles", default=",".join(contracts.DEFAULT_QUANTILES))
    parser.add_argument("--frequency", default="D")
    parser.add_argument("--result-dir", required=True, type=Path)
    return parser.parse_args(argv)


class _OnFirstUse:
    """A boto3 client made when first used: a run whose group has no Approved version never reaches
    S3, and a client costs a step 0.02-0.05 s of CPU."""

    def __init__(self, make: Any):
        self._make, self._client = make, None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            self._client = self._make()
        return getattr(self._client, name)


@step_main("ChampionForecast failed", (ClientError, ValueError, TimeoutError), code=1)
def main(argv: Optional[Sequence[str]] = None, sm: Any = None, s3: Any = None) -> int:
    console.setup()
    args = parse_args(argv)
    settings = resolve()
    region = settings.effective_region
    document = forecast_with_champion(
        sm or boto3.client("sagemaker", region_name=region),
        s3 or _OnFirstUse(lambda: boto3.client("s3", region_name=region)),
        args,
        tags=dict(settings.tags),
    )
    write_json_atomic(args.result_dir / contracts.CHAMPION_FILE, document)
    return 0


if __name__ == "__main__":
    sys.exit(main())
