"""CreateModel step of the batch pipeline: a SageMaker Model from the resolved package ARN.

    python -m processing.create_model --resolved-dir DIR --execution-id ID --role-arn ARN --result-dir DIR

A container that names the model package brings every container of the package with it,
so nothing is dropped. Retry-safe: an existing model of the same name is reused.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import boto3
from botocore.exceptions import ClientError

from processing.atomic import write_json_atomic
from processing.kernel import console
from processing.kernel.aws_validation import validate_request
from processing.kernel.contracts import BATCH_MODEL_FILE, RESOLVED_MODEL_FILE
from processing.kernel.settings import resolve

logger = logging.getLogger(__name__)


def model_name_for(execution_id: str) -> str:
    """'fc-batch-<execution id>', within CreateModel's 63 characters and name pattern."""
    cleaned = re.sub(r"[^a-zA-Z0-9-]", "-", execution_id).strip("-") or "manual"
    return f"fc-batch-{cleaned}"[:63].rstrip("-")


def create_model_request(
    model_name: str, package_arn: str, role_arn: str, tags: Optional[dict] = None, service_model: Any = None
) -> dict:
    """CreateModel's request, checked against the service model (`service_model`: the client's own,
    so the step loads SageMaker's model once)."""
    request = {
        "ModelName": model_name,
        "Containers": [{"ModelPackageName": package_arn}],
        "ExecutionRoleArn": role_arn,
    }
    if tags:
        request["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
    validate_request("sagemaker", "CreateModel", request, service_model)
    return request


def ensure_model(sagemaker: Any, request: dict) -> str:
    """Create the model unless a retry already did."""
    try:
        sagemaker.describe_model(ModelName=request["ModelName"])
        logger.info(f"Model {request['ModelName']} already exists (retried step): reusing it")
    except ClientError:
        sagemaker.create_model(**request)
        logger.info(f"Created model {request['ModelName']} from {request['Containers'][0]['ModelPackageName']}")
    return request["ModelName"]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m processing.create_model", description=__doc__.split("\n")[0])
    parser.add_argument("--resolved-dir", required=True, type=Path, help=f"folder with {RESOLVED_MODEL_FILE}")
    parser.add_argument("--execution-id", required=True)
    parser.add_argument("--role-arn", required=True)
    parser.add_argument("--result-dir", required=True, type=Path)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None, sagemaker: Any = None) -> int:
    console.setup()
    args = parse_args(argv)
    settings = resolve()
    resolved_path = args.resolved_dir / RESOLVED_MODEL_FILE
    if not resolved_path.is_file():
        print(f"CreateModel failed: {resolved_path} is missing (ResolveModel writes it)", file=sys.stderr)
        return 2
    package_arn = json.loads(resolved_path.read_text())["model_package_arn"]
    sagemaker = sagemaker or boto3.client("sagemaker", region_name=settings.effective_region)
    request = create_model_request(
        model_name_for(args.execution_id), package_arn, args.role_arn, dict(settings.tags), sagemaker.meta.service_model
    )
    name = ensure_model(sagemaker, request)
    write_json_atomic(args.result_dir / BATCH_MODEL_FILE, {"model_name": name, "model_package_arn": package_arn})
    return 0


if __name__ == "__main__":
    sys.exit(main())
