"""The embedded local runtime: executes a SageMaker pipeline definition JSON on this machine.

It runs the exact JSON that would be upserted to SageMaker, so a wrong property path, a
missing step reference or a bad JsonGet fails here, offline, in seconds. Steps run one at
a time in dependency order (definition order among independent steps):

- Processing: the step's entrypoint as a subprocess run by the processing image's environment
  (pipelines/local/step_env.py: its Python version and pins, the step's requirements overlay,
  only the code bundle importable), with /opt/ml/processing mapped to a per-step folder, inputs
  copied from the local object store and outputs copied back to their S3 destinations, the
  definition's environment; their boto3 reaches the SageMaker API this runtime serves on
  loopback for the execution (pipelines.local.aws_api), with the local AutoML jobs, registry
  and models behind it;
- Transform / Model / RegisterModel: the local SageMaker client (pipelines.local.sagemaker);
- Lambda: the deploy handler, in-process, within the Lambda step's 10 minutes;
- Condition and Fail with SageMaker's semantics (the branch not taken does not run).

Every execution is recorded under <FORECAST_HOME>/executions/<id>/ (execution.json, step
logs, an HTML report).
"""
from __future__ import annotations

import contextlib
import datetime
import heapq
import io
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from pipelines.local import caching, limits, supervision
from pipelines.local import expressions as ex
from pipelines.local.report import format_duration
from pipelines.local.store import atomic_write_bytes, copy_in, copy_out, local_path
from processing.kernel import contracts
from processing.kernel.settings import ENVIRONMENT, Settings, ensure_home

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SUPPORTED_TYPES = ("Processing", "Transform", "Model", "RegisterModel", "Lambda", "Condition", "Fail")
PROCESSING_PREFIX = contracts.PROCESSING_ROOT
LOG_TAIL_LINES = 30
SEED_FUTURE_DAYS = 14                        # the training pipeline's default ForecastHorizon
HEARTBEAT_SECONDS = 30                       # a quiet step still shows it is alive
EXIT_BAD_INPUT = 2                             # the step scripts' code for input they refuse
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143                          # 128 + SIGTERM
# OpenMP threads that spin while waiting make LightGBM 50x slower when the cores are shared
# (measured: 250 rounds on 8,500 rows, 2 threads, busy machine: 96 s spinning, 2 s passive).
# Local runs share the machine with the user's other work, so waiting threads sleep instead.
THREADING_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}

# Step statuses (SageMaker's names, plus NotExecuted for steps that never started)
EXECUTING, SUCCEEDED, FAILED, STOPPED, NOT_EXECUTED = "Executing", "Succeeded", "Failed", "Stopped", "NotExecuted"

# Which Describe* response a step's properties follow (used to check Get paths at load time)
DESCRIBE_OPERATION = {"Processing": "DescribeProcessingJob", "Transform": "DescribeTransformJob",
                      "Model": "DescribeModel", "RegisterModel": "DescribeModelPackage",
                      "Training": "DescribeTrainingJob"}


class DefinitionError(ValueError):
    """The definition cannot run: unknown references, cycles, unsupported steps, bad paths."""


class StepFailed(RuntimeError):
    """A step failed; the message is its failure reason (exit_code: the step process's, when it ran one)."""

    def __init__(self, message: str, exit_code: Optional[int] = None):
        super().__init__(message)
        self.exit_code = exit_code


# --- loading and checking the definition -------------------------------------------------
@dataclass
class StepSpec:
    name: str
    type: str
    body: dict                       # the step's JSON from the definition
    order: int                       # position in the flattened definition
    depends_on: list = field(default_factory=list)
    condition: Optional[str] = None  # the Condition step this step is a branch of
    branch: Optional[str] = None     # "IfSteps" or "ElseSteps"

    @property
    def display_name(self) -> str:
        return self.body.get("DisplayName") or self.name


@dataclass
class PipelineGraph:
    steps: dict                      # name -> StepSpec
    order: list                      # names in execution order

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
        spec = StepSpec(name=body["Name"], type=body["Type"], body=dict(body), order=len(order),
                        condition=condition, branch=branch)
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
            problems.append(f"step {spec.name}: type {spec.type} is not supported by the local runtime "
                            f"(supported: {', '.join(SUPPORTED_TYPES)})")
        explicit = spec.body.get("DependsOn") or []
        for ref in explicit:
            if ref not in steps:
                problems.append(f"step {spec.name}: DependsOn names unknown step {ref!r}; steps are "
                                + ", ".join(names) + _did_you_mean(ref, names))
        try:
            data = ex.referenced_steps(_own_content(spec))
        except ex.ExpressionError as error:
            problems.append(f"step {spec.name}: {error}")
            data = []
        for ref in data:
            if ref not in steps:
                problems.append(f"step {spec.name}: references unknown step {ref!r} in a Get; steps are "
                                + ", ".join(names) + _did_you_mean(ref, names))
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


def _did_you_mean(name: str, candidates: list) -> str:
    import difflib

    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


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
    return path[path.index(current):] + [current]


# --- static property path checks (botocore output shapes) -------------------------------
_SHAPE_CACHE: dict = {}


def _output_shape(operation: str):
    if operation not in _SHAPE_CACHE:
        import botocore.session

        model = botocore.session.get_session().get_service_model("sagemaker")
        _SHAPE_CACHE[operation] = model.operation_model(operation).output_shape
    return _SHAPE_CACHE[operation]


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
        return (f"{rendered}: Lambda step {spec.name} has properties OutputParameters['<name>'] for its "
                f"OutputParameters: {', '.join(map(repr, outputs)) or 'none declared'}")
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
                return (f"{rendered}: {where} has no member {token!r}; members are "
                        + ", ".join(shape.members))
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
                    problems.append(f"step {spec.name}: {path}: step {target.name} declares property files "
                                    + (", ".join(map(repr, files)) or "none"))
                continue
            problem = check_property_path(target, tokens[2:])
            if problem:
                problems.append(f"step {spec.name}: {problem}")
    for spec in steps.values():
        outputs = [o.get("OutputName") for o in
                   ((spec.body.get("Arguments") or {}).get("ProcessingOutputConfig") or {}).get("Outputs") or []]
        for pf in spec.body.get("PropertyFiles") or []:
            if spec.type == "Processing" and pf.get("OutputName") not in outputs:
                problems.append(f"step {spec.name}: property file {pf.get('PropertyFileName')} reads output "
                                f"{pf.get('OutputName')!r}, but the step's outputs are "
                                + (", ".join(map(repr, outputs)) or "none"))
    return problems


# --- execution records --------------------------------------------------------------------
def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _iso(moment: Optional[datetime.datetime]) -> Optional[str]:
    return moment.isoformat(timespec="seconds") if moment else None


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _plain(value: Any) -> Any:
    """JSON-safe copy (datetimes to ISO strings) so properties can be recorded and walked."""
    return json.loads(json.dumps(value, default=_json_default))


