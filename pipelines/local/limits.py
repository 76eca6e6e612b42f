"""SageMaker's limits, enforced by the local runtime so a run breaks here where it would on AWS.

Each limit is a named constant with its source, and each has one checker that raises
`LimitExceeded` with a message naming the limit, the value met and the field to change:

- Transform request payload (CreateTransformJob API reference, MaxPayloadInMB): "The
  default value is 6 MB", "cannot be greater than 100 MB"; with SplitType None a request is
  one whole input file. MaxPayloadInMB 0 streams the file (HTTP chunked encoding, "works
  only in supported algorithms"; AWS's Autopilot time-series sample uses it); the local
  runtime then holds a request to the 100 MB per-invocation maximum that sample names.
  1 MB = 1,048,576 bytes, as the inference toolkit counts SAGEMAKER_MAX_PAYLOAD_IN_MB.
- Transform invocation timeout (ModelClientConfig.InvocationsTimeoutInSeconds): default
  600 s, 1 to 3600.
- Lambda step: SageMaker Pipelines stops waiting for a Lambda step's function after 10
  minutes (LambdaStep timeout, 600 s at most).
- Processing job: StoppingCondition.MaxRuntimeInSeconds (SageMaker stops the job then).

The real-time endpoint's limits (InvokeEndpoint: 6 MB request body, 60 s to answer) live in
`deploy.endpoint_codec`, since the endpoint and the forecast API (deploy, below pipelines) enforce
them too; the local invoke_endpoint (`pipelines.local.sagemaker_endpoints`) reads them there.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Mapping, Optional

MB = 1024 * 1024
DEFAULT_MAX_PAYLOAD_MB = 6  # MaxPayloadInMB when unset
MAX_PAYLOAD_MB = 100  # MaxPayloadInMB at most; also the per-invocation maximum when 0
DEFAULT_INVOCATIONS_TIMEOUT_SECONDS = 600  # ModelClientConfig.InvocationsTimeoutInSeconds when unset
MAX_INVOCATIONS_TIMEOUT_SECONDS = 3600
LAMBDA_STEP_TIMEOUT_SECONDS = 600  # a pipeline Lambda step's 10 minutes


class LimitExceeded(RuntimeError):
    """A SageMaker limit was exceeded; the message names the limit, the value and what to change."""


# --- transform jobs --------------------------------------------------------------------------
def payload_limit_mb(request: Mapping[str, Any]) -> int:
    """The payload limit a CreateTransformJob request sets (MB); refuses values SageMaker refuses."""
    value = request.get("MaxPayloadInMB")
    if value is None:
        return DEFAULT_MAX_PAYLOAD_MB
    value = int(value)
    if value > MAX_PAYLOAD_MB:
        raise LimitExceeded(
            f"MaxPayloadInMB={value}: SageMaker allows at most {MAX_PAYLOAD_MB} MB; "
            "lower MaxPayloadInMB and cut the input into smaller files"
        )
    concurrent = int(request.get("MaxConcurrentTransforms") or 0)
    if concurrent and value and concurrent * value > MAX_PAYLOAD_MB:
        raise LimitExceeded(
            f"MaxConcurrentTransforms x MaxPayloadInMB = {concurrent} x {value} MB exceeds "
            f"SageMaker's {MAX_PAYLOAD_MB} MB; lower one of them"
        )
    return value or MAX_PAYLOAD_MB  # 0: streamed, up to the per-invocation maximum


def split_type(request: Mapping[str, Any]) -> str:
    return str((request.get("TransformInput") or {}).get("SplitType") or "None")


def check_transform_payload(request: Mapping[str, Any], size_bytes: int, file_name: str) -> None:
    """A SplitType None request is the whole file: it must fit the job's MaxPayloadInMB."""
    limit = payload_limit_mb(request)
    if split_type(request) != "None" or size_bytes <= limit * MB:
        return
    setting = request.get("MaxPayloadInMB")
    where = (
        f"MaxPayloadInMB={setting}"
        if setting is not None
        else f"MaxPayloadInMB unset (default {DEFAULT_MAX_PAYLOAD_MB} MB)"
    )
    raise LimitExceeded(
        f"transform request {file_name} is {size_bytes / MB:.2f} MB, over the payload limit of "
        f"{limit} MB ({where}); with SplitType None each input file is one request: cut the "
        f"input into smaller files (whole series per file) or raise MaxPayloadInMB "
        f"(at most {MAX_PAYLOAD_MB})"
    )


def invocation_timeout_seconds(request: Mapping[str, Any]) -> int:
    value = (request.get("ModelClientConfig") or {}).get("InvocationsTimeoutInSeconds")
    return int(value) if value is not None else DEFAULT_INVOCATIONS_TIMEOUT_SECONDS


def check_invocation_time(request: Mapping[str, Any], seconds: float, file_name: str) -> None:
    """An invocation that takes longer than the timeout fails the transform job on SageMaker."""
    limit = invocation_timeout_seconds(request)
    if seconds <= limit:
        return
    setting = (request.get("ModelClientConfig") or {}).get("InvocationsTimeoutInSeconds")
    where = (
        f"ModelClientConfig.InvocationsTimeoutInSeconds={setting}"
        if setting is not None
        else f"ModelClientConfig.InvocationsTimeoutInSeconds unset (default {DEFAULT_INVOCATIONS_TIMEOUT_SECONDS} s)"
    )
    raise LimitExceeded(
        f"transform invocation for {file_name} took {seconds:.1f} s, over the invocation timeout of "
        f"{limit} s ({where}); cut the input into smaller files or raise "
        f"InvocationsTimeoutInSeconds (at most {MAX_INVOCATIONS_TIMEOUT_SECONDS})"
    )


# --- Lambda steps ------------------------------------------------------------------------------
class LambdaContext:
    """The part of Lambda's context object handlers use: the time left before the deadline."""

    def __init__(self, deadline: float, function_name: str = ""):
        self.deadline = deadline
        self.function_name = function_name

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def call_with_deadline(function: Callable[[Any], Any], seconds: float, what: str, limit_name: str) -> Any:
    """Run function(context) in a thread; raise LimitExceeded when it has not returned in `seconds`.

    Python cannot kill a thread: a function that overruns keeps running in the background
    (daemon) while the step fails, as a Lambda whose caller stopped waiting would.
    """
    deadline = time.monotonic() + seconds
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = function(LambdaContext(deadline))
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    worker = threading.Thread(target=target, name=f"deadline:{what}", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if worker.is_alive():
        raise LimitExceeded(
            f"{what} did not return within {seconds:g} s, {limit_name}; SageMaker fails the step "
            "then. Make the function return sooner (it is handed the time left, "
            "context.get_remaining_time_in_millis())"
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


# --- processing jobs -----------------------------------------------------------------------------
def processing_max_runtime(arguments: Mapping[str, Any]) -> Optional[int]:
    """StoppingCondition.MaxRuntimeInSeconds of a (resolved) CreateProcessingJob request."""
    value = (arguments.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    return int(value) if value is not None else None


def processing_timeout_message(seconds: int) -> str:
    return (
        f"the step ran past StoppingCondition.MaxRuntimeInSeconds={seconds} and was stopped, as SageMaker "
        "stops the processing job then; raise max_runtime_seconds of this step (pipelines/steps.py) "
        "or make the step faster"
    )
