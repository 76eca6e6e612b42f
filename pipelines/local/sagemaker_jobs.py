"""AutoML V2 jobs, models and transform jobs of the local SageMaker client.

Autopilot's part is played by the local forecasting engine (`forecasting`), trained in its
own process (`automl_worker`): create_auto_ml_job_v2 returns at once with the job InProgress,
describe follows it to Completed or Failed, stop_auto_ml_job kills it (Stopped), as on AWS. Requests are checked
against botocore's service model first, so a request that works here is one AWS accepts.
State is one JSON record per resource under <FORECAST_HOME>/sagemaker/<kind>/<name>.json.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

from pipelines.local import automl_worker, job_records, limits, supervision
from pipelines.local.errors import LocalClientError
from pipelines.local.store import list_prefix, local_path
from processing.kernel.aws_validation import RequestValidationError, validate_request

logger = logging.getLogger(__name__)


_now = job_records.now


class JobsMixin:
    """create/describe/stop_auto_ml_job_v2, create/describe/delete/list_models, create/describe_transform_job.

    Expects `self.settings`, `self.home`, `self.arn(kind, name)` (LocalSageMakerClient) and,
    for containers that name a model package, `self.describe_model_package` (RegistryMixin).
    """

    # -- records ----------------------------------------------------------------------------
    def _record_path(self, kind: str, name: str) -> Path:
        return job_records.record_path(self.home, kind, name)

    def _load(self, kind: str, name: str) -> Optional[dict]:
        return job_records.load(self.home, kind, name)

    def _save(self, kind: str, name: str, record: dict) -> None:
        job_records.save(self.home, kind, name, record)

    def _all(self, kind: str) -> list:
        return job_records.load_all(self.home, kind)

    @staticmethod
    def _validate(operation: str, request: dict) -> None:
        try:
            validate_request("sagemaker", operation, request)
        except RequestValidationError as error:
            raise LocalClientError("ValidationException", str(error), operation) from None

    # -- AutoML V2 ------------------------------------------------------------------------------
    automl_output = None  # where the training process's lines go besides its job log (the runtime sets it)

    def create_auto_ml_job_v2(self, **request: Any) -> dict:
        """Validate, record the job InProgress and start its training process; returns at once."""
        operation = "CreateAutoMLJobV2"
        self._validate(operation, request)
        name = request["AutoMLJobName"]
        if self._load("automl", name) is not None:
            raise LocalClientError("ResourceInUse", f"Job with name {name} already exists.", operation)
        problem = request.get("AutoMLProblemTypeConfig") or {}
        if "TimeSeriesForecastingJobConfig" not in problem:
            raise LocalClientError(
                "ValidationException",
                "the local runtime runs time-series forecasting "
                "jobs only (AutoMLProblemTypeConfig.TimeSeriesForecastingJobConfig)",
                operation,
            )
        created = _now()
        arn = self.arn("automl-job", name)
        record = {
            "request": request,
            "AutoMLJobName": name,
            "AutoMLJobArn": arn,
            "CreationTime": created,
            "LastModifiedTime": created,
            "AutoMLJobStatus": "InProgress",
            "AutoMLJobSecondaryStatus": "AnalyzingData",
            "JobLog": str(automl_worker.job_log_path(self.settings, name)),
        }
        self._save("automl", name, record)
        process = automl_worker.launch(self.settings, name, sink=self.automl_output)
        # who trains it and who owns it: a worker whose owner (the runtime) died is not left running
        owner = {
            "WorkerPid": process.pid,
            "WorkerProcess": supervision.process_identity(process.pid),
            "OwnerProcess": supervision.process_identity(os.getpid()),
        }
        record.update(owner)
        # the worker may have written already (TrainingModels, or even its end): add to what it wrote
        job_records.update(
            self.home, "automl", name, lambda r: r.update(owner) if r.get("AutoMLJobStatus") == "InProgress" else None
        )
        import_engine_ahead()  # the job's model is transformed here next (the training's BacktestForecast)
        return {"AutoMLJobArn": arn}

    def stop_auto_ml_job(self, AutoMLJobName: str) -> dict:  # noqa: N803 (boto3 names)
        """Kill the job's training process; the job ends Stopped (a job already ended stays as it is)."""
        record = self._load("automl", AutoMLJobName)
        if record is None:
            raise LocalClientError("ResourceNotFound", f"Job {AutoMLJobName} not found.", "StopAutoMLJob")
        if record["AutoMLJobStatus"] != "InProgress":
            return {}

        def stopping(r: dict) -> None:
            if r["AutoMLJobStatus"] == "InProgress":
                r.update(AutoMLJobSecondaryStatus="Stopping", LastModifiedTime=_now())

        record = job_records.update(self.home, "automl", AutoMLJobName, stopping) or record
        if not automl_worker.stop(self.settings, AutoMLJobName) and self._worker_alive(record):
            with contextlib.suppress(ProcessLookupError, PermissionError):  # launched by another process
                os.killpg(record["WorkerPid"], signal.SIGKILL)
        job_records.update(self.home, "automl", AutoMLJobName, _end_if_in_progress("Stopped"))
        return {}

    def _settle(self, record: dict) -> dict:
        """An InProgress job whose training process is gone without a word ends Failed, not InProgress forever."""
        name = record["AutoMLJobName"]
        if automl_worker.is_ours(self.settings, name):
            code = automl_worker.exit_code(self.settings, name)
            if code is None:
                return record
            record = self._load("automl", name) or record  # what the worker wrote last
            reason = f"the local training process exited with code {code}"
        elif self._worker_alive(record):
            if supervision.process_alive(record.get("OwnerProcess")) is not False:
                return record
            # its runtime died (killed, crashed): the training process stops with it, now rather than later
            supervision.kill_group(record.get("WorkerProcess"), f"AutoML job {name}, whose runtime is gone")
            reason = (
                f"the local runtime that owned it (pid {record['OwnerProcess'].get('pid')}) is gone, so its "
                f"training process {record.get('WorkerPid')} was stopped"
            )
        else:
            reason = f"the local training process {record.get('WorkerPid')} is gone (its runtime exited)"
        change = _end_if_in_progress("Failed", FailureReason=f"{reason}; see {record.get('JobLog')}")
        return job_records.update(self.home, "automl", name, change) or record

    @staticmethod
    def _worker_alive(record: dict) -> bool:
        identity = record.get("WorkerProcess")
        if identity:
            return supervision.process_alive(identity) is not False
        return automl_worker.pid_alive(record.get("WorkerPid"))

    def describe_auto_ml_job_v2(self, AutoMLJobName: str) -> dict:  # noqa: N803 (boto3 names)
        record = self._load("automl", AutoMLJobName)
        if record is None:
            raise LocalClientError("ResourceNotFound", f"Job {AutoMLJobName} not found.", "DescribeAutoMLJobV2")
        if record["AutoMLJobStatus"] == "InProgress":
            record = self._settle(record)
        request = record["request"]
        response = {
            "AutoMLJobName": record["AutoMLJobName"],
            "AutoMLJobArn": record["AutoMLJobArn"],
            "AutoMLJobInputDataConfig": request.get("AutoMLJobInputDataConfig"),
            "OutputDataConfig": request.get("OutputDataConfig"),
            "RoleArn": request.get("RoleArn"),
            "AutoMLProblemTypeConfig": request.get("AutoMLProblemTypeConfig"),
            "AutoMLProblemTypeConfigName": "TimeSeriesForecasting",
            "CreationTime": record["CreationTime"],
            "LastModifiedTime": record["LastModifiedTime"],
            "AutoMLJobStatus": record["AutoMLJobStatus"],
            "AutoMLJobSecondaryStatus": record["AutoMLJobSecondaryStatus"],
        }
        for key in ("AutoMLJobObjective", "DataSplitConfig", "SecurityConfig", "ModelDeployConfig"):
            if request.get(key) is not None:
                response[key] = request[key]
        for key in ("EndTime", "FailureReason", "BestCandidate"):
            if record.get(key) is not None:
                response[key] = record[key]
        return response

    def list_candidates_for_auto_ml_job(self, AutoMLJobName: str, **_: Any) -> dict:  # noqa: N803
        description = self.describe_auto_ml_job_v2(AutoMLJobName=AutoMLJobName)
        return {"Candidates": [description["BestCandidate"]] if description.get("BestCandidate") else []}

    # -- models ------------------------------------------------------------------------------------
    def create_model(self, **request: Any) -> dict:
        operation = "CreateModel"
        self._validate(operation, request)
        name = request["ModelName"]
        arn = self.arn("model", name)
        if self._load("model", name) is not None:
            raise LocalClientError("ValidationException", f'Cannot create already existing model "{arn}".', operation)
        if not request.get("Containers") and not request.get("PrimaryContainer"):
            raise LocalClientError("ValidationException", "a model needs PrimaryContainer or Containers", operation)
        for container in request.get("Containers") or [request.get("PrimaryContainer")]:
            if container.get("ModelPackageName"):
                self.describe_model_package(ModelPackageName=container["ModelPackageName"])  # must exist
            elif not container.get("ModelDataUrl"):
                raise LocalClientError(
                    "ValidationException",
                    f"container {container.get('Image')} has no "
                    "ModelDataUrl (the local runtime serves engine artifacts only)",
                    operation,
                )
        record = dict(request, ModelArn=arn, CreationTime=_now())
        self._save("model", name, record)
        return {"ModelArn": arn}

    def describe_model(self, ModelName: str) -> dict:  # noqa: N803
        record = self._load("model", ModelName)
        if record is None:
            raise LocalClientError(
                "ValidationException", f'Could not find model "{self.arn("model", ModelName)}".', "DescribeModel"
            )
        keys = (
            "ModelName",
            "PrimaryContainer",
            "Containers",
            "InferenceExecutionConfig",
            "ExecutionRoleArn",
            "VpcConfig",
            "CreationTime",
            "ModelArn",
            "EnableNetworkIsolation",
        )
        return {k: record[k] for k in keys if record.get(k) is not None}

    def delete_model(self, ModelName: str) -> dict:  # noqa: N803
        path = self._record_path("model", ModelName)
        if not path.is_file():
            raise LocalClientError(
                "ValidationException", f'Could not find model "{self.arn("model", ModelName)}".', "DeleteModel"
            )
        path.unlink()
        return {}

    def list_models(
        self,
        NameContains: str = "",
        SortBy: str = "CreationTime",  # noqa: N803
        SortOrder: str = "Descending",
        MaxResults: int = 100,
        CreationTimeBefore=None,
        CreationTimeAfter=None,
        **_: Any,
    ) -> dict:
        models = [m for m in self._all("model") if NameContains.lower() in m["ModelName"].lower()]
        if CreationTimeBefore is not None:
            models = [m for m in models if m["CreationTime"] < CreationTimeBefore]
        if CreationTimeAfter is not None:
            models = [m for m in models if m["CreationTime"] > CreationTimeAfter]
        key = (lambda m: m["ModelName"]) if SortBy == "Name" else (lambda m: m["CreationTime"])
        models.sort(key=key, reverse=SortOrder == "Descending")
        return {
            "Models": [
                {"ModelName": m["ModelName"], "ModelArn": m["ModelArn"], "CreationTime": m["CreationTime"]}
                for m in models[:MaxResults]
            ]
        }

    def resolved_model_containers(self, ModelName: str) -> list:  # noqa: N803
        """The model's containers, with model-package containers replaced by the package's own."""
        model = self.describe_model(ModelName=ModelName)
        containers = model.get("Containers") or [model["PrimaryContainer"]]
        resolved = []
        for container in containers:
            if container.get("ModelPackageName"):
                package = self.describe_model_package(ModelPackageName=container["ModelPackageName"])
                resolved.extend((package.get("InferenceSpecification") or {}).get("Containers") or [])
            else:
                resolved.append(container)
        return resolved

    # -- transform jobs ---------------------------------------------------------------------------
    def create_transform_job(self, **request: Any) -> dict:
        """Batch-predict every input file to <S3OutputPath>/<relative input path>.out, synchronously."""
        operation = "CreateTransformJob"
        self._validate(operation, request)
        name = request["TransformJobName"]
        arn = self.arn("transform-job", name)
        if self._load("transform", name) is not None:
            raise LocalClientError("ResourceInUse", f"Job with name {name} already exists.", operation)
        self.describe_model(ModelName=request["ModelName"])  # a missing model is a request error on AWS too
        try:
            limits.payload_limit_mb(request)  # AWS refuses MaxPayloadInMB > 100 at create
        except limits.LimitExceeded as error:
            raise LocalClientError("ValidationException", str(error), operation) from None
        record = dict(request, TransformJobArn=arn, TransformJobStatus="InProgress", CreationTime=_now())
        record["TransformStartTime"] = record["CreationTime"]
        self._save("transform", name, record)
        try:
            written = self._run_transform(request)
            record.update(TransformJobStatus="Completed", OutputFiles=len(written))
        except KeyboardInterrupt:
            record.update(TransformJobStatus="Stopped", FailureReason="interrupted", TransformEndTime=_now())
            self._save("transform", name, record)
            raise
        except Exception as error:
            logger.error(traceback.format_exc())
            record.update(TransformJobStatus="Failed", FailureReason=f"{type(error).__name__}: {error}")
        record["TransformEndTime"] = _now()
        self._save("transform", name, record)
        return {"TransformJobArn": arn}

    def _run_transform(self, request: dict) -> list:
        from forecasting import load_model

        containers = [c for c in self.resolved_model_containers(request["ModelName"]) if c.get("ModelDataUrl")]
        if not containers:
            raise ValueError(f"model {request['ModelName']} has no container with a ModelDataUrl")
        model_dir = local_path(containers[0]["ModelDataUrl"], self.settings)
        source = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        output = request["TransformOutput"]["S3OutputPath"].rstrip("/")
        files = list_prefix(source, self.settings)
        if not files:
            raise ValueError(f"no input files under {source} (local store: {local_path(source, self.settings)})")
        for relative, path in files:  # SageMaker fails the job on the first request over the limit
            limits.check_transform_payload(request, Path(path).stat().st_size, f"{source.rstrip('/')}/{relative}")
        written = []
        workers = transform_workers(request, len(files))
        # the model is loaded here only when it predicts here: workers load their own
        model = load_model(model_dir) if workers == 1 else None
        started = time.monotonic()
        targets = [local_path(f"{output}/{relative}.out", self.settings) for relative, _ in files]
        cpu = [0.0]  # the requests' CPU seconds (load-independent: the machine may be shared)
        if workers > 1:  # an instance serves several requests at once; each worker loads the model once
            results = _predict_in_workers(model_dir, [(str(p), str(t)) for (_, p), t in zip(files, targets)], workers)
        else:
            results = (_timed_predict(model, path, target) for (_, path), target in zip(files, targets))
        for position, ((relative, _), target, (seconds, cpu_seconds)) in enumerate(
            zip(files, targets, results), start=1
        ):
            cpu[0] += cpu_seconds
            limits.check_invocation_time(request, seconds, f"{source.rstrip('/')}/{relative}")
            written.append(target)
            logger.info(f"[local transform] {position}/{len(files)} {relative} -> {output}/{relative}.out")
        logger.info(
            f"[local transform] {len(files)} file(s) in {time.monotonic() - started:.1f}s"
            + (f" ({workers} workers)" if workers > 1 else "")
            + f", {cpu[0]:.1f} s of CPU in the requests"
        )
        return written

    def describe_transform_job(self, TransformJobName: str) -> dict:  # noqa: N803
        record = self._load("transform", TransformJobName)
        if record is None:
            raise LocalClientError(
                "ValidationException", f"Could not find job to describe: {TransformJobName}", "DescribeTransformJob"
            )
        keys = (
            "TransformJobName",
            "TransformJobArn",
            "TransformJobStatus",
            "FailureReason",
            "ModelName",
            "MaxConcurrentTransforms",
            "ModelClientConfig",
            "MaxPayloadInMB",
            "BatchStrategy",
            "Environment",
            "TransformInput",
            "TransformOutput",
            "DataCaptureConfig",
            "TransformResources",
            "CreationTime",
            "TransformStartTime",
            "TransformEndTime",
            "DataProcessing",
            "ExperimentConfig",
        )
        return {k: record[k] for k in keys if record.get(k) is not None}

    def list_transform_jobs(
        self,
        NameContains: str = "",
        StatusEquals: str = "",
        MaxResults: int = 100,  # noqa: N803
        **_: Any,
    ) -> dict:
        jobs = [
            j
            for j in self._all("transform")
            if NameContains.lower() in j["TransformJobName"].lower()
            and (not StatusEquals or j["TransformJobStatus"] == StatusEquals)
        ]
        jobs.sort(key=lambda j: j["CreationTime"], reverse=True)
        return {
            "TransformJobSummaries": [
                {
                    k: j.get(k)
                    for k in (
                        "TransformJobName",
                        "TransformJobArn",
                        "CreationTime",
                        "TransformEndTime",
                        "TransformJobStatus",
                        "FailureReason",
                    )
                    if j.get(k) is not None
                }
                for j in jobs[:MaxResults]
            ]
        }


