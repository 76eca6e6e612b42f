"""The local SageMaker jobs: AutoML V2 on the local engine, models, and batch transform."""

from __future__ import annotations

import datetime
import os
import signal
import time

import pandas as pd
import pytest
from botocore.exceptions import ClientError

from pipelines.local import automl_worker
from pipelines.local.sagemaker import LocalSageMakerClient
from pipelines.local.store import LocalS3Client, local_path
from processing.automl_request import build_request
from processing.generate import generate_sales
from processing.kernel.settings import resolve

HORIZON = 7
ROLE = "arn:aws:iam::000000000000:role/forecast-local"
ENGINE_CONTAINER_KEYS = {"Image", "ModelDataUrl", "Environment"}


def sales(items_per_region: int = 3, regions: int = 1, days: int = 120) -> pd.DataFrame:
    end = (pd.Timestamp("2024-01-01") + pd.Timedelta(days=days - 1)).strftime("%Y-%m-%d")
    frame = generate_sales(products=items_per_region, regions=regions, start="2024-01-01", end=end)
    return frame[["item_id", "timestamp", "target_value", "promotion"]]


def put_csv(s3: LocalS3Client, frame: pd.DataFrame, key: str) -> None:
    s3.put_object(Bucket="b", Key=key, Body=frame.to_csv(index=False))


def request(job_name: str, train_uri: str = "s3://b/train/") -> dict:
    return build_request(
        train_uri=train_uri,
        output_uri="s3://b/automl",
        job_name=job_name,
        role_arn=ROLE,
        horizon=HORIZON,
        algorithms="npts",
        holiday_country="",
        max_runtime_seconds=600,
    )


