"""The AutoML step against botocore's Stubber (AutoML V2 responses) and a moto server.

moto's AutoML V2 jobs never complete and carry placeholder containers, so the job life cycle
(polling, failure, two-container candidates) is driven by Stubber on a real boto3 client, which
checks every request and response against the service model. Re-attaching to an existing job
and registration run against the moto server on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from processing import automl_job, automl_request, register
from processing.kernel import contracts
from processing.kernel.aws_validation import request_problems

ROLE = "arn:aws:iam::123456789012:role/forecast-pipeline"
ACCOUNT_ARN = "arn:aws:sagemaker:us-east-1:123456789012"
EXECUTION_ID = "k2m9x4q7z1ab"
JOB = "fc-" + EXECUTION_ID
TRAIN_URI = f"s3://bucket/prefix/executions/{EXECUTION_ID}/PrepareData/train"
OUTPUT_URI = f"s3://bucket/prefix/executions/{EXECUTION_ID}/AutoML/output"
WHEN = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)

TWO_CONTAINERS = [
    {
        "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-sklearn-automl:2.5-1-cpu-py3",
        "ModelDataUrl": f"{OUTPUT_URI}/{JOB}/data-processor-models/dpp0/output/model.tar.gz",
        "Environment": {
            "AUTOML_TRANSFORM_MODE": "feature-transform",
            "SAGEMAKER_PROGRAM": "sagemaker_serve",
            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
        },
    },
    {
        "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-forecasting-automl:1.0-cpu",
        "ModelDataUrl": f"{OUTPUT_URI}/{JOB}/tuning/ensemble/output/model.tar.gz",
        "Environment": {"AUTOML_INFERENCE_QUANTILES": "p10,p50,p90", "MAX_CONTENT_LENGTH": "20971520"},
    },
]


def _sagemaker():
    return boto3.session.Session(region_name="us-east-1").client("sagemaker")


def _args(*extra):
    return automl_job.parser().parse_args(
        [
            f"--train-uri={TRAIN_URI}",
            f"--output-uri={OUTPUT_URI}",
            f"--execution-id={EXECUTION_ID}",
            f"--role-arn={ROLE}",
            "--poll-seconds=0",
            "--grouping-columns=",
            *extra,
        ]
    )


def _describe(status, secondary, *, containers=None, failure=None, definitions=None):
    response = {
        "AutoMLJobName": JOB,
        "AutoMLJobArn": f"{ACCOUNT_ARN}:automl-job/{JOB}",
        "AutoMLJobInputDataConfig": [
            {
                "ChannelType": "training",
                "ContentType": "text/csv;header=present",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": TRAIN_URI}},
            }
        ],
        "OutputDataConfig": {"S3OutputPath": OUTPUT_URI},
        "RoleArn": ROLE,
        "CreationTime": WHEN,
        "LastModifiedTime": WHEN,
        "AutoMLJobStatus": status,
        "AutoMLJobSecondaryStatus": secondary,
    }
    if failure:
        response["FailureReason"] = failure
    if containers or definitions:
        candidate = {
            "CandidateName": "ensemble-candidate-1",
            "FinalAutoMLJobObjectiveMetric": {"MetricName": "AverageWeightedQuantileLoss", "Value": 0.0512},
            "ObjectiveStatus": "Succeeded",
            "CandidateSteps": [
                {
                    "CandidateStepType": "AWS::SageMaker::TrainingJob",
                    "CandidateStepArn": f"{ACCOUNT_ARN}:training-job/{JOB}-ens",
                    "CandidateStepName": f"{JOB}-ens",
                }
            ],
            "CandidateStatus": "Completed",
            "CreationTime": WHEN,
            "LastModifiedTime": WHEN,
            "CandidateProperties": {
                "CandidateArtifactLocations": {
                    "Explainability": f"{OUTPUT_URI}/{JOB}/explainability",
                    "ModelInsights": f"{OUTPUT_URI}/{JOB}/model-insights",
                    "BacktestResults": f"{OUTPUT_URI}/{JOB}/backtest",
                },
                "CandidateMetrics": [{"MetricName": "WAPE", "Value": 0.21, "Set": "Validation"}],
            },
        }
        if containers:
            candidate["InferenceContainers"] = containers
        if definitions:
            candidate["InferenceContainerDefinitions"] = definitions
        response["BestCandidate"] = candidate
    return response


def _expected_request():
    return automl_request.build_request(
        train_uri=TRAIN_URI, output_uri=OUTPUT_URI, job_name=JOB, role_arn=ROLE, grouping_columns=""
    )


def _no_job(stub):
    stub.add_client_error(
        "describe_auto_ml_job_v2",
        service_error_code="ResourceNotFound",
        service_message=f"Could not find AutoML job with name {JOB}",
        expected_params={"AutoMLJobName": JOB},
    )


def _no_model(stub):
    stub.add_client_error(
        "describe_model",
        service_error_code="ValidationException",
        service_message=f'Could not find model "{ACCOUNT_ARN}:model/{JOB}-model".',
        expected_params={"ModelName": f"{JOB}-model"},
    )


def test_given_a_two_container_candidate_when_the_job_completes_then_model_and_package_carry_both(
    tmp_path, moto_endpoint, monkeypatch
):
    from processing.kernel import aws_validation

    checks = []  # (operation, whether the client's own service model was used)

    def recorded(service, operation, params, model=None):
        checks.append((operation, model is not None))
        return aws_validation.validate_request(service, operation, params, model)

    sm = _sagemaker()
    logs = []
    with Stubber(sm) as stub:
        _no_job(stub)
        stub.add_response(
            "create_auto_ml_job_v2",
            {"AutoMLJobArn": f"{ACCOUNT_ARN}:automl-job/{JOB}"},
            expected_params=_expected_request(),
        )
        for status, secondary in [
            ("InProgress", "AnalyzingData"),
            ("InProgress", "AnalyzingData"),
            ("InProgress", "TrainingModels"),
        ]:
            stub.add_response("describe_auto_ml_job_v2", _describe(status, secondary), {"AutoMLJobName": JOB})
        stub.add_response(
            "describe_auto_ml_job_v2",
            _describe("Completed", "Completed", containers=TWO_CONTAINERS),
            {"AutoMLJobName": JOB},
        )
        _no_model(stub)
        stub.add_response(
            "create_model",
            {"ModelArn": f"{ACCOUNT_ARN}:model/{JOB}-model"},
            expected_params={"ModelName": f"{JOB}-model", "Containers": TWO_CONTAINERS, "ExecutionRoleArn": ROLE},
        )

        # the requests are checked against the client's own service model: SageMaker's is parsed once
        for module in (automl_job, automl_request, register):
            monkeypatch.setattr(module, "validate_request", recorded)
        result = automl_job.run(_args(f"--result-dir={tmp_path / 'automl'}"), sm=sm, log=logs.append)
        stub.assert_no_pending_responses()

    written = json.loads((tmp_path / "automl" / contracts.AUTOML_RESULT_FILE).read_text())
    assert written == result
    assert written["inference_containers"] == TWO_CONTAINERS
    assert written["model_name"] == f"{JOB}-model"
    assert written["best_candidate_name"] == "ensemble-candidate-1"
    assert written["objective_metric"] == {"name": "AverageWeightedQuantileLoss", "value": 0.0512}
    assert written["reports"]["backtest_results"].endswith("/backtest")
    request_file = tmp_path / "automl" / automl_job.REQUEST_FILE
    assert [line for line in logs if str(request_file) in line] == [
        f"AutoML request {JOB} (horizon 14, frequency D): {request_file}"
    ]
    assert not any("{" in line for line in logs)  # no request JSON on one long line
    assert request_file.read_text().startswith('{\n  "')  # indented, readable
    status_lines = [line for line in logs if line.startswith(f"AutoML job {JOB}: ")]
    assert [line.split(": ")[1].split(" (")[0] for line in status_lines] == [
        "InProgress / AnalyzingData",
        "InProgress / TrainingModels",
        "Completed / Completed",
    ]

    # and the registered package (moto server) carries the same two containers with Environment
    evaluation_dir = tmp_path / "evaluation"
    evaluation_dir.mkdir()
    (evaluation_dir / contracts.EVALUATION_FILE).write_text(
        json.dumps(
            {
                "forecast_metrics": {"wape": 0.2, "wql": 0.05},
                "quality_gate": {"metric": "WAPE", "value": 0.2, "threshold": 0.3, "passed": True},
            }
        )
    )
    registry = boto3.session.Session(region_name="us-east-1").client("sagemaker")
    registration = register.run(
        register.parser().parse_args(
            [
                f"--automl-result-dir={tmp_path / 'automl'}",
                f"--evaluation-dir={evaluation_dir}",
                "--evaluation-uri=s3://bucket/prefix/evaluation.json",
                "--model-package-group=demand-forecasting",
                f"--execution-id={EXECUTION_ID}",
                f"--result-dir={tmp_path / 'registration'}",
            ]
        ),
        sm=registry,
        log=logs.append,
    )
    package = registry.describe_model_package(ModelPackageName=registration["model_package_arn"])
    assert package["InferenceSpecification"]["Containers"] == TWO_CONTAINERS
    assert [operation for operation, _ in checks] == [
        "CreateAutoMLJobV2",
        "CreateModel",
        "CreateModelPackage",
        "CreateModelPackageGroup",
    ]
    assert all(own for _, own in checks)


def test_given_a_job_of_that_name_exists_when_the_step_is_retried_then_it_re_attaches(tmp_path):
    sm = _sagemaker()
    logs = []
    with Stubber(sm) as stub:  # Stubber fails on any call not queued: a second create would
        stub.add_response("describe_auto_ml_job_v2", _describe("InProgress", "TrainingModels"), {"AutoMLJobName": JOB})
        stub.add_response("describe_auto_ml_job_v2", _describe("InProgress", "TrainingModels"), {"AutoMLJobName": JOB})
        stub.add_response(
            "describe_auto_ml_job_v2",
            _describe("Completed", "Completed", containers=TWO_CONTAINERS),
            {"AutoMLJobName": JOB},
        )
        stub.add_response(
            "describe_model",
            {"ModelName": f"{JOB}-model", "CreationTime": WHEN, "ModelArn": f"{ACCOUNT_ARN}:model/{JOB}-model"},
            {"ModelName": f"{JOB}-model"},
        )

        result = automl_job.run(_args(f"--result-dir={tmp_path}"), sm=sm, log=logs.append)
        stub.assert_no_pending_responses()

    assert result["model_name"] == f"{JOB}-model"
    assert any("re-attaching" in line for line in logs)
    assert any("reusing" in line for line in logs)


def test_given_a_concurrent_attempt_created_the_job_when_creating_then_it_re_attaches():
    sm = _sagemaker()
    with Stubber(sm) as stub:
        _no_job(stub)
        stub.add_client_error(
            "create_auto_ml_job_v2",
            service_error_code="ResourceInUse",
            service_message=f"Auto ML Job with name {JOB} already exists.",
        )
        stub.add_response("describe_auto_ml_job_v2", _describe("InProgress", "Starting"), {"AutoMLJobName": JOB})

        job = automl_job.start_or_attach(sm, _expected_request(), log=lambda _: None)

    assert job == {"job_name": JOB, "job_arn": f"{ACCOUNT_ARN}:automl-job/{JOB}", "attached": True}


def test_given_the_moto_server_when_starting_twice_then_one_job_exists(moto_endpoint):
    sm = _sagemaker()
    request = _expected_request()

    first = automl_job.start_or_attach(sm, request, log=lambda _: None)
    second = automl_job.start_or_attach(sm, request, log=lambda _: None)

    assert (first["attached"], second["attached"]) == (False, True)
    assert first["job_arn"] == second["job_arn"]
    assert [j["AutoMLJobName"] for j in sm.list_auto_ml_jobs()["AutoMLJobSummaries"]] == [JOB]


@pytest.mark.parametrize("status, secondary", [("Failed", "Failed"), ("Stopped", "Stopped")])
def test_given_the_job_fails_when_running_the_cli_then_it_exits_non_zero_with_the_reason(
    tmp_path, capsys, status, secondary
):
    reason = "ClientError: The dataset has fewer than 4 time steps for 3 items; provide more history."
    sm = _sagemaker()
    with Stubber(sm) as stub:
        _no_job(stub)
        stub.add_response(
            "create_auto_ml_job_v2",
            {"AutoMLJobArn": f"{ACCOUNT_ARN}:automl-job/{JOB}"},
            expected_params=_expected_request(),
        )
        stub.add_response(
            "describe_auto_ml_job_v2", _describe(status, secondary, failure=reason), {"AutoMLJobName": JOB}
        )

        code = automl_job.main([a for a in _cli_args(tmp_path)], sm=sm)

    assert code == 1
    error = capsys.readouterr().err
    assert f"AutoML job {JOB} ended {status}" in error
    assert reason in error
    assert not (tmp_path / contracts.AUTOML_RESULT_FILE).exists()


def _cli_args(tmp_path):
    return [
        f"--train-uri={TRAIN_URI}",
        f"--output-uri={OUTPUT_URI}",
        f"--execution-id={EXECUTION_ID}",
        f"--role-arn={ROLE}",
        "--poll-seconds=0",
        "--grouping-columns=",
        f"--result-dir={tmp_path}",
    ]


@pytest.mark.integration
def test_given_a_bad_parameter_when_running_the_cli_then_nothing_is_started_and_the_parameter_is_named(
    tmp_path, capsys
):
    sm = _sagemaker()
    with Stubber(sm):  # no call queued: any AWS call would fail the test
        code = automl_job.main(_cli_args(tmp_path) + ["--quantiles=0.1,0.5,0.9"], sm=sm)

    assert code == 1
    assert "ForecastQuantiles: '0.1'" in capsys.readouterr().err


def test_given_only_container_definitions_per_processing_unit_then_the_cpu_set_is_used():
    gpu = [dict(TWO_CONTAINERS[1], Image="123456789012.dkr.ecr.us-east-1.amazonaws.com/forecast:gpu")]
    description = _describe("Completed", "Completed", definitions={"GPU": gpu, "CPU": TWO_CONTAINERS})

    assert automl_job.best_inference_containers(description) == TWO_CONTAINERS


def test_given_a_completed_job_without_containers_then_the_step_fails_clearly():
    with pytest.raises(automl_job.AutoMLJobFailed, match="no inference containers"):
        automl_job.best_inference_containers(_describe("Completed", "Completed"))


def test_given_two_containers_when_building_create_model_then_the_request_validates():
    request = automl_job.create_model_request(f"{JOB}-model", TWO_CONTAINERS, ROLE, tags={"project": "demand"})

    assert request_problems("sagemaker", "CreateModel", request) == []
    assert request["Containers"] == TWO_CONTAINERS


def test_given_a_profile_with_covariates_when_building_from_args_then_they_are_zero_filled(tmp_path):
    (tmp_path / contracts.PROFILE_FILE).write_text(
        json.dumps(
            {
                "columns": {
                    "item_id": "item_id",
                    "timestamp": "timestamp",
                    "target": "target_value",
                    "grouping": [],
                    "covariates": ["promotion", "price"],
                    "static": ["category"],
                },
                "periods": 365,
            }
        )
    )

    request = automl_job.request_from_args(_args(f"--result-dir={tmp_path}", f"--profile-dir={tmp_path}"))

    filling = request["AutoMLProblemTypeConfig"]["TimeSeriesForecastingJobConfig"]["Transformations"]["Filling"]
    assert filling["promotion"] == {"middlefill": "zero", "backfill": "zero", "futurefill": "zero"}
    assert set(filling) == {"target_value", "promotion", "price"}


def test_given_a_profile_with_the_filling_prepare_data_applied_then_the_request_carries_it(tmp_path):
    applied = {
        "target_value": {"middlefill": "median", "backfill": "zero"},
        "price": {"middlefill": "mean", "backfill": "mean", "futurefill": "value", "futurefill_value": "0"},
    }
    (tmp_path / contracts.PROFILE_FILE).write_text(
        json.dumps(
            {"columns": {"covariates": ["price"], "static": []}, "periods": 100, "horizon": 14, "filling": applied}
        )
    )

    request = automl_job.request_from_args(_args(f"--result-dir={tmp_path}", f"--profile-dir={tmp_path}"))

    assert request["AutoMLProblemTypeConfig"]["TimeSeriesForecastingJobConfig"]["Transformations"]["Filling"] == applied


def test_given_a_horizon_over_a_quarter_of_the_training_steps_then_no_job_is_started(tmp_path, capsys):
    (tmp_path / contracts.PROFILE_FILE).write_text(
        json.dumps({"columns": {"covariates": [], "static": []}, "periods": 60, "horizon": 14})
    )

    with Stubber(_sagemaker()) as stub:
        code = automl_job.main(_cli_args(tmp_path) + [f"--profile-dir={tmp_path}"], sm=stub.client)

    assert code == 1
    assert "quarter of the 46 time steps" in capsys.readouterr().err


def test_given_filling_that_is_not_json_when_running_then_the_flag_is_named(tmp_path, capsys):
    assert automl_job.main(_cli_args(tmp_path) + ["--filling={price: zero}"], sm=_sagemaker()) == 1
    assert "--filling is not valid JSON" in capsys.readouterr().err


def test_given_a_missing_profile_folder_when_running_then_the_error_names_the_flag(tmp_path, capsys):
    code = automl_job.main(_cli_args(tmp_path) + [f"--profile-dir={tmp_path / 'nope'}"], sm=_sagemaker())

    assert code == 1
    assert "--profile-dir" in capsys.readouterr().err


def test_given_a_profile_aggregation_and_no_flag_then_the_request_uses_what_prepare_data_applied(tmp_path):
    (tmp_path / contracts.PROFILE_FILE).write_text(json.dumps({"columns": {}, "aggregation": "max"}))

    request = automl_job.request_from_args(_args(f"--result-dir={tmp_path}", f"--profile-dir={tmp_path}"))

    aggregation = request["AutoMLProblemTypeConfig"]["TimeSeriesForecastingJobConfig"]["Transformations"]["Aggregation"]
    assert aggregation == {"target_value": "max"}


@pytest.mark.integration
def test_given_the_container_boundary_when_importing_the_step_scripts_then_only_allowed_packages_load():
    import subprocess
    import sys

    code = (
        "import sys, processing.automl_job, processing.register; print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    for forbidden in ("sagemaker", "forecasting", "sklearn", "scipy", "statsforecast", "lightgbm", "moto"):
        assert f"'{forbidden}'" not in loaded


def test_given_throttling_while_polling_when_waiting_then_it_keeps_polling_until_completion():
    sm = _sagemaker()
    logs = []
    with Stubber(sm) as stub:
        stub.add_response("describe_auto_ml_job_v2", _describe("InProgress", "TrainingModels"), {"AutoMLJobName": JOB})
        stub.add_client_error(
            "describe_auto_ml_job_v2",
            service_error_code="ThrottlingException",
            service_message="Rate exceeded",
            http_status_code=400,
        )
        stub.add_response(
            "describe_auto_ml_job_v2",
            _describe("Completed", "Completed", containers=TWO_CONTAINERS),
            {"AutoMLJobName": JOB},
        )

        description = automl_job.wait_for_job(sm, JOB, poll_seconds=0, log=logs.append, sleep=lambda _: None)

    assert description["AutoMLJobStatus"] == "Completed"
    assert any("ThrottlingException while polling" in line for line in logs)


def test_given_access_denied_while_polling_when_waiting_then_the_error_is_raised():
    from botocore.exceptions import ClientError

    sm = _sagemaker()
    with Stubber(sm) as stub:
        stub.add_client_error(
            "describe_auto_ml_job_v2",
            service_error_code="AccessDeniedException",
            service_message="not authorized to perform sagemaker:DescribeAutoMLJobV2",
        )
        with pytest.raises(ClientError, match="DescribeAutoMLJobV2"):
            automl_job.wait_for_job(sm, JOB, poll_seconds=0, log=lambda _: None, sleep=lambda _: None)


def test_given_the_local_api_and_no_training_data_when_running_the_cli_then_the_failure_reason_is_shown(
    tmp_path, local_api, capsys
):
    """Plain boto3 against the runtime's loopback API: the local job fails and says why."""
    code = automl_job.main(
        [
            "--train-uri=s3://forecast-local/nothing-here/train",
            f"--output-uri={OUTPUT_URI}",
            f"--execution-id={EXECUTION_ID}",
            f"--role-arn={ROLE}",
            "--poll-seconds=0.2",
            f"--result-dir={tmp_path}",
        ]
    )

    assert code == 1
    error = capsys.readouterr().err
    assert f"AutoML job {JOB} ended Failed" in error
    assert "no training data" in error
    served = [(c["operation"], c["status"]) for c in local_api.take_calls()]
    assert served[:2] == [("DescribeAutoMLJobV2", 400), ("CreateAutoMLJobV2", 200)]
    assert served[-1] == ("DescribeAutoMLJobV2", 200)


