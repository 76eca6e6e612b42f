"""`python -m pipelines.run`: render, upsert and start a pipeline on SageMaker or run it locally.

    python -m pipelines.run                                   # local run (no AWS role configured)
    python -m pipelines.run --target sagemaker --role-arn ... --bucket ... --region ... --wait
    python -m pipelines.run --param ForecastHorizon=28 --param QualityThreshold=0.25
    python -m pipelines.run --definition-only out/            # training.json + automl_request.json
    python -m pipelines.run --list                            # executions (local target)
    python -m pipelines.run --retry EXECUTION_ID              # rerun a Failed/Stopped one from its failed step

Settings resolve once (flags > FORECAST_* environment > forecast.toml > defaults); the first
line printed says which target runs and why. Both targets use the same definition JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from processing.atomic import write_text_atomic
from processing.kernel import aws_errors, console, contracts
from processing.kernel.settings import Settings, SettingsError, resolve, sources

PIPELINES = ("training", "batch")
TERMINAL_STATUSES = ("Succeeded", "Failed", "Stopped")
# checked before anything starts (a step would only find out after the earlier ones ran)
# name: (lowest, highest or None for no upper bound, why, an example value)
PARAMETER_BOUNDS: dict[str, tuple[float, Optional[float], str, str]] = {
    "ForecastHorizon": (1, 500, "periods to forecast; Autopilot accepts 1 to 500", "14"),
    "ChallengerTolerance": (0, None, contracts.CHALLENGER_TOLERANCE_MEANING, "0.05"),
}


class RunError(RuntimeError):
    """A user-facing failure: printed as one line, exit code 1 (or 2 for bad usage)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


# --- arguments ---------------------------------------------------------------------------
def parameters_help(settings: Optional[Settings] = None) -> str:
    """Both pipelines' parameters (name, type, default, meaning) for --help: the overridable ones."""
    from pipelines.batch import parameter_specs as batch_specs
    from pipelines.training import parameter_specs as training_specs

    settings = settings or Settings()
    lines = ["pipeline parameters (--param Name=Value):"]
    for title, specs in (
        ("training (--pipeline training, the default)", training_specs(settings)),
        ("batch (--pipeline batch)", batch_specs(settings)),
    ):
        lines.append(f"  {title}:")
        width = max(len(spec.name) for spec in specs)
        for spec in specs:
            default = repr(spec.default) if spec.default == "" else str(spec.default)
            lines.append(f"    {spec.name.ljust(width)}  {spec.kind:<7}  default {default}")
            lines.append(f"    {'':{width}}  {spec.help}")
    lines.append("  (defaults shown for the local target; the S3 ones follow --bucket and --prefix)")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.run",
        description=__doc__.split("\n\n")[0],
        epilog=parameters_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--target",
        choices=("local", "sagemaker"),
        default=None,
        help=f"where to run, by default sagemaker when a role is configured, else local (or {sources('target')})",
    )
    p.add_argument("--pipeline", choices=PIPELINES, default="training")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="Name=Value",
        help="override a pipeline parameter for this execution (repeatable)",
    )
    p.add_argument("--wait", action="store_true", help="SageMaker: follow the execution until it ends")
    p.add_argument("--no-start", action="store_true", help="only upsert the pipeline (SageMaker) / only render")
    p.add_argument(
        "--definition-only",
        metavar="DIR",
        default=None,
        help="write DIR/training.json, DIR/automl_request.json (and DIR/batch.json); no network",
    )
    p.add_argument("--list", action="store_true", help="list executions (local target)")
    p.add_argument(
        "--retry",
        metavar="EXECUTION_ID",
        default=None,
        help="rerun a Failed or Stopped execution from its first unsuccessful step, with the same "
        "parameters, reusing the steps that succeeded (SageMaker: RetryPipelineExecution; "
        "give the execution ARN or, with --pipeline, its id)",
    )
    p.add_argument("--role-arn", default=None, help=f"SageMaker execution role (or {sources('role_arn')})")
    p.add_argument("--bucket", default=None, help=f"S3 bucket (or {sources('bucket')})")
    p.add_argument("--region", default=None, help=f"AWS region (or {sources('region')})")
    p.add_argument("--prefix", default=None, help=f"S3 key prefix (or {sources('prefix')})")
    p.add_argument("--config", default=None, help="config file (default ./forecast.toml, or FORECAST_CONFIG)")
    p.add_argument(
        "--step-launcher",
        choices=("fork", "spawn"),
        default=None,
        help="local processing steps: forked from a warm launcher (fork, the default) or each a fresh "
        f"interpreter (spawn) (or {sources('step_launcher')})",
    )
    return p


