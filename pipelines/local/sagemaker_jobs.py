"""AutoML V2 jobs, models and transform jobs of the local SageMaker client.

Autopilot's part is played by the local forecasting engine (`forecasting`), run
synchronously inside create_auto_ml_job_v2: when the call returns, describe says Completed
or Failed, exactly the states the AutoML step's polling loop waits for. Requests are checked
against botocore's service model first, so a request that works here is one AWS accepts.
State is one JSON record per resource under <FORECAST_HOME>/sagemaker/<kind>/<name>.json.
"""
from __future__ import annotations

import datetime
import json
import time
import traceback
from pathlib import Path
from typing import Any, Optional

from pipelines.aws_validation import RequestValidationError, validate_request
from pipelines.local.errors import LocalClientError
from pipelines.local.store import atomic_write_bytes, list_prefix, local_path, to_uri

ENGINE_IMAGE = "forecast-local-engine:latest"   # stands in for Autopilot's inference images
DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".parquet.gz")
# leaderboard column -> Autopilot metric name
LEADERBOARD_METRICS = {"wQL": "AverageWeightedQuantileLoss", "WAPE": "WAPE", "MAPE": "MAPE", "MASE": "MASE",
                       "RMSE": "RMSE"}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return {"__datetime__": value.isoformat()}
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__datetime__"}:
            return datetime.datetime.fromisoformat(value["__datetime__"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


class JobsMixin:
    """create/describe_auto_ml_job_v2, create/describe/delete/list_models, create/describe_transform_job.

    Expects `self.settings`, `self.home`, `self.arn(kind, name)` (LocalSageMakerClient) and,
    for containers that name a model package, `self.describe_model_package` (RegistryMixin).
    """

    # -- records ----------------------------------------------------------------------------
    def _record_path(self, kind: str, name: str) -> Path:
        return Path(self.home) / "sagemaker" / kind / f"{name}.json"

    def _load(self, kind: str, name: str) -> Optional[dict]:
        path = self._record_path(kind, name)
        if not path.is_file():
            return None
        return _from_json(json.loads(path.read_text()))

    def _save(self, kind: str, name: str, record: dict) -> None:
        atomic_write_bytes(self._record_path(kind, name),
                           json.dumps(_to_json(record), indent=2, default=str).encode("utf-8"))

    def _all(self, kind: str) -> list:
        folder = Path(self.home) / "sagemaker" / kind
        if not folder.is_dir():
            return []
        records = []
        for path in sorted(folder.glob("*.json")):
            try:
                records.append(_from_json(json.loads(path.read_text())))
            except (OSError, json.JSONDecodeError):
                continue
        return records

    @staticmethod
    def _validate(operation: str, request: dict) -> None:
        try:
            validate_request("sagemaker", operation, request)
        except RequestValidationError as error:
            raise LocalClientError("ValidationException", str(error), operation) from None

    # -- AutoML V2 ------------------------------------------------------------------------------
    def create_auto_ml_job_v2(self, **request: Any) -> dict:
        """Validate, then train the local engine synchronously; failures land in FailureReason."""
        operation = "CreateAutoMLJobV2"
        self._validate(operation, request)
        name = request["AutoMLJobName"]
        if self._load("automl", name) is not None:
            raise LocalClientError("ResourceInUse", f"Job with name {name} already exists.", operation)
        problem = request.get("AutoMLProblemTypeConfig") or {}
        if "TimeSeriesForecastingJobConfig" not in problem:
            raise LocalClientError("ValidationException", "the local runtime runs time-series forecasting "
                                   "jobs only (AutoMLProblemTypeConfig.TimeSeriesForecastingJobConfig)", operation)
        created = _now()
        arn = self.arn("automl-job", name)
        record = {"request": request, "AutoMLJobName": name, "AutoMLJobArn": arn, "CreationTime": created,
                  "LastModifiedTime": created, "AutoMLJobStatus": "InProgress",
                  "AutoMLJobSecondaryStatus": "AnalyzingData"}
        self._save("automl", name, record)
        try:
            record.update(self._train_engine(request, record))
            record.update(AutoMLJobStatus="Completed", AutoMLJobSecondaryStatus="Completed")
        except KeyboardInterrupt:
            record.update(AutoMLJobStatus="Stopped", AutoMLJobSecondaryStatus="Stopped",
                          FailureReason="stopped while training (interrupted)")
            record["EndTime"] = record["LastModifiedTime"] = _now()
            self._save("automl", name, record)
            raise
        except Exception as error:  # the job fails; the caller reads FailureReason like on AWS
            print(traceback.format_exc(), flush=True)
            record.update(AutoMLJobStatus="Failed", AutoMLJobSecondaryStatus="Failed",
                          FailureReason=f"{type(error).__name__}: {error}")
        record["EndTime"] = record["LastModifiedTime"] = _now()
        self._save("automl", name, record)
        return {"AutoMLJobArn": arn}

    def _training_file(self, request: dict) -> Any:
        channels = request.get("AutoMLJobInputDataConfig") or []
        training = [c for c in channels if c.get("ChannelType", "training") == "training"]
        if not training:
            raise ValueError("AutoMLJobInputDataConfig has no training channel")
        uri = training[0]["DataSource"]["S3DataSource"]["S3Uri"]
        files = [path for relative, path in list_prefix(uri, self.settings)
                 if relative.lower().endswith(DATA_SUFFIXES)]
        if not files:
            raise ValueError(f"no training data (csv or parquet) under {uri} "
                             f"(local store: {local_path(uri, self.settings)})")
        if len(files) == 1:
            return files[0]
        import pandas as pd

        from forecasting import EngineConfig
        from forecasting.data import read_table

        config = EngineConfig.from_automl_request(request)   # ids and grouping columns read as text
        return pd.concat([read_table(f, config) for f in files], ignore_index=True)

    def _train_engine(self, request: dict, record: dict) -> dict:
        from forecasting import EngineConfig, train

        name = request["AutoMLJobName"]
        data = self._training_file(request)
        output_uri = request["OutputDataConfig"]["S3OutputPath"].rstrip("/") + "/" + name
        output_dir = local_path(output_uri, self.settings)
        config = EngineConfig.from_automl_request(request)
        limit = ((request.get("AutoMLProblemTypeConfig", {}).get("TimeSeriesForecastingJobConfig", {})
                  .get("CompletionCriteria") or {}).get("MaxAutoMLJobRuntimeInSeconds"))
        record.update(AutoMLJobSecondaryStatus="TrainingModels", LastModifiedTime=_now())
        self._save("automl", name, record)
        started = time.monotonic()
        source = data if isinstance(data, Path) else "the training files"
        print(f"[local automl] job {name}: training the local forecasting engine on {source}", flush=True)
        result = train(data, config, output_dir, time_limit_seconds=limit, log=lambda m: print(m, flush=True))
        print(f"[local automl] job {name}: done in {time.monotonic() - started:.1f}s", flush=True)
        model_uri = to_uri(result.model_dir, self.settings).rstrip("/") + "/"
        leaderboard_uri = output_uri + "/leaderboard.csv"
        metrics = []
        best_rows = result.leaderboard[result.leaderboard["candidate"] == result.best_candidate_name] \
            if "candidate" in result.leaderboard else []
        if len(best_rows):
            row = best_rows.iloc[0]
            for column, metric in LEADERBOARD_METRICS.items():
                if column in row and row[column] == row[column]:
                    metrics.append({"MetricName": metric, "Value": float(row[column]), "Set": "Validation",
                                    "StandardMetricName": metric})
        finished = _now()
        container = {"Image": ENGINE_IMAGE, "ModelDataUrl": model_uri,
                     "Environment": {"FORECAST_ENGINE": "forecasting", "FORECAST_CANDIDATE": result.best_candidate_name,
                                     "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}}
        candidate_name = _candidate_name(name, result.best_candidate_name)
        return {"BestCandidate": {
            "CandidateName": candidate_name,
            "FinalAutoMLJobObjectiveMetric": {"Type": "Minimize", "MetricName": result.objective_metric,
                                              "Value": float(result.objective_value),
                                              "StandardMetricName": result.objective_metric},
            "ObjectiveStatus": "Succeeded", "CandidateSteps": [], "CandidateStatus": "Completed",
            "InferenceContainers": [container],
            "CreationTime": record["CreationTime"], "EndTime": finished, "LastModifiedTime": finished,
            "CandidateProperties": {"CandidateArtifactLocations": {
                "Explainability": output_uri + "/", "ModelInsights": leaderboard_uri,
                "BacktestResults": leaderboard_uri}, "CandidateMetrics": metrics},
        }, "EngineCandidate": result.best_candidate_name}

    def describe_auto_ml_job_v2(self, AutoMLJobName: str) -> dict:  # noqa: N803 (boto3 names)
        record = self._load("automl", AutoMLJobName)
        if record is None:
            raise LocalClientError("ResourceNotFound", f"Job {AutoMLJobName} not found.", "DescribeAutoMLJobV2")
        request = record["request"]
        response = {
            "AutoMLJobName": record["AutoMLJobName"], "AutoMLJobArn": record["AutoMLJobArn"],
            "AutoMLJobInputDataConfig": request.get("AutoMLJobInputDataConfig"),
            "OutputDataConfig": request.get("OutputDataConfig"), "RoleArn": request.get("RoleArn"),
            "AutoMLProblemTypeConfig": request.get("AutoMLProblemTypeConfig"),
            "AutoMLProblemTypeConfigName": "TimeSeriesForecasting",
            "CreationTime": record["CreationTime"], "LastModifiedTime": record["LastModifiedTime"],
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
            raise LocalClientError("ValidationException", f'Cannot create already existing model "{arn}".',
                                   operation)
        if not request.get("Containers") and not request.get("PrimaryContainer"):
            raise LocalClientError("ValidationException", "a model needs PrimaryContainer or Containers", operation)
        for container in request.get("Containers") or [request.get("PrimaryContainer")]:
            if container.get("ModelPackageName"):
                self.describe_model_package(ModelPackageName=container["ModelPackageName"])  # must exist
            elif not container.get("ModelDataUrl"):
                raise LocalClientError("ValidationException", f"container {container.get('Image')} has no "
                                       "ModelDataUrl (the local runtime serves engine artifacts only)", operation)
        record = dict(request, ModelArn=arn, CreationTime=_now())
        self._save("model", name, record)
        return {"ModelArn": arn}

    def describe_model(self, ModelName: str) -> dict:  # noqa: N803
        record = self._load("model", ModelName)
        if record is None:
            raise LocalClientError("ValidationException", f'Could not find model "{self.arn("model", ModelName)}".',
                                   "DescribeModel")
        keys = ("ModelName", "PrimaryContainer", "Containers", "InferenceExecutionConfig", "ExecutionRoleArn",
                "VpcConfig", "CreationTime", "ModelArn", "EnableNetworkIsolation")
        return {k: record[k] for k in keys if record.get(k) is not None}

    def delete_model(self, ModelName: str) -> dict:  # noqa: N803
        path = self._record_path("model", ModelName)
        if not path.is_file():
            raise LocalClientError("ValidationException", f'Could not find model "{self.arn("model", ModelName)}".',
                                   "DeleteModel")
        path.unlink()
        return {}

    def list_models(self, NameContains: str = "", SortBy: str = "CreationTime",  # noqa: N803
                    SortOrder: str = "Descending", MaxResults: int = 100, CreationTimeBefore=None, CreationTimeAfter=None, **_: Any) -> dict:
        models = [m for m in self._all("model") if NameContains.lower() in m["ModelName"].lower()]
        if CreationTimeBefore is not None:
            models = [m for m in models if m["CreationTime"] < CreationTimeBefore]
        if CreationTimeAfter is not None:
            models = [m for m in models if m["CreationTime"] > CreationTimeAfter]
        key = (lambda m: m["ModelName"]) if SortBy == "Name" else (lambda m: m["CreationTime"])
        models.sort(key=key, reverse=SortOrder == "Descending")
        return {"Models": [{"ModelName": m["ModelName"], "ModelArn": m["ModelArn"], "CreationTime": m["CreationTime"]}
                           for m in models[:MaxResults]]}

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
            print(traceback.format_exc(), flush=True)
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
        model = load_model(model_dir)
        source = request["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        output = request["TransformOutput"]["S3OutputPath"].rstrip("/")
        files = list_prefix(source, self.settings)
        if not files:
            raise ValueError(f"no input files under {source} (local store: {local_path(source, self.settings)})")
        written = []
        started = time.monotonic()
        for position, (relative, path) in enumerate(files, start=1):
            target = local_path(f"{output}/{relative}.out", self.settings)
            model.predict_file(path, target)
            written.append(target)
            print(f"[local transform] {position}/{len(files)} {relative} -> {output}/{relative}.out", flush=True)
        print(f"[local transform] {len(files)} file(s) in {time.monotonic() - started:.1f}s", flush=True)
        return written

    def describe_transform_job(self, TransformJobName: str) -> dict:  # noqa: N803
        record = self._load("transform", TransformJobName)
        if record is None:
            raise LocalClientError("ValidationException", f"Could not find job to describe: {TransformJobName}",
                                   "DescribeTransformJob")
        keys = ("TransformJobName", "TransformJobArn", "TransformJobStatus", "FailureReason", "ModelName",
                "MaxConcurrentTransforms", "ModelClientConfig", "MaxPayloadInMB", "BatchStrategy", "Environment",
                "TransformInput", "TransformOutput", "DataCaptureConfig", "TransformResources", "CreationTime",
                "TransformStartTime", "TransformEndTime", "DataProcessing", "ExperimentConfig")
        return {k: record[k] for k in keys if record.get(k) is not None}

    def list_transform_jobs(self, NameContains: str = "", StatusEquals: str = "", MaxResults: int = 100,  # noqa: N803
                            **_: Any) -> dict:
        jobs = [j for j in self._all("transform") if NameContains.lower() in j["TransformJobName"].lower()
                and (not StatusEquals or j["TransformJobStatus"] == StatusEquals)]
        jobs.sort(key=lambda j: j["CreationTime"], reverse=True)
        return {"TransformJobSummaries": [
            {k: j.get(k) for k in ("TransformJobName", "TransformJobArn", "CreationTime", "TransformEndTime",
                                   "TransformJobStatus", "FailureReason") if j.get(k) is not None}
            for j in jobs[:MaxResults]]}


def _candidate_name(job_name: str, engine_candidate: str) -> str:
    """Autopilot-like candidate name (pattern-safe) that still says which engine candidate won."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in engine_candidate).strip("-")[:40] or "candidate"
    return f"{job_name[:20]}-{slug}"