@pytest.mark.integration
def test_given_a_slow_job_when_waiting_then_polls_start_at_a_tenth_of_a_second_and_grow_to_poll_seconds():
    """A tenth of a second of latency for a short local job, at most --poll-seconds between calls on AWS."""
    sm = _sagemaker()
    slept = []
    with Stubber(sm) as stub:
        for _ in range(60):
            stub.add_response(
                "describe_auto_ml_job_v2", _describe("InProgress", "TrainingModels"), {"AutoMLJobName": JOB}
            )
        stub.add_response(
            "describe_auto_ml_job_v2",
            _describe("Completed", "Completed", containers=TWO_CONTAINERS),
            {"AutoMLJobName": JOB},
        )
        automl_job.wait_for_job(sm, JOB, poll_seconds=10, log=lambda _: None, sleep=slept.append)

    # the first second polls every tenth of a second; then each wait is a tenth of the time waited so far
    assert automl_job.FIRST_POLL_SECONDS == 0.1
    assert slept[:10] == [automl_job.FIRST_POLL_SECONDS] * 10
    assert all(b >= a for a, b in zip(slept, slept[1:]))
    assert all(wait <= max(0.1, 0.1 * sum(slept[:i])) + 1e-9 for i, wait in enumerate(slept))
    assert max(slept) == 10 and slept[-1] == 10


