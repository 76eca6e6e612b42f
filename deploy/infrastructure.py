"""The deploy Lambda and the EventBridge rule that makes approving a model deploy it.

`ensure_deploy_function(settings)` (called by `python -m pipelines.run --target sagemaker`)
creates or updates, idempotently:

  - the IAM role of the function (`<function>-role`): trusted by lambda.amazonaws.com, allowed
    to write its logs, to read model packages of the group, to create models/endpoint configs
    named `<endpoint>-*`, to create/update/tag the endpoint, and to pass the SageMaker execution
    role to SageMaker (see `deploy_role_policy`);
  - the function: `deploy.handler.lambda_handler`, python3.12, code zipped from this repository
    (deploy/handler.py and the pipelines modules it imports; boto3 comes with the runtime),
    environment FORECAST_TARGET=sagemaker, FORECAST_ROLE_ARN, FORECAST_ENDPOINT_NAME, ...;
    the code is only uploaded when its SHA-256 changed;
  - the EventBridge rule `<function>-on-approval` on "SageMaker Model Package State Change"
    with ModelApprovalStatus Approved in the project's model package group, its target (the
    function), and the permission for events.amazonaws.com to invoke the function.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from botocore.exceptions import ClientError

from deploy import clients
from processing.kernel import aws_errors
from processing.kernel.settings import Settings, account_of

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# deploy.handler imports deploy.clients and the kernel's settings, aws_errors and console, nothing else from the project
BUNDLE_FILES = (
    "deploy/__init__.py",
    "deploy/handler.py",
    "deploy/clients.py",
    "processing/__init__.py",
    "processing/kernel/__init__.py",
    "processing/kernel/settings.py",
    "processing/kernel/aws_errors.py",
    "processing/kernel/console.py",
)
HANDLER = "deploy.handler.lambda_handler"
RUNTIME = "python3.12"
TIMEOUT_SECONDS = 900  # room to wait for an endpoint that is still Updating
MEMORY_MB = 256
PERMISSION_ID = "eventbridge-model-package-approved"
TARGET_ID = "deploy-function"
Log = Callable[[str], None]


def function_role_name(settings: Settings) -> str:
    return f"{settings.deploy_function_name}-role"[:64]


def rule_name(settings: Settings) -> str:
    return f"{settings.deploy_function_name}-on-approval"[:64]


def build_bundle(root: Path = PROJECT_ROOT) -> bytes:
    """The function's code as a deterministic zip (fixed timestamps), so its hash only moves with the code."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for relative in BUNDLE_FILES:
            path = root / relative
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: the deploy Lambda bundle needs {', '.join(BUNDLE_FILES)}")
            info = zipfile.ZipInfo(relative, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def code_sha256(bundle: bytes) -> str:
    """Lambda's CodeSha256: base64 of the zip's SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(bundle).digest()).decode()


def function_environment(settings: Settings) -> dict:
    variables = {
        "FORECAST_TARGET": "sagemaker",
        "FORECAST_ROLE_ARN": settings.role_arn or "",
        "FORECAST_ENDPOINT_NAME": settings.endpoint_name,
        "FORECAST_MODEL_PACKAGE_GROUP": settings.model_package_group,
        "FORECAST_BUCKET": settings.bucket or "",
        "FORECAST_PREFIX": settings.prefix,
        "FORECAST_TAGS": ",".join(f"{k}={v}" for k, v in settings.tags.items()),
    }
    return {key: value for key, value in variables.items() if value}


def trust_policy() -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }


def deploy_role_policy(settings: Settings) -> dict:
    """Least privilege for deploy.handler (documented in docs/deploy.md)."""
    account, region = account_of(settings.role_arn), settings.region
    sagemaker = f"arn:aws:sagemaker:{region}:{account}"
    endpoint = settings.endpoint_name.lower()
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Logs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{settings.deploy_function_name}:*",
            },
            {
                "Sid": "ReadModelPackages",
                "Effect": "Allow",
                "Action": ["sagemaker:DescribeModelPackage"],
                "Resource": f"{sagemaker}:model-package/{settings.model_package_group.lower()}/*",
            },
            {
                "Sid": "Deploy",
                "Effect": "Allow",
                "Action": [
                    "sagemaker:CreateModel",
                    "sagemaker:DescribeModel",
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:CreateEndpoint",
                    "sagemaker:UpdateEndpoint",
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                ],
                "Resource": [
                    f"{sagemaker}:model/{endpoint}-*",
                    f"{sagemaker}:endpoint-config/{endpoint}-*",
                    f"{sagemaker}:endpoint/{endpoint}",
                ],
            },
            {
                "Sid": "PassExecutionRole",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": settings.role_arn,
                "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            },
        ],
    }


_code = aws_errors.error_code


def ensure_service_role(
    iam: Any,
    name: str,
    trust: dict,
    policy_name: str,
    policy: dict,
    description: str,
    tags: Mapping[str, str],
    purpose: str,
    log: Log = logger.info,
) -> str:
    """Create the role (or refresh its trust policy), then put its one inline policy; its ARN."""
    try:
        role_arn = iam.get_role(RoleName=name)["Role"]["Arn"]
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
    except ClientError as error:
        if _code(error) != "NoSuchEntity":
            raise
        log(f"creating IAM role {name} for {purpose}")
        role_arn = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description=description,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(policy))
    return role_arn


def ensure_function_role(settings: Settings, log: Log = logger.info) -> str:
    return ensure_service_role(
        clients.client("iam", settings),
        function_role_name(settings),
        trust_policy(),
        "deploy-endpoint",
        deploy_role_policy(settings),
        "Deploys approved demand-forecasting model packages to the endpoint",
        settings.tags,
        "the deploy function",
        log,
    )


def _wait_for_update(lam: Any, name: str, sleep: Callable[[float], None], attempts: int = 60) -> None:
    """Lambda refuses a second update while the first is InProgress."""
    for _ in range(attempts):
        configuration = lam.get_function_configuration(FunctionName=name)
        if (
            configuration.get("LastUpdateStatus", "Successful") != "InProgress"
            and configuration.get("State", "Active") != "Pending"
        ):
            return
        sleep(5)
    raise TimeoutError(f"Lambda function {name} is still updating; run again in a minute")


def _configured(current: dict, key: str):
    """A function's current value of an UpdateFunctionConfiguration member, in the request's form."""
    if key == "Environment":
        return {"Variables": (current.get("Environment") or {}).get("Variables", {})}
    if key == "Layers":
        return [layer["Arn"] for layer in current.get("Layers", [])]
    return current.get(key)


def create_or_update_function(
    lam,
    name: str,
    bundle: bytes,
    wanted: dict,
    tags: dict,
    log: Log = logger.info,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Create the Lambda function, or bring its code and configuration to `wanted`; its ARN.

    Code is uploaded only when its hash changed, configuration only when a member differs.
    """
    try:
        current = lam.get_function(FunctionName=name)["Configuration"]
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise
        current = None
    if current is None:
        log(f"creating Lambda function {name}")
        for attempt in range(12):
            try:
                return lam.create_function(
                    FunctionName=name, Code={"ZipFile": bundle}, Publish=False, Tags=tags, **wanted
                )["FunctionArn"]
            except ClientError as error:  # a new role takes a few seconds to be assumable
                if (
                    _code(error) != "InvalidParameterValueException"
                    or "role" not in str(error).lower()
                    or attempt == 11
                ):
                    raise
                sleep(5)
    if current.get("CodeSha256") != code_sha256(bundle):
        log(f"updating the code of Lambda function {name}")
        lam.update_function_code(FunctionName=name, ZipFile=bundle)
        _wait_for_update(lam, name, sleep)
    differs = sorted(key for key, value in wanted.items() if _configured(current, key) != value)
    if differs:
        log(f"updating the configuration of Lambda function {name}: {', '.join(differs)}")
        lam.update_function_configuration(FunctionName=name, **wanted)
        _wait_for_update(lam, name, sleep)
    return current["FunctionArn"]


def ensure_function(
    settings: Settings, role_arn: str, log: Log = logger.info, sleep: Callable[[float], None] = time.sleep
) -> str:
    lam = clients.client("lambda", settings)
    name = settings.deploy_function_name
    bundle = build_bundle()
    wanted = {
        "Role": role_arn,
        "Handler": HANDLER,
        "Runtime": RUNTIME,
        "Timeout": TIMEOUT_SECONDS,
        "MemorySize": MEMORY_MB,
        "Environment": {"Variables": function_environment(settings)},
        "Description": "Deploys approved model packages to the real-time forecast endpoint",
    }
    return create_or_update_function(lam, name, bundle, wanted, dict(settings.tags), log, sleep)


def approval_event_pattern(settings: Settings) -> dict:
    return {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [settings.model_package_group], "ModelApprovalStatus": ["Approved"]},
    }


