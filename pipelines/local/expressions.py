"""Pipeline definition expressions, resolved the way SageMaker Pipelines resolves them.

Parameters (defaults + per-execution overrides), execution variables, `Get` property
paths, `Std:Join`, `Std:JsonGet` and conditions. Errors name the step, the expression and
what exists instead, because a wrong path here is a wrong path on AWS too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from processing.kernel.hints import suggest

EXPRESSION_KEYS = ("Get", "Std:Join", "Std:JsonGet")
PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")
EXECUTION_VARIABLES = (
    "PipelineExecutionId",
    "PipelineExecutionArn",
    "StartDateTime",
    "CurrentDateTime",
    "PipelineName",
    "PipelineArn",
    "TrainingJobName",
    "ProcessingJobName",
)


class ExpressionError(ValueError):
    """An expression in the definition cannot be resolved; the message says where and why."""


class ParameterError(ValueError):
    """A parameter override is unknown or has the wrong type."""


# --- parameters ----------------------------------------------------------------------------
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def coerce_parameter(name: str, kind: str, value: Any) -> Any:
    """A value of the parameter's declared type; raises ParameterError saying what is accepted."""
    try:
        if kind == "String":
            if isinstance(value, (dict, list)):
                raise ValueError
            return value if isinstance(value, str) else json.dumps(value) if isinstance(value, bool) else str(value)
        if kind == "Integer":
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, int):
                return value
            return int(str(value).strip())
        if kind == "Float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "Boolean":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError
    except (TypeError, ValueError):
        examples = {
            "String": "any text",
            "Integer": "a whole number such as 14",
            "Float": "a number such as 0.3",
            "Boolean": "true or false",
        }
        raise ParameterError(f"parameter {name} is of type {kind}: expected {examples[kind]}, got {value!r}") from None
    raise ParameterError(f"parameter {name} has unsupported type {kind!r} (known: {', '.join(PARAMETER_TYPES)})")


def resolve_parameters(definition: Mapping[str, Any], overrides: Optional[Mapping[str, Any]] = None) -> dict:
    """Defaults from the definition, replaced by `overrides` (checked against names and types)."""
    declared = {p["Name"]: p for p in definition.get("Parameters") or []}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(name + suggest(name, declared) for name in unknown)}; "
            "this pipeline's parameters are: " + ", ".join(sorted(declared))
        )
    values = {}
    for name, spec in declared.items():
        kind = spec.get("Type", "String")
        if name in overrides:
            values[name] = coerce_parameter(name, kind, overrides[name])
        elif "DefaultValue" in spec and spec["DefaultValue"] is not None:
            values[name] = coerce_parameter(name, kind, spec["DefaultValue"])
        else:
            raise ParameterError(f"parameter {name} has no default value; pass --param {name}=<{kind.lower()}>")
        enum = spec.get("EnumValues")
        if enum and values[name] not in enum:
            raise ParameterError(f"parameter {name} must be one of {enum}, got {values[name]!r}")
    return values


# --- property paths ------------------------------------------------------------------------
_TOKEN = re.compile(r"\.?([A-Za-z0-9_\-:$]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")
_NAME_KEYS = ("OutputName", "InputName", "ChannelName", "Name", "MetricName", "Key", "PropertyFileName")


class Key(str):
    """A bracketed key in a path (`Outputs['train']`), rendered back the same way."""


def parse_path(path: str) -> list:
    """ "A.B['x'][0]" -> ['A', 'B', 'x', 0] (ints index lists; strings are keys or names)."""
    tokens: list = []
    position = 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        if not match or match.end() == position:
            raise ExpressionError(f"cannot parse property path {path!r} at character {position}: {path[position:]!r}")
        name, index, quoted, dquoted = match.groups()
        tokens.append(
            int(index)
            if index is not None
            else name
            if name is not None
            else Key(quoted if quoted is not None else dquoted)
        )
        position = match.end()
    return tokens


