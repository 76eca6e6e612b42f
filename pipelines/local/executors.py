"""Step executors: one small class per step type, each doing only its type's work.

The execution (pipelines.local.runtime.Execution) owns the ceremony around a step: status,
timings, the log file, caching, errors and the record. An executor gets a `StepRun` (the
step's spec, its record, folder and log) and does the work, leaving the step's properties
in `execution.properties` and what it produced in the record; it raises StepFailed (or an
expression error) to fail the step.

- Processing: the step's entrypoint as a subprocess run by the processing image's environment
  (pipelines/local/step_env.py), /opt/ml/processing mapped to the step's folder, inputs copied
  from the local object store, outputs copied back, AWS reached through the loopback API;
- Transform / Model / RegisterModel: the local SageMaker client (pipelines.local.sagemaker);
- Lambda: the deploy handler, in-process, within the Lambda step's 10 minutes;
- Condition and Fail with SageMaker's semantics (the branch not taken does not run).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Optional, Protocol, TextIO

from pipelines import preflight
from pipelines.local import condition_text, launcher, limits, supervision
from pipelines.local import expressions as ex
from pipelines.local.graph import StepSpec
from pipelines.local.records import FAILED, StepRecord, iso, now, plain
from pipelines.local.report import format_duration
from pipelines.local.store import copy_in, copy_out, is_local_source
from processing.kernel import contracts
from processing.kernel.process_env import THREADING_ENV
from processing.kernel.settings import ENVIRONMENT

PROCESSING_PREFIX = contracts.PROCESSING_ROOT
EXIT_BAD_INPUT = 2  # the step scripts' exit code for input they refuse (pipelines.local.runtime reads it)
HEARTBEAT_SECONDS = 30  # a quiet step still shows it is alive


class Execution(Protocol):
    """What an executor uses of the execution it runs a step for (pipelines.local.runtime.Execution)."""

    settings: Any
    graph: Any  # the PipelineGraph
    properties: dict  # step name -> its properties (what Get reads)
    notes: list
    stream_logs: bool
    api: Any  # the loopback AWS API (LocalAWSServer)
    process: Any  # the running step's process, and its identity (supervision)
    step_process: Optional[dict]
    step_env: Any  # the processing steps' interpreter, resolved at the first one
    launcher: Any  # the warm step launcher (pipelines.local.launcher), started at the first step
    client: Any  # the local SageMaker client

    def out(self, text: str) -> None: ...
    def context(self, step: str) -> ex.Context: ...
    def step_job_name(self, step: str) -> str: ...
    def log_line(self, log: Any, text: str) -> None: ...
    def save(self) -> None: ...
    def stop_process(self) -> None: ...


class StepFailed(RuntimeError):
    """A step failed; the message is its failure reason (exit_code: the step process's, when it ran one)."""

    def __init__(self, message: str, exit_code: Optional[int] = None):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class StepRun:
    """One run of one step: what an executor works with."""

    spec: StepSpec
    record: StepRecord
    step_dir: Path
    log: TextIO
    skipped: set = field(default_factory=set)  # steps of branches not taken (a Condition adds to it)


def job_name(execution_id: str, step: str, attempt: int = 1) -> str:
    """The job (or model) a step creates; a retried step's attempt gets its own (names cannot be reused)."""
    suffix = f"-{attempt}" if attempt > 1 else ""
    name = re.sub(r"[^A-Za-z0-9-]", "-", f"pipelines-{execution_id}-{step}")
    return name[: 63 - len(suffix)].rstrip("-") + suffix


def step_environment(
    settings: Any,
    base: Mapping[str, str],
    definition_env: Mapping[str, str],
    mapped: Callable,
    code_dir: Optional[Path],
    bundle_only: bool = False,
    overlay: Optional[Path] = None,
) -> dict:
    """A processing step's environment variables, the loopback API's aside: `base` (the runtime's
    environment as the execution began), the settings as FORECAST_* variables, the definition's
    Environment, the threading defaults, PYTHONPATH and PYTHONUNBUFFERED. bundle_only: PYTHONPATH is
    the code bundle (and the step's requirements overlay) and nothing else, as in the container."""
    env = dict(base)
    exported: dict = {}
    for variable, name in ENVIRONMENT.items():
        if variable.startswith("FORECAST_") and name not in exported:  # one FORECAST_ spelling per setting
            value = getattr(settings, name, None)
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
    elif base.get("PYTHONPATH"):
        paths.append(base["PYTHONPATH"])
    for name, value in THREADING_ENV.items():
        env.setdefault(name, value)
    env.update(
        {
            "FORECAST_INSTALL_REQUIREMENTS": "0",  # processing.entry: the runtime provides them (overlay)
            "PYTHONPATH": os.pathsep.join(paths),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def expected_launcher_environment(settings: Any) -> dict:
    """The environment a step launcher started before the execution exists gets: a python step's in the
    image's environment whose definition sets only per-step variables (FORECAST_*, PYTHONPATH, ...), as
    the project's pipelines' steps do. The first step's own is checked against it (launcher.WarmStart)."""
    return step_environment(settings, os.environ, {}, lambda value: value, None, bundle_only=True)


class StepExecutor:
    """Runs the steps of one type (`type`) for an execution."""

    type: ClassVar[str] = ""

    def __init__(self, execution: Execution):
        self.execution = execution

    @property
    def settings(self):
        return self.execution.settings

    def log(self, run: StepRun, text: str) -> None:
        self.execution.log_line(run.log, text)

    def arguments(self, run: StepRun) -> Any:
        return ex.resolve(run.spec.body.get("Arguments") or {}, self.execution.context(run.spec.name))

    def run(self, run: StepRun) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


# --- Processing ----------------------------------------------------------------------------------
class ProcessingExecutor(StepExecutor):
    type = "Processing"

    def run(self, run: StepRun) -> None:
        execution, spec, record = self.execution, run.spec, run.record
        arguments = self.arguments(run)
        refused = preflight.request_lines(
            spec.name,
            "CreateProcessingJob",
            {"ProcessingJobName": execution.step_job_name(spec.name), **arguments},
            spec.body.get("Arguments") or {},
            execution.parameters,
            local=True,
        )  # what SageMaker would refuse (a container argument over 256 characters, ...) is refused here too
        if refused:
            raise StepFailed("SageMaker would refuse the step's CreateProcessingJob request: " + "; ".join(refused))
        root = run.step_dir / "processing"

        def mapped(text: Any) -> Any:
            return text.replace(PROCESSING_PREFIX, str(root)) if isinstance(text, str) else text

        code_dir = None
        parameters = parameter_inputs(spec)
        sources: list = []  # (the step's path, the user's): what a failure reason names is translated back
        for item in arguments.get("ProcessingInputs") or []:
            source = item.get("S3Input")
            if not source:
                raise StepFailed(
                    f"input {item.get('InputName')}: only S3Input inputs run locally "
                    "(DatasetDefinition is not supported)"
                )
            target = Path(mapped(source["LocalPath"]))
            try:
                files = copy_in(source["S3Uri"], target, self.settings)
            except FileNotFoundError:
                parameter = parameters.get(str(item.get("InputName")))
                if parameter is None:
                    if not is_local_source(source["S3Uri"]):
                        raise  # the store's reason names the URI and the folder it looked in
                    raise FileNotFoundError(
                        f"input {item.get('InputName')}={source['S3Uri']}: {_missing_input(source['S3Uri'], self.settings)}"
                    ) from None
                raise StepFailed(
                    f"--param {parameter}={source['S3Uri']}: {_missing_input(source['S3Uri'], self.settings, parameter)}",
                    exit_code=EXIT_BAD_INPUT,
                ) from None
            sources += _source_names(source["S3Uri"], files, target, source["LocalPath"])
            self.log(
                run, f"[runtime] input {item.get('InputName')}: {source['S3Uri']} -> {target} ({len(files)} file(s))"
            )
            if item.get("InputName") == "code" or source["LocalPath"] == contracts.CODE_DIR:
                code_dir = target
        outputs = (arguments.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        for item in outputs:
            Path(mapped(item["S3Output"]["LocalPath"])).mkdir(parents=True, exist_ok=True)
        app = arguments.get("AppSpecification") or {}
        entry = [mapped(str(a)) for a in app.get("ContainerEntrypoint") or []]
        if not entry:
            raise StepFailed(
                "the step has no ContainerEntrypoint; the local runtime cannot run an image's default entrypoint"
            )
        interpreter, overlay = None, None
        if Path(entry[0]).name in ("python", "python3") or re.fullmatch(r"python3(\.\d+)?", entry[0]):
            interpreter, overlay = self.interpreter(run, entry, code_dir)
            entry[0] = interpreter.python if interpreter else sys.executable
        command = entry + [mapped(str(a)) for a in app.get("ContainerArguments") or []]
        env = self.environment(
            arguments.get("Environment") or {}, mapped, code_dir, bundle_only=interpreter is not None, overlay=overlay
        )
        described = record.environment or {}
        self.log(
            run,
            "[runtime] environment: "
            + (described.get("label") or "this Python (the project importable)")
            + (f"; requirements overlay {described['overlay']}" if described.get("overlay") else ""),
        )
        self.log(run, "[runtime] " + " ".join(command))
        returncode = self.spawn(command, env, run, max_runtime=limits.processing_max_runtime(arguments))
        if returncode != 0:
            line, own = user_paths(last_error_line(Path(record.log or "")), sources), f"{spec.name} failed: "
            if returncode == EXIT_BAD_INPUT and line.startswith(own):  # the step's one-line refusal, said once
                raise StepFailed(f"the input was refused (exit code {returncode}): {line[len(own) :]}", returncode)
            raise StepFailed(f"{' '.join(entry[1:]) or entry[0]} exited with code {returncode}: {line}", returncode)
        for item in outputs:
            target_uri = item["S3Output"]["S3Uri"]
            uris = copy_out(Path(mapped(item["S3Output"]["LocalPath"])), target_uri, self.settings)
            record.outputs[item["OutputName"]] = target_uri
            for pf in spec.body.get("PropertyFiles") or []:
                if pf.get("OutputName") == item["OutputName"]:
                    record.property_files = record.property_files or {}
                    record.property_files[pf.get("PropertyFileName")] = (
                        target_uri.rstrip("/") + "/" + pf.get("FilePath", "")
                    )
            self.log(run, f"[runtime] output {item['OutputName']}: {len(uris)} file(s) -> {target_uri}")
        ended = iso(now())
        name = execution.step_job_name(spec.name)
        execution.properties[spec.name] = plain(
            dict(
                arguments,
                ProcessingJobName=name,
                ProcessingJobArn=f"arn:aws:sagemaker:{self.settings.effective_region}:000000000000:processing-job/{name}",
                ProcessingJobStatus="Completed",
                ExitMessage="",
                ProcessingStartTime=record.start_time,
                ProcessingEndTime=ended,
                CreationTime=record.start_time,
                LastModifiedTime=ended,
            )
        )

    def interpreter(self, run: StepRun, entry: list, code_dir: Optional[Path]) -> tuple:
        """(StepEnvironment, requirements overlay) for a python step: the image's environment (or the
        fallback step_env resolved), the step's requirements installed beside it."""
        from pipelines.local import step_env

        execution = self.execution
        module = None  # the step module: python3 -m processing.entry <module>
        if len(entry) > 3 and entry[1:3] == ["-m", "processing.entry"]:
            module = entry[3]
        elif len(entry) > 2 and entry[1] == "-m":
            module = entry[2]
        if execution.step_env is None:
            warm = getattr(execution, "warm_start", None)  # resolved (and the launcher started) at the start
            resolved, started, error = warm.take() if warm is not None else (None, None, None)
            if isinstance(error, step_env.StepEnvironmentError):
                raise StepFailed(str(error)) from None
            if started is not None and getattr(execution, "launcher", None) is None:
                execution.launcher = started
            try:
                execution.step_env = resolved or step_env.resolve(self.settings, out=execution.out)
            except step_env.StepEnvironmentError as error:
                raise StepFailed(str(error)) from None
            execution.out(f"    processing steps run in the {execution.step_env.label}: {execution.step_env.python}")
            if execution.step_env.note:  # the fallback warning: also in the record and the HTML report
                execution.notes.append(execution.step_env.note)
        interpreter = execution.step_env
        overlay, requirements = None, None
        if module and code_dir is not None:
            from processing.entry import requirements_file

            requirements = requirements_file(module, code_dir / "processing" / "requirements")
        if requirements is not None:
            try:
                overlay = step_env.overlay(interpreter, requirements, self.settings, out=execution.out)
            except step_env.StepEnvironmentError as error:
                if self.settings.step_env == "strict":
                    raise StepFailed(f"{requirements.name}: {error}") from None
                self.log(
                    run,
                    f"[runtime] could not install {requirements.name} ({error}): {module} runs "
                    "without it, as on SageMaker when the install fails",
                )
        run.record.environment = interpreter.record(overlay, requirements.name if requirements else None)
        return interpreter, overlay

    def planned_overlay(self, spec: StepSpec) -> Optional[Path]:
        """The requirements overlay the python step `spec` will run with, when it is installed already and
        the step's module and code bundle can be known before it runs (else None: it is found as it runs)."""
        from pipelines.local import step_env
        from pipelines.local.store import local_path
        from processing.entry import requirements_file

        interpreter = self.execution.step_env
        if interpreter is None:
            return None
        arguments, context = spec.body.get("Arguments") or {}, self.execution.context(spec.name)
        # only its command and code input: its other inputs are earlier steps' outputs, not known yet
        app = ex.resolve(arguments.get("AppSpecification") or {}, context)
        entry = [str(a) for a in app.get("ContainerEntrypoint") or []]
        if len(entry) < 4 or entry[1:3] != ["-m", "processing.entry"]:
            return None
        code = next(
            (
                item["S3Input"]
                for item in arguments.get("ProcessingInputs") or []
                if item.get("S3Input")
                and (item.get("InputName") == "code" or item["S3Input"].get("LocalPath") == contracts.CODE_DIR)
            ),
            None,
        )
        if code is None:
            return None
        code = ex.resolve(code.get("S3Uri"), context)
        requirements = requirements_file(entry[3], local_path(code, self.settings) / "processing" / "requirements")
        return step_env.installed_overlay(interpreter, requirements, self.settings) if requirements else None

    def first_step_environment(self, spec: StepSpec) -> Optional[dict]:
        """The environment the processing step `spec` will run with (what a step
        launcher started before it must have), or None when it is not a `python -m` step or its
        arguments cannot be resolved yet."""
        arguments = ex.resolve(spec.body.get("Arguments") or {}, self.execution.context(spec.name))
        root = self.execution.dir / "steps" / spec.name / "processing"

        def mapped(text: Any) -> Any:
            return text.replace(PROCESSING_PREFIX, str(root)) if isinstance(text, str) else text

        app = arguments.get("AppSpecification") or {}
        entry = [mapped(str(a)) for a in app.get("ContainerEntrypoint") or []]
        if len(entry) < 3 or entry[1] != "-m":
            return None
        if not (Path(entry[0]).name in ("python", "python3") or re.fullmatch(r"python3(\.\d+)?", entry[0])):
            return None
        return self.environment(arguments.get("Environment") or {}, mapped, None, bundle_only=True, with_api=False)

    def environment(
        self,
        definition_env: Mapping[str, str],
        mapped: Callable,
        code_dir: Optional[Path],
        bundle_only: bool = False,
        overlay: Optional[Path] = None,
        with_api: bool = True,
    ) -> dict:
        """The step's environment variables (step_environment, from the runtime's environment as the
        execution began). with_api False: without the loopback API's AWS_* variables (a step launcher's
        environment, which has none of them)."""
        base = getattr(self.execution, "environ", None)
        env = step_environment(
            self.settings, os.environ if base is None else base, definition_env, mapped, code_dir, bundle_only, overlay
        )
        if not with_api:
            return env
        api = self.execution.api
        for name in api.UNSET_IN_STEPS:  # steps reach AWS only through the loopback API
            env.pop(name, None)
        env.update(api.step_environment())
        return env

    def spawn(self, command: list, env: dict, run: StepRun, max_runtime: Optional[int] = None) -> int:
        """Run the step's process, streaming its output; past max_runtime it is stopped and the step fails."""
        execution = self.execution
        children_cpu = _children_cpu()
        process = execution.process = launcher.spawn_or_fork(
            execution,
            command,
            run.step_dir,
            env,
            lambda text: self.log(run, text),
            meanwhile=getattr(execution, "import_ahead", None),
        )
        execution.step_process = supervision.process_identity(process.pid)
        execution.save()  # records step_pid: the step's process group
        lines: "queue.Queue[Optional[str]]" = queue.Queue()
        api = execution.api
        if api is not None:  # the API's calls and the AutoML job's output join the step's log
            api.sink = lambda text: lines.put(text.rstrip("\n") + "\n")

        def keep(text: str) -> None:  # a line of the step's output: into its log, and shown when streaming
            run.log.write(text)
            run.log.flush()
            if execution.stream_logs:
                execution.out(f"    | {text.rstrip()}")

        def pump(stream) -> None:  # a thread, so the main thread can report progress while a step is quiet
            for text in stream:
                lines.put(text)
            lines.put(None)

        assert process.stdout is not None
        threading.Thread(target=pump, args=(process.stdout,), daemon=True).start()
        started = last_output = time.monotonic()
        try:
            while True:
                try:
                    line = lines.get(timeout=1.0)
                except queue.Empty:
                    if max_runtime is not None and time.monotonic() - started > max_runtime:
                        execution.stop_process()
                        raise StepFailed(limits.processing_timeout_message(max_runtime)) from None
                    if time.monotonic() - last_output >= HEARTBEAT_SECONDS:
                        execution.out(
                            f"    ... still Executing ({format_duration(time.monotonic() - started)} elapsed)"
                        )
                        last_output = time.monotonic()
                    continue
                if line is None:
                    if api is not None:  # the step's output has ended: a count of repeated calls still owed
                        api.flush_repeats()
                        while not lines.empty():
                            pending = lines.get_nowait()
                            if pending is not None:
                                keep(pending)
                    break
                last_output = time.monotonic()
                if max_runtime is not None and last_output - started > max_runtime:
                    execution.stop_process()
                    raise StepFailed(limits.processing_timeout_message(max_runtime))
                keep(line)
            code = process.wait()
            cpu = getattr(process, "cpu_seconds", None)
            if cpu is None and isinstance(process, subprocess.Popen):  # reaped here: its CPU is this process's
                cpu = _children_cpu() - children_cpu  # children's since the start (a worker reaped meanwhile too)
            if cpu is not None:
                self.log(run, f"[runtime] step process exited {code} after {cpu:.2f} s of CPU")
            return code
        finally:
            if process.poll() is None:
                execution.stop_process()
            execution.process = None
            execution.step_process = None
            if api is not None:
                api.sink = None


# --- Transform, Model, RegisterModel: the local SageMaker client, in-process ---------------------
class InProcessExecutor(StepExecutor):
    """A step whose stand-in runs in the runtime's process; what it prints goes to the step log."""

    def call(self, run: StepRun, function: Callable[[], Any]) -> Any:
        execution = self.execution
        buffer = _TeeWriter(lambda line: self.log(run, line), passthrough=sys.stdout)
        done = threading.Event()
        started = time.monotonic()

        def heartbeat() -> None:
            while not done.wait(HEARTBEAT_SECONDS):
                execution.out(f"    ... still Executing ({format_duration(time.monotonic() - started)} elapsed)")

        threading.Thread(target=heartbeat, daemon=True).start()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            try:
                return function()
            finally:
                done.set()
                buffer.flush_rest()


def client_error(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, Mapping) and "Error" in response:
        return f"{response['Error'].get('Code')}: {response['Error'].get('Message')}"
    return str(error)


class TransformExecutor(InProcessExecutor):
    type = "Transform"

    def run(self, run: StepRun) -> None:
        from botocore.exceptions import ClientError

        execution, client = self.execution, self.execution.client
        arguments = self.arguments(run)
        arguments.setdefault("TransformJobName", execution.step_job_name(run.spec.name))
        name = arguments["TransformJobName"]
        self.log(run, f"[runtime] create_transform_job {name} with model {arguments.get('ModelName')}")
        try:
            self.call(run, lambda: client.create_transform_job(**arguments))
            described = client.describe_transform_job(TransformJobName=name)
        except ClientError as error:
            raise StepFailed(client_error(error)) from None
        execution.properties[run.spec.name] = plain(described)
        run.record.outputs["TransformOutput"] = (arguments.get("TransformOutput") or {}).get("S3OutputPath")
        if described.get("TransformJobStatus") != "Completed":
            raise StepFailed(
                f"transform job {name} {described.get('TransformJobStatus')}: {described.get('FailureReason')}"
            )


class ModelExecutor(InProcessExecutor):
    type = "Model"

    def run(self, run: StepRun) -> None:
        from botocore.exceptions import ClientError

        execution, client = self.execution, self.execution.client
        arguments = self.arguments(run)
        arguments.setdefault("ModelName", execution.step_job_name(run.spec.name))
        try:
            self.call(run, lambda: client.create_model(**arguments))
            execution.properties[run.spec.name] = plain(client.describe_model(ModelName=arguments["ModelName"]))
        except ClientError as error:
            raise StepFailed(client_error(error)) from None


class RegisterModelExecutor(InProcessExecutor):
    type = "RegisterModel"

    def run(self, run: StepRun) -> None:
        from botocore.exceptions import ClientError

        execution, client = self.execution, self.execution.client
        arguments = self.arguments(run)
        try:
            created = self.call(run, lambda: client.create_model_package(**arguments))
            execution.properties[run.spec.name] = plain(
                client.describe_model_package(ModelPackageName=created["ModelPackageArn"])
            )
        except ClientError as error:
            raise StepFailed(client_error(error)) from None


# --- Lambda --------------------------------------------------------------------------------------
class LambdaExecutor(InProcessExecutor):
    type = "Lambda"

    def run(self, run: StepRun) -> None:
        execution, spec = self.execution, run.spec
        ctx = execution.context(spec.name)
        arn = str(ex.resolve(spec.body.get("FunctionArn", ""), ctx))
        event = ex.resolve(spec.body.get("Arguments") or {}, ctx)
        function = arn.split(":function:", 1)[1].split(":")[0] if ":function:" in arn else arn
        if function != self.settings.deploy_function_name:
            raise StepFailed(
                f"Lambda function {arn} has no local stand-in: the local runtime runs "
                f"function:{self.settings.deploy_function_name} (deploy.handler.lambda_handler) only"
            )
        from deploy.handler import lambda_handler

        self.log(run, f"[runtime] deploy.handler.lambda_handler({json.dumps(event, default=str)})")
        seconds = limits.LAMBDA_STEP_TIMEOUT_SECONDS
        try:  # the handler gets a Lambda context with the time left (get_remaining_time_in_millis)
            result = self.call(
                run,
                lambda: limits.call_with_deadline(
                    lambda context: lambda_handler(event, context),
                    seconds,
                    f"Lambda function {function}",
                    f"the pipeline Lambda step's limit ({seconds} s)",
                ),
            )
        except limits.LimitExceeded as error:
            raise StepFailed(str(error)) from None
        self.log(run, f"[runtime] returned {json.dumps(result, default=str)}")
        outputs = {}
        for declared in spec.body.get("OutputParameters") or []:
            name, kind = declared.get("OutputName"), declared.get("OutputType", "String")
            if not isinstance(result, Mapping) or name not in result:
                raise StepFailed(
                    f"the Lambda response has no output parameter {name!r} "
                    f"(it returned keys: {', '.join(result) if isinstance(result, Mapping) else result})"
                )
            outputs[name] = ex.coerce_parameter(name, kind, result[name])
        execution.properties[spec.name] = plain({"OutputParameters": outputs})
        run.record.outputs = outputs


# --- Condition and Fail --------------------------------------------------------------------------
def skip_branch_not_taken(graph, condition: StepSpec, outcome: bool, skipped: set) -> None:
    """The steps of the branch a Condition did not take never run (SageMaker's semantics)."""
    not_taken = "ElseSteps" if outcome else "IfSteps"
    for name, other in graph.steps.items():
        if other.condition == condition.name and other.branch == not_taken:
            skipped.add(name)


class ConditionExecutor(StepExecutor):
    type = "Condition"

    def run(self, run: StepRun) -> None:
        execution, spec = self.execution, run.spec
        ctx = execution.context(spec.name)
        arguments = spec.body.get("Arguments") or {}
        outcome = ex.evaluate_conditions(arguments.get("Conditions") or [], ctx)
        skip_branch_not_taken(execution.graph, spec, outcome, run.skipped)
        details = [describe_condition(condition, ctx) for condition in arguments.get("Conditions") or []]
        self.log(
            run,
            f"[runtime] conditions {' and '.join(details)} -> {outcome}; running "
            f"{'IfSteps' if outcome else 'ElseSteps'}",
        )
        execution.properties[spec.name] = {"Outcome": outcome}
        run.record.outputs = {"Outcome": outcome}
        # the user reads why, in words; the expression with its values stays in the log above
        taken = "IfSteps" if outcome else "ElseSteps"
        branch = [
            n
            for n in execution.graph.order
            if execution.graph.steps[n].condition == spec.name and execution.graph.steps[n].branch == taken
        ]
        run.record.note = condition_text.summary(arguments.get("Conditions") or [], outcome, branch, ctx)
        execution.out(f"    {spec.name}: {run.record.note}")


def describe_condition(condition: Mapping[str, Any], ctx: ex.Context) -> str:
    """A condition with its values resolved, Or/And/Not included: 'Or(Not(Equals('n/a', 'compared')), ...)'."""
    kind = str(condition.get("Type"))
    if kind in ("Or", "And"):
        return f"{kind}({', '.join(describe_condition(c, ctx) for c in condition.get('Conditions') or [])})"
    if kind == "Not":
        return f"Not({describe_condition(condition.get('Condition') or {}, ctx)})"
    try:
        left = ex.resolve(condition.get("LeftValue", condition.get("QueryValue")), ctx)
        right = ex.resolve(condition.get("RightValue", condition.get("Values")), ctx)
    except ex.ExpressionError:
        return kind
    return f"{kind}({left!r}, {right!r})"


class FailExecutor(StepExecutor):
    type = "Fail"

    def run(self, run: StepRun) -> None:
        execution, spec = self.execution, run.spec
        message = str(
            ex.resolve((spec.body.get("Arguments") or {}).get("ErrorMessage", ""), execution.context(spec.name))
        )
        self.log(run, f"[runtime] fail step: {message}")
        run.record.status, run.record.failure_reason = FAILED, message
        execution.properties[spec.name] = {}


EXECUTORS: dict = {
    cls.type: cls
    for cls in (
        ProcessingExecutor,
        TransformExecutor,
        ModelExecutor,
        RegisterModelExecutor,
        LambdaExecutor,
        ConditionExecutor,
        FailExecutor,
    )
}


def executor_for(step_type: str, execution: Execution) -> StepExecutor:
    try:
        return EXECUTORS[step_type](execution)
    except KeyError:
        raise StepFailed(
            f"the local runtime has no executor for {step_type} steps (it runs {', '.join(EXECUTORS)})"
        ) from None


# --- helpers -------------------------------------------------------------------------------------
def _children_cpu() -> float:
    """CPU seconds of this process's reaped children (and theirs)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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


def tail(path: Path, lines: int) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def parameter_inputs(step: Any) -> dict:
    """{input name: pipeline parameter} for a processing step's inputs given straight by a parameter
    (PrepareBatchInput's data: InputDataUrl): what a user fixes with --param when that input is bad.
    `step` is a StepSpec or a step's JSON."""
    body = step.body if isinstance(step, StepSpec) else step
    found = {}
    for item in (body.get("Arguments") or {}).get("ProcessingInputs") or []:
        uri = (item.get("S3Input") or {}).get("S3Uri") if isinstance(item, Mapping) else None
        reference = uri.get("Get") if isinstance(uri, Mapping) else None
        if isinstance(reference, str) and reference.startswith("Parameters."):
            found[str(item.get("InputName"))] = reference.split(".", 1)[1]
    return found


def input_parameters(definition: Mapping[str, Any]) -> list:
    """The parameters any processing step of a definition reads an input from, those in a condition's
    branches too, in definition order (pipelines.run checks them before a local run starts)."""
    found: list = []

    def walk(steps: Any) -> None:
        for body in steps or []:
            if not isinstance(body, Mapping):
                continue
            found.extend(p for p in parameter_inputs(body).values() if p not in found)
            if body.get("Type") == "Condition":
                arguments = body.get("Arguments") or {}
                walk(arguments.get("IfSteps"))
                walk(arguments.get("ElseSteps"))

    walk(definition.get("Steps"))
    return found


def _source_names(uri: str, files: list, target: Path, container: str) -> list:
    """[(path as the step sees it, the user's source)] for one input, most specific first: a single
    file given as the input stands for the folder it was copied into, and for its copy there."""
    pairs = []
    single = len(files) == 1 and not uri.endswith("/") and Path(files[0]).name == uri.rstrip("/").rsplit("/", 1)[-1]
    for folder in (str(target), container.rstrip("/")):
        if single:
            pairs.append((f"{folder}/{Path(files[0]).name}", uri))
        pairs.append((folder, uri.rstrip("/")))
    return pairs


def user_paths(text: str, sources: list) -> str:
    """A step's message with the paths of its copied inputs (the step's folder or /opt/ml/processing/...)
    replaced by what the user gave (InputDataUrl's file or folder): the message names their file."""
    for local, user in sorted(sources, key=lambda pair: len(pair[0]), reverse=True):
        text = re.sub(re.escape(local) + r"(?![\w.-])", lambda _match, user=user: user, text)
    return text


INPUT_ADVICE = "pass an existing CSV/Parquet file or a folder of them"


def missing_local_input(text: str, parameter: Optional[str] = None) -> Optional[str]:
    """Why the local path `text` (a plain path or file:// URI) cannot be an input, or None when it
    exists: the one wording of pipelines.run's check before a run and of a step's failure, for after
    '--param NAME=<text>: ' (the path is named again only when it resolves elsewhere than typed). The
    nearest name beside it is suggested as typed: `--param NAME=<folder as typed><name>`, or quoted."""
    from pipelines.local.store import _source_path
    from processing.kernel.hints import suggest

    path = _source_path(text)
    if path.exists():
        return None
    resolved = path.resolve()
    try:
        siblings = [p.name for p in resolved.parent.iterdir() if not p.name.startswith(".")]
    except OSError:
        siblings = []
    typed_folder = text.rstrip("/")[: -len(path.name)] if path.name else ""
    head = f"--param {parameter}={typed_folder}" if parameter else None
    near = suggest(resolved.name, siblings, render=lambda name: head + name if head else repr(typed_folder + name))
    where = "such file or folder" if str(resolved) == str(path).rstrip("/") else f"file or folder at {resolved}"
    return f"there is no {where}{near}; {INPUT_ADVICE}"


def _missing_input(uri: str, settings: Any, parameter: Optional[str] = None) -> str:
    """Why an input has no data, for after '--param NAME=<uri>: ': a local path that does not exist
    (missing_local_input), an empty folder, or no object under an S3 prefix in the local store."""
    from pipelines.local.store import _source_path, local_path

    if not is_local_source(uri):
        return f"nothing in the local object store at {local_path(uri, settings)}; check the URI or {INPUT_ADVICE}"
    missing = missing_local_input(uri, parameter)
    if missing is not None:
        return missing
    path = _source_path(uri)
    at = "" if str(path.resolve()) == str(path).rstrip("/") else f" at {path.resolve()}"
    return f"the folder{at} has no files; {INPUT_ADVICE}"


def last_error_line(path: Path) -> str:
    """The most telling line of a failed step's log: the last exception or error line."""
    lines = [s.strip() for s in tail(path, 200).splitlines() if s.strip() and not s.startswith("[runtime]")]
    for line in reversed(lines):
        if re.match(r"^([A-Za-z_.]+(Error|Exception|Exit)|error:|Error:)", line) or "Error:" in line:
            return line
    return lines[-1] if lines else "(no output)"


__all__ = ["EXECUTORS", "StepExecutor", "StepFailed", "StepRun", "executor_for", "job_name", "THREADING_ENV"]
