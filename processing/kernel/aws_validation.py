"""Validate an AWS request against botocore's service model before it is sent.

botocore's own ParamValidator skips max lengths, patterns and enums; Autopilot and the
pipeline service reject those server-side, after the user has waited. This walker checks
types, required and unknown members, enums, regex patterns and length/range bounds, and
accepts pipeline expressions (Get, Std:Join, Std:JsonGet) where a value will be resolved
at execution time.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any, Iterable, Optional

import botocore.session

try:  # botocore's patterns are Java regexes (\\p{L}, \\p{Alnum}); `regex` understands them
    import regex as _re
except ImportError:  # inside a processing container: fall back, skipping what `re` cannot compile
    import re as _re

PIPELINE_EXPRESSION_KEYS = frozenset({"Get", "Std:Join", "Std:JsonGet"})
_SESSION = None


class RequestValidationError(ValueError):
    """The request breaks the service model; `.problems` lists every violation."""

    def __init__(self, operation: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"{operation}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))


def _service_model(service: str):
    global _SESSION
    if _SESSION is None:
        _SESSION = botocore.session.get_session()
    return _SESSION.get_service_model(service)


def client_service_model(client: Any) -> Any:
    """A boto3 client's service model (None for anything else, e.g. a test double): a step that checks
    its requests against it parses SageMaker's model once instead of twice (0.05 s of CPU)."""
    return getattr(getattr(client, "meta", None), "service_model", None)


def is_pipeline_expression(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in PIPELINE_EXPRESSION_KEYS


def request_problems(service: str, operation: str, params: dict, model: Any = None) -> list[str]:
    """Every violation of `operation`'s input shape in `params` (empty when valid).

    model: the service model to check against, when the caller has one (a client's
    `meta.service_model`): loading SageMaker's again costs a step ~0.1 s of CPU."""
    shape = (model or _service_model(service)).operation_model(operation).input_shape
    problems: list[str] = []
    _check(shape, params, operation, problems)
    return problems


def validate_request(service: str, operation: str, params: dict, model: Any = None) -> None:
    problems = request_problems(service, operation, params, model)
    if problems:
        raise RequestValidationError(operation, problems)


def _bounds(shape, size: float, what: str, path: str, problems: list[str]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        problems.append(f"{path}: {what} {size} is below the minimum {low}")
    if high is not None and size > high:
        problems.append(f"{path}: {what} {size} is above the maximum {high}")


def _check(shape, value: Any, path: str, problems: list[str]) -> None:
    if is_pipeline_expression(value):
        return  # resolved when the pipeline runs
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object ({shape.name}), got {type(value).__name__}")
            return
        for name in shape.required_members:
            if name not in value:
                problems.append(f"{path}: missing required member {name}")
        if getattr(shape, "is_tagged_union", False) and len(value) != 1:  # AutoMLProblemTypeConfig, ...
            problems.append(
                f"{path}: exactly one member of {shape.name} must be set, got "
                f"{', '.join(value) if value else 'none'} (one of: {', '.join(shape.members)})"
            )
        for name, member_value in value.items():
            if name not in shape.members:
                problems.append(f"{path}: unknown member {name} (valid: {', '.join(shape.members)})")
                continue
            _check(shape.members[name], member_value, f"{path}.{name}", problems)
    elif kind == "list":
        if not isinstance(value, (list, tuple)):
            problems.append(f"{path}: expected a list ({shape.name}), got {type(value).__name__}")
            return
        _bounds(shape, len(value), "length", path, problems)
        for index, item in enumerate(value):
            _check(shape.member, item, f"{path}[{index}]", problems)
    elif kind == "map":
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map ({shape.name}), got {type(value).__name__}")
            return
        _bounds(shape, len(value), "size", path, problems)
        for key, item in value.items():
            _check(shape.key, key, f"{path}<key {key!r}>", problems)
            _check(shape.value, item, f"{path}[{key!r}]", problems)
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: expected a string ({shape.name}), got {type(value).__name__} {value!r}")
            return
        _bounds(shape, len(value), "length", path, problems)
        if shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} is not one of {shape.enum}")
        pattern = _compiled(shape.metadata.get("pattern"))
        if pattern is not None and not pattern.fullmatch(value):
            problems.append(f"{path}: {value!r} does not match the pattern {shape.metadata['pattern']}")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{path}: expected an integer ({shape.name}), got {type(value).__name__} {value!r}")
            return
        _bounds(shape, value, "value", path, problems)
    elif kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{path}: expected a number ({shape.name}), got {type(value).__name__} {value!r}")
            return
        _bounds(shape, value, "value", path, problems)
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: expected a boolean ({shape.name}), got {type(value).__name__} {value!r}")
    elif kind == "timestamp":
        if not isinstance(value, (datetime.datetime, datetime.date, str, int, float)):
            problems.append(f"{path}: expected a timestamp, got {type(value).__name__}")
    elif kind == "blob":
        if not isinstance(value, (bytes, bytearray, str)) and not hasattr(value, "read"):
            problems.append(f"{path}: expected bytes, got {type(value).__name__}")


@functools.lru_cache(maxsize=None)
def _compiled(pattern: Optional[str]):
    if not pattern:
        return None
    # Java's surrogate-pair range for "any character outside the BMP"
    pattern = pattern.replace("\\uD800\\uDC00-\\uDBFF\\uDFFF", "\\U00010000-\\U0010FFFF")
    try:
        return _re.compile(pattern, flags=_re.DOTALL)
    except _re.error:
        return None  # a pattern this engine cannot read is left to the service


def operations(service: str) -> Iterable[str]:
    return _service_model(service).operation_names
