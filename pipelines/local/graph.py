"""The pipeline definition as a graph: its steps, their dependencies, and the checks made before anything runs.

`load_definition` flattens condition branches, resolves every dependency (DependsOn, Get
references, the branch's condition), orders the steps (dependencies first, definition order
among independent ones) and rejects what cannot run: unknown references, cycles, unsupported
step types, property paths the step's Describe* output does not have, bad CacheConfigs.
"""

from __future__ import annotations

import functools
import heapq
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional

from pipelines.local import caching
from pipelines.local import expressions as ex
from processing.kernel.hints import suggest

SUPPORTED_TYPES = ("Processing", "Transform", "Model", "RegisterModel", "Lambda", "Condition", "Fail")

# Which Describe* response a step's properties follow (used to check Get paths at load time)
DESCRIBE_OPERATION = {
    "Processing": "DescribeProcessingJob",
    "Transform": "DescribeTransformJob",
    "Model": "DescribeModel",
    "RegisterModel": "DescribeModelPackage",
    "Training": "DescribeTrainingJob",
}


class DefinitionError(ValueError):
    """The definition cannot run: unknown references, cycles, unsupported steps, bad paths."""


# --- loading and checking the definition -------------------------------------------------
@dataclass
class StepSpec:
    name: str
    type: str
    body: dict  # the step's JSON from the definition
    order: int  # position in the flattened definition
    depends_on: list = field(default_factory=list)
    condition: Optional[str] = None  # the Condition step this step is a branch of
    branch: Optional[str] = None  # "IfSteps" or "ElseSteps"

    @property
    def display_name(self) -> str:
        return self.body.get("DisplayName") or self.name


@dataclass
class PipelineGraph:
    steps: dict  # name -> StepSpec
    order: list  # names in execution order

    def dependents_closure(self, names: Iterable[str]) -> set:
        found, frontier = set(), list(names)
        while frontier:
            current = frontier.pop()
            for spec in self.steps.values():
                if current in spec.depends_on and spec.name not in found:
                    found.add(spec.name)
                    frontier.append(spec.name)
        return found


def _flatten(steps: list, order: list, condition: Optional[str] = None, branch: Optional[str] = None) -> list:
    specs = []
    for body in steps or []:
        if not isinstance(body, Mapping) or not body.get("Name") or not body.get("Type"):
            raise DefinitionError(f"every step needs a Name and a Type; got {str(body)[:200]}")
        spec = StepSpec(
            name=body["Name"], type=body["Type"], body=dict(body), order=len(order), condition=condition, branch=branch
        )
        order.append(spec.name)
        specs.append(spec)
        if spec.type == "Condition":
            arguments = body.get("Arguments") or {}
            for key in ("IfSteps", "ElseSteps"):
                specs.extend(_flatten(arguments.get(key) or [], order, spec.name, key))
    return specs


def _own_content(spec: StepSpec) -> Any:
    """The part of a step that can reference other steps (a condition's branches excluded)."""
    if spec.type == "Condition":
        return (spec.body.get("Arguments") or {}).get("Conditions") or []
    return {k: v for k, v in spec.body.items() if k not in ("Name", "DependsOn")}


def load_definition(definition: Any) -> PipelineGraph:
    """Parse and check a definition: names, step types, references, cycles, property paths."""
    if isinstance(definition, (str, bytes)):
        definition = json.loads(definition)
    if not isinstance(definition, Mapping) or not isinstance(definition.get("Steps"), list):
        raise DefinitionError("not a pipeline definition: expected a JSON object with a 'Steps' list")
    names: list = []
    specs = _flatten(definition["Steps"], names)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DefinitionError(f"duplicate step name(s): {', '.join(duplicates)}")
    steps = {s.name: s for s in specs}
    problems = []
    for spec in specs:
        if spec.type not in SUPPORTED_TYPES:
            problems.append(
                f"step {spec.name}: type {spec.type} is not supported by the local runtime "
                f"(supported: {', '.join(SUPPORTED_TYPES)})"
            )
        explicit = spec.body.get("DependsOn") or []
        for ref in explicit:
            if ref not in steps:
                problems.append(
                    f"step {spec.name}: DependsOn names unknown step {ref!r}; steps are "
                    + ", ".join(names)
                    + suggest(ref, names)
                )
        try:
            data = ex.referenced_steps(_own_content(spec))
        except ex.ExpressionError as error:
            problems.append(f"step {spec.name}: {error}")
            data = []
        for ref in data:
            if ref not in steps:
                problems.append(
                    f"step {spec.name}: references unknown step {ref!r} in a Get; steps are "
                    + ", ".join(names)
                    + suggest(ref, names)
                )
        deps = [d for d in list(explicit) + data if d in steps and d != spec.name]
        if spec.condition:
            deps.append(spec.condition)
        spec.depends_on = list(dict.fromkeys(deps))
        problem = caching.check(spec.body)
        if problem:
            problems.append(problem)
    if problems:
        raise DefinitionError("the definition cannot run:\n  " + "\n  ".join(problems))
    order = _topological(steps)
    problems = check_property_paths(steps)
    if problems:
        raise DefinitionError("wrong property reference(s):\n  " + "\n  ".join(problems))
    return PipelineGraph(steps=steps, order=order)


