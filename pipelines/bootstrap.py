"""`python -m pipelines.bootstrap`: the bucket and the least-privilege pipeline role, idempotently.

    python -m pipelines.bootstrap --region eu-west-1 --bucket my-forecast-bucket
    export FORECAST_ROLE_ARN=<printed role ARN>

Bucket: versioning on, default encryption (SSE-S3), all public access blocked.
Role: trusted by SageMaker, with inline policies from pipelines/policies/*.json (S3 on the
project prefix only, the SageMaker actions the pipeline and its scripts call,
CreateAutoMLJobV2/DescribeAutoMLJobV2, iam:PassRole on itself, lambda:InvokeFunction on the
deploy function, job logs) instead of AmazonSageMakerFullAccess + AmazonS3FullAccess.
Running it again converges: existing resources are updated, nothing is duplicated.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from string import Template
from typing import Any, Callable, Mapping, Optional, Sequence

from processing.kernel import aws_errors, console
from processing.kernel.settings import Settings, SettingsError, resolve

logger = logging.getLogger(__name__)

POLICY_DIR = Path(__file__).resolve().parent / "policies"
TRUST_POLICY = "trust.json"
DEFAULT_ROLE_NAME = "DemandForecastPipelineRole"
POLICY_NAME_PREFIX = "demand-forecasting-"


def role_name_for(settings: Settings, explicit: Optional[str] = None) -> str:
    """--role-name, else the name in the configured role ARN, else the default."""
    if explicit:
        return explicit
    if settings.role_arn and ":role/" in settings.role_arn:
        return settings.role_arn.rsplit("/", 1)[-1]
    return DEFAULT_ROLE_NAME


def policy_values(settings: Settings, account: str, role_name: str) -> dict[str, str]:
    return {
        "Bucket": settings.bucket or "",
        "Prefix": settings.prefix.strip("/"),
        "Region": settings.region or "",
        "Account": account,
        "RoleName": role_name,
        "DeployFunction": settings.deploy_function_name,
    }


def render_policy(path: Path, values: Mapping[str, str]) -> dict:
    """A policy template with ${Bucket}, ${Prefix}, ${Region}, ${Account}, ${RoleName}, ${DeployFunction}."""
    try:
        return json.loads(Template(path.read_text()).substitute(values))
    except KeyError as error:
        raise ValueError(f"{path}: unknown placeholder ${{{error.args[0]}}}; known: {sorted(values)}") from None


def role_policies(values: Mapping[str, str], directory: Path = POLICY_DIR) -> dict[str, dict]:
    """Inline policy name -> document, one per pipelines/policies/*.json except the trust policy."""
    return {
        POLICY_NAME_PREFIX + path.stem: render_policy(path, values)
        for path in sorted(directory.glob("*.json"))
        if path.name != TRUST_POLICY
    }


def ensure_bucket(s3: Any, bucket: str, region: str, tags: Mapping[str, str], log: Callable[[str], None]) -> None:
    try:
        request: dict = {"Bucket": bucket}
        if region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**request)
        log(f"created bucket {bucket}")
    except Exception as error:  # botocore ClientError
        if _code(error) != "BucketAlreadyOwnedByYou":
            raise
        log(f"bucket {bucket} exists")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    if tags:
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in tags.items()]})
    log(f"bucket {bucket}: versioning on, SSE-S3 default encryption, public access blocked")


def ensure_role(
    iam: Any,
    role_name: str,
    values: Mapping[str, str],
    tags: Mapping[str, str],
    log: Callable[[str], None],
    directory: Path = POLICY_DIR,
) -> str:
    trust = json.dumps(render_policy(directory / TRUST_POLICY, values))
    try:
        arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
        iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=trust)
        log(f"role {role_name} exists")
    except Exception as error:  # botocore ClientError
        if _code(error) != "NoSuchEntity":
            raise
        arn = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=trust,
            Description="SageMaker Pipelines role for demand forecasting (least privilege)",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )["Role"]["Arn"]
        log(f"created role {role_name}")
    policies = role_policies(values, directory)
    for name, document in policies.items():
        iam.put_role_policy(RoleName=role_name, PolicyName=name, PolicyDocument=json.dumps(document))
    stale = [
        name
        for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]
        if name.startswith(POLICY_NAME_PREFIX) and name not in policies
    ]
    for name in stale:
        iam.delete_role_policy(RoleName=role_name, PolicyName=name)
    log(f"role {role_name}: inline policies {', '.join(sorted(policies))}")
    return arn


_code = aws_errors.error_code


def bootstrap(settings: Settings, role_name: Optional[str] = None, log: Callable[[str], None] = logger.info) -> str:
    """Create or update the bucket and the role; returns the role ARN."""
    import boto3

    settings.require_region()
    if not settings.bucket:
        raise SettingsError("no S3 bucket: pass --bucket or set FORECAST_BUCKET")
    session = boto3.session.Session(region_name=settings.region)
    account = session.client("sts").get_caller_identity()["Account"]
    name = role_name_for(settings, role_name)
    values = policy_values(settings, account, name)
    ensure_bucket(session.client("s3"), settings.bucket, settings.region, settings.tags, log)
    arn = ensure_role(session.client("iam"), name, values, settings.tags, log)
    log(f"pipeline role: {arn}")
    log(f"next: export FORECAST_ROLE_ARN={arn} FORECAST_BUCKET={settings.bucket} AWS_REGION={settings.region}")
    return arn


def main(argv: Optional[Sequence[str]] = None) -> int:
    console.setup()
    p = argparse.ArgumentParser(prog="python -m pipelines.bootstrap", description=__doc__.split("\n\n")[0])
    p.add_argument("--bucket", default=None)
    p.add_argument("--region", default=None)
    p.add_argument("--prefix", default=None)
    p.add_argument("--role-name", default=None, help=f"default: from FORECAST_ROLE_ARN, else {DEFAULT_ROLE_NAME}")
    p.add_argument("--config", default=None)
    args = p.parse_args(argv)
    try:
        settings = resolve(
            {"bucket": args.bucket, "region": args.region, "prefix": args.prefix, "config_file": args.config}
        )
        bootstrap(settings, args.role_name)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
