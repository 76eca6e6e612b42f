"""The AutoML step: start (or re-attach to) an Autopilot V2 time-series job, wait, create the model.

    python -m processing.automl_job --train-uri s3://.../train/ --profile-dir DIR \
        --output-uri s3://.../automl --execution-id <PIPELINE_EXECUTION_ID> --role-arn ARN \
        --result-dir DIR [--item-id-column ... --horizon 14 --quantiles p10,p50,p90 ...]

The job name is derived from the pipeline execution id, so a retried step finds the job it
started and waits for it instead of paying for a second one. On success the SageMaker Model is
created with ALL of the best candidate's inference containers (each with its Environment) and
`<result-dir>/automl_result.json` (contracts.AUTOML_RESULT_FILE) is written for JsonGet.

Runs inside the SageMaker processing container: standard library + boto3 + the project bundle.
It calls SageMaker through plain boto3; the local runtime serves the same API on loopback
(AWS_ENDPOINT_URL_SAGEMAKER), with its AutoML job training behind it, so there is no local
branch here. When the pipeline is stopped, SageMaker sends the step SIGTERM: the step then
stops the AutoML job (StopAutoMLJob), so nothing trains and bills on, and exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from botocore.exceptions import ClientError

from processing import automl_request
from processing.atomic import write_json_atomic
from processing.kernel import aws_errors, console, contracts
from processing.kernel.aws_validation import client_service_model, validate_request
from processing.kernel.cli import step_main

logger = logging.getLogger(__name__)

TERMINAL_STATUSES = ("Completed", "Failed", "Stopped")
CONTAINER_KEYS = ("Image", "ModelDataUrl", "Environment")
PREFERRED_PROCESSING_UNIT = "CPU"
TRANSIENT_CODES = (
    "ThrottlingException",
    "Throttling",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalServerError",
    "RequestTimeout",
)
MAX_TRANSIENT_ERRORS = 10
FIRST_POLL_SECONDS = 0.1  # polls start this often; then a POLL_SHARE of the time waited so far, up to
POLL_SHARE = 0.1  # --poll-seconds: a job is seen done within 0.1 s or 10% of its run time (was
# 2 s growing 1.25x per call: up to 25%, 18 s on a 380 s local job; then 0.5 s: a local job of
# 0.2 s was seen done 0.3 s late), an hours-long one still costs a call a minute. A job of T
# seconds (T > 1) costs 10 + 24 log10(T) calls: 34 for 10 s, 72 for 6 minutes
EXIT_TERMINATED = 143  # 128 + SIGTERM
REQUEST_FILE = "automl_request.json"  # the request sent, kept next to the result for audits

Log = Callable[[str], None]


class AutoMLJobFailed(RuntimeError):
    """The AutoML job ended Failed or Stopped; the message carries the job's FailureReason."""


class StepTerminated(BaseException):
    """SIGTERM arrived (the pipeline is being stopped). BaseException: no `except Exception` eats it."""


# a missing AutoML job is ResourceNotFound, a missing model a ValidationException 'Could not find model'
is_not_found = aws_errors.is_not_found
_is_already_exists = aws_errors.already_exists


# --- start / re-attach -----------------------------------------------------------------------
def describe_job(sm: Any, job_name: str) -> Optional[dict]:
    """DescribeAutoMLJobV2, or None when there is no such job."""
    try:
        return sm.describe_auto_ml_job_v2(AutoMLJobName=job_name)
    except ClientError as error:
        if is_not_found(error):
            return None
        raise


def attempt_name(job_name: str, attempt: int) -> str:
    """The job name of a step retry's `attempt`-th job: '<name>-r<attempt>' within the 32-character limit."""
    if attempt <= 1:
        return job_name
    suffix = f"-r{attempt}"
    return job_name[: automl_request.JOB_NAME_MAX - len(suffix)].rstrip("-") + suffix


