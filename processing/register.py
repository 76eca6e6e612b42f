"""The RegisterModel step: register the AutoML model as a version in the Model Registry.

    python -m processing.register --automl-result-dir DIR --evaluation-dir DIR \
        --evaluation-uri s3://.../evaluation.json --model-package-group NAME \
        --approval-status PendingManualApproval --execution-id ID --result-dir DIR

Creates the model package group if missing, then a model package whose inference
specification carries ALL containers of the AutoML result with their Environment (a model
later created from the package ARN gets every one of them), the evaluation report as
ModelQuality statistics, and the key metrics in CustomerMetadataProperties. Writes
`<result-dir>/registration.json` (contracts.REGISTRATION_FILE) with "model_package_arn".

A retried step reuses the package it registered: the ClientToken is derived from the
execution id, and the group's latest versions are searched for this execution first.

Runs inside the SageMaker processing container: standard library + boto3 + the project bundle.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from botocore.exceptions import ClientError

from processing.atomic import write_json_atomic
from processing.automl_job import REQUEST_FILE, is_not_found
from processing.kernel import aws_errors, console, contracts, inputs
from processing.kernel.aws_validation import client_service_model, validate_request
from processing.kernel.cli import step_main

logger = logging.getLogger(__name__)

APPROVAL_STATUSES = ("PendingManualApproval", "Approved", "Rejected")
CONTENT_TYPES = ["text/csv"]
RESPONSE_TYPES = ["text/csv"]
DEFAULT_TRANSFORM_INSTANCE_TYPES = "ml.m5.xlarge,ml.m5.2xlarge,ml.m5.4xlarge"
DEFAULT_REALTIME_INSTANCE_TYPES = "ml.m5.large,ml.m5.xlarge,ml.m5.2xlarge"
EXECUTION_KEY = "pipeline_execution_id"
SEARCH_LATEST_VERSIONS = 20
MAX_METADATA_VALUE = 256

Log = Callable[[str], None]


class RegistrationError(ValueError):
    """The inputs of the registration are missing or malformed; the message says which."""


def _metric_text(value: Any) -> Optional[str]:
    """Metrics as short strings (CustomerMetadataProperties values are strings)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return f"{value:.6g}"
    if isinstance(value, str) and value:
        return value[:MAX_METADATA_VALUE]
    return None


def _unwrap(value: Any) -> Any:
    """evaluation.json writes each metric as {"value": x}."""
    return value.get("value") if isinstance(value, dict) else value


def forecast_configuration(request: Optional[dict]) -> dict:
    """What a consumer of the package must know to feed it and read its forecasts.

    Taken from the CreateAutoMLJobV2 request the AutoML step sent (kept beside its result);
    the batch pipeline's ResolveModel and Report read these keys.
    """
    config = ((request or {}).get("AutoMLProblemTypeConfig") or {}).get("TimeSeriesForecastingJobConfig") or {}
    if not config:
        return {}
    series = config.get("TimeSeriesConfig") or {}
    values = {
        "forecast_frequency": config.get("ForecastFrequency"),
        "forecast_horizon": config.get("ForecastHorizon"),
        "forecast_quantiles": ",".join(config.get("ForecastQuantiles") or []),
        "item_id_column": series.get("ItemIdentifierAttributeName"),
        "timestamp_column": series.get("TimestampAttributeName"),
        "target_column": series.get("TargetAttributeName"),
        "grouping_columns": ",".join(series.get("GroupingAttributeNames") or []),
    }
    # metadata values may not hold commas (pattern [\p{L}\p{Z}\p{N}_.:/=+\-@]*): lists are space-separated
    return {
        key: str(value).replace(",", " ")[:MAX_METADATA_VALUE]
        for key, value in values.items()
        if value not in (None, "")
    }


def training_columns(profile: Optional[dict]) -> list:
    """The training CSV's columns in order, from the PrepareData profile ([] when unknown)."""
    profile = profile or {}
    if profile.get("train_columns"):
        return [str(c) for c in profile["train_columns"]]
    columns = profile.get("columns") or {}
    if not columns.get("item_id"):
        return []
    return (
        [columns["item_id"], columns["timestamp"], columns["target"]]
        + list(columns.get("grouping") or [])
        + list(columns.get("covariates") or [])
        + list(columns.get("static") or [])
    )