def write_json(path: Path, document: Any) -> None:
    atomic_write_bytes(path, json.dumps(document, indent=2, default=_json_default).encode("utf-8"))


def new_execution_id() -> str:
    """12 lowercase letters/digits like SageMaker's, starting with a letter (valid in job names)."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return secrets.choice(alphabet[:26]) + "".join(secrets.choice(alphabet) for _ in range(11))


def executions_dir(settings: Settings) -> Path:
    return settings.home_path / "executions"


def _job_name(execution_id: str, step: str, attempt: int = 1) -> str:
    """The job (or model) a step creates; a retried step's attempt gets its own (names cannot be reused)."""
    suffix = f"-{attempt}" if attempt > 1 else ""
    name = re.sub(r"[^A-Za-z0-9-]", "-", f"pipelines-{execution_id}-{step}")
    return name[:63 - len(suffix)].rstrip("-") + suffix


# --- the executor -------------------------------------------------------------------------
class Execution:
    """One run of a definition. `run()` returns the process exit code (0, 1 or 130)."""

    def __init__(self, definition: Mapping[str, Any], parameters: Mapping[str, Any], settings: Settings,
                 out: Callable[[str], None] = print, stream_logs: bool = True,
                 pipeline_name: Optional[str] = None, notes: Iterable[str] = (),
                 resume: Optional[Mapping[str, Any]] = None):
        """resume: the record of a Failed or Stopped execution to retry (same id, its succeeded steps reused)."""
        self.definition = dict(definition)
        self.graph = load_definition(self.definition)
        self.parameters = ex.resolve_parameters(self.definition, parameters)
        self.overrides = {k: str(v) for k, v in dict(parameters).items()}
        self.settings = settings
        if out is print:  # bind the console now: in-process steps redirect sys.stdout into their log
            console = sys.stdout
            out = lambda text: print(text, file=console, flush=True)  # noqa: E731
        self.out = out
        self.stream_logs = stream_logs
        self.id = resume["execution_id"] if resume else new_execution_id()
        self.pipeline_name = (resume or {}).get("pipeline_name") or pipeline_name or \
            _pipeline_name(self.definition, settings)
        self.dir = executions_dir(settings) / self.id
        self.started = datetime.datetime.fromisoformat(resume["start_time"]) if resume else _now()
        self.attempt_started = _now()
        self.attempt, self.attempts = 1, []          # this attempt; the earlier ones (a retry's)
        region, account = settings.effective_region, "000000000000"
        self.arn = f"arn:aws:sagemaker:{region}:{account}:pipeline/{self.pipeline_name.lower()}/execution/{self.id}"
        self.execution_vars = {
            "PipelineExecutionId": self.id,
            "PipelineExecutionArn": self.arn,
            "StartDateTime": _iso(self.started),
            "CurrentDateTime": _iso(self.started),
            "PipelineName": self.pipeline_name,
            "PipelineArn": f"arn:aws:sagemaker:{region}:{account}:pipeline/{self.pipeline_name.lower()}",
        }
        self.properties: dict = {}
        self.records = {name: {"name": name, "type": self.graph.steps[name].type,
                               "display_name": self.graph.steps[name].display_name,
                               "description": self.graph.steps[name].body.get("Description", ""),
                               "depends_on": self.graph.steps[name].depends_on,
                               "status": "Pending", "start_time": None, "end_time": None,
                               "duration_seconds": None, "log": None, "outputs": {}, "failure_reason": None}
                        for name in self.graph.order}
        self.status = "Executing"
        self.failure_reason: Optional[str] = None
        self.notes = list(notes)
        self.process: Optional[subprocess.Popen] = None
        self.step_process: Optional[dict] = None
        self._client = None
        self.api = None          # the loopback AWS API the steps call (started by run())
        self._step_env = None            # the processing steps' interpreter, resolved at the first one
        self.runtime_process = process_identity(os.getpid())
        if resume:
            self._resume(resume)

    def _resume(self, previous: Mapping[str, Any]) -> None:
        """A retry: the steps that succeeded keep their records and properties; the others run again."""
        self.overrides = dict(previous.get("overrides") or {})
        self.notes = list(previous.get("notes") or []) + [n for n in self.notes if n not in (previous.get("notes") or [])]
        self.attempts = [dict(a) for a in previous.get("attempts") or []] or [{
            "attempt": 1, "start_time": previous.get("start_time"), "end_time": previous.get("end_time"),
            "status": previous.get("status"), "failure_reason": previous.get("failure_reason"),
            "runtime_process": previous.get("runtime_process")}]
        self.attempt = max(int(a.get("attempt") or 1) for a in self.attempts) + 1
        properties = previous.get("properties") or {}
        for step in previous.get("steps") or []:
            name = step.get("name")
            if name not in self.records:
                continue
            if step.get("status") == SUCCEEDED and name in properties:
                self.records[name] = dict(step, reused=True, attempt=step.get("attempt") or 1)
                self.properties[name] = properties[name]
                continue
            history = [dict(h) for h in step.get("attempts") or []]
            if step.get("start_time"):                       # it ran (and failed or was stopped)
                history.append({key: step.get(key) for key in
                                ("status", "failure_reason", "start_time", "end_time", "duration_seconds", "log")}
                               | {"attempt": step.get("attempt") or 1})
            if history:
                self.records[name]["attempts"] = history

    @property
    def retried_from(self) -> Optional[str]:
        """The first step this attempt runs again (None on a first attempt)."""
        if self.attempt == 1:
            return None
        return next((n for n in self.graph.order if not self.records[n].get("reused")), None)

    def _attempt_record(self) -> dict:
        ended = self.status != "Executing"
        return {"attempt": self.attempt, "start_time": _iso(self.attempt_started),
                "end_time": _iso(_now()) if ended else None, "status": self.status,
                "failure_reason": self.failure_reason, "runtime_process": self.runtime_process,
                **({"retried_from": self.retried_from} if self.attempt > 1 else {})}

    # -- records
    def record(self) -> dict:
        ended = self.status not in ("Executing",)
        return {
            "execution_id": self.id, "execution_arn": self.arn, "pipeline_name": self.pipeline_name,
            "status": self.status, "failure_reason": self.failure_reason,
            "start_time": _iso(self.started), "end_time": _iso(_now()) if ended else None,
            "duration_seconds": round((_now() - self.started).total_seconds(), 1) if ended else None,
            "parameters": self.parameters, "overrides": self.overrides, "notes": self.notes,
            "definition": str(self.dir / "definition.json"),
            "report": str(self.dir / "report.html"),
            "steps": [self.records[name] for name in self.graph.order],
            "properties": self.properties,
            "runtime_process": self.runtime_process,   # lets a listing tell a live run from a killed one
            "step_pid": self.process.pid if self.process is not None else None,
            "step_process": self.step_process,          # its identity: a dead runtime's step is killed, not a reused pid
            "attempt": self.attempt,
            "attempts": self.attempts + [self._attempt_record()],
        }

    def save(self) -> None:
        write_json(self.dir / "execution.json", self.record())

    @property
    def client(self):
        if self._client is None:
            from pipelines.local.sagemaker import LocalSageMakerClient

            self._client = LocalSageMakerClient(self.settings)
        return self._client

    # -- expression context
    def context(self, step: str) -> ex.Context:
        variables = dict(self.execution_vars, CurrentDateTime=_iso(_now()))
        spec = self.graph.steps[step]
        if spec.type == "Processing":
            variables["ProcessingJobName"] = self._step_job_name(step)
        return ex.Context(parameters=self.parameters, execution=variables, steps=self.properties,
                          property_file=self.read_property_file, json_reader=self.read_json_uri,
                          step_names=tuple(self.graph.order), current_step=step)

    def _step_job_name(self, step: str) -> str:
        return _job_name(self.id, step, int(self.records[step].get("attempt_count") or 1))

    def read_property_file(self, step: str, name: str) -> tuple:
        spec = self.graph.steps.get(step)
        if spec is None:
            raise ex.ExpressionError(f"JsonGet: there is no step {step!r}")
        files = {f.get("PropertyFileName"): f for f in spec.body.get("PropertyFiles") or []}
        if name not in files:
            raise ex.ExpressionError(f"JsonGet: step {step} declares property files "
                                     f"{', '.join(map(repr, files)) or 'none'}, not {name!r}")
        if step not in self.properties:
            raise ex.ExpressionError(f"JsonGet: step {step} has not run in this execution, so its property "
                                     f"file {name} does not exist yet")
        output = files[name].get("OutputName")
        uri = ex.walk(self.properties[step], ["ProcessingOutputConfig", "Outputs", output, "S3Output", "S3Uri"],
                      f"property file {name} of step {step}")
        path = local_path(str(uri).rstrip("/") + "/" + files[name].get("FilePath", ""), self.settings)
        if not path.is_file():
            present = sorted(p.name for p in path.parent.glob("*")) if path.parent.is_dir() else []
            raise ex.ExpressionError(f"JsonGet: property file {name} of step {step}: {path} does not exist "
                                     f"(output {output!r} holds: {', '.join(present) or 'nothing'})")
        try:
            return json.loads(path.read_text()), str(path)
        except json.JSONDecodeError as error:
            raise ex.ExpressionError(f"JsonGet: property file {name} of step {step} ({path}) is not JSON: {error}") from error

    def read_json_uri(self, uri: str) -> Any:
        path = local_path(uri, self.settings)
        if not path.is_file():
            raise ex.ExpressionError(f"JsonGet: {uri} does not exist (looked in {path})")
        return json.loads(path.read_text())

    # -- running
    def run(self) -> int:
        """Run with the loopback AWS API up; leaving stops it and any AutoML job still training."""
        from pipelines.local.aws_api import LocalAWSServer

        with LocalAWSServer(self.settings) as self.api:
            return self._run()

    def _run(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.attempt == 1:
            write_json(self.dir / "definition.json", self.definition)
        self.save()
        total = len(self.graph.order)
        if self.attempt == 1:
            self.out(f"Execution {self.id} of {self.pipeline_name} (local runtime), {total} steps; "
                     f"record: {self.dir}")
        else:
            reused = [n for n in self.graph.order if self.records[n].get("reused")]
            self.out(f"Retrying execution {self.id} of {self.pipeline_name} (local runtime), attempt "
                     f"{self.attempt}: from step {self.retried_from}, reusing {len(reused)} succeeded "
                     f"step(s); record: {self.dir}")
        skipped: set = set()
        current: Optional[str] = None
        try:
            for index, name in enumerate(self.graph.order, start=1):
                spec = self.graph.steps[name]
                record = self.records[name]
                if record.get("reused"):
                    self.out(f"[{index}/{total}] {name}: Succeeded (reused from attempt {record['attempt']})")
                    if spec.type == "Condition":
                        self._skip_branch_not_taken(spec, bool(self.properties[name].get("Outcome")), skipped)
                    continue
                blocked = [d for d in spec.depends_on if self.records[d]["status"] != SUCCEEDED]
                if name in skipped or blocked or self.status != "Executing":
                    record["status"] = NOT_EXECUTED
                    if self.status == "Executing":
                        why = (f"branch not taken ({spec.branch} of {spec.condition})" if name in skipped
                               else "depends on " + ", ".join(blocked) + " which did not succeed")
                        record["failure_reason"] = None
                        record["note"] = why
                        self.out(f"[{index}/{total}] {name}: not executed ({why})")
                    continue
                current = name
                self._run_step(spec, record, index, total, skipped)
                current = None
                if record["status"] == FAILED:
                    self.status = "Failed"
                    self.failure_reason = (record["failure_reason"] if spec.type == "Fail"
                                           else f"step {name} failed: {record['failure_reason']}")
        except KeyboardInterrupt as interrupt:
            self.stop_process()
            self.step_process = None
            how = interrupt.how if isinstance(interrupt, Interrupted) else "Ctrl-C"
            reason = "stopped by SIGTERM" if how == "SIGTERM" else "stopped by the user (Ctrl-C)"
            if current:
                rec = self.records[current]
                rec["status"], rec["end_time"] = STOPPED, _iso(_now())
                if rec.get("start_time"):
                    started = datetime.datetime.fromisoformat(rec["start_time"])
                    rec["duration_seconds"] = round((_now() - started).total_seconds(), 1)
                rec["failure_reason"] = reason
            for rec in self.records.values():
                if rec["status"] == "Pending":
                    rec["status"] = NOT_EXECUTED
            self.status, self.failure_reason = "Stopped", reason
            self.save()
            self._write_report()
            self.out(f"\nExecution {self.id} stopped ({how}). Record: {self.dir / 'execution.json'}\n"
                     f"Retry it from the stopped step: python -m pipelines.run --retry {self.id}")
            return EXIT_TERMINATED if how == "SIGTERM" else EXIT_INTERRUPTED
        if self.status == "Executing":
            self.status = "Succeeded"
        self.save()
        self._write_report()
        self.out(self.summary())
        if self.status == "Succeeded":
            return 0
        self.out(f"Retry it from the failed step: python -m pipelines.run --retry {self.id}")
        # a step script that refused its input (exit 2: a bad file, column or value) makes the run exit 2 too
        refused = any(r.get("exit_code") == EXIT_BAD_INPUT for r in self.records.values() if r["status"] == FAILED)
        return EXIT_BAD_INPUT if refused else 1

    def _run_step(self, spec: StepSpec, record: dict, index: int, total: int, skipped: set) -> None:
        step_dir = self.dir / "steps" / spec.name
        history = record.get("attempts") or []
        if history and (step_dir / "log.txt").is_file():   # the failed attempt's log stays readable
            kept = self.dir / "steps" / f"{spec.name}.attempt-{history[-1]['attempt']}.log"
            os.replace(step_dir / "log.txt", kept)
            history[-1]["log"] = str(kept)
        if step_dir.exists():
            shutil.rmtree(step_dir)
        step_dir.mkdir(parents=True)
        log_path = step_dir / "log.txt"
        record.update(status=EXECUTING, start_time=_iso(_now()), log=str(log_path), attempt=self.attempt,
                      attempt_count=len(history) + 1)
        self.save()
        started = time.monotonic()
        self.out(f"[{index}/{total}] {spec.name} ({spec.type}): {spec.display_name} ... Executing")
        with open(log_path, "a", encoding="utf-8") as log:
            try:
                if not self._cache_hit(spec, record, log):
                    runner = getattr(self, f"_run_{spec.type.lower()}")
                    runner(spec, record, step_dir, log, skipped)
                record["status"] = SUCCEEDED if record["status"] == EXECUTING else record["status"]
            except KeyboardInterrupt:
                self._record_calls(record, log)
                raise
            except (StepFailed, ex.ExpressionError, ex.ParameterError, FileNotFoundError) as error:
                record["status"], record["failure_reason"] = FAILED, str(error)
                if getattr(error, "exit_code", None) is not None:
                    record["exit_code"] = error.exit_code
                log.write(f"\n[runtime] step failed: {error}\n")
            except Exception as error:  # a bug in a step or a stand-in: still a clean step failure
                import traceback

                log.write(traceback.format_exc())
                record["status"], record["failure_reason"] = FAILED, f"{type(error).__name__}: {error}"
            self._record_calls(record, log)
        elapsed = time.monotonic() - started
        record.update(end_time=_iso(_now()), duration_seconds=round(elapsed, 1))
        self.save()
        hit = record.get("CacheHitResult")
        how = f" (cache hit: outputs of execution {hit['SourcePipelineExecutionArn'].rsplit('/', 1)[-1]})" if hit else ""
        self.out(f"[{index}/{total}] {spec.name}: {record['status']}{how} in {format_duration(elapsed)}")
        if record["status"] == FAILED and spec.type != "Fail":
            tail = _tail(log_path, LOG_TAIL_LINES if not self.stream_logs else 12)
            if tail:
                self.out(f"--- last lines of {log_path} ---\n{tail}\n---")
            self.out(f"Step {spec.name} failed: {record['failure_reason']}\n(full log: {log_path})")

    def _cache_hit(self, spec: StepSpec, record: dict, log) -> bool:
        """A step with caching enabled whose key matches an earlier successful run reuses that run."""
        config = caching.cache_config(spec.body)
        if config is None or not config.enabled:
            return False
        arguments = ex.resolve(spec.body.get("Arguments") or {}, self.context(spec.name))
        key = caching.step_key(spec.type, arguments, self.settings)
        if key is None:
            self._log(log, f"[runtime] CacheConfig: the local runtime does not cache {spec.type} steps; running it")
            return False
        record["cache_key"] = key
        hit = caching.find_hit(load_executions(self.settings), pipeline_name=self.pipeline_name, step_name=spec.name,
                               key=key, expire_after=config.expire_after, settings=self.settings, exclude=self.id)
        if hit is None:
            self._log(log, f"[runtime] cache miss (key {key[:12]}; ExpireAfter {config.expire_text}): running the step")
            return False
        self.properties[spec.name] = hit.properties
        record["outputs"] = dict(hit.step.get("outputs") or {})
        if hit.step.get("property_files"):
            record["property_files"] = dict(hit.step["property_files"])
        record["CacheHitResult"] = {"SourcePipelineExecutionArn": hit.source_execution_arn}
        self._log(log, f"[runtime] cache hit (key {key[:12]}): same arguments and input contents as in execution "
                       f"{hit.source_execution_id} (ended {hit.step.get('end_time')}); reusing its outputs: "
                       + ", ".join(f"{k} {v}" for k, v in record["outputs"].items()))
        return True

    def _record_calls(self, record: dict, log) -> None:
        """The AWS API calls the step made (served by the loopback API), in the log and the record."""
        calls = self.api.take_calls() if self.api is not None else []
        if calls:
            record["aws_calls"] = calls
            log.write("[runtime] AWS API calls: " + ", ".join(
                f"{c['service']} {c['operation']} {c['status']}{' ' + c['error'] if c['error'] else ''}"
                + (f" x{c['count']}" if c["count"] > 1 else "") for c in calls) + "\n")

    def _log(self, log, text: str) -> None:
        log.write(text + ("" if text.endswith("\n") else "\n"))
        log.flush()
        if self.stream_logs:
            for line in text.rstrip("\n").splitlines():
                self.out(f"    | {line}")

    # Processing ---------------------------------------------------------------------------
    def _run_processing(self, spec: StepSpec, record: dict, step_dir: Path, log, skipped: set) -> None:
        ctx = self.context(spec.name)
        arguments = ex.resolve(spec.body.get("Arguments") or {}, ctx)
        root = step_dir / "processing"

        def mapped(text: Any) -> Any:
            return text.replace(PROCESSING_PREFIX, str(root)) if isinstance(text, str) else text

        code_dir = None
        for item in arguments.get("ProcessingInputs") or []:
            source = item.get("S3Input")
            if not source:
                raise StepFailed(f"input {item.get('InputName')}: only S3Input inputs run locally "
                                 "(DatasetDefinition is not supported)")
            target = Path(mapped(source["LocalPath"]))
            files = copy_in(source["S3Uri"], target, self.settings)
            self._log(log, f"[runtime] input {item.get('InputName')}: {source['S3Uri']} -> {target} "
                           f"({len(files)} file(s))")
            if item.get("InputName") == "code" or source["LocalPath"] == contracts.CODE_DIR:
                code_dir = target
        outputs = (arguments.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        for item in outputs:
            Path(mapped(item["S3Output"]["LocalPath"])).mkdir(parents=True, exist_ok=True)
        app = arguments.get("AppSpecification") or {}
        entry = [mapped(str(a)) for a in app.get("ContainerEntrypoint") or []]
        if not entry:
            raise StepFailed("the step has no ContainerEntrypoint; the local runtime cannot run an image's "
                             "default entrypoint")
        interpreter, overlay = None, None
        if Path(entry[0]).name in ("python", "python3") or re.fullmatch(r"python3(\.\d+)?", entry[0]):
            interpreter, overlay = self._step_interpreter(spec, entry, code_dir, record, log)
            entry[0] = interpreter.python if interpreter else sys.executable
        command = entry + [mapped(str(a)) for a in app.get("ContainerArguments") or []]
        env = self._environment(arguments.get("Environment") or {}, mapped, code_dir,
                                bundle_only=interpreter is not None, overlay=overlay)
        described = record.get("environment") or {}
        self._log(log, "[runtime] environment: " + (described.get("label") or "this Python (the project importable)")
                  + (f"; requirements overlay {described['overlay']}" if described.get("overlay") else ""))
        self._log(log, "[runtime] " + " ".join(command))
        returncode = self._spawn(command, env, step_dir, log, max_runtime=limits.processing_max_runtime(arguments))
        if returncode != 0:
            raise StepFailed(f"{' '.join(entry[1:]) or entry[0]} exited with code {returncode}: "
                             + _last_error_line(Path(record["log"])), exit_code=returncode)
        for item in outputs:
            target_uri = item["S3Output"]["S3Uri"]
            uris = copy_out(Path(mapped(item["S3Output"]["LocalPath"])), target_uri, self.settings)
            record["outputs"][item["OutputName"]] = target_uri
            for pf in spec.body.get("PropertyFiles") or []:
                if pf.get("OutputName") == item["OutputName"]:
                    record.setdefault("property_files", {})[pf.get("PropertyFileName")] = \
                        target_uri.rstrip("/") + "/" + pf.get("FilePath", "")
            self._log(log, f"[runtime] output {item['OutputName']}: {len(uris)} file(s) -> {target_uri}")
        now = _iso(_now())
        self.properties[spec.name] = _plain(dict(
            arguments, ProcessingJobName=self._step_job_name(spec.name),
            ProcessingJobArn=f"arn:aws:sagemaker:{self.settings.effective_region}:000000000000:processing-job/"
                             + self._step_job_name(spec.name),
            ProcessingJobStatus="Completed", ExitMessage="", ProcessingStartTime=record["start_time"],
            ProcessingEndTime=now, CreationTime=record["start_time"], LastModifiedTime=now))

    def _step_interpreter(self, spec: StepSpec, entry: list, code_dir: Optional[Path], record: dict,
                          log) -> tuple:
        """(StepEnvironment, requirements overlay) for a python step: the image's environment (or the
        fallback step_env resolved), the step's requirements installed beside it."""
        from pipelines.local import step_env

        module = None                       # the step module: python3 -m processing.entry <module>
        if len(entry) > 3 and entry[1:3] == ["-m", "processing.entry"]:
            module = entry[3]
        elif len(entry) > 2 and entry[1] == "-m":
            module = entry[2]
        if self._step_env is None:
            try:
                self._step_env = step_env.resolve(self.settings, out=self.out)
            except step_env.StepEnvironmentError as error:
                raise StepFailed(str(error)) from None
            self.out(f"    processing steps run in the {self._step_env.label}: {self._step_env.python}")
            if self._step_env.note:          # the fallback warning: also in the record and the HTML report
                self.notes.append(self._step_env.note)
        interpreter = self._step_env
        overlay, requirements = None, None
        if module and code_dir is not None:
            from processing.entry import requirements_file

            requirements = requirements_file(module, code_dir / "processing" / "requirements")
        if requirements is not None:
            try:
                overlay = step_env.overlay(interpreter, requirements, self.settings, out=self.out)
            except step_env.StepEnvironmentError as error:
                if self.settings.step_env == "strict":
                    raise StepFailed(f"{requirements.name}: {error}") from None
                self._log(log, f"[runtime] could not install {requirements.name} ({error}): {module} runs "
                               "without it, as on SageMaker when the install fails")
        record["environment"] = interpreter.record(overlay, requirements.name if requirements else None)
        return interpreter, overlay

    def _environment(self, definition_env: Mapping[str, str], mapped: Callable, code_dir: Optional[Path],
                     bundle_only: bool = False, overlay: Optional[Path] = None) -> dict:
        """The step's environment variables. bundle_only: PYTHONPATH is the code bundle (and the
        step's requirements overlay) and nothing else, as in the container."""
        env = dict(os.environ)
        exported = {}
        for variable, name in ENVIRONMENT.items():
            if variable.startswith("FORECAST_") and name not in exported:  # one FORECAST_ spelling per setting
                value = getattr(self.settings, name, None)
                if value is None or name in ("target",):
                    continue
                if name == "tags":
                    value = ",".join(f"{k}={v}" for k, v in dict(value).items())
                env[variable] = str(value)
                exported[name] = variable
        env.update({k: str(mapped(v)) for k, v in definition_env.items()})
        paths = [str(code_dir)] if code_dir else []
        if bundle_only:
            paths += [str(overlay)] if overlay else []
            env["PYTHONNOUSERSITE"] = "1"
        elif os.environ.get("PYTHONPATH"):
            paths.append(os.environ["PYTHONPATH"])
        for name, value in THREADING_ENV.items():
            env.setdefault(name, value)
        env.update({
            "FORECAST_INSTALL_REQUIREMENTS": "0",      # processing.entry: the runtime provides them (overlay)
            "PYTHONPATH": os.pathsep.join(paths),
            "PYTHONUNBUFFERED": "1",
        })
        for name in self.api.UNSET_IN_STEPS:  # steps reach AWS only through the loopback API
            env.pop(name, None)
        env.update(self.api.step_environment())
        return env

    def _spawn(self, command: list, env: dict, cwd: Path, log, max_runtime: Optional[int] = None) -> int:
        """Run the step's process, streaming its output; past max_runtime it is stopped and the step fails."""
        self.process = supervision.spawn(command, cwd=cwd, env=env)
        self.step_process = process_identity(self.process.pid)
        self.save()                                    # records step_pid: the step's process group
        lines: "queue.Queue[Optional[str]]" = queue.Queue()
        if self.api is not None:  # the API's calls and the AutoML job's output join the step's log
            self.api.sink = lambda text: lines.put(text.rstrip("\n") + "\n")

        def pump(stream) -> None:  # a thread, so the main thread can report progress while a step is quiet
            for text in stream:
                lines.put(text)
            lines.put(None)

        assert self.process.stdout is not None
        threading.Thread(target=pump, args=(self.process.stdout,), daemon=True).start()
        started = last_output = time.monotonic()
        try:
            while True:
                try:
                    line = lines.get(timeout=1.0)
                except queue.Empty:
                    if max_runtime is not None and time.monotonic() - started > max_runtime:
                        self.stop_process()
                        raise StepFailed(limits.processing_timeout_message(max_runtime)) from None
                    if time.monotonic() - last_output >= HEARTBEAT_SECONDS:
                        self.out(f"    ... still Executing ({format_duration(time.monotonic() - started)} elapsed)")
                        last_output = time.monotonic()
                    continue
                if line is None:
                    break
                last_output = time.monotonic()
                if max_runtime is not None and last_output - started > max_runtime:
                    self.stop_process()
                    raise StepFailed(limits.processing_timeout_message(max_runtime))
                log.write(line)
                log.flush()
                if self.stream_logs:
                    self.out(f"    | {line.rstrip()}")
            return self.process.wait()
        finally:
            if self.process.poll() is None:
                self.stop_process()
            self.process = None
            self.step_process = None
            if self.api is not None:
                self.api.sink = None

    def stop_process(self) -> None:
        """Terminate the running step subprocess (its whole process group), then kill it."""
        supervision.stop(self.process)

    # Transform, Model, RegisterModel -----------------------------------------------------
    def _in_process(self, log, function: Callable[[], Any]) -> Any:
        """Run an in-process stand-in, capturing what it prints into the step log."""
        buffer = _TeeWriter(lambda line: self._log(log, line), passthrough=sys.stdout)
        done = threading.Event()
        started = time.monotonic()

        def heartbeat() -> None:
            while not done.wait(HEARTBEAT_SECONDS):
                self.out(f"    ... still Executing ({format_duration(time.monotonic() - started)} elapsed)")

        threading.Thread(target=heartbeat, daemon=True).start()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            try:
                return function()
            finally:
                done.set()
                buffer.flush_rest()

    def _client_error(self, error: Exception) -> str:
        response = getattr(error, "response", None)
        if isinstance(response, Mapping) and "Error" in response:
            return f"{response['Error'].get('Code')}: {response['Error'].get('Message')}"
        return str(error)

    def _run_transform(self, spec: StepSpec, record: dict, step_dir: Path, log, skipped: set) -> None:
        from botocore.exceptions import ClientError

        arguments = ex.resolve(spec.body.get("Arguments") or {}, self.context(spec.name))
        arguments.setdefault("TransformJobName", self._step_job_name(spec.name))
        self._log(log, f"[runtime] create_transform_job {arguments['TransformJobName']} with model "
                       f"{arguments.get('ModelName')}")
        try:
            self._in_process(log, lambda: self.client.create_transform_job(**arguments))
            described = self.client.describe_transform_job(TransformJobName=arguments["TransformJobName"])
        except ClientError as error:
            raise StepFailed(self._client_error(error)) from None
        self.properties[spec.name] = _plain(described)
        record["outputs"]["TransformOutput"] = (arguments.get("TransformOutput") or {}).get("S3OutputPath")
        if described.get("TransformJobStatus") != "Completed":
            raise StepFailed(f"transform job {arguments['TransformJobName']} "
                             f"{described.get('TransformJobStatus')}: {described.get('FailureReason')}")

    def _run_model(self, spec: StepSpec, record: dict, step_dir: Path, log, skipped: set) -> None:
        from botocore.exceptions import ClientError

        arguments = ex.resolve(spec.body.get("Arguments") or {}, self.context(spec.name))
        arguments.setdefault("ModelName", self._step_job_name(spec.name))
        try:
            self._in_process(log, lambda: self.client.create_model(**arguments))
            self.properties[spec.name] = _plain(self.client.describe_model(ModelName=arguments["ModelName"]))
        except ClientError as error:
            raise StepFailed(self._client_error(error)) from None

    def _run_registermodel(self, spec: StepSpec, record: dict, step_dir: Path, log, skipped: set) -> None:
        from botocore.exceptions import ClientError

        arguments = ex.resolve(spec.body.get("Arguments") or {}, self.context(spec.name))
        try:
            created = self._in_process(log, lambda: self.client.create_model_package(**arguments))
            self.properties[spec.name] = _plain(self.client.describe_model_package(
                ModelPackageName=created["ModelPackageArn"]))
        except ClientError as error:
            raise StepFailed(self._client_error(error)) from None

    # Lambda -------------------------------------------------------------------------------
    def _run_lambda(self, spec: StepSpec, record: dict, step_dir: Path, log, skipped: set) -> None:
        ctx = self.context(spec.name)
        arn = str(ex.resolve(spec.body.get("FunctionArn", ""), ctx))
        event = ex.resolve(spec.body.get("Arguments") or {}, ctx)
        function = arn.split(":function:", 1)[1].split(":")[0] if ":function:" in arn else arn
        if function != self.settings.deploy_function_name:
            raise StepFailed(f"Lambda function {arn} has no local stand-in: the local runtime runs "
                             f"function:{self.settings.deploy_function_name} (deploy.handler.lambda_handler) only")
        from deploy.handler import lambda_handler

        self._log(log, f"[runtime] deploy.handler.lambda_handler({json.dumps(event, default=str)})")
        seconds = limits.LAMBDA_STEP_TIMEOUT_SECONDS
        try:  # the handler gets a Lambda context with the time left (get_remaining_time_in_millis)
            result = self._in_process(log, lambda: limits.call_with_deadline(
                lambda context: lambda_handler(event, context), seconds, f"Lambda function {function}",
                f"the pipeline Lambda step's limit ({seconds} s)"))
        except limits.LimitExceeded as error:
            raise StepFailed(str(error)) from None
        self._log(log, f"[runtime] returned {json.dumps(result, default=str)}")
        outputs = {}
        for declared in spec.body.get("OutputParameters") or []:
            name, kind = declared.get("OutputName"), declared.get("OutputType", "String")
            if not isinstance(result, Mapping) or name not in result:
                raise StepFailed(f"the Lambda response has no output parameter {name!r} "
                                 f"(it returned keys: {', '.join(result) if isinstance(result, Mapping) else result})")
            outputs[name] = ex.coerce_parameter(name, kind, result[name])
        self.properties[spec.name] = _plain({"OutputParameters": outputs})
        record["outputs"] = outputs

    # Condition and Fail --------------------------------------------------------------------
    def _run_condition(self, spec: StepSpec, record: dict, step_dir: Path, log, skipped: set) -> None:
        ctx = self.context(spec.name)
        arguments = spec.body.get("Arguments") or {}
        outcome = ex.evaluate_conditions(arguments.get("Conditions") or [], ctx)
        self._skip_branch_not_taken(spec, outcome, skipped)
        details = []
        for condition in arguments.get("Conditions") or []:
            try:
                left = ex.resolve(condition.get("LeftValue", condition.get("QueryValue")), ctx)
                right = ex.resolve(condition.get("RightValue", condition.get("Values")), ctx)
                details.append(f"{condition.get('Type')}({left!r}, {right!r})")
            except ex.ExpressionError:
                details.append(str(condition.get("Type")))
        self._log(log, f"[runtime] conditions {' and '.join(details)} -> {outcome}; running "
                       f"{'IfSteps' if outcome else 'ElseSteps'}")
        self.properties[spec.name] = {"Outcome": outcome}
        record["outputs"] = {"Outcome": outcome}
        self.out(f"    {spec.name}: {' and '.join(details)} is {outcome}")

    def _skip_branch_not_taken(self, spec: StepSpec, outcome: bool, skipped: set) -> None:
        not_taken = "ElseSteps" if outcome else "IfSteps"
        for name, other in self.graph.steps.items():
            if other.condition == spec.name and other.branch == not_taken:
                skipped.add(name)

    def _run_fail(self, spec: StepSpec, record: dict, step_dir: Path, log, skipped: set) -> None:
        message = ex.resolve((spec.body.get("Arguments") or {}).get("ErrorMessage", ""), self.context(spec.name))
        message = str(message)
        self._log(log, f"[runtime] fail step: {message}")
        record["status"], record["failure_reason"] = FAILED, message
        self.properties[spec.name] = {}

    # -- summary and report
    def summary(self) -> str:
        from pipelines.local.report import execution_summary

        return execution_summary(self.record(), self.settings)

    def _write_report(self) -> None:
        try:
            from pipelines.local.report import write_report

            write_report(self.record(), self.graph, self.settings, self.dir / "report.html")
        except Exception as error:  # the report must never turn a good run into a failure
            self.out(f"(could not write the HTML report: {type(error).__name__}: {error})")


class _TeeWriter(io.TextIOBase):
    """Line-buffered stdout stand-in; what the emitter itself prints goes to the real stream."""

    def __init__(self, emit: Callable[[str], None], passthrough: Any = None):
        self.emit = emit
        self.pending = ""
        self.passthrough = passthrough
        self.busy = False

    def write(self, text: str) -> int:
        if self.busy:
            return self.passthrough.write(text) if self.passthrough is not None else len(text)
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self.busy = True
            try:
                self.emit(line)
            finally:
                self.busy = False
        return len(text)

    def flush_rest(self) -> None:
        if self.pending:
            line, self.pending = self.pending, ""
            self.busy = True
            try:
                self.emit(line)
            finally:
                self.busy = False


def _tail(path: Path, lines: int) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _last_error_line(path: Path) -> str:
    """The most telling line of a failed step's log: the last exception or error line."""
    lines = [s.strip() for s in _tail(path, 200).splitlines() if s.strip() and not s.startswith("[runtime]")]
    for line in reversed(lines):
        if re.match(r"^([A-Za-z_.]+(Error|Exception|Exit)|error:|Error:)", line) or "Error:" in line:
            return line
    return lines[-1] if lines else "(no output)"


def _pipeline_name(definition: Mapping[str, Any], settings: Settings) -> str:
    metadata = definition.get("Metadata") or {}
    if isinstance(metadata, Mapping) and metadata.get("PipelineName"):
        return str(metadata["PipelineName"])
    names = {s.get("Name") for s in definition.get("Steps") or []}
    if contracts.STEP_BATCH_FORECAST in names or contracts.STEP_RESOLVE_MODEL in names:
        return settings.batch_pipeline_name
    return settings.training_pipeline_name


# --- seed data ----------------------------------------------------------------------------
def ensure_seed_data(definition: Mapping[str, Any], parameters: Mapping[str, Any], settings: Settings,
                     out: Callable[[str], None] = print) -> Optional[str]:
    """With no InputDataUrl override, put the seed dataset at the parameter's default location.

    Returns a note for the execution record (None when nothing was needed).
    """
    declared = {p["Name"]: p for p in definition.get("Parameters") or []}
    if "InputDataUrl" not in declared or "InputDataUrl" in parameters:
        return None
    default = str(declared["InputDataUrl"].get("DefaultValue") or "")
    if not default.startswith("s3://"):
        return None
    target = local_path(default, settings)
    file_target = target if re.search(r"\.(csv|parquet)(\.gz)?$", default) else target / "sales.csv"
    if file_target.is_file() or (target.is_dir() and any(target.iterdir())):
        note = f"No InputDataUrl given: using the seed dataset already in the local store at {default}"
        out(note)
        return note
    from processing.generate import generate_sales, write_frame

    # A pipeline that trains (it has a ForecastHorizon) gets the history; one that only forecasts
    # (batch) gets the history plus the next SEED_FUTURE_DAYS days with known covariates.
    future_days = 0 if "ForecastHorizon" in declared else SEED_FUTURE_DAYS
    out("No InputDataUrl given: generating the seed dataset (processing.generate) ...")
    frame = generate_sales(future_days=future_days)
    write_frame(frame, file_target)
    items = frame["item_id"].nunique() if "item_id" in frame.columns else "?"
    future = f", plus {future_days} future days with known covariates" if future_days else ""
    note = (f"No InputDataUrl given: generated the seed dataset ({len(frame)} rows, {items} items{future}) at "
            f"{default} ({file_target}); pass --param InputDataUrl=... to use your own data")
    out(note)
    return note


# --- entry points (pipelines/run.py calls these) -------------------------------------------
def run_local(definition: Any, parameters: Optional[Mapping[str, Any]], settings: Settings,
              out: Callable[[str], None] = print, stream_logs: bool = True) -> int:
    """Execute `definition` locally; returns the exit code (0 ok, 1 failed, 2 bad input, 130 Ctrl-C, 143 SIGTERM)."""
    if isinstance(definition, (str, bytes)):
        definition = json.loads(definition)
    parameters = dict(parameters or {})
    ensure_home(settings.home_path)                # with its marker: teardown --include-data recognises it
    for name, value in THREADING_ENV.items():  # before this process loads OpenMP (in-process transforms)
        os.environ.setdefault(name, value)
    try:
        graph_check = load_definition(definition)
        del graph_check
        ex.resolve_parameters(definition, parameters)
    except (DefinitionError, ex.ParameterError, ex.ExpressionError) as error:
        out(f"error: {error}")
        return 2
    notes = []
    try:
        note = ensure_seed_data(definition, parameters, settings, out)
    except KeyboardInterrupt:
        out("stopped (Ctrl-C) while generating the seed dataset")
        return EXIT_INTERRUPTED
    if note:
        notes.append(note)
    execution = Execution(definition, parameters, settings, out=out, stream_logs=stream_logs, notes=notes)
    return _run_with_signals(execution)


def _run_with_signals(execution: "Execution") -> int:
    """SIGTERM stops the execution like Ctrl-C does (recorded as SIGTERM) while it runs."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return execution.run()
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)


class RetryRefused(ValueError):
    """The execution cannot be retried (unknown, still running, already succeeded); the message says what to do."""


def retry_local(execution_id: str, settings: Settings, out: Callable[[str], None] = print,
                stream_logs: bool = True) -> int:
    """Rerun a Failed or Stopped execution from its first unsuccessful step (SageMaker's RetryPipelineExecution).

    Same id, definition and parameters; the steps that succeeded are reused (their properties and
    outputs), the attempt is recorded on the same execution. Exit code as run_local (2: refused).
    """
    import fcntl

    try:
        path = _retry_record_path(execution_id, settings)
    except RetryRefused as error:
        out(f"error: {error}")
        return 2
    with open(path.parent / ".retry.lock", "a") as lock:   # one retry of an execution at a time
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            out(f"error: --retry {execution_id}: another process is retrying this execution right now; "
                "wait for it (python -m pipelines.run --list shows its status)")
            return 2
        try:
            record = _retryable(execution_id, path)
            definition = json.loads((path.parent / "definition.json").read_text())
            ensure_home(settings.home_path)
            for name, value in THREADING_ENV.items():
                os.environ.setdefault(name, value)
            execution = Execution(definition, record.get("parameters") or {}, settings, out=out,
                                  stream_logs=stream_logs, resume=record)
        except RetryRefused as error:
            out(f"error: {error}")
            return 2
        except (OSError, json.JSONDecodeError, DefinitionError, ex.ParameterError) as error:
            out(f"error: --retry {execution_id}: its recorded definition cannot run again: {error}")
            return 2
        return _run_with_signals(execution)


def _retry_record_path(execution_id: str, settings: Settings) -> Path:
    root = executions_dir(settings)
    path = root / str(execution_id) / "execution.json"
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", str(execution_id)) or not path.is_file():
        recent = [r.get("execution_id") for r in load_executions(settings)[:3]]
        hint = f"; the latest are {', '.join(map(str, recent))}" if recent else ""
        raise RetryRefused(f"--retry {execution_id}: there is no local execution with that id under {root}{hint} "
                           "(python -m pipelines.run --list shows them)")
    return path


def _retryable(execution_id: str, path: Path) -> dict:
    """The record, when its execution may be retried (a dead runtime's is marked Failed first)."""
    record = mark_if_dead(json.loads(path.read_text()), path)
    status = record.get("status")
    if status == "Executing":
        pid = (record.get("runtime_process") or {}).get("pid")
        raise RetryRefused(f"--retry {execution_id}: the execution is still Executing (runtime process {pid}); "
                           f"wait for it to end, or stop it (Ctrl-C in its terminal, or kill -TERM {pid}), "
                           "then retry")
    if status == "Succeeded":
        raise RetryRefused(f"--retry {execution_id}: the execution Succeeded, there is nothing to retry; "
                           "start a new execution with python -m pipelines.run")
    if status not in (FAILED, STOPPED):
        raise RetryRefused(f"--retry {execution_id}: the execution is {status}; only a Failed or Stopped "
                           "execution can be retried")
    supervision.kill_group(record.get("step_process"), f"a step of execution {execution_id}, before its retry")
    return record


class Interrupted(KeyboardInterrupt):
    """A stop by signal; `how` names it ('SIGTERM') so the record says what happened."""

    def __init__(self, how: str):
        super().__init__(how)
        self.how = how


def _raise_interrupt(signum, frame):  # SIGTERM stops the step like Ctrl-C does, and is recorded as SIGTERM
    raise Interrupted(signal.Signals(signum).name)


# --- noticing dead executions ---------------------------------------------------------------
process_identity = supervision.process_identity
process_alive = supervision.process_alive
_hostname = supervision.hostname
_process_start = supervision.process_start


def mark_if_dead(record: dict, path: Path) -> dict:
    """An Executing record whose runtime process is gone becomes Failed, with the reason, on disk too.

    A step process the dead runtime left behind (its own process group) is killed on the way.
    """
    if record.get("status") != "Executing" or process_alive(record.get("runtime_process")) is not False:
        return record
    pid = record["runtime_process"]["pid"]
    supervision.kill_group(record.get("step_process"), f"a step of dead execution {record.get('execution_id')}")
    running = [s["name"] for s in record.get("steps", []) if s.get("status") == EXECUTING]
    where = f" while step {', '.join(running)} was Executing" if running else ""
    reason = (f"the local runtime process (pid {pid}) is gone: it was killed or crashed{where}; "
              f"retry it from there with python -m pipelines.run --retry {record.get('execution_id')}")
    ended = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
    for step in record.get("steps", []):
        if step.get("status") == EXECUTING:
            step.update(status=FAILED, failure_reason=reason, end_time=_iso(ended))
        elif step.get("status") == "Pending":
            step["status"] = NOT_EXECUTED
    record.update(status=FAILED, failure_reason=reason, end_time=_iso(ended), step_pid=None, step_process=None)
    if record.get("start_time"):
        started = datetime.datetime.fromisoformat(record["start_time"])
        record["duration_seconds"] = round((ended - started).total_seconds(), 1)
    for attempt in record.get("attempts") or []:
        if attempt.get("status") == "Executing":
            attempt.update(status=FAILED, failure_reason=reason, end_time=_iso(ended))
    write_json(path, record)
    return record


_STEP_STATUSES = {EXECUTING: "Executing", SUCCEEDED: "Succeeded", FAILED: "Failed", STOPPED: "Stopped"}


def pipeline_execution_steps(record: Mapping[str, Any]) -> dict:
    """The record's steps as ListPipelineExecutionSteps answers: newest first, with AttemptCount and
    CacheHitResult; steps that never started are not listed, as on SageMaker."""
    steps = []
    for step in record.get("steps") or []:
        if step.get("status") not in _STEP_STATUSES or not step.get("start_time"):
            continue
        entry: dict = {"StepName": step["name"], "StepDisplayName": step.get("display_name") or step["name"],
                       "StepDescription": step.get("description") or "",
                       "StartTime": datetime.datetime.fromisoformat(step["start_time"]),
                       "StepStatus": _STEP_STATUSES[step["status"]],
                       "AttemptCount": int(step.get("attempt_count") or 1)}
        if step.get("end_time"):
            entry["EndTime"] = datetime.datetime.fromisoformat(step["end_time"])
        if step.get("failure_reason"):
            entry["FailureReason"] = str(step["failure_reason"])[:1024]
        if step.get("CacheHitResult"):
            entry["CacheHitResult"] = dict(step["CacheHitResult"])
        steps.append(entry)
    steps.sort(key=lambda e: e["StartTime"], reverse=True)
    return {"PipelineExecutionSteps": steps}


def load_executions(settings: Settings) -> list:
    """Every recorded execution (newest first)."""
    records = []
    root = executions_dir(settings)
    if root.is_dir():
        for path in root.glob("*/execution.json"):
            try:
                records.append(mark_if_dead(json.loads(path.read_text()), path))
            except (OSError, json.JSONDecodeError, ValueError, KeyError):
                continue
    return sorted(records, key=lambda r: r.get("start_time") or "", reverse=True)


def list_executions(settings: Settings, out: Callable[[str], None] = print) -> None:
    """Print past executions: id, pipeline, status, start, duration, failed step or reason."""
    records = load_executions(settings)
    if not records:
        out(f"No local executions yet under {executions_dir(settings)}; run: python -m pipelines.run")
        return
    rows = [("EXECUTION", "PIPELINE", "STATUS", "ATTEMPT", "STARTED (UTC)", "DURATION", "DETAIL")]
    for r in records:
        detail = r.get("failure_reason") or ""
        if not detail:
            cached = [s["name"] for s in r.get("steps") or [] if s.get("CacheHitResult")]
            if cached:
                source = r["steps"][[s["name"] for s in r["steps"]].index(cached[0])]["CacheHitResult"]
                detail = (f"cache hit: {', '.join(cached)} (from "
                          f"{source['SourcePipelineExecutionArn'].rsplit('/', 1)[-1]})")
        rows.append((r.get("execution_id", "?"), r.get("pipeline_name", "?"), r.get("status", "?"),
                     str(r.get("attempt") or 1), (r.get("start_time") or "")[:19].replace("T", " "),
                     format_duration(r.get("duration_seconds")), detail[:70]))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    out(f"\nRecords and HTML reports: {executions_dir(settings)}/<execution>/; retry a Failed or Stopped "
        "one from its failed step: python -m pipelines.run --retry <execution>")