def start_or_attach(sm: Any, request: dict, log: Log = logger.info) -> dict:
    """Create the job unless one of that name exists (a retried step): then re-attach to it.

    A job that is InProgress or Completed is re-attached to (waited for, or read), never paid for
    twice. One that ended Failed or Stopped cannot run again under its name, so a retried step
    starts the next attempt, '<name>-r2', '-r3', ... (and re-attaches to the newest of those).
    Returns {"job_name", "job_arn", "attached": bool}.
    """
    base = request["AutoMLJobName"]
    attempt, name = 1, base
    existing = describe_job(sm, name)
    while existing is not None and existing.get("AutoMLJobStatus") in ("Failed", "Stopped"):
        attempt += 1
        following = attempt_name(base, attempt)
        later = describe_job(sm, following)
        log(
            f"AutoML job {name} ended {existing.get('AutoMLJobStatus')}"
            + (f"; {following} is its retry" if later is not None else f": starting a new job {following}")
        )
        name, existing = following, later
    if existing is None:
        try:
            response = sm.create_auto_ml_job_v2(**dict(request, AutoMLJobName=name))
            log(f"AutoML job {name} created: {response['AutoMLJobArn']}")
            return {"job_name": name, "job_arn": response["AutoMLJobArn"], "attached": False}
        except ClientError as error:
            if not _is_already_exists(error):
                raise
            existing = describe_job(sm, name)  # lost a race with another attempt of this step
            if existing is None:
                raise
    log(
        f"AutoML job {name} already exists ({existing.get('AutoMLJobStatus')}): re-attaching "
        "instead of starting a second job"
    )
    return {"job_name": name, "job_arn": existing["AutoMLJobArn"], "attached": True}


def wait_for_job(
    sm: Any,
    job_name: str,
    poll_seconds: float = 60.0,
    log: Log = logger.info,
    sleep: Callable[[float], None] = time.sleep,
    max_wait_seconds: Optional[float] = None,
) -> dict:
    """Poll DescribeAutoMLJobV2 until the job ends; one log line per status change.

    The interval is FIRST_POLL_SECONDS, or POLL_SHARE of the time waited so far when that is
    longer, and never more than `poll_seconds`.
    Raises AutoMLJobFailed (with FailureReason) when it ends Failed or Stopped, TimeoutError
    when `max_wait_seconds` passes first.
    """
    started = time.monotonic()
    waited = 0.0  # the sleeps asked for: the clock when `sleep` is a stand-in (tests)
    last: Optional[tuple] = None
    transient_in_a_row = 0
    while True:
        try:
            description = sm.describe_auto_ml_job_v2(AutoMLJobName=job_name)
            transient_in_a_row = 0
        except ClientError as error:  # hours of polling meet throttling; the job runs on regardless
            code = aws_errors.error_code(error)
            transient_in_a_row += 1
            if code not in TRANSIENT_CODES or transient_in_a_row > MAX_TRANSIENT_ERRORS:
                raise
            log(
                f"AutoML job {job_name}: {code} while polling ({transient_in_a_row}/{MAX_TRANSIENT_ERRORS}); "
                "trying again"
            )
            sleep(poll_seconds)
            continue
        state = (description["AutoMLJobStatus"], description.get("AutoMLJobSecondaryStatus", ""))
        if state != last:
            elapsed = int(time.monotonic() - started)
            log(f"AutoML job {job_name}: {state[0]} / {state[1]} (after {elapsed} s)")
            last = state
        if state[0] in TERMINAL_STATUSES:
            if state[0] != "Completed":
                raise AutoMLJobFailed(failure_message(description))
            return description
        if max_wait_seconds is not None and time.monotonic() - started > max_wait_seconds:
            raise TimeoutError(f"AutoML job {job_name} still {state[0]} after {max_wait_seconds} s")
        elapsed = max(time.monotonic() - started, waited)
        interval = min(max(FIRST_POLL_SECONDS, POLL_SHARE * elapsed), poll_seconds)
        sleep(interval)
        waited += interval


def stop_job(sm: Any, job_name: str, log: Log = logger.info) -> bool:
    """StopAutoMLJob when the job still runs; True when a stop was requested."""
    description = describe_job(sm, job_name)
    if description is None or description["AutoMLJobStatus"] in TERMINAL_STATUSES:
        state = "does not exist" if description is None else f"already ended {description['AutoMLJobStatus']}"
        log(f"AutoML job {job_name} {state}: nothing to stop")
        return False
    sm.stop_auto_ml_job(AutoMLJobName=job_name)
    log(
        f"AutoML job {job_name}: StopAutoMLJob requested (it was {description['AutoMLJobStatus']} / "
        f"{description.get('AutoMLJobSecondaryStatus', '')})"
    )
    return True


