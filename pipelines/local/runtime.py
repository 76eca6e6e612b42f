"""The embedded local runtime: executes a SageMaker pipeline definition JSON on this machine.

It runs the exact JSON that would be upserted to SageMaker, so a wrong property path, a
missing step reference or a bad JsonGet fails here, offline, in seconds. Steps run one at
a time in dependency order (definition order among independent steps). The parts:

- pipelines.local.graph: the definition as a graph, and the checks made before anything runs;
- pipelines.local.executors: one small class per step type (Processing, Transform, Model,
  RegisterModel, Lambda, Condition, Fail) doing that type's work;
- pipelines.local.records: the execution record, typed here and plain JSON on disk;
- pipelines.local.supervision: step processes, who is alive, dead runs and their leftovers;
- pipelines.local.caching: CacheConfig; pipelines.local.listing: --list; pipelines.local.seed.

This module is the execution itself: it orders the steps, runs each through its executor
with the ceremony around it (status, timings, log, cache, errors, Ctrl-C), records it, and
retries a failed execution from its failed step (`retry_local`).

Every execution is recorded under <FORECAST_HOME>/executions/<id>/ (execution.json, step
logs, an HTML report).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

from pipelines.local import caching, launcher, listing, supervision
from pipelines.local import expressions as ex
from pipelines.local.executors import (  # noqa: F401 (public names of the runtime)
    EXECUTORS,
    EXIT_BAD_INPUT,
    PROCESSING_PREFIX,
    THREADING_ENV,
    ProcessingExecutor,
    StepFailed,
    StepRun,
    executor_for,
    job_name,
    parameter_inputs,
    skip_branch_not_taken,
    tail,
)
from pipelines.local.graph import (  # noqa: F401 (public names of the runtime)
    DESCRIBE_OPERATION,
    SUPPORTED_TYPES,
    DefinitionError,
    PipelineGraph,
    StepSpec,
    _output_shape,
    check_property_path,
    check_property_paths,
    load_definition,
)
from pipelines.local.listing import list_executions, load_executions, pipeline_execution_steps  # noqa: F401
from pipelines.local.records import (  # noqa: F401 (public names of the runtime)
    EXECUTING,
    FAILED,
    NOT_EXECUTED,
    PENDING,
    STOPPED,
    SUCCEEDED,
    Attempt,
    ExecutionRecord,
    StepRecord,
    encode_record,
    executions_dir,
    iso,
    new_execution_id,
    now,
    write_json,
)
from pipelines.local.report import format_duration
from pipelines.local.seed import SEED_FUTURE_DAYS, ensure_seed_data  # noqa: F401
from pipelines.local.store import atomic_write_bytes, local_path
from pipelines.local.supervision import mark_if_dead, process_alive, process_identity  # noqa: F401
from processing.kernel import contracts
from processing.kernel.settings import Settings, ensure_home

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOG_TAIL_LINES = 30
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM
_job_name = job_name  # the name older callers use


class Execution:
    """One execution of a definition (or a retry of one). `run()` returns the process exit code."""

    def __init__(
        self,
        definition: Mapping[str, Any],
        parameters: Mapping[str, Any],
        settings: Settings,
        out: Callable[[str], None] = print,
        stream_logs: bool = True,
        pipeline_name: Optional[str] = None,
        notes: Iterable[str] = (),
        resume: Optional[Mapping[str, Any]] = None,
        warm: Optional[launcher.WarmStart] = None,
        graph: Optional[PipelineGraph] = None,
    ):
        """resume: the record of a Failed or Stopped execution to retry (same id, its succeeded steps reused);
        warm: the run's WarmStart, when it began before the execution (run_local), else run() starts one;
        graph: load_definition(definition), when the caller has checked it already."""
        previous = ExecutionRecord.from_dict(resume) if resume else None
        self.definition = dict(definition)
        self.graph = graph if graph is not None else load_definition(self.definition)
        self.parameters = ex.resolve_parameters(self.definition, parameters)
        self.overrides = {k: str(v) for k, v in dict(parameters).items()}
        self.settings = settings
        if out is print:  # bind the console now: in-process steps redirect sys.stdout into their log
            console = sys.stdout
            out = lambda text: print(text, file=console, flush=True)  # noqa: E731
        self.out = out
        self.stream_logs = stream_logs
        self.id = previous.execution_id if previous else new_execution_id()
        self.pipeline_name = (
            (previous.pipeline_name if previous else None) or pipeline_name or _pipeline_name(self.definition, settings)
        )
        self.dir = executions_dir(settings) / self.id
        self.started = (
            datetime.datetime.fromisoformat(previous.start_time) if previous and previous.start_time else now()
        )
        self.attempt_started = now()
        self.attempt, self.attempts = 1, []  # this attempt; the earlier ones (a retry's)
        region, account = settings.effective_region, "000000000000"
        self.arn = f"arn:aws:sagemaker:{region}:{account}:pipeline/{self.pipeline_name.lower()}/execution/{self.id}"
        self.execution_vars = {
            "PipelineExecutionId": self.id,
            "PipelineExecutionArn": self.arn,
            "StartDateTime": iso(self.started),
            "CurrentDateTime": iso(self.started),
            "PipelineName": self.pipeline_name,
            "PipelineArn": f"arn:aws:sagemaker:{region}:{account}:pipeline/{self.pipeline_name.lower()}",
        }
        self.properties: dict = {}
        self.records: dict = {
            name: StepRecord(
                name=name,
                type=spec.type,
                display_name=spec.display_name,
                description=spec.body.get("Description", ""),
                depends_on=list(spec.depends_on),
            )
            for name, spec in ((n, self.graph.steps[n]) for n in self.graph.order)
        }
        self.status = EXECUTING
        self.failure_reason: Optional[str] = None
        self.notes = list(notes)
        self.process: Optional[subprocess.Popen] = None  # the running step's process (supervised)
        self.step_process: Optional[dict] = None  # and its identity
        self._client = None
        self.api = None  # the loopback AWS API the steps call (started by run())
        self.step_env = None  # the processing steps' interpreter, resolved at the first one
        self.launcher = None  # the warm step launcher (pipelines.local.launcher), started at the first step
        self.warm_start = warm  # the steps' interpreter and launcher, made from the run's start on
        # the environment steps start from: this process's as the execution began (run), so that what
        # the runtime's own imports set later (joblib's KMP_INIT_AT_FORK, with an in-process transform)
        # never reaches a step
        self.environ: Optional[dict] = None
        self._automl_prestarted = False  # the AutoML job's worker, started ahead (_prestart_automl)
        self._overlays_prepared = False  # the launcher's servers for later steps' overlays (_prepare_overlays)
        self._imported_ahead = False  # the engine of a transform to come, imported while waiting (import_ahead)
        self._saved: Optional[bytes] = None  # execution.json as last written (save)
        self.runtime_process = process_identity(os.getpid())
        if previous:
            self._resume(previous)

    def _resume(self, previous: ExecutionRecord) -> None:
        """A retry: the steps that succeeded keep their records and properties; the others run again."""
        self.overrides = dict(previous.overrides)
        self.notes = list(previous.notes) + [n for n in self.notes if n not in previous.notes]
        self.attempts = previous.attempt_history()
        self.attempt = max(a.attempt for a in self.attempts) + 1
        for step in previous.steps:
            if step.name not in self.records:
                continue
            if step.status == SUCCEEDED and step.name in previous.properties:
                step.reused, step.attempt = True, step.attempt or 1
                self.records[step.name] = step
                self.properties[step.name] = previous.properties[step.name]
                continue
            history = list(step.attempts or [])
            if step.start_time:  # it ran (and failed or was stopped)
                history.append(step.as_attempt())
            self.records[step.name].attempts = history or None

    @property
    def retried_from(self) -> Optional[str]:
        """The first step this attempt runs again (None on a first attempt)."""
        if self.attempt == 1:
            return None
        return next((n for n in self.graph.order if not self.records[n].reused), None)

    # -- records
    def execution_record(self) -> ExecutionRecord:
        ended = self.status != EXECUTING
        current = Attempt(
            attempt=self.attempt,
            start_time=iso(self.attempt_started),
            end_time=iso(now()) if ended else None,
            status=self.status,
            failure_reason=self.failure_reason,
            runtime_process=self.runtime_process,
            retried_from=self.retried_from,
        )
        return ExecutionRecord(
            execution_id=self.id,
            execution_arn=self.arn,
            pipeline_name=self.pipeline_name,
            status=self.status,
            failure_reason=self.failure_reason,
            start_time=iso(self.started),
            end_time=iso(now()) if ended else None,
            duration_seconds=round((now() - self.started).total_seconds(), 1) if ended else None,
            parameters=self.parameters,
            overrides=self.overrides,
            notes=self.notes,
            definition=str(self.dir / "definition.json"),
            report=str(self.dir / "report.html"),
            steps=[self.records[name] for name in self.graph.order],
            properties=self.properties,
            runtime_process=self.runtime_process,
            step_pid=self.process.pid if self.process is not None else None,
            step_process=self.step_process,
            attempt=self.attempt,
            attempts=self.attempts + [current],
        )

    def record(self) -> dict:
        """The record as execution.json holds it (and the report and the summary read it)."""
        return self.execution_record().to_dict()

    def save(self) -> None:
        """execution.json, atomically; not rewritten when nothing in it changed since the last save."""
        data = encode_record(self.record())
        if data != self._saved:
            atomic_write_bytes(self.dir / "execution.json", data)
            self._saved = data

    @property
    def client(self):
        if self._client is None:
            from pipelines.local.sagemaker import LocalSageMakerClient

            self._client = LocalSageMakerClient(self.settings)
        return self._client

    # -- expression context
    def context(self, step: str) -> ex.Context:
        variables = dict(self.execution_vars, CurrentDateTime=iso(now()))
        spec = self.graph.steps[step]
        if spec.type == "Processing":
            variables["ProcessingJobName"] = self.step_job_name(step)
        return ex.Context(
            parameters=self.parameters,
            execution=variables,
            steps=self.properties,
            property_file=self.read_property_file,
            json_reader=self.read_json_uri,
            step_names=tuple(self.graph.order),
            current_step=step,
        )

    def step_job_name(self, step: str) -> str:
        return job_name(self.id, step, int(self.records[step].attempt_count or 1))

    def read_property_file(self, step: str, name: str) -> tuple:
        spec = self.graph.steps.get(step)
        if spec is None:
            raise ex.ExpressionError(f"JsonGet: there is no step {step!r}")
        files = {f.get("PropertyFileName"): f for f in spec.body.get("PropertyFiles") or []}
        if name not in files:
            raise ex.ExpressionError(
                f"JsonGet: step {step} declares property files {', '.join(map(repr, files)) or 'none'}, not {name!r}"
            )
        if step not in self.properties:
            raise ex.ExpressionError(
                f"JsonGet: step {step} has not run in this execution, so its property file {name} does not exist yet"
            )
        output = files[name].get("OutputName")
        uri = ex.walk(
            self.properties[step],
            ["ProcessingOutputConfig", "Outputs", output, "S3Output", "S3Uri"],
            f"property file {name} of step {step}",
        )
        path = local_path(str(uri).rstrip("/") + "/" + files[name].get("FilePath", ""), self.settings)
        if not path.is_file():
            present = sorted(p.name for p in path.parent.glob("*")) if path.parent.is_dir() else []
            raise ex.ExpressionError(
                f"JsonGet: property file {name} of step {step}: {path} does not exist "
                f"(output {output!r} holds: {', '.join(present) or 'nothing'})"
            )
        try:
            return json.loads(path.read_text()), str(path)
        except json.JSONDecodeError as error:
            raise ex.ExpressionError(
                f"JsonGet: property file {name} of step {step} ({path}) is not JSON: {error}"
            ) from error

    def read_json_uri(self, uri: str) -> Any:
        path = local_path(uri, self.settings)
        if not path.is_file():
            raise ex.ExpressionError(f"JsonGet: {uri} does not exist (looked in {path})")
        return json.loads(path.read_text())

    # -- running
    def run(self) -> int:
        """Run with the loopback AWS API up; leaving stops it and any AutoML job still training."""
        from pipelines.local.aws_api import LocalAWSServer

        self.environ = dict(os.environ)
        if self.warm_start is None and _has_processing(self.definition.get("Steps")):
            self.warm_start = warm_start(self.settings, self.out)
        try:
            if self.warm_start is not None:
                self._plan_warm_start()
            with LocalAWSServer(self.settings) as self.api:
                try:
                    return self._run()
                finally:
                    launcher.close(self)  # the warm step launcher, if a step started it
        finally:
            if self.warm_start is not None:
                self.warm_start.close()

    def _plan_warm_start(self) -> None:
        """The step launcher starts now, beside the runtime's own start, with the environment the first
        processing step will have (that step takes it; pipelines.local.launcher.WarmStart)."""
        steps = (self.graph.steps[n] for n in self.graph.order if not self.records[n].reused)
        first = next((spec for spec in steps if spec.type == "Processing"), None)
        if first is None:
            self.warm_start.plan(None, self.dir / "steps")
            return

        def environment() -> Optional[dict]:
            if getattr(self.settings, "step_launcher", "spawn") != "fork":
                return None
            try:
                return ProcessingExecutor(self).first_step_environment(first)
            except (ex.ExpressionError, ex.ParameterError, KeyError, TypeError, ValueError):
                return None  # known only when the step runs: it starts the launcher then

        self.warm_start.plan(environment, self.dir / "steps")

    def _announce(self) -> None:
        total = len(self.graph.order)
        if self.attempt == 1:
            self.out(f"Execution {self.id} of {self.pipeline_name} (local runtime), {total} steps; record: {self.dir}")
            return
        reused = [n for n in self.graph.order if self.records[n].reused]
        self.out(
            f"Retrying execution {self.id} of {self.pipeline_name} (local runtime), attempt "
            f"{self.attempt}: from step {self.retried_from}, reusing {len(reused)} succeeded "
            f"step(s); record: {self.dir}"
        )

    def _run(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.attempt == 1:
            write_json(self.dir / "definition.json", self.definition)
        self.save()
        self._announce()
        total = len(self.graph.order)
        skipped: set = set()
        current: Optional[str] = None
        try:
            for index, name in enumerate(self.graph.order, start=1):
                spec, record = self.graph.steps[name], self.records[name]
                if record.reused:
                    self.out(f"[{index}/{total}] {name}: Succeeded (reused from attempt {record.attempt})")
                    if spec.type == "Condition":
                        skip_branch_not_taken(self.graph, spec, bool(self.properties[name].get("Outcome")), skipped)
                    continue
                blocked = [d for d in spec.depends_on if self.records[d].status != SUCCEEDED]
                if name in skipped or blocked or self.status != EXECUTING:
                    record.status = NOT_EXECUTED
                    if self.status == EXECUTING:
                        why = (
                            branch_not_taken(spec)
                            if name in skipped
                            else "depends on " + ", ".join(blocked) + " which did not succeed"
                        )
                        record.failure_reason, record.note = None, why
                        self.out(f"[{index}/{total}] {name}: not executed ({why})")
                    continue
                current = name
                self._run_step(spec, record, index, total, skipped)
                current = None
                if record.status == FAILED:
                    self.status = FAILED
                    self.failure_reason = (
                        record.failure_reason if spec.type == "Fail" else f"step {name} failed: {record.failure_reason}"
                    )
        except KeyboardInterrupt as interrupt:
            return self._stopped(interrupt, current)
        if self.status == EXECUTING:
            self.status = SUCCEEDED
        self.save()
        self._write_report()
        self.out(self.summary())
        if self.status == SUCCEEDED:
            return 0
        # a step script that refused its input (exit 2: a bad file, column or value) makes the run exit 2 too
        refused = [r for r in self.records.values() if r.status == FAILED and r.exit_code == EXIT_BAD_INPUT]
        if refused:  # --retry would run again with the same parameters, so the same input
            self.out(self._input_advice(refused))
            return EXIT_BAD_INPUT
        if not any(r.status == FAILED and self.graph.steps[r.name].type == "Fail" for r in self.records.values()):
            # a Fail step's condition fails again on a retry (same data, same parameters): the summary says what to do
            self.out(f"Retry it from the failed step: python -m pipelines.run --retry {self.id}")
        return 1

    def _input_advice(self, refused: list) -> str:
        """What to do after a step refused its input: correct it and start a new execution, naming the
        --param that gave the input (--retry reuses the execution's parameters, the bad input too)."""
        names = list(dict.fromkeys(p for r in refused for p in parameter_inputs(self.graph.steps[r.name]).values()))
        if not names:
            return (
                "The step refused its input: correct the parameter or file the failure names and start a new "
                "execution (the command above, corrected); --retry would run again with the same parameters."
            )
        fix = " or ".join(f"{n}=<corrected file>" for n in names)
        reused = ", ".join(f"{n}={self.parameters.get(n, '')}" for n in names)
        return (
            f"The input was refused: fix what the failure names (the file, or a --param such as {fix}) and "
            f"start a new execution (the command above, corrected); --retry would reuse {reused}."
        )

    def _stopped(self, interrupt: KeyboardInterrupt, current: Optional[str]) -> int:
        """Ctrl-C or SIGTERM: the step's process group is stopped and the execution recorded Stopped."""
        self.stop_process()
        self.step_process = None
        how = interrupt.how if isinstance(interrupt, Interrupted) else "Ctrl-C"
        reason = "stopped by SIGTERM" if how == "SIGTERM" else "stopped by the user (Ctrl-C)"
        if current:
            step = self.records[current]
            step.status, step.end_time, step.failure_reason = STOPPED, iso(now()), reason
            if step.start_time:
                started = datetime.datetime.fromisoformat(step.start_time)
                step.duration_seconds = round((now() - started).total_seconds(), 1)
        for step in self.records.values():
            if step.status == PENDING:
                step.status = NOT_EXECUTED
        self.status, self.failure_reason = STOPPED, reason
        self.save()
        self._write_report()
        self.out(
            f"\nExecution {self.id} stopped ({how}). Record: {self.dir / 'execution.json'}\n"
            f"Retry it from the stopped step: python -m pipelines.run --retry {self.id}"
        )
        return EXIT_TERMINATED if how == "SIGTERM" else EXIT_INTERRUPTED

    def _run_step(self, spec: StepSpec, record: StepRecord, index: int, total: int, skipped: set) -> None:
        step_dir = self.dir / "steps" / spec.name
        history = record.attempts or []
        if history and (step_dir / "log.txt").is_file():  # the failed attempt's log stays readable
            kept = self.dir / "steps" / f"{spec.name}.attempt-{history[-1].attempt}.log"
            os.replace(step_dir / "log.txt", kept)
            history[-1].log = str(kept)
        if step_dir.exists():
            shutil.rmtree(step_dir)
        step_dir.mkdir(parents=True)
        log_path = step_dir / "log.txt"
        record.status, record.start_time, record.log = EXECUTING, iso(now()), str(log_path)
        record.attempt, record.attempt_count = self.attempt, len(history) + 1
        self.save()
        started = time.monotonic()
        self.out(f"[{index}/{total}] {spec.name} ({spec.type}): {spec.display_name} ... Executing")
        with open(log_path, "a", encoding="utf-8") as log:
            run = StepRun(spec=spec, record=record, step_dir=step_dir, log=log, skipped=skipped)
            try:
                if not self._cache_hit(run):
                    self._prestart_automl(spec)
                    self._prestart_endpoint(spec)
                    executor_for(spec.type, self).run(run)
                    self._prepare_overlays(spec)
                record.status = SUCCEEDED if record.status == EXECUTING else record.status
            except KeyboardInterrupt:
                self._record_calls(record, log)
                raise
            except (StepFailed, ex.ExpressionError, ex.ParameterError, FileNotFoundError) as error:
                record.status, record.failure_reason = FAILED, str(error)
                if getattr(error, "exit_code", None) is not None:
                    record.exit_code = error.exit_code
                log.write(f"\n[runtime] step failed: {error}\n")
            except Exception as error:  # a bug in a step or a stand-in: still a clean step failure
                log.write(traceback.format_exc())
                record.status, record.failure_reason = FAILED, f"{type(error).__name__}: {error}"
            self._record_calls(record, log)
        elapsed = time.monotonic() - started
        record.end_time, record.duration_seconds = iso(now()), round(elapsed, 1)
        self.save()
        if record.status == SUCCEEDED and record.cache_key:  # after the save: the index points at a Succeeded record
            try:
                listing.index_success(self.settings, self.pipeline_name, spec.name, record.cache_key, self.id)
            except OSError as error:  # the next run then misses this cache entry, nothing worse
                self.out(f"    (could not index {spec.name}'s cache entry: {error})")
        hit = record.cache_hit
        how = (
            f" (cache hit: outputs of execution {hit['SourcePipelineExecutionArn'].rsplit('/', 1)[-1]})" if hit else ""
        )
        self.out(f"[{index}/{total}] {spec.name}: {record.status}{how} in {format_duration(elapsed)}")
        if record.status == FAILED and spec.type != "Fail":
            lines = tail(log_path, LOG_TAIL_LINES if not self.stream_logs else 12)
            if lines:
                self.out(f"--- last lines of {log_path} ---\n{lines}\n---")
            self.out(f"Step {spec.name} failed: {record.failure_reason}\n(full log: {log_path})")

    def _prestart_automl(self, spec: StepSpec) -> None:
        """Once a processing step runs (not a cache hit) and an AutoML step is still to come, the AutoML
        job's worker starts now (pipelines.local.automl_worker.prestart): its engine imports overlap
        the steps before the job instead of delaying it."""
        if self._automl_prestarted or spec.type != "Processing":
            return
        ahead = self.graph.order[self.graph.order.index(spec.name) :]
        if any(self.records[n].status in (PENDING, EXECUTING) and _runs_automl(self.graph.steps[n]) for n in ahead):
            self._automl_prestarted = True
            from pipelines.local import automl_worker

            try:
                automl_worker.prestart(self.settings)
            except OSError as error:  # the job starts its worker itself then
                self.out(f"    (could not start the AutoML worker ahead: {error})")

    def _prestart_endpoint(self, spec: StepSpec) -> None:
        """A processing step whose next step (conditions aside) is a pending Lambda step running the
        deploy handler starts the local endpoint's server process ahead
        (pipelines.local.sagemaker_endpoints.prestart_server): its imports overlap this step."""
        order = self.graph.order
        ahead = [n for n in order[order.index(spec.name) + 1 :] if self.graph.steps[n].type != "Condition"]
        if spec.type != "Processing" or not ahead or self.records[ahead[0]].status != PENDING:
            return
        arn = str(self.graph.steps[ahead[0]].body.get("FunctionArn", ""))
        function = arn.split(":function:", 1)[1].split(":")[0] if ":function:" in arn else arn
        if self.graph.steps[ahead[0]].type == "Lambda" and function == self.settings.deploy_function_name:
            from pipelines.local import sagemaker_endpoints

            try:
                sagemaker_endpoints.prestart_server(self.settings)
            except OSError as error:  # the deploy starts the server itself then
                self.out(f"    (could not start the endpoint's server ahead: {error})")

    def import_ahead(self) -> None:
        """Called once, when a processing step is about to wait for the step launcher's imports: this
        thread has nothing else to do then, so the engine an in-process Transform step still to come
        imports (`forecasting`, 0.6-0.9 s of CPU) is imported now, beside the launcher's imports, instead
        of in the transform's time. Not when an AutoML step is to come: the job's worker was started
        ahead with this process's environment, which importing the engine changes (joblib sets
        KMP_INIT_AT_FORK); steps start from the environment as the execution began (self.environ)."""
        if self._imported_ahead:
            return
        self._imported_ahead = True
        pending = [self.graph.steps[n] for n in self.graph.order if self.records[n].status in (PENDING, EXECUTING)]
        if any(_runs_automl(spec) for spec in pending) or not any(spec.type == "Transform" for spec in pending):
            return
        try:
            import forecasting  # noqa: F401
        except Exception as error:  # noqa: BLE001 - the transform imports it again and reports its own error
            self.out(f"    (could not import the engine ahead: {type(error).__name__}: {error})")

    def _prepare_overlays(self, spec: StepSpec) -> None:
        """Once a step has forked from the step launcher, a server forked from it for each installed
        requirements overlay a step still to come runs with (launcher.StepLauncher.with_overlay): its
        imports (matplotlib, for the plotting steps) overlap the steps before that one instead of
        delaying it."""
        if self._overlays_prepared or spec.type != "Processing" or self.launcher is None or not self.launcher.used:
            return
        self._overlays_prepared = True
        executor = ProcessingExecutor(self)
        for name in self.graph.order[self.graph.order.index(spec.name) + 1 :]:
            later = self.graph.steps[name]
            if later.type != "Processing" or self.records[name].status != PENDING:
                continue
            try:
                overlay = executor.planned_overlay(later)
            except (ex.ExpressionError, ex.ParameterError, KeyError, TypeError, ValueError, OSError):
                continue  # known only when it runs: it imports its own
            if overlay is not None:
                self.launcher.with_overlay(overlay)

    def _cache_hit(self, run: StepRun) -> bool:
        """A step with caching enabled whose key matches an earlier successful run reuses that run."""
        spec, record = run.spec, run.record
        config = caching.cache_config(spec.body)
        if config is None or not config.enabled:
            return False
        arguments = ex.resolve(spec.body.get("Arguments") or {}, self.context(spec.name))
        key = caching.step_key(spec.type, arguments, self.settings)
        if key is None:
            self.log_line(
                run.log, f"[runtime] CacheConfig: the local runtime does not cache {spec.type} steps; running it"
            )
            return False
        record.cache_key = key
        hit = caching.find_hit(
            listing.candidate_records(self.settings, self.pipeline_name, spec.name, key),
            pipeline_name=self.pipeline_name,
            step_name=spec.name,
            key=key,
            expire_after=config.expire_after,
            settings=self.settings,
            exclude=self.id,
        )
        if hit is None:
            self.log_line(
                run.log, f"[runtime] cache miss (key {key[:12]}; ExpireAfter {config.expire_text}): running the step"
            )
            return False
        self.properties[spec.name] = hit.properties
        record.outputs = dict(hit.step.get("outputs") or {})
        if hit.step.get("property_files"):
            record.property_files = dict(hit.step["property_files"])
        record.cache_hit = {"SourcePipelineExecutionArn": hit.source_execution_arn}
        self.log_line(
            run.log,
            f"[runtime] cache hit (key {key[:12]}): same arguments and input contents as in "
            f"execution {hit.source_execution_id} (ended {hit.step.get('end_time')}); reusing "
            "its outputs: " + ", ".join(f"{k} {v}" for k, v in record.outputs.items()),
        )
        return True

    def _record_calls(self, record: StepRecord, log) -> None:
        """The AWS API calls the step made (served by the loopback API), in the log and the record."""
        calls = self.api.take_calls() if self.api is not None else []
        if calls:
            record.aws_calls = calls
            log.write(
                "[runtime] AWS API calls: "
                + ", ".join(
                    f"{c['service']} {c['operation']} {c['status']}{' ' + c['error'] if c['error'] else ''}"
                    + (f" x{c['count']}" if c["count"] > 1 else "")
                    for c in calls
                )
                + "\n"
            )

    def log_line(self, log, text: str) -> None:
        """A line of the runtime's own in the step's log (and on the console when logs stream)."""
        log.write(text + ("" if text.endswith("\n") else "\n"))
        log.flush()
        if self.stream_logs:
            for line in text.rstrip("\n").splitlines():
                self.out(f"    | {line}")

    def stop_process(self) -> None:
        """Terminate the running step subprocess (its whole process group), then kill it."""
        supervision.stop(self.process)

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


def branch_not_taken(spec: StepSpec) -> str:
    """Why a step of a Condition's branch did not run, as the run output and the reports say it."""
    if spec.branch == "ElseSteps":
        return f"{spec.condition} passed; this step runs when it does not"
    return f"{spec.condition} did not pass; this step runs when it does"


def _pipeline_name(definition: Mapping[str, Any], settings: Settings) -> str:
    metadata = definition.get("Metadata") or {}
    if isinstance(metadata, Mapping) and metadata.get("PipelineName"):
        return str(metadata["PipelineName"])
    names = {s.get("Name") for s in definition.get("Steps") or []}
    if contracts.STEP_BATCH_FORECAST in names or contracts.STEP_RESOLVE_MODEL in names:
        return settings.batch_pipeline_name
    return settings.training_pipeline_name


# --- entry points (pipelines/run.py calls these) -------------------------------------------
def run_local(
    definition: Any,
    parameters: Optional[Mapping[str, Any]],
    settings: Settings,
    out: Callable[[str], None] = print,
    stream_logs: bool = True,
    warm: Optional[launcher.WarmStart] = None,
) -> int:
    """Execute `definition` locally; returns the exit code (0 ok, 1 failed, 2 bad input, 130 Ctrl-C, 143 SIGTERM).

    warm: a WarmStart the caller began before it had the definition (pipelines.run: warm_start(early=True),
    before rendering); this function owns it from here (the execution closes it, or this does)."""
    try:
        if isinstance(definition, (str, bytes)):
            definition = json.loads(definition)
        parameters = dict(parameters or {})
        ensure_home(settings.home_path)  # with its marker: teardown --include-data recognises it
        for name, value in THREADING_ENV.items():  # before this process loads OpenMP (in-process transforms)
            os.environ.setdefault(name, value)
        try:
            graph = load_definition(definition)
            ex.resolve_parameters(definition, parameters)
        except (DefinitionError, ex.ParameterError, ex.ExpressionError) as error:
            out(f"error: {error}")
            return 2
        # a definition that runs: the steps' interpreter is resolved from now on (when the caller has not
        # begun that already), beside the seed data, the execution's set-up and the API's start
        if not _has_processing(definition) and warm is not None:
            warm.close()
            warm = None
        elif warm is None and _has_processing(definition):
            warm = warm_start(settings, out)
        notes = []
        try:
            note = ensure_seed_data(definition, parameters, settings, out)
        except KeyboardInterrupt:
            out("stopped (Ctrl-C) while generating the seed dataset")
            return EXIT_INTERRUPTED
        if note:
            notes.append(note)
        execution = Execution(
            definition, parameters, settings, out=out, stream_logs=stream_logs, notes=notes, warm=warm, graph=graph
        )
        warm = None  # the execution closes it
        return _run_with_signals(execution)
    finally:
        if warm is not None:
            warm.close()


def _runs_automl(spec: StepSpec) -> bool:
    """A processing step that creates an AutoML job (the step module processing.automl_job)."""
    app = (spec.body.get("Arguments") or {}).get("AppSpecification") or {}
    command = list(app.get("ContainerEntrypoint") or []) + list(app.get("ContainerArguments") or [])
    return spec.type == "Processing" and any(str(part) == "processing.automl_job" for part in command)


def _has_processing(definition: Any) -> bool:
    """A Processing step anywhere in the definition (a Condition's branches included)."""
    if isinstance(definition, Mapping):
        return definition.get("Type") == "Processing" or any(_has_processing(v) for v in definition.values())
    if isinstance(definition, list):
        return any(_has_processing(v) for v in definition)
    return False


def warm_start(settings: Settings, out: Callable[[str], None], early: bool = False) -> launcher.WarmStart:
    """The processing steps' interpreter (pipelines.local.step_env) resolved in a thread from now on.

    early: the step launcher is started too, at once, with the environment the steps are expected to get
    (executors.expected_launcher_environment): for a caller that does not have the definition yet."""
    if out is print:  # bind the console now, as Execution does: in-process steps redirect sys.stdout
        console = sys.stdout
        out = lambda text: print(text, file=console, flush=True)  # noqa: E731

    def resolve():
        from pipelines.local import step_env

        return step_env.resolve(settings, out=out)

    def expected() -> Optional[tuple]:
        if getattr(settings, "step_launcher", "spawn") != "fork":
            return None
        from pipelines.local.executors import expected_launcher_environment

        ensure_home(settings.home_path)
        return expected_launcher_environment(settings), executions_dir(settings)

    return launcher.WarmStart(resolve, early=expected if early else None)


def _run_with_signals(execution: Execution) -> int:
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


def retry_local(
    execution_id: str, settings: Settings, out: Callable[[str], None] = print, stream_logs: bool = True
) -> int:
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
    with open(path.parent / ".retry.lock", "a") as lock:  # one retry of an execution at a time
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            out(
                f"error: --retry {execution_id}: another process is retrying this execution right now; "
                "wait for it (python -m pipelines.run --list shows its status)"
            )
            return 2
        try:
            record = _retryable(execution_id, path)
            definition = json.loads((path.parent / "definition.json").read_text())
            ensure_home(settings.home_path)
            for name, value in THREADING_ENV.items():
                os.environ.setdefault(name, value)
            execution = Execution(
                definition, record.get("parameters") or {}, settings, out=out, stream_logs=stream_logs, resume=record
            )
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
        raise RetryRefused(
            f"--retry {execution_id}: there is no local execution with that id under {root}{hint} "
            "(python -m pipelines.run --list shows them)"
        )
    return path


def _retryable(execution_id: str, path: Path) -> dict:
    """The record, when its execution may be retried (a dead runtime's is marked Failed first)."""
    record = mark_if_dead(json.loads(path.read_text()), path)
    status = record.get("status")
    if status == EXECUTING:
        pid = (record.get("runtime_process") or {}).get("pid")
        raise RetryRefused(
            f"--retry {execution_id}: the execution is still Executing (runtime process {pid}); "
            f"wait for it to end, or stop it (Ctrl-C in its terminal, or kill -TERM {pid}), "
            "then retry"
        )
    if status == SUCCEEDED:
        raise RetryRefused(
            f"--retry {execution_id}: the execution Succeeded, there is nothing to retry; "
            "start a new execution with python -m pipelines.run"
        )
    if status not in (FAILED, STOPPED):
        raise RetryRefused(
            f"--retry {execution_id}: the execution is {status}; only a Failed or Stopped execution can be retried"
        )
    supervision.kill_group(record.get("step_process"), f"a step of execution {execution_id}, before its retry")
    return record


class Interrupted(KeyboardInterrupt):
    """A stop by signal; `how` names it ('SIGTERM') so the record says what happened."""

    def __init__(self, how: str):
        super().__init__(how)
        self.how = how


def _raise_interrupt(signum, frame):  # SIGTERM stops the step like Ctrl-C does, and is recorded as SIGTERM
    raise Interrupted(signal.Signals(signum).name)