def _end_if_in_progress(status: str, **fields: Any) -> Callable[[dict], None]:
    """A `job_records.update` change ending a job that is still InProgress (one that ended meanwhile,
    its worker's Completed included, stays as it is)."""

    def change(record: dict) -> None:
        if record["AutoMLJobStatus"] == "InProgress":
            record.update(AutoMLJobStatus=status, AutoMLJobSecondaryStatus=status, **fields)
            record["EndTime"] = record["LastModifiedTime"] = _now()

    return change


# -- the engine, imported ahead -------------------------------------------------------------
_ENGINE_IMPORT: list = []  # the thread importing the engine, once per process
_ENGINE_LOCK = threading.Lock()


def import_engine_ahead() -> Optional[threading.Thread]:
    """Import the engine (`forecasting`: pandas, pyarrow, joblib; 0.5 s of CPU) in a thread of this
    process, once, unless it is imported already; returns the thread.

    Called once an AutoML job's worker has started: the job trains in its own process, and the
    transform that follows it (the training pipeline's BacktestForecast) predicts in this one, so
    the import overlaps the training instead of starting the transform. Started any earlier (while
    CreateAutoMLJobV2 is served), the request threads wait for the GIL behind it. Importing the
    engine changes nothing in the process (forecasting's docstring), so nothing started later
    differs; an import that fails here fails again, with its error, where the transform imports it."""
    with _ENGINE_LOCK:
        if "forecasting" in sys.modules or _ENGINE_IMPORT:
            return None
        thread = threading.Thread(target=_import_engine, name="engine-import")
        _ENGINE_IMPORT.append(thread)
    thread.start()
    return thread