def _topological(steps: dict) -> list:
    indegree = {name: len(spec.depends_on) for name, spec in steps.items()}
    ready = [(spec.order, name) for name, spec in steps.items() if indegree[name] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for spec in steps.values():
            if name in spec.depends_on:
                indegree[spec.name] -= 1
                if indegree[spec.name] == 0:
                    heapq.heappush(ready, (spec.order, spec.name))
    if len(order) < len(steps):
        stuck = [n for n in steps if n not in order]
        cycle = _find_cycle(steps, stuck)
        raise DefinitionError("the steps depend on each other in a cycle: " + " -> ".join(cycle))
    return order


def _find_cycle(steps: dict, stuck: list) -> list:
    path: list = []
    current = stuck[0]
    while current not in path:
        path.append(current)
        current = next(d for d in steps[current].depends_on if d in stuck)
    return path[path.index(current) :] + [current]


# --- static property path checks (botocore output shapes) -------------------------------
_SHAPE_CACHE: dict = {}


def _output_shape(operation: str):
    if operation not in _SHAPE_CACHE:
        _SHAPE_CACHE[operation] = _sagemaker_model().operation_model(operation).output_shape
    return _SHAPE_CACHE[operation]


@functools.lru_cache(maxsize=1)
def _sagemaker_model():
    """The SageMaker service model, loaded once per process (a new session per operation reloaded its
    JSON: ~0.2 s of CPU each, three operations per definition); through the request validator's
    session, so the loopback API's validation reuses the parsed JSON instead of reading it again."""
    from processing.kernel.aws_validation import _service_model

    return _service_model("sagemaker")


def _names_in(value: Any) -> Optional[list]:
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        names = [ex._element_name(v) for v in value]
        if all(isinstance(n, str) for n in names):
            return names
    return None


def check_property_path(spec: StepSpec, tokens: list) -> Optional[str]:
    """Why `Steps.<spec.name>.<tokens>` is not a property of that step (None when it is)."""
    rendered = f"Steps.{spec.name}." + ex._render(tokens)
    if spec.type == "Condition":
        return None if tokens == ["Outcome"] else f"{rendered}: a Condition step only has the property Outcome"
    if spec.type == "Lambda":
        outputs = [o.get("OutputName") for o in spec.body.get("OutputParameters") or []]
        if len(tokens) == 2 and tokens[0] == "OutputParameters" and tokens[1] in outputs:
            return None
        return (
            f"{rendered}: Lambda step {spec.name} has properties OutputParameters['<name>'] for its "
            f"OutputParameters: {', '.join(map(repr, outputs)) or 'none declared'}"
        )
    if spec.type == "Fail":
        return f"{rendered}: a Fail step has no properties"
    operation = DESCRIBE_OPERATION.get(spec.type)
    if operation is None:
        return None
    shape = _output_shape(operation)
    arguments: Any = spec.body.get("Arguments") or {}
    walked: list = []
    for token in tokens:
        where = ex._render(walked) or operation
        if shape.type_name == "structure":
            if not isinstance(token, str) or token not in shape.members:
                return f"{rendered}: {where} has no member {token!r}; members are " + ", ".join(shape.members)
            shape = shape.members[token]
            arguments = arguments.get(token) if isinstance(arguments, Mapping) else None
        elif shape.type_name == "list":
            names = _names_in(arguments)
            if isinstance(token, str) and names is not None and token not in names:
                return f"{rendered}: {where} has no entry named {token!r}; it has " + ", ".join(map(repr, names))
            if isinstance(arguments, list):
                if isinstance(token, int):
                    arguments = arguments[token] if -len(arguments) <= token < len(arguments) else None
                else:
                    arguments = next((a for a in arguments if ex._element_name(a) == token), None)
            else:
                arguments = None
            shape = shape.member
        elif shape.type_name == "map":
            shape = shape.value
            arguments = arguments.get(token) if isinstance(arguments, Mapping) else None
        else:
            return f"{rendered}: {where} is a {shape.type_name} value; it has no property {token!r}"
        walked.append(token)
    return None


def check_property_paths(steps: dict) -> list:
    problems = []
    for spec in steps.values():
        for path in ex.referenced_gets(_own_content(spec)):
            tokens = ex.parse_path(path)
            if len(tokens) < 3 or tokens[0] != "Steps" or tokens[1] not in steps:
                continue
            target = steps[tokens[1]]
            if tokens[2] == "PropertyFiles":
                files = [f.get("PropertyFileName") for f in target.body.get("PropertyFiles") or []]
                if len(tokens) != 4 or tokens[3] not in files:
                    problems.append(
                        f"step {spec.name}: {path}: step {target.name} declares property files "
                        + (", ".join(map(repr, files)) or "none")
                    )
                continue
            problem = check_property_path(target, tokens[2:])
            if problem:
                problems.append(f"step {spec.name}: {problem}")
    for spec in steps.values():
        outputs = [
            o.get("OutputName")
            for o in ((spec.body.get("Arguments") or {}).get("ProcessingOutputConfig") or {}).get("Outputs") or []
        ]
        for pf in spec.body.get("PropertyFiles") or []:
            if spec.type == "Processing" and pf.get("OutputName") not in outputs:
                problems.append(
                    f"step {spec.name}: property file {pf.get('PropertyFileName')} reads output "
                    f"{pf.get('OutputName')!r}, but the step's outputs are " + (", ".join(map(repr, outputs)) or "none")
                )
    return problems


__all__ = [
    "DefinitionError",
    "StepSpec",
    "PipelineGraph",
    "load_definition",
    "check_property_path",
    "check_property_paths",
    "SUPPORTED_TYPES",
    "DESCRIBE_OPERATION",
]