def ensure_rule(settings: Settings, function_arn: str, log: Log = logger.info) -> str:
    events = clients.client("events", settings)
    lam = clients.client("lambda", settings)
    name = rule_name(settings)
    rule_arn = events.put_rule(
        Name=name,
        EventPattern=json.dumps(approval_event_pattern(settings)),
        State="ENABLED",
        Description=f"Deploy approved versions of {settings.model_package_group} to {settings.endpoint_name}",
        Tags=[{"Key": k, "Value": v} for k, v in settings.tags.items()],
    )["RuleArn"]
    events.put_targets(Rule=name, Targets=[{"Id": TARGET_ID, "Arn": function_arn}])
    statement = _permission(lam, settings.deploy_function_name)
    if statement is not None and rule_arn not in json.dumps(statement):
        lam.remove_permission(FunctionName=settings.deploy_function_name, StatementId=PERMISSION_ID)
        statement = None
    if statement is None:
        log(f"allowing EventBridge rule {name} to invoke {settings.deploy_function_name}")
        lam.add_permission(
            FunctionName=settings.deploy_function_name,
            StatementId=PERMISSION_ID,
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=rule_arn,
        )
    return rule_arn


def _permission(lam: Any, function_name: str) -> Optional[dict]:
    try:
        policy = json.loads(lam.get_policy(FunctionName=function_name)["Policy"])
    except ClientError as error:
        if _code(error) == "ResourceNotFoundException":
            return None
        raise
    return next((s for s in policy.get("Statement", []) if s.get("Sid") == PERMISSION_ID), None)


def ensure_deploy_function(
    settings: Settings, log: Log = logger.info, sleep: Callable[[float], None] = time.sleep
) -> dict:
    """Create or update the deploy Lambda, its role, the approval rule, target and permission."""
    if settings.is_local:
        raise ValueError(
            "the deploy Lambda exists on the SageMaker target only; locally "
            "`python -m deploy.approve` calls deploy.handler in-process"
        )
    settings.require_sagemaker()
    role_arn = ensure_function_role(settings, log)
    function_arn = ensure_function(settings, role_arn, log, sleep)
    rule_arn = ensure_rule(settings, function_arn, log)
    log(f"deploy function {function_arn} runs on {rule_name(settings)}")
    return {"function_arn": function_arn, "role_arn": role_arn, "rule_arn": rule_arn, "rule_name": rule_name(settings)}
