"""ResolveModel step of the batch pipeline: the latest Approved package in the group.

    python -m processing.resolve_model --model-package-group NAME --result-dir DIR

Writes `resolved_model.json` (a property file: model_package_arn, version, metrics and the
model's forecast configuration from its metadata). Fails clearly when nothing is approved.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import boto3
from botocore.exceptions import ClientError

from processing.atomic import write_json_atomic
from processing.kernel import console
from processing.kernel.cli import step_main
from processing.kernel.contracts import HORIZON_SPREAD_KEY, RESOLVED_MODEL_FILE, decode_training_columns
from processing.kernel.settings import resolve

METRIC_KEYS = ("wape", "wql", "mape", "mase", "rmse", "mae", "bias", "coverage")


class NoApprovedModel(RuntimeError):
    """The group has no Approved version; the message says how to get one."""


def latest_approved(sagemaker: Any, group: str) -> dict:
    """Describe the newest Approved model package of `group`."""
    try:
        listed = sagemaker.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )
    except ClientError as error:
        raise NoApprovedModel(
            f"model package group {group!r} could not be read: {error.response['Error'].get('Message', error)}"
        ) from None
    summaries = listed.get("ModelPackageSummaryList", [])
    if not summaries:
        raise NoApprovedModel(
            f"model package group {group!r} has no Approved model package. Approve one with "
            "`python -m deploy.approve approve --latest`, or train with "
            "`python -m pipelines.run --param ModelApprovalStatus=Approved`."
        )
    return sagemaker.describe_model_package(ModelPackageName=summaries[0]["ModelPackageArn"])


def describe_resolved(package: dict) -> dict:
    """The subset later steps and the report need, with metrics as numbers."""
    metadata = dict(package.get("CustomerMetadataProperties") or {})
    metrics = {}
    for key in METRIC_KEYS:  # RegisterModel writes them as metric_<name>
        try:
            metrics[key] = float(metadata[f"metric_{key}"])
        except (KeyError, ValueError):
            continue
    return {
        "model_package_arn": package["ModelPackageArn"],
        "model_package_group": package.get("ModelPackageGroupName"),
        "model_package_version": package.get("ModelPackageVersion"),
        "approval_status": package.get("ModelApprovalStatus"),
        "created": str(package.get("CreationTime")),
        "metrics": metrics,
        "forecast_quantiles": ",".join(metadata.get("forecast_quantiles", "").replace(",", " ").split()),
        "forecast_horizon": metadata.get("forecast_horizon", ""),
        "forecast_frequency": metadata.get("forecast_frequency", ""),
        # the holdout's horizon spread factor (Evaluate); absent on versions registered before it
        HORIZON_SPREAD_KEY: metadata.get(HORIZON_SPREAD_KEY),
        "containers": len(package.get("InferenceSpecification", {}).get("Containers", [])),
        # the training schema (RegisterModel): PrepareBatchInput writes exactly these columns
        "training_columns": decode_training_columns(metadata),
    }


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m processing.resolve_model", description=__doc__.split("\n")[0])
    parser.add_argument("--model-package-group", required=True)
    parser.add_argument("--result-dir", required=True, type=Path)
    return parser.parse_args(argv)


@step_main("ResolveModel failed", NoApprovedModel)
def main(argv: Optional[Sequence[str]] = None, sagemaker: Any = None) -> int:
    console.setup()
    args = parse_args(argv)
    sagemaker = sagemaker or boto3.client("sagemaker", region_name=resolve().effective_region)
    resolved = describe_resolved(latest_approved(sagemaker, args.model_package_group))
    write_json_atomic(args.result_dir / RESOLVED_MODEL_FILE, resolved)
    print(
        f"Resolved {resolved['model_package_arn']} (version {resolved['model_package_version']}, "
        f"{resolved['containers']} container(s))"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