def customer_metadata(
    evaluation: dict,
    automl_result: dict,
    execution_id: str,
    request: Optional[dict] = None,
    columns: Sequence[str] = (),
) -> dict:
    """Key metrics, forecast configuration and provenance, as the string map Studio shows.

    The training schema comes first so that the 50-entry cap never cuts it.
    """
    properties: dict = {EXECUTION_KEY: execution_id}
    properties.update(contracts.encode_training_columns(columns))
    properties.update(forecast_configuration(request))
    spread = _metric_text((evaluation.get("horizon_totals") or {}).get("spread_factor"))
    if spread is not None:  # the batch report's inventory reads it (processing.inventory)
        properties[contracts.HORIZON_SPREAD_KEY] = spread
    for name, value in (evaluation.get("forecast_metrics") or {}).items():
        text = _metric_text(_unwrap(value))
        if text is not None:
            properties[f"metric_{name}"] = text
    gate = evaluation.get("quality_gate") or {}
    for key in ("metric", "value", "threshold", "passed"):
        text = _metric_text(gate.get(key))
        if text is not None:
            properties[f"quality_gate_{key}"] = text
    properties.update(champion_metadata(evaluation.get("champion") or {}))
    skill = evaluation.get("skill")
    if isinstance(skill, dict):
        for name, value in skill.items():
            text = _metric_text(_unwrap(value))
            if text is not None:
                properties[f"skill_{name}"] = text
    objective = automl_result.get("objective_metric") or {}
    if objective.get("name"):
        properties["automl_objective_metric"] = str(objective["name"])
        value = _metric_text(objective.get("value"))
        if value is not None:
            properties["automl_objective_value"] = value
    for key in ("job_name", "best_candidate_name", "model_name"):
        if automl_result.get(key):
            properties[f"automl_{key}"] = str(automl_result[key])[:MAX_METADATA_VALUE]
    return dict(list(properties.items())[:50])  # the API accepts at most 50 entries


def champion_metadata(champion: dict) -> dict:
    """The champion comparison (issue 15) as metadata: what this version beat, on the same holdout."""
    if not champion.get("status"):
        return {}
    properties = {"champion_status": str(champion["status"])}
    if champion["status"] == "compared":
        for key in ("version", "champion_value", "challenger_value", "limit", "tolerance"):
            text = _metric_text(champion.get(key))
            if text is not None:
                properties[f"champion_{key}" if not key.startswith("champion_") else key] = text
    return properties


def client_token(execution_id: str, group: str) -> str:
    """Idempotency token of CreateModelPackage for this execution (<= 36 chars, [a-zA-Z0-9-])."""
    return hashlib.sha1(f"{group}/{execution_id}".encode("utf-8")).hexdigest()[:32]


