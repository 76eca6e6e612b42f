"""Check a pipeline's job requests with the start's parameters before StartPipelineExecution.

SageMaker resolves a step's request only when the step starts, so a bad parameter (an OutputUrl
that is not an S3 URI, an InputDataUrl too long for a container argument) fails hours in, after
the steps before it ran. Here each job step's Arguments get the parameters' values (what depends
on other steps' properties stays an expression, which the check skips) and are checked against
botocore's service model, as the local runtime checks them before it runs a step.
"""

from __future__ import annotations

import ast
import re
from typing import Any, Iterator, Mapping, Optional

from processing.kernel.aws_validation import is_pipeline_expression, request_problems
from processing.kernel.hints import suggest

# step type -> (the operation its Arguments are sent to, the job-name member SageMaker fills in)
JOB_OPERATIONS = {
    "Processing": ("CreateProcessingJob", "ProcessingJobName"),
    "Transform": ("CreateTransformJob", "TransformJobName"),
}
# SageMaker's execution ids are 12 characters (an ARN's last part); it stands in for the real one
EXECUTION_ID = "0a1b2c3d4e5f"
_PATH_TOKEN = re.compile(r"\.([A-Za-z0-9_]+)|\[(\d+)\]|\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\]|<key [^>]*>")
_ENUM = re.compile(r"is not one of (?P<choices>\[.*\])$")
_ABOVE = re.compile(r"^(?P<path>\S+): length (?P<size>\d+) is above the maximum (?P<max>\d+)$")


def job_steps(steps: Any) -> Iterator[Mapping[str, Any]]:
    """Every Processing and Transform step, those in a condition's branches too."""
    for body in steps or []:
        if not isinstance(body, Mapping):
            continue
        if body.get("Type") in JOB_OPERATIONS:
            yield body
        if body.get("Type") == "Condition":
            arguments = body.get("Arguments") or {}
            yield from job_steps(arguments.get("IfSteps"))
            yield from job_steps(arguments.get("ElseSteps"))


def resolve_known(value: Any, parameters: Mapping[str, Any]) -> Any:
    """`value` with parameters and the execution id put in; an expression that needs anything else
    (another step's properties, a property file) is left as it is."""
    if is_pipeline_expression(value):
        ((kind, spec),) = value.items()
        if kind == "Get" and isinstance(spec, str):
            if spec.startswith("Parameters.") and spec.split(".", 1)[1] in parameters:
                return parameters[spec.split(".", 1)[1]]
            if spec == "Execution.PipelineExecutionId":
                return EXECUTION_ID
            return value
        if kind == "Std:Join" and isinstance(spec, Mapping) and isinstance(spec.get("Values"), list):
            parts = [resolve_known(item, parameters) for item in spec["Values"]]
            if any(is_pipeline_expression(part) for part in parts):
                return value
            return str(spec.get("On", "")).join(_text(part) for part in parts)
        return value
    if isinstance(value, Mapping):
        return {key: resolve_known(item, parameters) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_known(item, parameters) for item in value]
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _parameters_in(value: Any) -> list[str]:
    """The parameters an (unresolved) definition value reads, in order."""
    found: list[str] = []
    if isinstance(value, Mapping):
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            if value["Get"].startswith("Parameters."):
                found.append(value["Get"].split(".", 1)[1])
        else:
            for item in value.values():
                found.extend(p for p in _parameters_in(item) if p not in found)
    elif isinstance(value, list):
        for item in value:
            found.extend(p for p in _parameters_in(item) if p not in found)
    return found


def _at(value: Any, path: str) -> Any:
    """The part of `value` a problem's path (after the operation's name) names; None when lost."""
    for match in _PATH_TOKEN.finditer(path):
        name, index, key = match.group(1), match.group(2), match.group(3)
        try:
            if name is not None:
                value = value[name]
            elif index is not None:
                value = value[int(index)]
            elif key is not None:
                value = value[ast.literal_eval(key)]
            else:
                return value  # a map's key: the map itself
        except (KeyError, IndexError, TypeError, ValueError, SyntaxError):
            return None
    return value


def _shown(value: Any) -> str:
    text = _text(value)
    return text if len(text) <= 80 else f"{text[:60]}...{text[-12:]}"