def wait_until_ended(sm, name: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        described = sm.describe_auto_ml_job_v2(AutoMLJobName=name)
        if described["AutoMLJobStatus"] not in ("InProgress", "Stopping"):
            return described
        assert time.monotonic() < deadline, f"job {name} still {described['AutoMLJobStatus']} after {timeout} s"
        time.sleep(0.5)


RIGHT_AFTER_CREATE: dict = {}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small job trained once for the module: 3 items x 120 days, NPTS + seasonal naive."""
    settings = resolve(flags={"home": str(tmp_path_factory.mktemp("jobs-home"))})
    sm, s3 = LocalSageMakerClient(settings), LocalS3Client(settings)
    frame = sales()
    history = frame.groupby("item_id").head(120 - HORIZON)
    put_csv(s3, history, "train/train.csv")
    sm.create_auto_ml_job_v2(**request("job-small"))
    RIGHT_AFTER_CREATE["job-small"] = sm.describe_auto_ml_job_v2(AutoMLJobName="job-small")
    return settings, sm, s3, frame, wait_until_ended(sm, "job-small")


def test_create_returns_at_once_with_the_job_in_progress_in_its_own_process(trained):
    """As on Autopilot: the job trains after CreateAutoMLJobV2 returned, in a process of its own."""
    settings, _, _, _, described = trained
    first = RIGHT_AFTER_CREATE["job-small"]
    assert first["AutoMLJobStatus"] == "InProgress"
    assert first["AutoMLJobSecondaryStatus"] in ("AnalyzingData", "TrainingModels")
    assert "EndTime" not in first and "BestCandidate" not in first
    log = automl_worker.job_log_path(settings, "job-small").read_text()
    assert "[local automl] job job-small: training the local forecasting engine" in log
    assert "[engine]" in log


def test_stop_kills_the_training_process_and_the_job_ends_stopped(trained):
    settings, sm, _, _, _ = trained
    sm.create_auto_ml_job_v2(**request("job-stopped"))
    pid = automl_worker._JOBS[(str(settings.home_path), "job-stopped")].process.pid
    assert automl_worker.pid_alive(pid)

    sm.stop_auto_ml_job(AutoMLJobName="job-stopped")

    described = sm.describe_auto_ml_job_v2(AutoMLJobName="job-stopped")
    assert (described["AutoMLJobStatus"], described["AutoMLJobSecondaryStatus"]) == ("Stopped", "Stopped")
    assert described["EndTime"] >= described["CreationTime"]
    assert not automl_worker.pid_alive(pid)
    sm.stop_auto_ml_job(AutoMLJobName="job-stopped")  # stopping an ended job changes nothing
    assert sm.describe_auto_ml_job_v2(AutoMLJobName="job-stopped")["AutoMLJobStatus"] == "Stopped"
    with pytest.raises(ClientError, match="ResourceNotFound"):
        sm.stop_auto_ml_job(AutoMLJobName="never-started")


def test_a_training_process_that_dies_without_a_word_leaves_the_job_failed(trained):
    settings, sm, _, _, _ = trained
    sm.create_auto_ml_job_v2(**request("job-killed"))
    process = automl_worker._JOBS[(str(settings.home_path), "job-killed")].process
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    described = sm.describe_auto_ml_job_v2(AutoMLJobName="job-killed")

    assert described["AutoMLJobStatus"] == "Failed"
    assert f"exited with code {-signal.SIGKILL}" in described["FailureReason"]
    assert str(automl_worker.job_log_path(settings, "job-killed")) in described["FailureReason"]


def test_automl_job_completes_with_a_boto3_shaped_best_candidate(trained):
    settings, sm, _, _, described = trained
    assert described["AutoMLJobStatus"] == "Completed", described.get("FailureReason")
    assert described["AutoMLJobSecondaryStatus"] == "Completed"
    assert described["AutoMLProblemTypeConfigName"] == "TimeSeriesForecasting"
    assert isinstance(described["CreationTime"], datetime.datetime)
    assert described["EndTime"] >= described["CreationTime"]
    best = described["BestCandidate"]
    assert best["FinalAutoMLJobObjectiveMetric"]["MetricName"] == "AverageWeightedQuantileLoss"
    assert 0 <= best["FinalAutoMLJobObjectiveMetric"]["Value"] < 1
    [container] = best["InferenceContainers"]
    assert set(container) == ENGINE_CONTAINER_KEYS
    assert local_path(container["ModelDataUrl"], settings).is_dir()
    leaderboard = best["CandidateProperties"]["CandidateArtifactLocations"]["BacktestResults"]
    assert "candidate" in pd.read_csv(local_path(leaderboard, settings)).columns


def test_a_second_job_with_the_same_name_is_resource_in_use(trained):
    _, sm, _, _, _ = trained
    with pytest.raises(ClientError, match=r"ResourceInUse.*Job with name job-small already exists"):
        sm.create_auto_ml_job_v2(**request("job-small"))


def test_unknown_job_is_resource_not_found(trained):
    _, sm, _, _, _ = trained
    with pytest.raises(ClientError, match="ResourceNotFound"):
        sm.describe_auto_ml_job_v2(AutoMLJobName="never-started")


def test_invalid_request_is_rejected_before_training(trained):
    _, sm, _, _, _ = trained
    bad = request("job-bad")
    bad["AutoMLProblemTypeConfig"]["TimeSeriesForecastingJobConfig"]["ForecastQuantiles"] = ["0.1"]
    with pytest.raises(ClientError, match=r"(?s)ValidationException.*ForecastQuantiles\[0\]: .0.1. does not match"):
        sm.create_auto_ml_job_v2(**bad)


def test_job_without_training_data_fails_with_a_reason_naming_the_uri(trained):
    _, sm, _, _, _ = trained
    sm.create_auto_ml_job_v2(**request("job-nodata", train_uri="s3://b/empty/"))
    described = wait_until_ended(sm, "job-nodata")
    assert described["AutoMLJobStatus"] == "Failed"
    assert "no training data (csv or parquet) under s3://b/empty/" in described["FailureReason"]


def test_models_create_describe_list_delete(trained):
    _, sm, _, _, described = trained
    containers = described["BestCandidate"]["InferenceContainers"]
    sm.create_model(ModelName="m-one", Containers=containers, ExecutionRoleArn=ROLE)
    with pytest.raises(ClientError, match="Cannot create already existing model"):
        sm.create_model(ModelName="m-one", Containers=containers, ExecutionRoleArn=ROLE)
    assert sm.describe_model(ModelName="m-one")["Containers"] == containers
    assert "m-one" in [m["ModelName"] for m in sm.list_models(NameContains="one")["Models"]]
    sm.delete_model(ModelName="m-one")
    with pytest.raises(ClientError, match="Could not find model"):
        sm.describe_model(ModelName="m-one")


def transform(sm, name, model, source, output, concurrent=None):
    sm.create_transform_job(
        **({"MaxConcurrentTransforms": concurrent} if concurrent else {}),
        TransformJobName=name,
        ModelName=model,
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}},
            "ContentType": "text/csv",
            "SplitType": "None",
        },
        TransformOutput={"S3OutputPath": output, "Accept": "text/csv", "AssembleWith": "None"},
        TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
    )
    return sm.describe_transform_job(TransformJobName=name)


def test_transform_of_a_model_package_model_writes_out_files_per_input(trained):
    """Given a model created from a registered package, the transform forecasts each input file."""
    settings, sm, s3, frame, described = trained
    containers = described["BestCandidate"]["InferenceContainers"]
    sm.create_model_package_group(ModelPackageGroupName="g")
    package = sm.create_model_package(
        ModelPackageGroupName="g",
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": containers,
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )
    sm.create_model(
        ModelName="from-package", Containers=[{"ModelPackageName": package["ModelPackageArn"]}], ExecutionRoleArn=ROLE
    )
    context = frame.copy()
    context.loc[context.groupby("item_id").cumcount() >= 120 - HORIZON, "target_value"] = None
    items = sorted(context["item_id"].unique())
    put_csv(s3, context[context["item_id"].isin(items[:2])], "backtest/part-00000.csv")
    put_csv(s3, context[context["item_id"].isin(items[2:])], "backtest/sub/part-00001.csv")

    job = transform(sm, "tx-1", "from-package", "s3://b/backtest/", "s3://b/forecasts")

    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    first = pd.read_csv(local_path("s3://b/forecasts/part-00000.csv.out", settings))
    second = pd.read_csv(local_path("s3://b/forecasts/sub/part-00001.csv.out", settings))
    assert list(first.columns) == ["item_id", "timestamp", "p10", "p50", "p90", "mean"]
    assert len(first) == 2 * HORIZON and len(second) == (len(items) - 2) * HORIZON
    assert (first["p10"] <= first["p50"]).all() and (first["p50"] <= first["p90"]).all()


def test_transform_with_unreadable_input_fails_with_the_reason(trained):
    _, sm, s3, _, described = trained
    sm.create_model(
        ModelName="m-bad-input", Containers=described["BestCandidate"]["InferenceContainers"], ExecutionRoleArn=ROLE
    )
    s3.put_object(Bucket="b", Key="junk/part-0.csv", Body="a,b\n1,2\n")
    job = transform(sm, "tx-bad", "m-bad-input", "s3://b/junk/", "s3://b/junk-out")
    assert job["TransformJobStatus"] == "Failed"
    assert "item_id" in job["FailureReason"]


def test_transform_needs_an_existing_model(trained):
    _, sm, _, _, _ = trained
    with pytest.raises(ClientError, match="Could not find model"):
        transform(sm, "tx-none", "no-such-model", "s3://b/backtest/", "s3://b/x")


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for a reaper."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_training_process_whose_runtime_is_killed_stops_itself(trained, tmp_path):
    """Even a SIGKILLed runtime (no atexit, no cleanup) leaves no training process behind."""
    import json
    import subprocess
    import sys

    settings, _, _, _, _ = trained
    owner = tmp_path / "owner.py"
    owner.write_text(
        "import json, sys, time\n"
        "from pipelines.local import automl_worker\n"
        "from pipelines.local.sagemaker import LocalSageMakerClient\n"
        "from processing.kernel.settings import resolve\n"
        f"settings = resolve(flags={{'home': {str(settings.home_path)!r}}})\n"
        f"LocalSageMakerClient(settings).create_auto_ml_job_v2(**json.loads({json.dumps(json.dumps(request('job-owner-killed')))}))\n"
        "print(automl_worker._JOBS[(str(settings.home_path), 'job-owner-killed')].process.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    runner = subprocess.Popen(
        [sys.executable, str(owner)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(automl_worker.PROJECT_ROOT)),
    )
    try:
        worker_pid = int(runner.stdout.readline())
        assert _running(worker_pid)
        runner.kill()
        runner.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _running(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert not _running(worker_pid)


def test_transform_workers_follow_max_concurrent_transforms_and_the_files_each_would_get():
    from pipelines.local.sagemaker_jobs import FILES_PER_WORKER, transform_workers

    assert transform_workers({"MaxConcurrentTransforms": 2}, 2 * FILES_PER_WORKER) == 2
    assert transform_workers({"MaxConcurrentTransforms": 2}, 2 * FILES_PER_WORKER - 1) == 1  # start-up not repaid
    assert transform_workers({"MaxConcurrentTransforms": 1}, 100) == 1
    assert transform_workers({}, 100) == max(1, min(os.cpu_count() or 1, 4))


def test_transform_in_two_workers_writes_the_same_files_as_one(trained, caplog):
    """Given enough files for two workers, each request's output is byte for byte the in-process one."""
    import logging

    from pipelines.local.sagemaker_jobs import FILES_PER_WORKER

    caplog.set_level(logging.INFO, logger="pipelines.local.sagemaker_jobs")

    settings, sm, s3, frame, described = trained
    containers = described["BestCandidate"]["InferenceContainers"]
    sm.create_model(ModelName="m-workers", Containers=containers, ExecutionRoleArn=ROLE)
    context = frame.copy()
    context.loc[context.groupby("item_id").cumcount() >= 120 - HORIZON, "target_value"] = None
    items = sorted(context["item_id"].unique())
    files = 2 * FILES_PER_WORKER
    for k in range(files):
        put_csv(s3, context[context["item_id"] == items[k % len(items)]], f"many/part-{k:05d}.csv")
    outputs = {}
    for concurrent in (1, 2):
        job = transform(
            sm, f"tx-workers-{concurrent}", "m-workers", "s3://b/many/", f"s3://b/out-{concurrent}", concurrent
        )
        assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
        outputs[concurrent] = [
            local_path(f"s3://b/out-{concurrent}/part-{k:05d}.csv.out", settings).read_bytes() for k in range(files)
        ]
    assert outputs[1] == outputs[2] and all(outputs[1])
    assert any("(2 workers)" in record.getMessage() for record in caplog.records)
    # each job says the requests' CPU seconds (the load-independent figure; the workers' own included)
    import re

    cpu = [re.search(r"file\(s\) in .*, ([\d.]+) s of CPU in the requests", r.getMessage()) for r in caplog.records]
    assert [float(m.group(1)) > 0 for m in cpu if m] == [True, True]


def test_a_worker_started_ahead_trains_the_next_job_and_one_with_another_environment_does_not(trained, monkeypatch):
    """prestart: the job runs in the worker started ahead (the same process, the same result); a worker
    started under another environment is not used (a fresh one trains), and an unused one ends."""
    settings, sm, _, _, _ = trained
    automl_worker.prestart(settings)
    ahead = automl_worker._STANDBY[str(settings.home_path)][0]
    sm.create_auto_ml_job_v2(**request("job-ahead"))
    assert automl_worker._JOBS[(str(settings.home_path), "job-ahead")].process is ahead
    described = wait_until_ended(sm, "job-ahead")
    assert described["AutoMLJobStatus"] == "Completed", described.get("FailureReason")
    assert described["BestCandidate"]["InferenceContainers"][0].keys() >= ENGINE_CONTAINER_KEYS
    assert ahead.wait(timeout=60) == 0

    automl_worker.prestart(settings)
    stale = automl_worker._STANDBY[str(settings.home_path)][0]
    monkeypatch.setenv("FORECAST_TEST_CHANGED", "1")  # the environment a job would get changed since
    sm.create_auto_ml_job_v2(**request("job-fresh"))
    assert automl_worker._JOBS[(str(settings.home_path), "job-fresh")].process is not stale
    assert stale.poll() is not None  # ended, not left waiting
    assert wait_until_ended(sm, "job-fresh")["AutoMLJobStatus"] == "Completed"

    automl_worker.prestart(settings)
    unused = automl_worker._STANDBY[str(settings.home_path)][0]
    automl_worker.stop_all(settings)
    assert unused.poll() is not None and str(settings.home_path) not in automl_worker._STANDBY


def test_given_a_process_without_the_engine_when_imported_ahead_then_a_thread_imports_it_once():
    """After an AutoML job starts, the transform that follows predicts in this process: its import runs ahead."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pipelines.local import sagemaker_jobs\n"
        "before = 'forecasting' in sys.modules\n"
        "thread = sagemaker_jobs.import_engine_ahead()\n"
        "thread.join()\n"
        "print(before, 'forecasting' in sys.modules, sagemaker_jobs.import_engine_ahead())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "None"]