def _bundle(tmp_path):
    """The step code bundle alone (what a processing container mounts), outside the checkout."""
    import shutil

    from pipelines import code_bundle

    root = tmp_path / "code"
    for relative, path in code_bundle.bundle_files():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, root / relative)
    return root


@pytest.mark.integration
def test_given_a_job_in_progress_when_the_step_gets_sigterm_then_it_stops_the_job(tmp_path, local_api):
    """The pipeline is stopped while AutoML trains: the step process (the bundle and boto3 only)
    calls StopAutoMLJob, the job ends Stopped, its training process is gone, the step exits non-zero."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from pipelines.local import automl_worker
    from pipelines.local.store import LocalS3Client
    from processing.generate import generate_sales

    settings = local_api.settings
    frame = generate_sales(products=15, regions=2, start="2023-01-01", end="2024-02-04")
    LocalS3Client(settings).put_object(Bucket="b", Key="train/train.csv", Body=frame.to_csv(index=False))
    env = dict(os.environ, PYTHONPATH=str(_bundle(tmp_path)), PYTHONUNBUFFERED="1")
    step = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "processing.automl_job",
            "--train-uri=s3://b/train/",
            "--output-uri=s3://b/automl",
            f"--execution-id={EXECUTION_ID}",
            f"--role-arn={ROLE}",
            f"--result-dir={tmp_path / 'result'}",
            "--algorithms=arima,ets",
            "--holiday-country=",
            "--poll-seconds=1",
        ],
        cwd=str(tmp_path),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sm = boto3.client("sagemaker", region_name="us-east-1")
    try:
        deadline = time.monotonic() + 180
        while True:  # until the engine is training
            assert step.poll() is None, step.communicate()
            try:
                state = sm.describe_auto_ml_job_v2(AutoMLJobName=JOB)["AutoMLJobSecondaryStatus"]
            except ClientError:
                state = None
            if state == "TrainingModels":
                break
            assert state in (None, "AnalyzingData") and time.monotonic() < deadline, state
            time.sleep(0.2)
        worker = automl_worker._JOBS[(str(settings.home_path), JOB)].process

        step.send_signal(signal.SIGTERM)
        out, err = step.communicate(timeout=60)
    finally:
        if step.poll() is None:
            step.kill()

    assert step.returncode == automl_job.EXIT_TERMINATED, (out, err)
    assert "SIGTERM received (the pipeline is stopping): stopping the AutoML job" in out
    assert f"AutoML job {JOB}: StopAutoMLJob requested (it was InProgress / TrainingModels)" in out
    assert "AutoML step stopped by SIGTERM" in err
    described = sm.describe_auto_ml_job_v2(AutoMLJobName=JOB)
    assert (described["AutoMLJobStatus"], described["AutoMLJobSecondaryStatus"]) == ("Stopped", "Stopped")
    assert worker.poll() is not None and not automl_worker.pid_alive(worker.pid)
    assert ("StopAutoMLJob", 200) in [(c["operation"], c["status"]) for c in local_api.take_calls()]


def test_given_a_failed_job_when_the_step_is_retried_then_it_starts_the_next_attempt_and_then_re_attaches_to_it():
    """A Failed or Stopped job cannot run again under its name; a retry starts '-r2' once, then reuses it."""
    sm = _sagemaker()
    retry = automl_job.attempt_name(JOB, 2)
    with Stubber(sm) as stub:
        stub.add_response(
            "describe_auto_ml_job_v2", _describe("Failed", "Failed", failure="worker gone"), {"AutoMLJobName": JOB}
        )
        stub.add_client_error(
            "describe_auto_ml_job_v2",
            service_error_code="ResourceNotFound",
            service_message=f"Job {retry} not found.",
            expected_params={"AutoMLJobName": retry},
        )
        stub.add_response(
            "create_auto_ml_job_v2",
            {"AutoMLJobArn": f"{ACCOUNT_ARN}:automl-job/{retry}"},
            dict(_expected_request(), AutoMLJobName=retry),
        )
        first = automl_job.start_or_attach(sm, _expected_request(), log=lambda _: None)
        stub.add_response("describe_auto_ml_job_v2", _describe("Stopped", "Stopped"), {"AutoMLJobName": JOB})
        stub.add_response(
            "describe_auto_ml_job_v2",
            dict(
                _describe("InProgress", "TrainingModels"),
                AutoMLJobName=retry,
                AutoMLJobArn=f"{ACCOUNT_ARN}:automl-job/{retry}",
            ),
            {"AutoMLJobName": retry},
        )
        second = automl_job.start_or_attach(sm, _expected_request(), log=lambda _: None)
        stub.assert_no_pending_responses()

    assert retry == f"{JOB}-r2" and len(retry) <= automl_request.JOB_NAME_MAX
    assert first == {"job_name": retry, "job_arn": f"{ACCOUNT_ARN}:automl-job/{retry}", "attached": False}
    assert second == {"job_name": retry, "job_arn": f"{ACCOUNT_ARN}:automl-job/{retry}", "attached": True}
    assert automl_job.attempt_name("x" * 32, 12) == "x" * 28 + "-r12"


@pytest.mark.integration
def test_the_automl_and_register_steps_start_without_importing_pandas():
    # pandas is ~0.5 s of each step's start-up on a quiet machine (3 s on a busy one); these two
    # steps only talk to the SageMaker API
    code = (
        "import sys, processing.automl_job, processing.register; "
        "print(sorted(m for m in ('pandas', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(Path(__file__).resolve().parents[2]),
        check=True,
    ).stdout
    assert out.strip() == "[]"