def _explained(problem: str, step: str, operation: str, request: Any, unresolved: Any, values: Mapping) -> str:
    path = problem.split(":", 1)[0]
    member = path[len(operation) :] if path.startswith(operation) else ""
    part = _at(unresolved, member) if member else None
    names = _parameters_in(part) if part is not None else []
    if not names:
        return f"step {step}: {problem} (the pipeline definition's own value)"
    name, value = names[0], values.get(names[0])
    text, member = _text(value), member.lstrip(".")
    above = _ABOVE.match(problem)
    if above and len(names) == 1 and value is not None:
        size, limit = int(above.group("size")), int(above.group("max"))
        resolved = _at(request, path[len(operation) :])
        passed = (
            f" as {resolved.replace(text, '<value>')}"
            if isinstance(resolved, str) and text and text in resolved
            else ""
        )
        return (
            f"--param {name}={_shown(value)}: {len(text)} characters, at most {limit - (size - len(text))} fit: step "
            f"{step} passes it{passed} in {operation}'s {member}, which SageMaker limits to {limit} characters; "
            "use a shorter value"
        )
    detail = problem.split(":", 1)[1].strip()
    if text and repr(text) in detail:
        detail = detail.replace(repr(text), "the value")
    listed = _ENUM.search(detail)
    if listed:  # an instance type's list has 200 entries: name the nearest, not all of them
        try:
            choices = [str(c) for c in ast.literal_eval(listed.group("choices"))]
        except (ValueError, SyntaxError):
            choices = []
        near = suggest(text, choices, render=lambda choice: f"--param {name}={choice}")
        detail = f"{detail[: listed.start()]}is not one of the {len(choices)} values botocore's model lists{near}"
    if member.endswith("S3Uri"):
        detail = "it must be an s3:// URI (a local path or file:// URL works on --target local only)"
    return (
        f"--param {name}={_shown(value)}: SageMaker would refuse it in step {step} ({operation}'s {member}): {detail}"
    )


def problems(definition: Mapping[str, Any], parameters: Optional[Mapping[str, Any]] = None) -> list[str]:
    """One line per violation of the service model in the job requests resolved with `parameters`
    (overrides; the definition's defaults for the rest), naming `--param NAME=` when a parameter
    causes it. Empty when every request is valid as far as it is known before the run."""
    values = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters") or []}
    values.update(parameters or {})
    values = {name: value for name, value in values.items() if value is not None}
    steps_of: dict[str, list[str]] = {}  # a line with "step {}" for the step -> the steps it is about
    for body in job_steps(definition.get("Steps")):
        operation, name_member = JOB_OPERATIONS[str(body["Type"])]
        unresolved = body.get("Arguments") or {}
        request = {
            name_member: f"pipelines-{EXECUTION_ID}-{body.get('Name')}"[:63],
            **resolve_known(unresolved, values),
        }
        step = str(body.get("Name"))
        for line in request_lines(step, operation, request, unresolved, values):
            steps = steps_of.setdefault(line.replace(f"step {step}", "step {}", 1), [])
            if step not in steps:
                steps.append(step)
    # one line for a parameter every step passes alike (ProcessingInstanceType), naming the steps
    return [
        line.replace("step {}", f"step{'s' if len(steps) > 1 else ''} {', '.join(steps)}", 1)
        for line, steps in steps_of.items()
    ]


def request_lines(
    step: str,
    operation: str,
    request: Mapping[str, Any],
    unresolved: Any,
    values: Mapping[str, Any],
    local: bool = False,
) -> list[str]:
    """The service model's problems with one step's (resolved) `request`, each a line naming the
    parameter behind it. local: the local runtime's own request, whose S3 URIs may be local paths
    (a file or file:// URL given as InputDataUrl or OutputUrl), so an S3 URI's pattern is not checked."""
    lines: list[str] = []
    for problem in request_problems("sagemaker", operation, dict(request)):
        if local and problem.split(":", 1)[0].endswith("S3Uri") and "does not match the pattern" in problem:
            continue
        line = _explained(problem, step, operation, request, unresolved, values)
        if line not in lines:
            lines.append(line)
    return lines