def _describe_keys(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(map(str, value)) or "(nothing)"
    if isinstance(value, list):
        names = [_element_name(v) for v in value]
        named = [n for n in names if n is not None]
        return (
            (f"names {', '.join(repr(n) for n in named)}" if named else "")
            + (" / " if named else "")
            + f"indices 0..{len(value) - 1}"
            if value
            else "an empty list"
        )
    return f"the value {value!r}"


def _element_name(element: Any) -> Optional[str]:
    if isinstance(element, Mapping):
        for key in _NAME_KEYS:
            if isinstance(element.get(key), str):
                return element[key]
    return None


def walk(value: Any, tokens: list, describe: str) -> Any:
    """Follow `tokens` into nested dicts/lists; lists accept an index or an element's name."""
    current = value
    walked: list[str] = []
    for token in tokens:
        where = _render(walked) or "the top level"
        if isinstance(current, Mapping) and isinstance(token, str) and token in current:
            current = current[token]
        elif isinstance(current, list) and isinstance(token, int) and -len(current) <= token < len(current):
            current = current[token]
        elif isinstance(current, list) and isinstance(token, str) and any(_element_name(e) == token for e in current):
            current = next(e for e in current if _element_name(e) == token)
        else:
            raise ExpressionError(
                f"{describe}: nothing at {_render(walked + [token])!r}; at {where} there is {_describe_keys(current)}"
            )
        walked.append(token)
    return current


def _render(tokens: list) -> str:
    text = ""
    for token in tokens:
        if isinstance(token, int):
            text += f"[{token}]"
        elif isinstance(token, Key) or (text and not re.fullmatch(r"[A-Za-z0-9_]+", token)):
            text += f"['{token}']"
        else:
            text += ("." if text else "") + token
    return text


def json_path_tokens(path: str) -> list:
    """JsonGet paths: 'a.b[0].c' (a leading '$.' is accepted)."""
    text = path[2:] if path.startswith("$.") else path
    return parse_path(text)


# --- resolution ----------------------------------------------------------------------------
@dataclass
class Context:
    """What expressions can see during one execution.

    `steps` maps step name -> that step's properties (its Describe* response); `property_file`
    reads a step's property file and returns the parsed JSON; `step_types` lets errors say
    whether a referenced step exists at all or simply has not run.
    """

    parameters: dict
    execution: dict
    steps: dict = field(default_factory=dict)
    property_file: Optional[Callable[[str, str], Any]] = None
    json_reader: Optional[Callable[[str], Any]] = None
    step_names: tuple = ()
    current_step: str = ""


def _where(ctx: Context) -> str:
    return f"step {ctx.current_step}: " if ctx.current_step else ""


def resolve_get(path: str, ctx: Context) -> Any:
    tokens = parse_path(path)
    if not tokens:
        raise ExpressionError(f"{_where(ctx)}empty Get path")
    head = tokens[0]
    if head == "Parameters":
        if len(tokens) != 2 or tokens[1] not in ctx.parameters:
            raise ExpressionError(
                f"{_where(ctx)}Get {path!r}: no such parameter; parameters are " + ", ".join(sorted(ctx.parameters))
            )
        return ctx.parameters[tokens[1]]
    if head == "Execution":
        if len(tokens) != 2 or tokens[1] not in ctx.execution:
            raise ExpressionError(
                f"{_where(ctx)}Get {path!r}: no such execution variable; known: " + ", ".join(sorted(ctx.execution))
            )
        return ctx.execution[tokens[1]]
    if head == "Steps":
        if len(tokens) < 3:
            raise ExpressionError(f"{_where(ctx)}Get {path!r}: expected Steps.<StepName>.<Property>")
        step = tokens[1]
        if step not in ctx.steps:
            if ctx.step_names and step not in ctx.step_names:
                raise ExpressionError(
                    f"{_where(ctx)}Get {path!r}: there is no step {step!r}; steps are " + ", ".join(ctx.step_names)
                )
            raise ExpressionError(
                f"{_where(ctx)}Get {path!r}: step {step!r} has not run (yet) in this execution; "
                "add it to DependsOn or reference it only from steps after it"
            )
        return walk(ctx.steps[step], tokens[2:], f"{_where(ctx)}Get {path!r} (properties of step {step})")
    raise ExpressionError(f"{_where(ctx)}Get {path!r}: a path starts with Parameters., Execution. or Steps.")


def _join_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def resolve_json_get(spec: Mapping[str, Any], ctx: Context) -> Any:
    json_path = spec.get("Path")
    if not isinstance(json_path, str):
        raise ExpressionError(f"{_where(ctx)}Std:JsonGet needs a string Path, got {json_path!r}")
    if "PropertyFile" in spec:
        reference = spec["PropertyFile"]
        get = reference.get("Get") if isinstance(reference, Mapping) else None
        tokens = parse_path(get) if isinstance(get, str) else []
        if len(tokens) != 4 or tokens[0] != "Steps" or tokens[2] != "PropertyFiles":
            raise ExpressionError(
                f"{_where(ctx)}Std:JsonGet PropertyFile must be "
                f"{{'Get': 'Steps.<Step>.PropertyFiles.<Name>'}}, got {reference!r}"
            )
        step, name = tokens[1], tokens[3]
        if ctx.property_file is None:
            raise ExpressionError(f"{_where(ctx)}Std:JsonGet: no property files available")
        document, source = ctx.property_file(step, name)
        describe = f"{_where(ctx)}Std:JsonGet {json_path!r} in property file {name} of step {step} ({source})"
    elif "S3Uri" in spec:
        uri = resolve(spec["S3Uri"], ctx)
        if ctx.json_reader is None:
            raise ExpressionError(f"{_where(ctx)}Std:JsonGet: cannot read {uri}")
        document = ctx.json_reader(uri)
        describe = f"{_where(ctx)}Std:JsonGet {json_path!r} in {uri}"
    else:
        raise ExpressionError(f"{_where(ctx)}Std:JsonGet needs PropertyFile or S3Uri, got keys {sorted(spec)}")
    value = walk(document, json_path_tokens(json_path), describe)
    if isinstance(value, (dict, list)):
        raise ExpressionError(
            f"{describe}: resolves to a {'list' if isinstance(value, list) else 'JSON object'}; "
            "JsonGet returns primitive values only (string, number, boolean)"
        )
    return value


def is_expression(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and next(iter(value)) in EXPRESSION_KEYS


def resolve(value: Any, ctx: Context) -> Any:
    """`value` with every expression replaced by its value (recursively)."""
    if is_expression(value):
        ((kind, spec),) = value.items()
        if kind == "Get":
            if not isinstance(spec, str):
                raise ExpressionError(f"{_where(ctx)}Get expects a string path, got {spec!r}")
            return resolve_get(spec, ctx)
        if kind == "Std:Join":
            if not isinstance(spec, Mapping) or not isinstance(spec.get("Values"), list):
                raise ExpressionError(f"{_where(ctx)}Std:Join expects {{'On': str, 'Values': [...]}}, got {spec!r}")
            return str(spec.get("On", "")).join(_join_text(resolve(v, ctx)) for v in spec["Values"])
        return resolve_json_get(spec, ctx)
    if isinstance(value, Mapping):
        return {key: resolve(item, ctx) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, ctx) for item in value]
    return value


# --- conditions ----------------------------------------------------------------------------
_COMPARISONS = {
    "Equals": lambda a, b: a == b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanOrEqualTo": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanOrEqualTo": lambda a, b: a <= b,
}


def _comparable(left: Any, right: Any) -> tuple:
    """Numbers compare as numbers; a numeric string facing a number is read as a number."""

    def number(x):
        if isinstance(x, bool):
            return None
        if isinstance(x, (int, float)):
            return x
        try:
            return float(x)
        except (TypeError, ValueError):
            return None

    if isinstance(left, (int, float)) or isinstance(right, (int, float)):
        a, b = number(left), number(right)
        if a is not None and b is not None:
            return a, b
    return left, right


def evaluate_condition(condition: Mapping[str, Any], ctx: Context) -> bool:
    kind = condition.get("Type")
    if kind in _COMPARISONS:
        left, right = resolve(condition.get("LeftValue"), ctx), resolve(condition.get("RightValue"), ctx)
        a, b = _comparable(left, right)
        try:
            return bool(_COMPARISONS[kind](a, b))
        except TypeError:
            raise ExpressionError(f"{_where(ctx)}condition {kind} cannot compare {left!r} with {right!r}") from None
    if kind == "In":
        query = resolve(condition.get("QueryValue"), ctx)
        values = [resolve(v, ctx) for v in condition.get("Values") or []]
        return any(_comparable(query, v)[0] == _comparable(query, v)[1] for v in values)
    if kind == "Not":
        return not evaluate_condition(condition["Condition"], ctx)
    if kind == "Or":
        return any(evaluate_condition(c, ctx) for c in condition.get("Conditions") or [])
    if kind == "And":
        return all(evaluate_condition(c, ctx) for c in condition.get("Conditions") or [])
    raise ExpressionError(
        f"{_where(ctx)}unknown condition type {kind!r}; known: " + ", ".join(list(_COMPARISONS) + ["In", "Not", "Or"])
    )


def evaluate_conditions(conditions: list, ctx: Context) -> bool:
    """A condition step's Conditions list is true when every condition is (logical AND)."""
    return all(evaluate_condition(c, ctx) for c in conditions)


# --- static references ----------------------------------------------------------------------
def referenced_gets(value: Any) -> list[str]:
    """Every Get path in a (nested) definition value, JsonGet property-file references included."""
    found: list[str] = []
    if isinstance(value, Mapping):
        if set(value) == {"Get"} and isinstance(value["Get"], str):
            found.append(value["Get"])
        else:
            for item in value.values():
                found.extend(referenced_gets(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(referenced_gets(item))
    return found


def referenced_steps(value: Any) -> list[str]:
    """Names of the steps whose properties `value` reads (data dependencies)."""
    steps = []
    for path in referenced_gets(value):
        tokens = parse_path(path)
        if len(tokens) >= 2 and tokens[0] == "Steps" and tokens[1] not in steps:
            steps.append(tokens[1])
    return steps
