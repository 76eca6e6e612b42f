"""Deploy an approved model package to the real-time endpoint (the deploy Lambda's handler).

Triggered three ways with the same code:
  - the training pipeline's Deploy (Lambda) step: {"model_package_arn": ..., "endpoint_name": ...};
  - the EventBridge rule on "SageMaker Model Package State Change" to Approved:
    {"detail-type": "SageMaker Model Package State Change",
     "detail": {"ModelPackageArn": ..., "ModelApprovalStatus": "Approved", ...}};
  - locally, `python -m deploy.approve` calls it in-process with the EventBridge shape.

The package's CURRENT status is read from the registry (events can be stale or replayed):
anything but Approved is a no-op that says so. For an approved package:

    CreateModel  <endpoint>-v<version>-<hash>   Containers=[{"ModelPackageName": arn}]
                 (a model made from the package ARN carries ALL of the package's containers)
    CreateEndpointConfig  same name, one variant "AllTraffic"
    CreateEndpoint, or UpdateEndpoint in place (SageMaker's blue/green: no downtime)
    AddTags      model-package-arn=<arn> on the endpoint

Idempotent: names are derived from the package, so a repeated event reuses the model and the
config, and does nothing when the endpoint already runs (or is moving to) that config.

It then waits for the endpoint's outcome within its time budget and reports the real state
(`endpoint_status`): InService is "deployed"; Failed (or an update rolled back) raises, so
the pipeline's Deploy step fails; still Creating/Updating when the budget runs out is
"in_progress" with that status. The budget is the Lambda's remaining time less a margin,
and never more than the pipeline Lambda step's 10 minutes when the step invoked it.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable, Optional

from botocore.exceptions import ClientError

from deploy import clients
from processing.kernel import aws_errors
from processing.kernel.settings import Settings, resolve

EVENT_DETAIL_TYPE = "SageMaker Model Package State Change"
PACKAGE_TAG = "model-package-arn"
VERSION_TAG = "model-package-version"
VARIANT_NAME = "AllTraffic"
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
DEFAULT_INSTANCE_COUNT = 1
ACTIVE_STATUSES = ("InService", "Creating", "Updating", "SystemUpdating")
BUSY_STATUSES = ("Creating", "Updating", "SystemUpdating", "RollingBack")
NAME_LIMIT = 63
PIPELINE_STEP_SECONDS = 600      # SageMaker Pipelines stops waiting for a Lambda step after 10 minutes
RETURN_MARGIN_SECONDS = 30       # time kept to report back before the deadline
DEFAULT_WAIT_SECONDS = PIPELINE_STEP_SECONDS - RETURN_MARGIN_SECONDS
POLL_SECONDS = 15


class DeployError(RuntimeError):
    """The deployment cannot proceed; the message says why and what to do."""


def resource_name(endpoint_name: str, version: Any, *identity: str) -> str:
    """<endpoint>-v<version>-<8 hex>: readable, unique per package and settings, <= 63 characters."""
    digest = hashlib.sha256("|".join(identity).encode()).hexdigest()[:8]
    suffix = f"-v{version}-{digest}"
    stem = endpoint_name[: NAME_LIMIT - len(suffix)].rstrip("-")
    return stem + suffix


def parse_event(event: dict, settings: Settings) -> dict:
    """Normalise the two event shapes to {model_package_arn, endpoint_name, event_status, source}."""
    if not isinstance(event, dict):
        raise DeployError(f"the deploy handler expects a JSON object event, got {type(event).__name__}")
    if event.get("detail-type") == EVENT_DETAIL_TYPE or "detail" in event:
        detail = event.get("detail") or {}
        arn = detail.get("ModelPackageArn")
        if not arn:
            raise DeployError("EventBridge event without detail.ModelPackageArn; "
                              f"expected a {EVENT_DETAIL_TYPE!r} event")
        return {"model_package_arn": arn, "endpoint_name": settings.endpoint_name,
                "event_status": detail.get("ModelApprovalStatus"), "source": "eventbridge",
                "instance_type": DEFAULT_INSTANCE_TYPE, "instance_count": DEFAULT_INSTANCE_COUNT}
    arn = event.get("model_package_arn") or event.get("ModelPackageArn")
    if not arn:
        raise DeployError("event has no model_package_arn (pipeline step) nor detail.ModelPackageArn "
                          f"(EventBridge); got keys {sorted(event)}")
    requested = event.get("endpoint_name")
    if requested and requested != settings.endpoint_name:
        raise DeployError(f"endpoint_name {requested!r}: this deploy function, its IAM role and the approval rule "
                          f"are scoped to endpoint {settings.endpoint_name!r} (FORECAST_ENDPOINT_NAME); to deploy "
                          f"to {requested!r}, set FORECAST_ENDPOINT_NAME={requested} and run "
                          "`python -m pipelines.run --target sagemaker` again")
    try:
        count = int(event.get("instance_count") or DEFAULT_INSTANCE_COUNT)
    except (TypeError, ValueError):
        raise DeployError(f"instance_count must be an integer, got {event.get('instance_count')!r}") from None
    return {"model_package_arn": arn, "endpoint_name": event.get("endpoint_name") or settings.endpoint_name,
            "event_status": None, "source": "pipeline",
            "instance_type": event.get("instance_type") or DEFAULT_INSTANCE_TYPE, "instance_count": count}


_error_code = aws_errors.error_code
# SageMaker answers a Describe* of an unknown resource with ValidationException 'Could not find'
_missing = aws_errors.is_not_found


def _describe_or_none(call: Callable[..., dict], **params: Any) -> Optional[dict]:
    try:
        return call(**params)
    except ClientError as error:
        if _missing(error):
            return None
        raise


_already_exists = aws_errors.already_exists


def _create_unless_exists(call: Callable[..., dict], **params: Any) -> None:
    """Create, accepting that a concurrent invocation created the same (same-named) resource first."""
    try:
        call(**params)
    except ClientError as error:
        if not _already_exists(error):
            raise


def _tags(settings: Settings, **extra: str) -> list[dict]:
    tags = {**dict(settings.tags), **extra}
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def _wait_until_settled(sm: Any, endpoint_name: str, deadline: float, sleep: Callable[[float], None],
                        log: Callable[[str], None]) -> dict:
    """An endpoint that is Creating/Updating cannot be updated: wait (bounded) for it to settle."""
    while True:
        endpoint = sm.describe_endpoint(EndpointName=endpoint_name)
        if endpoint["EndpointStatus"] not in BUSY_STATUSES:
            return endpoint
        if time.monotonic() >= deadline:
            raise DeployError(f"endpoint {endpoint_name} is still {endpoint['EndpointStatus']}; "
                              "retry the deployment when it is InService")
        log(f"endpoint {endpoint_name} is {endpoint['EndpointStatus']}; waiting")
        sleep(POLL_SECONDS)


def _wait_for_outcome(sm: Any, endpoint_name: str, deadline: float, sleep: Callable[[float], None],
                      log: Callable[[str], None]) -> dict:
    """Poll the endpoint until it leaves the busy states or the deadline passes; its last description."""
    while True:
        endpoint = sm.describe_endpoint(EndpointName=endpoint_name)
        if endpoint["EndpointStatus"] not in BUSY_STATUSES or time.monotonic() + POLL_SECONDS > deadline:
            return endpoint
        log(f"endpoint {endpoint_name} is {endpoint['EndpointStatus']}; waiting for it to be InService")
        sleep(POLL_SECONDS)


def wait_budget(context: Any, source: str) -> float:
    """Seconds the handler may wait: the Lambda's time left less a margin, within the pipeline step's limit."""
    remaining = float(PIPELINE_STEP_SECONDS)
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        remaining = context.get_remaining_time_in_millis() / 1000.0
    if source == "pipeline":  # the function may have 15 minutes, the step that waits for it has 10
        remaining = min(remaining, float(PIPELINE_STEP_SECONDS))
    return max(0.0, remaining - RETURN_MARGIN_SECONDS)


def deploy(sm: Any, settings: Settings, request: dict, *, log: Callable[[str], None] = print,
           wait_seconds: float = DEFAULT_WAIT_SECONDS, sleep: Callable[[float], None] = time.sleep) -> dict:
    """Deploy request['model_package_arn'] if it is approved; return a LambdaStep-friendly dict.

    Every result has "status" (deployed, in_progress, skipped) and "endpoint_status" (the
    endpoint's state when the handler returned; empty when nothing was deployed). A Failed
    endpoint raises DeployError. All waiting shares one deadline, wait_seconds from now.
    """
    deadline = time.monotonic() + wait_seconds
    arn = request["model_package_arn"]
    endpoint_name = request["endpoint_name"]
    try:
        package = sm.describe_model_package(ModelPackageName=arn)
    except ClientError as error:
        if _missing(error):
            raise DeployError(f"model package {arn} does not exist in the registry "
                              "(python -m deploy.approve list shows the versions)") from None
        raise
    status = package.get("ModelApprovalStatus", "")
    version = package.get("ModelPackageVersion", 0)
    base = {"model_package_arn": arn, "model_package_version": version, "approval_status": status,
            "endpoint_name": endpoint_name}
    if status != "Approved":
        message = (f"model package {arn} is {status or 'without an approval status'}, not Approved: "
                   "nothing deployed")
        log(message)
        return {"status": "skipped", **base, "endpoint_status": "", "message": message}

    role = settings.role_arn or (settings.effective_role_arn if settings.is_local else None)
    if not role:
        raise DeployError("no SageMaker execution role for the model: set FORECAST_ROLE_ARN "
                          "(the deploy Lambda gets it from its environment)")
    identity = (arn, role, request["instance_type"], str(request["instance_count"]))
    name = resource_name(endpoint_name, version, *identity)
    result = {**base, "model_name": name, "endpoint_config_name": name}

    endpoint = _describe_or_none(sm.describe_endpoint, EndpointName=endpoint_name)
    if endpoint is not None:
        pending = (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        if (endpoint.get("EndpointConfigName") == name or pending == name) and \
                endpoint["EndpointStatus"] in ACTIVE_STATUSES:
            message = (f"endpoint {endpoint_name} already serves {arn} "
                       f"(config {name}, {endpoint['EndpointStatus']}): nothing to do")
            log(message)
            return {"status": "skipped", **result, "endpoint_status": endpoint["EndpointStatus"],
                    "message": message}
        if endpoint["EndpointStatus"] == "Failed":
            raise DeployError(f"endpoint {endpoint_name} is Failed ({endpoint.get('FailureReason', 'no reason')}) "
                              "and cannot be updated; delete it (python -m deploy.teardown) and approve again")

    if _describe_or_none(sm.describe_model, ModelName=name) is None:
        log(f"creating model {name} from {arn}")
        _create_unless_exists(sm.create_model, ModelName=name, Containers=[{"ModelPackageName": arn}],
                              ExecutionRoleArn=role, Tags=_tags(settings, **{PACKAGE_TAG: arn}))
    else:
        log(f"reusing model {name}")
    if _describe_or_none(sm.describe_endpoint_config, EndpointConfigName=name) is None:
        log(f"creating endpoint config {name} ({request['instance_count']} x {request['instance_type']})")
        _create_unless_exists(
            sm.create_endpoint_config, EndpointConfigName=name,
            ProductionVariants=[{"VariantName": VARIANT_NAME, "ModelName": name,
                                 "InitialInstanceCount": request["instance_count"],
                                 "InstanceType": request["instance_type"]}],
            Tags=_tags(settings, **{PACKAGE_TAG: arn}))
    else:
        log(f"reusing endpoint config {name}")

    package_tags = {PACKAGE_TAG: arn, VERSION_TAG: str(version)}
    if endpoint is None:
        log(f"creating endpoint {endpoint_name}")
        try:
            created = sm.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=name,
                                         Tags=_tags(settings, **package_tags))
        except ClientError as error:
            if not _already_exists(error):
                raise
            # a concurrent invocation (pipeline Deploy step + EventBridge rule) created it first
            endpoint = sm.describe_endpoint(EndpointName=endpoint_name)
            if endpoint.get("EndpointConfigName") == name:
                message = f"endpoint {endpoint_name} was just created with {arn} by a concurrent deployment"
                log(message)
                return {"status": "skipped", **result, "endpoint_status": endpoint["EndpointStatus"],
                        "message": message}
        else:
            endpoint_arn, action = created["EndpointArn"], "created"
    if endpoint is not None:
        endpoint = _wait_until_settled(sm, endpoint_name, deadline, sleep, log)
        if endpoint.get("EndpointConfigName") == name:
            message = f"endpoint {endpoint_name} already serves {arn} (deployed concurrently): nothing to do"
            log(message)
            return {"status": "skipped", **result, "endpoint_status": endpoint["EndpointStatus"], "message": message}
        log(f"updating endpoint {endpoint_name}: {endpoint.get('EndpointConfigName')} -> {name}")
        updated = sm.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=name)
        endpoint_arn, action = updated["EndpointArn"], "updated"
        sm.add_tags(ResourceArn=endpoint_arn, Tags=[{"Key": k, "Value": v} for k, v in package_tags.items()])
    return _outcome(sm, endpoint_name, name, action, {**result, "endpoint_arn": endpoint_arn}, deadline, sleep, log)


def _outcome(sm: Any, endpoint_name: str, name: str, action: str, result: dict, deadline: float,
             sleep: Callable[[float], None], log: Callable[[str], None]) -> dict:
    """Wait (within the deadline) for the endpoint to serve config `name`; report, or raise when it failed."""
    arn, version = result["model_package_arn"], result["model_package_version"]
    endpoint = _wait_for_outcome(sm, endpoint_name, deadline, sleep, log)
    status = endpoint["EndpointStatus"]
    reason = endpoint.get("FailureReason") or "no reason given"
    if status == "Failed":
        raise DeployError(f"endpoint {endpoint_name} is Failed after it was {action} with model package {arn}: "
                          f"{reason}. Delete it (python -m deploy.teardown) and approve again")
    if status in BUSY_STATUSES:
        message = (f"{action} endpoint {endpoint_name} with model package {arn} (version {version}); it is still "
                   f"{status} (the deploy function's time is up): check it with describe-endpoint")
        log(message)
        return {"status": "in_progress", "action": action, **result, "endpoint_status": status, "message": message}
    if endpoint.get("EndpointConfigName") != name:
        raise DeployError(f"endpoint {endpoint_name} is {status} but serves {endpoint.get('EndpointConfigName')}, "
                          f"not {name}: the {action[:-1]} to model package {arn} failed ({reason})")
    message = f"{action} endpoint {endpoint_name} with model package {arn} (version {version}): {status}"
    log(message)
    return {"status": "deployed", "action": action, **result, "endpoint_status": status, "message": message}


def lambda_handler(event: dict, context: Any = None, *, settings: Optional[Settings] = None) -> dict:
    """The Lambda entry point (also called in-process by the local runtime and deploy.approve)."""
    settings = settings or resolve()
    request = parse_event(event, settings)
    sm = clients.client("sagemaker", settings)
    wait_seconds = wait_budget(context, request["source"])
    print(json.dumps({"event_source": request["source"], "model_package_arn": request["model_package_arn"],
                      "endpoint_name": request["endpoint_name"], "target": settings.target}))
    return deploy(sm, settings, request, wait_seconds=wait_seconds)