def package_request(
    *,
    automl_result: dict,
    evaluation: dict,
    evaluation_uri: str,
    group: str,
    approval_status: str,
    execution_id: str,
    transform_instance_types: Sequence[str],
    realtime_instance_types: Sequence[str],
    tags: Optional[dict] = None,
    automl_request: Optional[dict] = None,
    columns: Sequence[str] = (),
    service_model: Any = None,
) -> dict:
    """The CreateModelPackage request: every container with its Environment, metrics, status
    (checked against `service_model`, the client's own, when given: SageMaker's model parsed once)."""
    if approval_status not in APPROVAL_STATUSES:
        raise RegistrationError(
            f"--approval-status {approval_status!r} is not one of {', '.join(APPROVAL_STATUSES)} "
            "(ModelApprovalStatus parameter)"
        )
    containers = automl_result.get("inference_containers") or []
    if not containers:
        raise RegistrationError(f"{contracts.AUTOML_RESULT_FILE} has no inference_containers: nothing to register")
    for index, container in enumerate(containers):
        missing = [k for k in ("Image", "ModelDataUrl") if not container.get(k)]
        if missing:
            raise RegistrationError(
                f"{contracts.AUTOML_RESULT_FILE}: inference_containers[{index}] lacks {', '.join(missing)}"
            )
    gate = evaluation.get("quality_gate") or {}
    objective = automl_result.get("objective_metric") or {}
    description = (
        f"Demand forecasting model from AutoML job {automl_result.get('job_name', '?')} "
        f"(candidate {automl_result.get('best_candidate_name', '?')}, "
        f"{objective.get('name', 'objective')} {_metric_text(objective.get('value'))}); "
        f"{gate.get('metric', 'quality')} {_metric_text(gate.get('value'))} on the holdout; "
        f"pipeline execution {execution_id}."
    )
    request: dict = {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": description[:1024],
        "InferenceSpecification": {
            "Containers": [
                {
                    key: (dict(c[key]) if key == "Environment" else c[key])
                    for key in ("Image", "ModelDataUrl", "Environment")
                    if key in c
                }
                for c in containers
            ],
            "SupportedContentTypes": list(CONTENT_TYPES),
            "SupportedResponseMIMETypes": list(RESPONSE_TYPES),
            "SupportedTransformInstanceTypes": list(transform_instance_types),
            "SupportedRealtimeInferenceInstanceTypes": list(realtime_instance_types),
        },
        "ModelApprovalStatus": approval_status,
        "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluation_uri}}},
        "CustomerMetadataProperties": customer_metadata(
            evaluation, automl_result, execution_id, automl_request, columns
        ),
        "ClientToken": client_token(execution_id, group),
    }
    if tags:
        request["Tags"] = [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]
    validate_request("sagemaker", "CreateModelPackage", request, service_model)
    return request


def group_request(group: str, tags: Optional[dict] = None, service_model: Any = None) -> dict:
    request: dict = {
        "ModelPackageGroupName": group,
        "ModelPackageGroupDescription": "Demand forecasting models trained by the training pipeline",
    }
    if tags:
        request["Tags"] = [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]
    validate_request("sagemaker", "CreateModelPackageGroup", request, service_model)
    return request


def ensure_group(sm: Any, group: str, tags: Optional[dict] = None, log: Log = logger.info) -> bool:
    """Create the model package group unless it exists; True when it was created."""
    try:
        sm.describe_model_package_group(ModelPackageGroupName=group)
        return False
    except ClientError as error:
        if not is_not_found(error):
            raise
    try:
        sm.create_model_package_group(**group_request(group, tags, client_service_model(sm)))
    except ClientError as error:
        if not aws_errors.already_exists(error):
            raise
        return False
    log(f"model package group {group} created")
    return True


def find_registered(sm: Any, group: str, execution_id: str) -> Optional[dict]:
    """A version of `group` already registered by this execution (a retried step), if any."""
    response = sm.list_model_packages(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending", MaxResults=SEARCH_LATEST_VERSIONS
    )
    for summary in response.get("ModelPackageSummaryList", []):
        package = sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        if (package.get("CustomerMetadataProperties") or {}).get(EXECUTION_KEY) == execution_id:
            return package
    return None


def register(
    sm: Any,
    *,
    automl_result: dict,
    evaluation: dict,
    evaluation_uri: str,
    group: str,
    approval_status: str,
    execution_id: str,
    transform_instance_types: Sequence[str] = tuple(DEFAULT_TRANSFORM_INSTANCE_TYPES.split(",")),
    realtime_instance_types: Sequence[str] = tuple(DEFAULT_REALTIME_INSTANCE_TYPES.split(",")),
    tags: Optional[dict] = None,
    log: Log = logger.info,
    automl_request: Optional[dict] = None,
    columns: Sequence[str] = (),
) -> dict:
    """Register (or find, on retry) the model package; returns the registration.json document."""
    request = package_request(
        automl_result=automl_result,
        evaluation=evaluation,
        evaluation_uri=evaluation_uri,
        group=group,
        approval_status=approval_status,
        execution_id=execution_id,
        transform_instance_types=transform_instance_types,
        realtime_instance_types=realtime_instance_types,
        tags=tags,
        automl_request=automl_request,
        columns=columns,
        service_model=client_service_model(sm),
    )
    ensure_group(sm, group, tags, log)
    existing = find_registered(sm, group, execution_id)
    if existing is not None:
        arn, created = existing["ModelPackageArn"], False
        status = existing.get("ModelApprovalStatus", approval_status)
        log(f"execution {execution_id} already registered {arn}: reusing it")
    else:
        arn, created, status = sm.create_model_package(**request)["ModelPackageArn"], True, approval_status
        log(f"registered {arn} ({status}) with {len(request['InferenceSpecification']['Containers'])} container(s)")
    version = arn.rsplit("/", 1)[-1]
    return {
        contracts.MODEL_PACKAGE_ARN_PATH: arn,
        "model_package_group": group,
        "model_package_version": int(version) if version.isdigit() else None,
        "approval_status": status,
        "created": created,
        "pipeline_execution_id": execution_id,
        "containers": len(request["InferenceSpecification"]["Containers"]),
        "model_metrics_uri": evaluation_uri,
        "customer_metadata": request["CustomerMetadataProperties"],
    }