def settings_from_args(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None) -> Settings:
    return resolve(
        {
            "target": args.target,
            "role_arn": args.role_arn,
            "bucket": args.bucket,
            "region": args.region,
            "prefix": args.prefix,
            "config_file": args.config,
            "step_launcher": getattr(args, "step_launcher", None),
        },
        environ=environ,
    )


def parse_overrides(pairs: Sequence[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise RunError(f"--param {pair!r}: expected Name=Value, for example --param ForecastHorizon=28", 2)
        overrides[name.strip()] = value
    return overrides


def check_overrides(definition: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    """Overrides typed like the definition's parameters; unknown names and bad numbers fail clearly."""
    declared = {p["Name"]: p["Type"] for p in definition.get("Parameters", [])}
    typed: dict[str, Any] = {}
    for name, value in overrides.items():
        if name not in declared:
            from processing.kernel.hints import suggest

            hint = suggest(name, declared, render=lambda found, value=value: f"--param {found}={value}")
            raise RunError(
                f"--param {name}: not a parameter of this pipeline{hint}; known: {', '.join(sorted(declared))} "
                "(python -m pipelines.run --help describes them)",
                2,
            )
        kind = declared[name]
        try:
            typed[name] = int(value) if kind == "Integer" else float(value) if kind == "Float" else value
        except ValueError:
            number = "a whole number" if kind == "Integer" else "a number"
            raise RunError(
                f"--param {name}={value}: must be {number} ({kind} parameter), got {value!r}; "
                f"for example --param {name}={'14' if kind == 'Integer' else '0.3'}",
                2,
            ) from None
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}
    for name, (low, high, why, example) in PARAMETER_BOUNDS.items():
        value = typed.get(name, defaults.get(name))
        # no upper bound still means a finite number: Evaluate refuses inf only after AutoML ran
        if (
            name in declared
            and value is not None
            and not (math.isfinite(value) and low <= value <= (math.inf if high is None else high))
        ):
            allowed = f"must be from {low} to {high}" if high is not None else f"must be a number >= {low}"
            raise RunError(
                f"--param {name}={overrides.get(name, value)}: {name} {allowed} ({why}); nothing was "
                f"started. For example --param {name}={example}",
                2,
            )
    return typed


# --- rendering -------------------------------------------------------------------------------
def get_pipeline(name: str, settings: Settings) -> Any:
    if name == "training":
        from pipelines.training import get_pipeline as training_pipeline

        return training_pipeline(settings)
    try:
        batch = importlib.import_module("pipelines.batch")
    except ModuleNotFoundError as error:
        if error.name != "pipelines.batch":
            raise
        raise RunError("the batch pipeline is not available (pipelines/batch.py is missing)") from None
    return batch.get_batch_pipeline(settings)


def pipeline_name(name: str, settings: Settings) -> str:
    return settings.training_pipeline_name if name == "training" else settings.batch_pipeline_name


def render(name: str, settings: Settings) -> str:
    """The definition JSON text, exactly as upserted."""
    return get_pipeline(name, settings).definition()


PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFINITION_SOURCES = ("pipelines", "processing", "evaluation", "forecasting", "deploy")
DEFINITION_ENVIRONMENT = ("AWS_", "SAGEMAKER_", "FORECAST_")
# settings only the local runtime, the endpoint or the CLI read, never a definition: a rendered
# definition is reused whatever they are (a new FORECAST_HOME, another port or step launcher)
LOCAL_ONLY_SETTINGS = (
    "home",
    "target_reason",
    "endpoint_port",
    "api_port",
    "studio_port",
    "endpoint_workers",
    "serving_data_uri",
    "step_env",
    "step_python",
    "step_launcher",
    "cache_dir",
    "config_file",
)


def definition_key(name: str, settings: Settings) -> str:
    """What a rendered definition depends on: the project's sources (definitions and the step code
    bundle), the SDK's version, the settings and the environment the SDK reads."""
    import dataclasses
    import os
    from importlib import metadata

    from processing.kernel.settings import ENVIRONMENT

    local_only = {v for v, field in ENVIRONMENT.items() if field in LOCAL_ONLY_SETTINGS} | {"FORECAST_CONFIG"}

    digest = hashlib.sha256()
    try:
        digest.update(metadata.version("sagemaker").encode())
    except metadata.PackageNotFoundError:
        pass
    digest.update(
        json.dumps(
            [
                name,
                {k: v for k, v in dataclasses.asdict(settings).items() if k not in LOCAL_ONLY_SETTINGS},
                sorted(
                    (k, v)
                    for k, v in os.environ.items()
                    if k.startswith(DEFINITION_ENVIRONMENT) and k not in local_only
                ),
            ],
            sort_keys=True,
            default=str,
        ).encode()
    )
    for package in DEFINITION_SOURCES:
        for path in sorted((PROJECT_ROOT / package).rglob("*")):
            if path.suffix in (".py", ".toml", ".txt") and path.is_file():
                digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:24]


def render_local(name: str, settings: Settings) -> str:
    """render(), kept in the user's cache (FORECAST_CACHE_DIR, beside the step environment) for the
    next local run with the same sources and settings, whatever its FORECAST_HOME.

    Rendering imports the SageMaker SDK (its pydantic shapes: 4 s of CPU, 2-3 s on a quiet machine,
    15 s on a busy one) for a text that only changes when the code, the SDK or the settings do."""
    path = settings.cache_path / "definitions" / f"{name}-{definition_key(name, settings)}.json"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    text = render(name, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return text


def default_automl_request(settings: Settings, execution_id: str = "definition-only") -> dict:
    """The CreateAutoMLJobV2 request the AutoML step sends with default parameters.

    Built by processing.automl_request (the code the step runs), with the data locations of
    this definition's layout: executions/<id>/PrepareData/train and executions/<id>/AutoML/job.
    """
    from processing import automl_request

    return automl_request.default_request(
        settings,
        execution_id=execution_id,
        train_uri=settings.s3_uri("executions", execution_id, contracts.STEP_PREPARE, contracts.PREP_TRAIN),
        output_uri=settings.s3_uri("executions", execution_id, contracts.STEP_AUTOML, "job"),
    )


def write_definitions(directory: Path, settings: Settings, log: Callable[[str], None] = print) -> list[Path]:
    """--definition-only: training.json, automl_request.json and batch.json when it exists."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [_write(directory / "training.json", render("training", settings))]
    written.append(
        _write(
            directory / "automl_request.json",
            json.dumps(default_automl_request(settings), indent=2, sort_keys=True) + "\n",
        )
    )
    try:
        batch_text = render("batch", settings)
    except RunError as error:
        log(f"note: {error}; batch.json not written")
    else:
        written.append(_write(directory / "batch.json", batch_text))
    for path in written:
        log(f"wrote {path}")
    return written


def _write(path: Path, text: str) -> Path:
    return write_text_atomic(path, text)


# --- SageMaker target ------------------------------------------------------------------------
def upsert(sm: Any, name: str, definition: str, settings: Settings, log: Callable[[str], None] = print) -> str:
    """Create the pipeline, or update it when it exists; returns its ARN.

    Requests are checked against botocore's model first (processing.kernel.aws_validation), so a bad
    pipeline name or tag fails here with every problem listed instead of one at a time on AWS.
    """
    from processing.kernel.aws_validation import validate_request

    common = {
        "PipelineName": name,
        "PipelineDisplayName": name,
        "PipelineDescription": f"Demand forecasting ({name}); managed by python -m pipelines.run",
        "PipelineDefinition": definition,
        "RoleArn": settings.role_arn,
    }
    tags = [{"Key": k, "Value": v} for k, v in settings.tags.items()]
    # A token derived from name + definition: a retried create of the same thing is idempotent.
    token = hashlib.sha256((name + "\0" + definition).encode()).hexdigest()
    request = {**common, "ClientRequestToken": token, **({"Tags": tags} if tags else {})}
    validate_request("sagemaker", "CreatePipeline", request)  # before any call, even the describe
    try:
        sm.describe_pipeline(PipelineName=name)
    except Exception as error:  # botocore ClientError: ResourceNotFound
        if _error_code(error) not in ("ResourceNotFound", "ValidationException"):
            raise
        arn = sm.create_pipeline(**request)["PipelineArn"]
        log(f"created pipeline {name}: {arn}")
        return arn
    validate_request("sagemaker", "UpdatePipeline", common)
    arn = sm.update_pipeline(**common)["PipelineArn"]
    if tags:
        sm.add_tags(ResourceArn=arn, Tags=tags)
    log(f"updated pipeline {name}: {arn}")
    return arn


_error_code = aws_errors.error_code


def start_request(name: str, parameters: Mapping[str, Any], now: Optional[time.struct_time] = None) -> dict:
    """StartPipelineExecution request: a readable display name and the overrides as strings."""
    stamp = time.strftime("%Y%m%d-%H%M%S", now or time.gmtime())
    request: dict = {
        "PipelineName": name,
        "PipelineExecutionDisplayName": f"{name}-{stamp}"[-82:].lstrip("-"),
        "ClientRequestToken": str(uuid.uuid4()),
    }  # one per start: a retried call starts once
    if parameters:
        request["PipelineParameters"] = [{"Name": k, "Value": str(v)} for k, v in parameters.items()]
    return request


def start(sm: Any, name: str, parameters: Mapping[str, Any]) -> str:
    from processing.kernel.aws_validation import validate_request

    request = start_request(name, parameters)
    validate_request("sagemaker", "StartPipelineExecution", request)
    return sm.start_pipeline_execution(**request)["PipelineExecutionArn"]


def execution_arn(execution: str, pipeline: str, settings: Settings) -> str:
    """An execution ARN as given, or built from an execution id, the pipeline name and the role's account."""
    if execution.startswith("arn:"):
        return execution
    from processing.kernel.settings import account_of

    return (
        f"arn:aws:sagemaker:{settings.region}:{account_of(settings.role_arn)}:pipeline/{pipeline.lower()}"
        f"/execution/{execution}"
    )


def retry_sagemaker(sm: Any, arn: str) -> str:
    """RetryPipelineExecution: SageMaker reruns the execution from its failed steps, same parameters."""
    from processing.kernel.aws_validation import validate_request

    request = {"PipelineExecutionArn": arn, "ClientRequestToken": str(uuid.uuid4())}
    validate_request("sagemaker", "RetryPipelineExecution", request)
    return sm.retry_pipeline_execution(**request)["PipelineExecutionArn"]


def studio_link(settings: Settings, execution_arn: str) -> str:
    """Console link to the execution (opens in SageMaker Studio's pipeline view)."""
    region = settings.region
    name, execution_id = execution_arn.split(":pipeline/", 1)[-1].split("/execution/")
    return (
        f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}"
        f"#/pipelines/{name}/executions/{execution_id}"
    )


def wait(
    sm: Any,
    execution_arn: str,
    poll_seconds: float = 30.0,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Follow step statuses until the execution ends; non-zero with the failed step's reason."""
    seen: dict[str, str] = {}
    while True:
        steps = _list_steps(sm, execution_arn)
        for step in reversed(steps):  # the API lists the newest first
            status = step.get("StepStatus", "?")
            if seen.get(step["StepName"]) != status:
                seen[step["StepName"]] = status
                log(f"  {step['StepName']}: {status}")
        status = sm.describe_pipeline_execution(PipelineExecutionArn=execution_arn)["PipelineExecutionStatus"]
        if status in TERMINAL_STATUSES:
            break
        sleep(poll_seconds)
    if status == "Succeeded":
        log(f"execution succeeded: {execution_arn}")
        return 0
    failed = [s for s in steps if s.get("StepStatus") == "Failed"]
    reason = "; ".join(f"{s['StepName']}: {s.get('FailureReason', 'no reason given')}" for s in failed)
    if not reason:
        description = sm.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        reason = description.get("FailureReason", "no failed step reported")
    log(f"execution {status.lower()}: {reason}")
    return 1


def _list_steps(sm: Any, execution_arn: str) -> list[dict]:
    steps, token = [], None
    while True:
        request = {"PipelineExecutionArn": execution_arn}
        if token:
            request["NextToken"] = token
        page = sm.list_pipeline_execution_steps(**request)
        steps += page.get("PipelineExecutionSteps", [])
        token = page.get("NextToken")
        if not token:
            return steps


def ensure_deploy_function(settings: Settings, log: Callable[[str], None] = print) -> None:
    """The Deploy step's Lambda function (deploy.infrastructure, REGISTRY), when that module exists."""
    try:
        infrastructure = importlib.import_module("deploy.infrastructure")
    except ModuleNotFoundError as error:
        if error.name not in ("deploy.infrastructure", "deploy"):
            raise
        log("note: deploy/infrastructure.py is missing: the deploy Lambda function is not created or updated")
        return
    infrastructure.ensure_deploy_function(settings, log=log)


def ensure_forecast_api(settings: Settings, log: Callable[[str], None] = print) -> None:
    """The real-time forecast API's Lambda, role, throttle and IAM-authenticated URL (deploy.api_infrastructure).

    The pipeline does not need the API: when it cannot be set up (no pandas layer found, access
    denied), the run goes on and says how to retry.
    """
    from botocore.exceptions import ClientError

    from deploy.api_infrastructure import ensure_forecast_api as ensure

    try:
        ensure(settings, log=log)
    except (SettingsError, ClientError) as error:
        log(
            f"warning: the forecast API was not created or updated: {error}; the pipeline does not need it "
            "(retry with python -m deploy.api_infrastructure)"
        )


def run_sagemaker(
    args: argparse.Namespace, settings: Settings, overrides: Mapping[str, str], log: Callable[[str], None] = print
) -> int:
    from deploy.clients import client
    from pipelines import code_bundle, preflight

    settings.require_sagemaker()
    if args.retry:  # the same execution, definition and code: nothing is rendered or uploaded
        sm = client("sagemaker", settings)
        arn = retry_sagemaker(sm, execution_arn(args.retry, pipeline_name(args.pipeline, settings), settings))
        log(f"retrying execution {arn} from its failed step")
        return wait(sm, arn, log=log) if args.wait else 0
    definition = render(args.pipeline, settings)
    parameters = check_overrides(json.loads(definition), overrides)
    refused = preflight.problems(json.loads(definition), parameters)  # the resolved job requests, before any upload
    if refused:
        raise RunError("\nerror: ".join(refused) + "; nothing was started", 2)
    code_bundle.upload(settings, log=log)
    if args.pipeline == "training":
        ensure_deploy_function(settings, log)
        ensure_forecast_api(settings, log)
    sm = client("sagemaker", settings)
    name = pipeline_name(args.pipeline, settings)
    upsert(sm, name, definition, settings, log)
    if args.no_start:
        return 0
    arn = start(sm, name, parameters)
    log(f"started execution {arn}")
    log(f"follow it in SageMaker Studio: {studio_link(settings, arn)}")
    return wait(sm, arn, log=log) if args.wait else 0


# --- local target ------------------------------------------------------------------------------
def _runtime() -> Any:
    try:
        return importlib.import_module("pipelines.local.runtime")
    except ModuleNotFoundError as error:
        if error.name != "pipelines.local.runtime":
            raise
        raise RunError("the local runtime is not available (pipelines/local/runtime.py is missing)") from None


def run_local(
    args: argparse.Namespace, settings: Settings, overrides: Mapping[str, str], log: Callable[[str], None] = print
) -> int:
    from pipelines import code_bundle

    if args.list:
        result = _runtime().list_executions(settings)
        return result if isinstance(result, int) else 0
    if args.retry:
        return int(_runtime().retry_local(args.retry, settings))
    # the steps' interpreter and launcher from now on, beside the rendering and the runtime's own start
    # (the launcher's imports take as long as those: they overlap instead of delaying the first step)
    warm = None if args.no_start else _runtime().warm_start(settings, log, early=True)
    try:
        definition = json.loads(render_local(args.pipeline, settings))
        typed = check_overrides(definition, overrides)
        check_local_inputs(definition, typed)
        parameters = absolute_local_paths(typed)
        code_bundle.upload(settings, log=log)
        if args.no_start:
            log("--no-start: definition rendered and code bundle stored; nothing started")
            return 0
        started, warm = warm, None  # run_local owns it now
        return int(_runtime().run_local(definition, parameters, settings, warm=started))
    finally:
        if warm is not None:
            warm.close()


def check_local_inputs(definition: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
    """RunError (exit 2, nothing started) when a step's input given with --param is a local path that
    does not exist: the run would only find out at that step, after the ones before it ran. The steps'
    own failure for it words it the same (pipelines.local.executors.missing_local_input)."""
    from pipelines.local.executors import input_parameters, missing_local_input

    for name in input_parameters(definition):
        text = str(parameters.get(name) or "")
        if not text or text.startswith(("s3://", "http://", "https://")):
            continue
        missing = missing_local_input(text, name)
        if missing is not None:
            raise RunError(f"--param {name}={text}: {missing}; nothing was started", 2)


def absolute_local_paths(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Local runs: a *Url parameter given as a relative path (OutputUrl=./report) becomes absolute,
    so the execution record, the Studio and a rerun from another folder all find the same place."""
    fixed = dict(parameters)
    for name, value in parameters.items():
        text = str(value)
        if name.endswith("Url") and text and not text.startswith(("s3://", "file://", "http://", "https://")):
            fixed[name] = str(Path(text).expanduser().resolve())
    return fixed


# --- main --------------------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None, log: Callable[[str], None] = print) -> int:
    console.setup()
    args = parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        log(f"target: {settings.target} ({settings.target_reason})")
        overrides = parse_overrides(args.param)
        if args.retry and (overrides or args.definition_only or args.list or args.no_start):
            given = (
                "--param"
                if overrides
                else "--definition-only"
                if args.definition_only
                else "--list"
                if args.list
                else "--no-start"
            )
            raise RunError(
                f"--retry reruns an execution with its own parameters and definition; it does not "
                f"take {given} (start a new execution to change them)",
                2,
            )
        if args.definition_only:
            if not settings.is_local:
                settings.require_sagemaker()  # the definition names the role, region and bucket
            write_definitions(Path(args.definition_only), settings, log)
            return 0
        if args.list and not settings.is_local:
            raise RunError(
                "--list shows local executions; on SageMaker use Studio or aws sagemaker list-pipeline-executions", 2
            )
        if settings.is_local:
            return run_local(args, settings, overrides, log)
        return run_sagemaker(args, settings, overrides, log)
    except (SettingsError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return getattr(error, "code", 2 if isinstance(error, SettingsError) else 1)
    except Exception as error:
        if not _aws_refusal(error):
            raise
        # AWS said no (or would have): one readable message instead of a traceback.
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


def _aws_refusal(error: BaseException) -> bool:
    """botocore's errors and the request checks' (imported only now: botocore costs a local run's start
    0.1-0.3 s, and the local runtime imports it later, beside the step launcher's start)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from processing.kernel.aws_validation import RequestValidationError

    return isinstance(error, (BotoCoreError, ClientError, RequestValidationError))


def exit_now(code: int) -> None:
    """End the process as the interpreter would (non-daemon threads joined, atexit handlers run, the
    streams flushed) but without tearing every module down: with pandas and the engine loaded in this
    process (an in-process transform) that took 0.1-0.4 s after the run was over."""
    import atexit
    import os
    import threading

    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code & 0xFF)


if __name__ == "__main__":
    exit_now(main())