def failure_message(description: dict) -> str:
    """What went wrong, in the job's own words (FailureReason and partial failures)."""
    name = description.get("AutoMLJobName", "?")
    status = description.get("AutoMLJobStatus", "?")
    reason = description.get("FailureReason") or "no FailureReason given"
    partial = [p.get("PartialFailureMessage", "") for p in description.get("PartialFailureReasons") or []]
    partial = [p for p in partial if p]
    text = f"AutoML job {name} ended {status}: {reason}"
    if partial:
        text += " (partial failures: " + "; ".join(partial) + ")"
    if status == "Stopped":
        text += ". The job was stopped; start a new pipeline execution to train again"
    return text


# --- the best candidate ---------------------------------------------------------------------
def best_inference_containers(description: dict) -> list[dict]:
    """ALL of the best candidate's inference containers, each with its Environment.

    Time-series candidates list them in BestCandidate.InferenceContainers; newer responses may
    only carry InferenceContainerDefinitions (per processing unit), then the CPU set is used.
    """
    candidate = description.get("BestCandidate") or {}
    containers = candidate.get("InferenceContainers")
    if not containers:
        definitions = candidate.get("InferenceContainerDefinitions") or {}
        containers = definitions.get(PREFERRED_PROCESSING_UNIT) or next(iter(definitions.values()), None)
    if not containers:
        raise AutoMLJobFailed(
            f"AutoML job {description.get('AutoMLJobName')} completed but its best "
            "candidate has no inference containers (BestCandidate.InferenceContainers)"
        )
    return [
        {key: (dict(c[key]) if key == "Environment" else c[key]) for key in CONTAINER_KEYS if key in c}
        for c in containers
    ]


def model_name_for(job_name: str) -> str:
    """One model per AutoML job, so a retried step finds the model it created."""
    return f"{job_name}-model"


def create_model_request(
    model_name: str, containers: Sequence[dict], role_arn: str, tags: Optional[dict] = None, service_model: Any = None
) -> dict:
    request: dict = {
        "ModelName": model_name,
        "Containers": [dict(c) for c in containers],
        "ExecutionRoleArn": role_arn,
    }
    if tags:
        request["Tags"] = [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]
    validate_request("sagemaker", "CreateModel", request, service_model)
    return request


def create_model(
    sm: Any,
    model_name: str,
    containers: Sequence[dict],
    role_arn: str,
    tags: Optional[dict] = None,
    log: Log = logger.info,
) -> dict:
    """CreateModel with every container; an existing model of that name (a retry) is reused."""
    request = create_model_request(model_name, containers, role_arn, tags, client_service_model(sm))
    try:
        sm.describe_model(ModelName=model_name)
        log(f"model {model_name} already exists: reusing it")
        return {"model_name": model_name, "created": False}
    except ClientError as error:
        if not is_not_found(error):
            raise
    try:
        sm.create_model(**request)
    except ClientError as error:
        if not _is_already_exists(error):
            raise
        log(f"model {model_name} already exists: reusing it")
        return {"model_name": model_name, "created": False}
    log(
        f"model {model_name} created with {len(containers)} container(s): "
        + ", ".join(c.get("Image", "?") for c in containers)
    )
    return {"model_name": model_name, "created": True}


def result_document(description: dict, model_name: str) -> dict:
    """The AutoMLResult property file (CONTRACTS.md 'AutoML step result JSON')."""
    candidate = description.get("BestCandidate") or {}
    metric = candidate.get("FinalAutoMLJobObjectiveMetric") or {}
    locations = (candidate.get("CandidateProperties") or {}).get("CandidateArtifactLocations") or {}
    candidate_metrics = (candidate.get("CandidateProperties") or {}).get("CandidateMetrics") or []
    return {
        "status": description["AutoMLJobStatus"],
        "job_name": description["AutoMLJobName"],
        "job_arn": description["AutoMLJobArn"],
        "best_candidate_name": candidate.get("CandidateName", ""),
        "model_name": model_name,
        "inference_containers": best_inference_containers(description),
        "objective_metric": {"name": metric.get("MetricName", ""), "value": metric.get("Value")},
        "candidate_metrics": {m["MetricName"]: m.get("Value") for m in candidate_metrics if "MetricName" in m},
        "reports": {
            "explainability": locations.get("Explainability", ""),
            "model_insights": locations.get("ModelInsights", ""),
            "backtest_results": locations.get("BacktestResults", ""),
        },
        "output_path": (description.get("OutputDataConfig") or {}).get("S3OutputPath", ""),
    }