def run(args: argparse.Namespace, sm: Any = None, settings: Any = None, log: Log = logger.info) -> dict:
    if sm is None:
        import boto3

        from processing.kernel.settings import resolve

        settings = settings or resolve()
        sm = boto3.client("sagemaker", region_name=settings.effective_region)
    automl_result = inputs.read_json(args.automl_result_dir, contracts.AUTOML_RESULT_FILE, "--automl-result-dir")
    evaluation = inputs.read_json(args.evaluation_dir, contracts.EVALUATION_FILE, "--evaluation-dir")
    request_path = Path(args.automl_result_dir)
    request_path = request_path / REQUEST_FILE if request_path.is_dir() else request_path.with_name(REQUEST_FILE)
    automl_request = (
        inputs.read_json(str(request_path), REQUEST_FILE, "--automl-result-dir") if request_path.is_file() else None
    )
    profile = inputs.read_json(args.profile_dir, contracts.PROFILE_FILE, "--profile-dir") if args.profile_dir else None
    columns = training_columns(profile)
    if not columns:
        log(
            "warning: no PrepareData profile (--profile-dir): the package records no training schema, "
            "so the batch pipeline cannot check its input columns against it"
        )
    document = register(
        sm,
        automl_result=automl_result,
        evaluation=evaluation,
        evaluation_uri=args.evaluation_uri,
        group=args.model_package_group,
        approval_status=args.approval_status,
        execution_id=args.execution_id,
        transform_instance_types=contracts.parse_list(args.transform_instance_types),
        realtime_instance_types=contracts.parse_list(args.realtime_instance_types),
        tags=dict(settings.tags) if settings is not None else None,
        log=log,
        automl_request=automl_request,
        columns=columns,
    )
    path = write_json_atomic(Path(args.result_dir) / contracts.REGISTRATION_FILE, document)
    log(f"registration written to {path}")
    return document


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m processing.register", description=__doc__.split("\n\n")[0])
    p.add_argument("--automl-result-dir", required=True, help=f"folder (or file) of {contracts.AUTOML_RESULT_FILE}")
    p.add_argument("--evaluation-dir", required=True, help=f"folder (or file) of {contracts.EVALUATION_FILE}")
    p.add_argument("--evaluation-uri", required=True, help="S3 URI of evaluation.json (ModelQuality statistics)")
    p.add_argument("--model-package-group", required=True)
    p.add_argument("--approval-status", default="PendingManualApproval", choices=APPROVAL_STATUSES)
    p.add_argument("--execution-id", required=True)
    p.add_argument("--result-dir", required=True, help=f"folder for {contracts.REGISTRATION_FILE}")
    p.add_argument(
        "--profile-dir",
        default=None,
        help=f"PrepareData profile folder ({contracts.PROFILE_FILE}): the training schema to record",
    )
    p.add_argument("--transform-instance-types", default=DEFAULT_TRANSFORM_INSTANCE_TYPES)
    p.add_argument("--realtime-instance-types", default=DEFAULT_REALTIME_INSTANCE_TYPES)
    return p


@step_main("RegisterModel failed", (ValueError, ClientError), code=1)  # RegistrationError is a ValueError
def main(argv: Optional[Sequence[str]] = None, sm: Any = None) -> int:
    """CLI: exit 0 on success, 1 with a one-paragraph reason on stderr. `sm` is for tests."""
    console.setup()
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    run(args, sm=sm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