def _import_engine() -> None:
    with contextlib.suppress(Exception):
        import forecasting  # noqa: F401


# -- the transform's workers ----------------------------------------------------------------
MAX_TRANSFORM_WORKERS = 4
FILES_PER_WORKER = 8  # below this many files per worker, a worker's start-up (~2 s) is not repaid


def transform_workers(request: dict, files: int) -> int:
    """Concurrent requests of a local transform: MaxConcurrentTransforms when set, else one per
    CPU (at most MAX_TRANSFORM_WORKERS), and only when each worker gets FILES_PER_WORKER files."""
    setting = int(request.get("MaxConcurrentTransforms") or 0)
    cap = setting or min(os.cpu_count() or 1, MAX_TRANSFORM_WORKERS)
    return max(1, min(cap, files // FILES_PER_WORKER))


def _timed_predict(model: Any, path: Any, target: Any) -> tuple:
    """(wall seconds, CPU seconds of this process and its threads) of one request; the CPU of
    per-series worker processes the models start is not in it."""
    invoked, cpu = time.monotonic(), time.process_time()
    model.predict_file(path, target)
    return time.monotonic() - invoked, time.process_time() - cpu


_WORKER_MODEL: list = []


def _load_worker_model(model_dir: str) -> None:
    from forecasting import load_model

    _WORKER_MODEL[:] = [load_model(model_dir)]


def _worker_predict(job: tuple) -> tuple:
    return _timed_predict(_WORKER_MODEL[0], *job)


def _predict_in_workers(model_dir: Any, jobs: list, workers: int):
    """Each input file's (wall, CPU) seconds, in input order, predicted by `workers` spawned processes (the
    runtime serves HTTP from threads: no fork). The same model and code per file as in process."""
    import concurrent.futures
    import multiprocessing

    pool = concurrent.futures.ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_load_worker_model,
        initargs=(str(model_dir),),
    )
    try:
        futures = [pool.submit(_worker_predict, job) for job in jobs]
        for future in futures:
            yield future.result()
    finally:  # a failed request (or a limit) stops the job: no further requests
        pool.shutdown(wait=True, cancel_futures=True)
