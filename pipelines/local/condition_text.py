"""A Condition step's outcome in words, for the run's output: `QualityGate: WAPE 0.99% <=
QualityThreshold 30.00% -> ChampionGate`, `ChampionGate: no champion to compare -> RegisterModel, Deploy`.

Only the conditions that decided the outcome are told (an Or that held: its first true branch;
an And that failed: its first false one), each as a statement that is true of the values, and
the operands are named: a parameter by its name, a property-file value by what its JSON object
says it is (the evaluation report's `metric`), metrics in the kernel's format (shares in percent).
The full expression with every value stays in the step's log and record (executors.describe_condition).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from pipelines.local import expressions as ex
from processing.kernel import contracts
from processing.kernel.metric_format import format_metric

# the operator that holds when the comparison is true, and when it is false
OPERATORS = {
    "Equals": ("=", "!="),
    "GreaterThan": (">", "<="),
    "GreaterThanOrEqualTo": (">=", "<"),
    "LessThan": ("<", ">="),
    "LessThanOrEqualTo": ("<=", ">"),
    "In": ("in", "not in"),
}
# property-file values named by role rather than by path (the metric's name comes from the file)
ROLES = {
    contracts.CHAMPION_LIMIT_PATH: "champion's {metric} x (1 + ChallengerTolerance)",
    contracts.CHAMPION_VALUE_PATH: "champion's {metric}",
}
# champion.status, said as a user would: the ChampionGate compares only a "compared" champion
CHAMPION_STATUS = {
    "none": "no champion to compare",
    "unavailable": "no champion forecast to compare (unavailable)",
    "compared": "champion scored on the same holdout",
}


def summary(conditions: list, outcome: bool, taken: list, ctx: ex.Context) -> str:
    """'<why> -> <steps that run>'; the steps are the taken branch's (nothing runs: 'no steps')."""
    try:
        why = _explain({"Type": "And", "Conditions": conditions}, ctx)
    except (ex.ExpressionError, KeyError, TypeError, ValueError):
        why = "conditions hold" if outcome else "conditions do not hold"
    return f"{why} -> {', '.join(taken) if taken else 'no steps'}"


def _explain(condition: Mapping[str, Any], ctx: ex.Context) -> str:
    kind = condition.get("Type")
    if kind == "Not":
        return _explain(condition.get("Condition") or {}, ctx)
    if kind in ("And", "Or"):
        children = list(condition.get("Conditions") or [])
        values = [ex.evaluate_condition(c, ctx) for c in children]
        if kind == "Or" and any(values):  # the first true branch decided it
            return _explain(children[values.index(True)], ctx)
        if kind == "And" and not all(values):  # the first false one did
            return _explain(children[values.index(False)], ctx)
        return " and ".join(_explain(c, ctx) for c in children) or ("true" if kind == "And" else "false")
    return _leaf(condition, ctx)


def _leaf(condition: Mapping[str, Any], ctx: ex.Context) -> str:
    kind = str(condition.get("Type"))
    holds = ex.evaluate_condition(condition, ctx)
    left_spec = condition.get("LeftValue", condition.get("QueryValue"))
    right_spec = condition.get("RightValue", condition.get("Values"))
    left, right = ex.resolve(left_spec, ctx), ex.resolve(right_spec, ctx)
    if _path(left_spec) == contracts.CHAMPION_STATUS_PATH and str(left) in CHAMPION_STATUS:
        return CHAMPION_STATUS[str(left)]
    metric = _metric_of(left_spec, ctx) or _metric_of(right_spec, ctx)
    operator = OPERATORS.get(kind, (kind, f"not {kind}"))[0 if holds else 1]
    return f"{_operand(left_spec, left, metric, ctx)} {operator} {_operand(right_spec, right, metric, ctx)}"


def _path(spec: Any) -> Optional[str]:
    if isinstance(spec, Mapping) and isinstance(spec.get("Std:JsonGet"), Mapping):
        return str(spec["Std:JsonGet"].get("Path") or "")
    return None


def _metric_of(spec: Any, ctx: ex.Context) -> Optional[str]:
    """The metric a property-file value is of: the `metric` beside it in its JSON object."""
    path = _path(spec)
    if not path or "." not in path:
        return None
    sibling = {"Std:JsonGet": {**spec["Std:JsonGet"], "Path": path.rsplit(".", 1)[0] + ".metric"}}
    try:
        metric = ex.resolve(sibling, ctx)
    except (ex.ExpressionError, KeyError, TypeError):
        return None
    return str(metric) if isinstance(metric, str) and metric else None


def _operand(spec: Any, value: Any, metric: Optional[str], ctx: ex.Context) -> str:
    shown = _value(value, metric)
    if isinstance(spec, Mapping) and isinstance(spec.get("Get"), str) and spec["Get"].startswith("Parameters."):
        return f"{spec['Get'].split('.', 1)[1]} {shown}"
    path = _path(spec)
    if path is not None:
        role = (
            ROLES[path].format(metric=metric or "metric")
            if path in ROLES
            else metric
            if _metric_of(spec, ctx)
            else path
        )
        return f"{role} {shown}"
    return shown


def _value(value: Any, metric: Optional[str]) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return format_metric(metric, value) if metric else f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v, metric) for v in value) + "]"
    return repr(value)
