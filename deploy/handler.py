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
config, and does nothing when the endpoint already serves (or is moving to) that config. An
endpoint with that config that is not serving (OutOfService: its instances or, locally, its
server process died) is restarted: UpdateEndpoint to a copy of that config (same model, new
name `<endpoint>-v<version>-<hash>`: SageMaker deploys an update from a new EndpointConfig).

Newest wins: an approved version never replaces a newer one the endpoint serves (read from the
endpoint's config, `<endpoint>-v<version>-<hash>`, or its tags) unless the event says
`"rollback": true` (deploy.approve's rollback). Concurrent invocations race, so the decision is
taken again on the endpoint's own state after each wait and after UpdateEndpoint is refused
because another update is in progress.

It then waits for the endpoint's outcome within its time budget and reports the real state
(`endpoint_status`): InService is "deployed"; Failed (or an update rolled back) raises, so
the pipeline's Deploy step fails; still Creating/Updating when the budget runs out is
"in_progress" with that status. The budget is the Lambda's remaining time less a margin,
and never more than the pipeline Lambda step's 10 minutes when the step invoked it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from typing import Any, Callable, Optional

from botocore.exceptions import ClientError

from deploy import clients
from processing.kernel import aws_errors, console
from processing.kernel.settings import Settings, resolve

logger = logging.getLogger(__name__)

EVENT_DETAIL_TYPE = "SageMaker Model Package State Change"
PACKAGE_TAG = "model-package-arn"
VERSION_TAG = "model-package-version"
VARIANT_NAME = "AllTraffic"
DEFAULT_INSTANCE_TYPE = "ml.m5.xlarge"
DEFAULT_INSTANCE_COUNT = 1
ACTIVE_STATUSES = ("InService", "Creating", "Updating", "SystemUpdating")
BUSY_STATUSES = ("Creating", "Updating", "SystemUpdating", "RollingBack")
NAME_LIMIT = 63
PIPELINE_STEP_SECONDS = 600  # SageMaker Pipelines stops waiting for a Lambda step after 10 minutes
RETURN_MARGIN_SECONDS = 30  # time kept to report back before the deadline
DEFAULT_WAIT_SECONDS = PIPELINE_STEP_SECONDS - RETURN_MARGIN_SECONDS
POLL_SECONDS = 15
LOCAL_POLL_SECONDS = 0.5  # the local stand-in's endpoints settle in seconds
UPDATE_ATTEMPTS = 8  # decisions re-taken after concurrent deployments changed the endpoint
CONFIG_NAME_VERSION = re.compile(r"-v([0-9]+)-[0-9a-f]{8}$")  # resource_name's suffix


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
            raise DeployError(
                f"EventBridge event without detail.ModelPackageArn; expected a {EVENT_DETAIL_TYPE!r} event"
            )
        return {
            "model_package_arn": arn,
            "endpoint_name": settings.endpoint_name,
            "event_status": detail.get("ModelApprovalStatus"),
            "source": "eventbridge",
            "instance_type": DEFAULT_INSTANCE_TYPE,
            "instance_count": DEFAULT_INSTANCE_COUNT,
            "rollback": _flag(event.get("rollback")),
        }
    arn = event.get("model_package_arn") or event.get("ModelPackageArn")
    if not arn:
        raise DeployError(
            "event has no model_package_arn (pipeline step) nor detail.ModelPackageArn "
            f"(EventBridge); got keys {sorted(event)}"
        )
    requested = event.get("endpoint_name")
    if requested and requested != settings.endpoint_name:
        raise DeployError(
            f"endpoint_name {requested!r}: this deploy function, its IAM role and the approval rule "
            f"are scoped to endpoint {settings.endpoint_name!r} (FORECAST_ENDPOINT_NAME); to deploy "
            f"to {requested!r}, set FORECAST_ENDPOINT_NAME={requested} and run "
            "`python -m pipelines.run --target sagemaker` again"
        )
    try:
        count = int(event.get("instance_count") or DEFAULT_INSTANCE_COUNT)
    except (TypeError, ValueError):
        raise DeployError(f"instance_count must be an integer, got {event.get('instance_count')!r}") from None
    return {
        "model_package_arn": arn,
        "endpoint_name": event.get("endpoint_name") or settings.endpoint_name,
        "event_status": None,
        "source": "pipeline",
        "instance_type": event.get("instance_type") or DEFAULT_INSTANCE_TYPE,
        "instance_count": count,
        "rollback": _flag(event.get("rollback")),
    }


def _flag(value: Any) -> bool:
    """`rollback` in an event: only true (or "true") asks to put an older version over a newer one."""
    if value in (None, False, "", "false", "False"):
        return False
    if value is True or value in ("true", "True"):
        return True
    raise DeployError(f"rollback must be true or false, got {value!r}")


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


def _create_endpoint_config(
    sm: Any, config_name: str, model_name: str, request: dict, settings: Settings, arn: str
) -> None:
    """One production variant serving `model_name`, tagged with the package it came from."""
    _create_unless_exists(
        sm.create_endpoint_config,
        EndpointConfigName=config_name,
        ProductionVariants=[
            {
                "VariantName": VARIANT_NAME,
                "ModelName": model_name,
                "InitialInstanceCount": request["instance_count"],
                "InstanceType": request["instance_type"],
            }
        ],
        Tags=_tags(settings, **{PACKAGE_TAG: arn}),
    )


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


def _wait_while_busy(
    sm: Any,
    endpoint_name: str,
    deadline: float,
    sleep: Callable[[float], None],
    log: Callable[[str], None],
    poll_seconds: float = POLL_SECONDS,
    *,
    settle: bool,
    at_least_once: bool = False,
) -> dict:
    """Poll the endpoint while it is Creating/Updating (bounded by `deadline`); its last description.

    settle=True: it must settle, since a busy endpoint cannot be updated; still busy at the
    deadline raises DeployError. settle=False: the outcome of this deployment; still busy when
    the next poll would pass the deadline returns that busy description (reported in_progress).
    at_least_once: sleep once first (SageMaker refused an update as in progress, yet the endpoint
    looked settled: the other update is starting)."""
    if at_least_once:
        sleep(poll_seconds)
    while True:
        endpoint = sm.describe_endpoint(EndpointName=endpoint_name)
        state = endpoint["EndpointStatus"]
        if state not in BUSY_STATUSES:
            return endpoint
        if settle and time.monotonic() >= deadline:
            raise DeployError(f"endpoint {endpoint_name} is still {state}; retry the deployment when it is InService")
        if not settle and time.monotonic() + poll_seconds > deadline:
            return endpoint
        log(f"endpoint {endpoint_name} is {state}; waiting" + ("" if settle else " for it to be InService"))
        sleep(poll_seconds)


def wait_budget(context: Any, source: str) -> float:
    """Seconds the handler may wait: the Lambda's time left less a margin, within the pipeline step's limit."""
    remaining = float(PIPELINE_STEP_SECONDS)
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        remaining = context.get_remaining_time_in_millis() / 1000.0
    if source == "pipeline":  # the function may have 15 minutes, the step that waits for it has 10
        remaining = min(remaining, float(PIPELINE_STEP_SECONDS))
    return max(0.0, remaining - RETURN_MARGIN_SECONDS)


def _package_version(arn: Optional[str]) -> Optional[int]:
    """The version number at the end of a model package ARN (.../model-package/<group>/<version>)."""
    match = re.search(r"model-package/[^/]+/([0-9]+)$", arn or "")
    return int(match.group(1)) if match else None


def _tag_values(sm: Any, resource_arn: Optional[str]) -> dict:
    if not resource_arn:
        return {}
    try:
        tags = sm.list_tags(ResourceArn=resource_arn).get("Tags", [])
    except ClientError:
        return {}
    return {tag["Key"]: tag["Value"] for tag in tags}  # the last wins: AddTags overwrites a key (moto appends)


def config_version(sm: Any, config_name: Optional[str]) -> Optional[int]:
    """The model package version an endpoint config serves: from its name (this handler's
    `<endpoint>-v<version>-<hash>`), else from its `model-package-arn` tag; None when unknown."""
    if not config_name:
        return None
    match = CONFIG_NAME_VERSION.search(config_name)
    if match:
        return int(match.group(1))
    config = _describe_or_none(sm.describe_endpoint_config, EndpointConfigName=config_name) or {}
    tags = _tag_values(sm, config.get("EndpointConfigArn"))
    return _package_version(tags.get(PACKAGE_TAG)) or _int_or_none(tags.get(VERSION_TAG))


def _int_or_none(value: Any) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def target_config(endpoint: dict) -> Optional[str]:
    """The config the endpoint serves, or is moving to while an update runs."""
    return (endpoint.get("PendingDeploymentSummary") or {}).get("EndpointConfigName") or endpoint.get(
        "EndpointConfigName"
    )


def served_version(sm: Any, endpoint: dict) -> Optional[int]:
    """The package version the endpoint serves (or is moving to), read from the endpoint's own state:
    its config, else the version tags the handler puts on it."""
    version = config_version(sm, target_config(endpoint))
    if version is None and endpoint.get("EndpointConfigName") == target_config(endpoint):
        tags = _tag_values(sm, endpoint.get("EndpointArn"))
        version = _int_or_none(tags.get(VERSION_TAG)) or _package_version(tags.get(PACKAGE_TAG))
    return version


def _in_progress(error: ClientError) -> bool:
    """SageMaker refuses UpdateEndpoint while the endpoint is Creating/Updating ('Cannot update in-progress')."""
    message = aws_errors.error_message(error).lower()
    return _error_code(error) == "ValidationException" and ("in-progress" in message or "in progress" in message)


def deploy(
    sm: Any,
    settings: Settings,
    request: dict,
    *,
    log: Callable[[str], None] = logger.info,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = POLL_SECONDS,
) -> dict:
    """Deploy request['model_package_arn'] if it is approved; return a LambdaStep-friendly dict.

    Every result has "status" (deployed, in_progress, skipped) and "endpoint_status" (the
    endpoint's state when the handler returned; empty when nothing was deployed). A Failed
    endpoint raises DeployError. All waiting shares one deadline, wait_seconds from now.

    Never replaces a newer version with an older one unless request["rollback"] is true:
    concurrent invocations (three runs approving at once) race, so the decision is taken on the
    endpoint's own state, again after every wait and after SageMaker refuses an update because
    another one is in progress.
    """
    deadline = time.monotonic() + wait_seconds
    arn = request["model_package_arn"]
    endpoint_name = request["endpoint_name"]
    rollback = bool(request.get("rollback"))
    try:
        package = sm.describe_model_package(ModelPackageName=arn)
    except ClientError as error:
        if _missing(error):
            raise DeployError(
                f"model package {arn} does not exist in the registry (python -m deploy.approve list shows the versions)"
            ) from None
        raise
    status = package.get("ModelApprovalStatus", "")
    version = package.get("ModelPackageVersion", 0)
    base = {
        "model_package_arn": arn,
        "model_package_version": version,
        "approval_status": status,
        "endpoint_name": endpoint_name,
    }
    if status != "Approved":
        message = f"model package {arn} is {status or 'without an approval status'}, not Approved: nothing deployed"
        log(message)
        return {"status": "skipped", **base, "endpoint_status": "", "message": message}

    role = settings.role_arn or (settings.effective_role_arn if settings.is_local else None)
    if not role:
        raise DeployError(
            "no SageMaker execution role for the model: set FORECAST_ROLE_ARN "
            "(the deploy Lambda gets it from its environment)"
        )
    identity = (arn, role, request["instance_type"], str(request["instance_count"]))
    name = resource_name(endpoint_name, version, *identity)
    result = {**base, "model_name": name, "endpoint_config_name": name}

    def skipped(message: str, endpoint: dict) -> dict:
        log(message)
        return {"status": "skipped", **result, "endpoint_status": endpoint["EndpointStatus"], "message": message}

    def ours(config_name: Optional[str]) -> bool:
        """This deployment's config, or a restart copy of it (same version, same model)."""
        if config_name == name:
            return True
        match = CONFIG_NAME_VERSION.search(config_name or "")
        if not match or int(match.group(1)) != version:
            return False
        config = _describe_or_none(sm.describe_endpoint_config, EndpointConfigName=config_name) or {}
        return [v.get("ModelName") for v in config.get("ProductionVariants", [])] == [name]

    def verdict(endpoint: dict, concurrent: bool = False) -> Optional[dict]:
        """Skip (a result) or go on (None), judged on the endpoint as it is now."""
        state = endpoint["EndpointStatus"]
        if ours(target_config(endpoint)) and (state in ACTIVE_STATUSES or state == "RollingBack"):
            how = "was just deployed with" if concurrent else "already serves"
            return skipped(
                f"endpoint {endpoint_name} {how} {arn} (config {name}, {state}"
                f"{', by a concurrent deployment' if concurrent else ''}): nothing to do",
                endpoint,
            )
        if state == "Failed":
            raise DeployError(
                f"endpoint {endpoint_name} is Failed ({endpoint.get('FailureReason', 'no reason')}) "
                "and cannot be updated; delete it (python -m deploy.teardown) and approve again"
            )
        serving = served_version(sm, endpoint) if not ours(target_config(endpoint)) else None
        if serving is not None and serving > version and not rollback:
            return skipped(
                f"endpoint {endpoint_name} serves version {serving}, newer than version {version} "
                f"({state}): not replacing it with an older version; to go back to version {version} "
                f"on purpose: python -m deploy.approve approve {version} --rollback",
                endpoint,
            )
        return None

    endpoint = _describe_or_none(sm.describe_endpoint, EndpointName=endpoint_name)
    if endpoint is not None:
        early = verdict(endpoint)
        if early is not None:
            return early

    if _describe_or_none(sm.describe_model, ModelName=name) is None:
        log(f"creating model {name} from {arn}")
        _create_unless_exists(
            sm.create_model,
            ModelName=name,
            Containers=[{"ModelPackageName": arn}],
            ExecutionRoleArn=role,
            Tags=_tags(settings, **{PACKAGE_TAG: arn}),
        )
    else:
        log(f"reusing model {name}")
    if _describe_or_none(sm.describe_endpoint_config, EndpointConfigName=name) is None:
        log(f"creating endpoint config {name} ({request['instance_count']} x {request['instance_type']})")
        _create_endpoint_config(sm, name, name, request, settings, arn)
    else:
        log(f"reusing endpoint config {name}")

    package_tags = {PACKAGE_TAG: arn, VERSION_TAG: str(version)}
    concurrent = False
    for _ in range(UPDATE_ATTEMPTS):
        if endpoint is None:
            log(f"creating endpoint {endpoint_name}")
            try:
                created = sm.create_endpoint(
                    EndpointName=endpoint_name, EndpointConfigName=name, Tags=_tags(settings, **package_tags)
                )
            except ClientError as error:
                if not _already_exists(error):
                    raise
                # a concurrent invocation (pipeline Deploy step, EventBridge rule, another run) was first
                endpoint, concurrent = sm.describe_endpoint(EndpointName=endpoint_name), True
                continue
            return _outcome(
                sm,
                endpoint_name,
                name,
                "created",
                {**result, "endpoint_arn": created["EndpointArn"]},
                deadline,
                sleep,
                log,
                poll_seconds,
            )
        if endpoint["EndpointStatus"] in BUSY_STATUSES:
            early = verdict(endpoint, concurrent)  # moving to this very config, or to a newer one: done
            if early is not None:
                return early
            endpoint = _wait_while_busy(sm, endpoint_name, deadline, sleep, log, poll_seconds, settle=True)
        decided = verdict(endpoint, concurrent)
        if decided is not None:
            return decided
        previous = endpoint.get("EndpointConfigName")
        target = name
        if ours(previous):  # the right model, but the endpoint is not serving (OutOfService: crashed)
            # SageMaker deploys an update from a new EndpointConfig: a copy of this one, same model
            target = resource_name(endpoint_name, version, *identity, f"restart-{time.time_ns()}")
            log(
                f"endpoint {endpoint_name} is {endpoint['EndpointStatus']} with config {previous}: "
                f"restarting it with config {target} (same model {name})"
            )
            _create_endpoint_config(sm, target, name, request, settings, arn)
            action = "restarted"
        else:
            older = rollback and (served_version(sm, endpoint) or 0) > version
            action = "rolled back" if older else "updated"
            log(f"{'rolling back' if older else 'updating'} endpoint {endpoint_name}: {previous} -> {name}")
        try:
            updated = sm.update_endpoint(EndpointName=endpoint_name, EndpointConfigName=target)
        except ClientError as error:
            if not _in_progress(error):
                raise
            # another deployment got its update in first: judge again once it has settled
            log(f"endpoint {endpoint_name} is being updated by a concurrent deployment; deciding again after it")
            endpoint, concurrent = sm.describe_endpoint(EndpointName=endpoint_name), True
            if endpoint["EndpointStatus"] not in BUSY_STATUSES:
                endpoint = _wait_while_busy(
                    sm, endpoint_name, deadline, sleep, log, poll_seconds, settle=True, at_least_once=True
                )
            continue
        sm.add_tags(ResourceArn=updated["EndpointArn"], Tags=[{"Key": k, "Value": v} for k, v in package_tags.items()])
        return _outcome(
            sm,
            endpoint_name,
            target,
            action,
            {**result, "endpoint_config_name": target, "endpoint_arn": updated["EndpointArn"]},
            deadline,
            sleep,
            log,
            poll_seconds,
            previous=previous,
        )
    raise DeployError(
        f"endpoint {endpoint_name} kept changing under {UPDATE_ATTEMPTS} concurrent deployments; "
        f"approve version {version} again when it is InService"
    )


def _outcome(
    sm: Any,
    endpoint_name: str,
    name: str,
    action: str,
    result: dict,
    deadline: float,
    sleep: Callable[[float], None],
    log: Callable[[str], None],
    poll_seconds: float = POLL_SECONDS,
    previous: Optional[str] = None,
) -> dict:
    """Wait (within the deadline) for the endpoint to serve config `name`; report, or raise when it failed."""
    arn, version = result["model_package_arn"], result["model_package_version"]
    endpoint = _wait_while_busy(sm, endpoint_name, deadline, sleep, log, poll_seconds, settle=False)
    status = endpoint["EndpointStatus"]
    reason = endpoint.get("FailureReason") or "no reason given"
    if status == "Failed":
        raise DeployError(
            f"endpoint {endpoint_name} is Failed after it was {action} with model package {arn}: "
            f"{reason}. Delete it (python -m deploy.teardown) and approve again"
        )
    if status in BUSY_STATUSES:
        message = (
            f"{action} endpoint {endpoint_name} with model package {arn} (version {version}); it is still "
            f"{status} (the deploy function's time is up): check it with describe-endpoint"
        )
        log(message)
        return {"status": "in_progress", "action": action, **result, "endpoint_status": status, "message": message}
    current = endpoint.get("EndpointConfigName")
    if current != name:
        serving = served_version(sm, endpoint) if current != previous else None
        if serving is not None and serving > version:
            message = (
                f"{action} endpoint {endpoint_name} with model package {arn} (version {version}); a concurrent "
                f"deployment has since put the newer version {serving} on it ({status})"
            )
            log(message)
            return {"status": "skipped", "action": action, **result, "endpoint_status": status, "message": message}
        raise DeployError(
            f"endpoint {endpoint_name} is {status} but serves {current}, "
            f"not {name}: the deployment ({action}) of model package {arn} failed ({reason})"
        )
    if status != "InService":
        raise DeployError(
            f"endpoint {endpoint_name} is {status} after it was {action} with model package {arn} ({reason})"
        )
    message = f"{action} endpoint {endpoint_name} with model package {arn} (version {version}): {status}"
    log(message)
    return {"status": "deployed", "action": action, **result, "endpoint_status": status, "message": message}


def in_lambda() -> bool:
    """True inside AWS Lambda (its runtime sets AWS_LAMBDA_FUNCTION_NAME); deploy.approve and the
    local runtime's Lambda step call the handler in-process without it."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def invocation_line(request: dict, settings: Settings, *, structured: bool) -> str:
    """What the handler was asked to do, logged first. In Lambda one JSON object: CloudWatch Logs
    Insights discovers its fields (`filter event_source = "eventbridge"`). Elsewhere a sentence,
    as it lands in the output of `python -m deploy.approve` and of the local Deploy step."""
    if structured:
        return json.dumps(
            {
                "event_source": request["source"],
                "model_package_arn": request["model_package_arn"],
                "endpoint_name": request["endpoint_name"],
                "target": settings.target,
            }
        )
    source = "EventBridge approval event" if request["source"] == "eventbridge" else "pipeline Deploy step"
    if request.get("rollback"):  # `deploy.approve rollback` asks for an older version on purpose
        source += ", rollback"
    return (
        f"deploy handler ({source}): model package {request['model_package_arn']} "
        f"-> endpoint {request['endpoint_name']}"
    )


def lambda_handler(event: dict, context: Any = None, *, settings: Optional[Settings] = None) -> dict:
    """The Lambda entry point (also called in-process by the local runtime and deploy.approve)."""
    console.setup()
    settings = settings or resolve()
    request = parse_event(event, settings)
    sm = clients.client("sagemaker", settings)
    wait_seconds = wait_budget(context, request["source"])
    logger.info(invocation_line(request, settings, structured=in_lambda()))
    return deploy(
        sm,
        settings,
        request,
        wait_seconds=wait_seconds,
        poll_seconds=LOCAL_POLL_SECONDS if settings.is_local else POLL_SECONDS,
    )