# --- profile ----------------------------------------------------------------------------------
def read_profile(profile_dir: Optional[str]) -> dict:
    """The PrepareData profile (covariates, static columns, time steps); {} when not given."""
    if not profile_dir:
        return {}
    path = Path(profile_dir)
    if path.is_dir():
        path = path / contracts.PROFILE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"--profile-dir: {path} does not exist; pass the PrepareData '{contracts.PREP_PROFILE}' output folder"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def profile_timesteps(profile: dict) -> Optional[int]:
    """Time steps of the training data (the profile's periods minus the holdout), for the
    'horizon <= 1/4 of the time steps' limit; None when the profile does not say."""
    periods, horizon = profile.get("periods"), profile.get("horizon")
    if not isinstance(periods, int) or periods <= 0:
        return None
    return periods - horizon if isinstance(horizon, int) and 0 < horizon < periods else periods


# --- the step ---------------------------------------------------------------------------------
def _parse_filling(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ValueError(
            f"--filling is not valid JSON ({error}); expected "
            '{"column": {"middlefill": "zero", "futurefill": "value", "futurefill_value": "0"}}'
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"--filling must be a JSON object mapping columns to fill rules, got {text!r}")
    return value


def request_from_args(args: argparse.Namespace, settings: Any = None, service_model: Any = None) -> dict:
    profile = read_profile(args.profile_dir)
    columns = profile.get("columns") or {}
    # the rules PrepareData applied (profile) unless --filling overrides them
    filling = _parse_filling(args.filling) if args.filling else profile.get("filling")
    tags = dict(settings.tags) if settings is not None else None
    if tags is not None:
        tags["pipeline-execution-id"] = args.execution_id
    return automl_request.build_request(
        train_uri=args.train_uri,
        output_uri=args.output_uri,
        job_name=args.job_name or automl_request.job_name_for_execution(args.execution_id),
        role_arn=args.role_arn,
        item_id_column=args.item_id_column,
        timestamp_column=args.timestamp_column,
        target_column=args.target_column,
        grouping_columns=args.grouping_columns,
        frequency=args.frequency,
        horizon=args.horizon,
        quantiles=args.quantiles,
        holiday_country=args.holiday_country,
        algorithms=args.algorithms,
        objective_metric=args.objective_metric,
        max_runtime_seconds=args.max_runtime_seconds,
        covariates=columns.get("covariates") or (),
        static_columns=columns.get("static") or (),
        filling=filling,
        aggregation=args.aggregation or profile.get("aggregation") or "sum",
        timesteps=profile_timesteps(profile),
        tags=tags,
        service_model=service_model,
    )


def run(
    args: argparse.Namespace,
    sm: Any = None,
    settings: Any = None,
    log: Log = logger.info,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Build the request, start or re-attach, wait, create the model, write the result file."""
    if sm is None:
        import boto3

        from processing.kernel.settings import resolve

        settings = settings or resolve()
        sm = boto3.client("sagemaker", region_name=settings.effective_region)
    if not hasattr(sm, "create_auto_ml_job_v2"):
        raise AutoMLJobFailed(
            "this boto3 has no create_auto_ml_job_v2 (boto3>=1.34 has it; the processing "
            "image's pins are in pipelines/processing_image.toml)"
        )
    request = request_from_args(args, settings, client_service_model(sm))
    # the request is long (filling rules per column): readable JSON in a file, its path in the log
    request_path = write_json_atomic(Path(args.result_dir) / REQUEST_FILE, request)
    config = request["AutoMLProblemTypeConfig"]["TimeSeriesForecastingJobConfig"]
    log(
        f"AutoML request {request['AutoMLJobName']} (horizon {config.get('ForecastHorizon')}, frequency "
        f"{config.get('ForecastFrequency')}): {request_path}"
    )
    job: Optional[dict] = None
    try:
        job = start_or_attach(sm, request, log)
        description = wait_for_job(
            sm,
            job["job_name"],
            poll_seconds=args.poll_seconds,
            log=log,
            sleep=sleep,
            max_wait_seconds=args.max_wait_seconds,
        )
    except StepTerminated:
        log("SIGTERM received (the pipeline is stopping): stopping the AutoML job")
        stop_job(sm, job["job_name"] if job else request["AutoMLJobName"], log)
        raise
    containers = best_inference_containers(description)
    model = create_model(
        sm,
        model_name_for(job["job_name"]),
        containers,
        args.role_arn,
        tags=dict(settings.tags) if settings is not None else None,
        log=log,
    )
    document = result_document(description, model["model_name"])
    path = write_json_atomic(Path(args.result_dir) / contracts.AUTOML_RESULT_FILE, document)
    metric = document["objective_metric"]
    log(
        f"best candidate {document['best_candidate_name']}: {metric['name']} = {metric['value']}; "
        f"result written to {path}"
    )
    return document


def parser() -> argparse.ArgumentParser:
    d = automl_request.DEFAULTS
    p = argparse.ArgumentParser(prog="python -m processing.automl_job", description=__doc__.split("\n\n")[0])
    p.add_argument("--train-uri", required=True, help="S3 prefix of the training CSV (PrepareData 'train')")
    p.add_argument("--output-uri", required=True, help="S3 prefix for Autopilot's output")
    p.add_argument("--execution-id", required=True, help="pipeline execution id (names the job: retry-safe)")
    p.add_argument("--role-arn", required=True, help="role Autopilot and the model run as")
    p.add_argument("--result-dir", required=True, help=f"folder for {contracts.AUTOML_RESULT_FILE}")
    p.add_argument("--profile-dir", default=None, help="PrepareData 'profile' folder (covariates, static columns)")
    p.add_argument("--job-name", default=None, help="override the job name derived from --execution-id")
    contracts.add_column_arguments(p)
    p.add_argument("--horizon", default=str(d["horizon"]))
    p.add_argument("--quantiles", default=d["quantiles"])
    p.add_argument("--holiday-country", default=d["holiday_country"], help="two-letter code, empty for none")
    p.add_argument("--algorithms", default=d["algorithms"], help="comma-separated, empty for all")
    p.add_argument("--objective-metric", default=d["objective_metric"])
    p.add_argument("--max-runtime-seconds", default=str(d["max_runtime_seconds"]))
    p.add_argument(
        "--aggregation",
        default=None,
        help="target aggregation: sum, avg, first, min, max (default: what PrepareData applied, else sum)",
    )
    p.add_argument("--filling", default=None, help="JSON {column: {rule: method}} overriding the defaults")
    p.add_argument(
        "--poll-seconds",
        type=float,
        default=60.0,
        help="longest wait between DescribeAutoMLJobV2 polls (they start at 0.1 s, then 10%% of the time waited)",
    )
    p.add_argument(
        "--max-wait-seconds",
        type=float,
        default=None,
        help="stop waiting after this many seconds: the step fails, the job runs on and a --retry re-attaches to it (default: no limit)",
    )
    return p


def _terminate(signum: int, frame: Any) -> None:
    raise StepTerminated()


@step_main(
    "AutoML step failed",
    (AutoMLJobFailed, automl_request.AutoMLRequestError, ValueError, FileNotFoundError, TimeoutError, ClientError),
    code=1,
)
def main(argv: Optional[Sequence[str]] = None, sm: Any = None) -> int:
    """CLI: exit 0 on success, 1 with a one-paragraph reason on stderr, 143 on SIGTERM. `sm` is for tests."""
    console.setup()
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        run(args, sm=sm)
    except StepTerminated:
        print("AutoML step stopped by SIGTERM", file=sys.stderr, flush=True)
        return EXIT_TERMINATED
    return 0


if __name__ == "__main__":
    sys.exit(main())
