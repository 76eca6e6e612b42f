"""Shared helpers for the definition tests: render once, walk steps, resolve expressions, block sockets."""

from __future__ import annotations

import copy
import functools
import json
import socket
from typing import Any, Iterator

from processing.kernel.settings import resolve

ROLE = "arn:aws:iam::123456789012:role/forecast-pipeline"
BUCKET = "forecast-test-bucket"
REGION = "eu-west-1"


def sagemaker_settings(**changes: Any):
    flags = {"target": "sagemaker", "region": REGION, "bucket": BUCKET, "role_arn": ROLE}
    flags.update(changes)
    return resolve(flags, environ={})


@functools.lru_cache(maxsize=None)
def training_text(region: str = REGION, bucket: str = BUCKET, role_arn: str = ROLE) -> str:
    from pipelines.training import get_pipeline

    return get_pipeline(sagemaker_settings(region=region, bucket=bucket, role_arn=role_arn)).definition()


def training_definition() -> dict:
    return json.loads(training_text())


@functools.lru_cache(maxsize=None)
def batch_text(region: str = REGION, bucket: str = BUCKET, role_arn: str = ROLE) -> str:
    from pipelines.batch import get_batch_pipeline

    return get_batch_pipeline(sagemaker_settings(region=region, bucket=bucket, role_arn=role_arn)).definition()


def batch_definition() -> dict:
    return json.loads(batch_text())


# step type -> (the API operation its Arguments are sent to, the job-name member the service fills in)
JOB_OPERATIONS = {
    "Processing": ("CreateProcessingJob", "ProcessingJobName"),
    "Transform": ("CreateTransformJob", "TransformJobName"),
}


def job_request(s: dict) -> tuple:
    """(operation, request) for a job step: its Arguments plus the job name the pipeline sets.

    A deep copy: tests may break the request without touching the shared definition.
    """
    operation, name_member = JOB_OPERATIONS[s["Type"]]
    return operation, {name_member: "job-name-set-by-the-pipeline", **copy.deepcopy(s["Arguments"])}


def all_steps(steps: list) -> Iterator[dict]:
    """Every step, including those nested in condition branches."""
    for step in steps:
        yield step
        if step["Type"] == "Condition":
            yield from all_steps(step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"])


def step(definition: dict, name: str) -> dict:
    matches = [s for s in all_steps(definition["Steps"]) if s["Name"] == name]
    assert matches, f"no step {name}"
    return matches[0]


def resolve_expression(
    value: Any, parameters: dict, execution_id: str = "exec-1", properties: dict | None = None
) -> Any:
    """A minimal evaluator for Get / Std:Join over parameters, execution variables and properties."""
    properties = properties or {}
    if isinstance(value, dict) and "Get" in value:
        path = value["Get"]
        if path.startswith("Parameters."):
            return parameters[path.split(".", 1)[1]]
        if path == "Execution.PipelineExecutionId":
            return execution_id
        if path in properties:
            return properties[path]
        raise KeyError(f"unresolvable Get {path}")
    if isinstance(value, dict) and "Std:Join" in value:
        join = value["Std:Join"]
        return join["On"].join(str(resolve_expression(v, parameters, execution_id, properties)) for v in join["Values"])
    return value


def default_parameters(definition: dict) -> dict:
    return {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}


class NetworkBlocked(AssertionError):
    pass


def block_network(monkeypatch) -> list:
    """Make every non-loopback connect raise; returns the list of attempted addresses."""
    attempts: list = []
    original = socket.socket.connect

    def guarded(self, address, *args):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1")):
            return original(self, address, *args)
        attempts.append(address)
        raise NetworkBlocked(f"network call to {address} while the network is blocked")

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


# Python source that blocks non-loopback sockets in a fresh interpreter (the SDK's import-time
# client and telemetry only show up in a process that has not imported the SDK yet).
BLOCK_SOCKETS_PRELUDE = """
import socket, sys
_attempts = []
_original = socket.socket.connect
def _guarded(self, address, *args):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1")):
        return _original(self, address, *args)
    _attempts.append(address)
    raise OSError("network blocked: %r" % (address,))
socket.socket.connect = _guarded
import atexit
atexit.register(lambda: print("NETWORK-ATTEMPTS=%d %r" % (len(_attempts), _attempts[:3])))
"""
