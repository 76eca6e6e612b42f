"""SageMaker's limits in the local runtime: each run that would break one on SageMaker breaks it here, by name."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from botocore.exceptions import ClientError

from pipelines.local import limits
from pipelines.local.store import local_path
from tests.pipelines.local.handwritten import definition, install_scripts, processing
from tests.pipelines.local.test_runtime import run, statuses
from tests.pipelines.local.test_sagemaker_jobs import HORIZON, ROLE, put_csv, trained  # noqa: F401 (fixture)

MB = 1024 * 1024


@pytest.fixture
def settings():
    from processing.kernel.settings import resolve

    settings = resolve()
    install_scripts(settings)
    return settings


# --- the checkers ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "request_, limit",
    [({}, 6), ({"MaxPayloadInMB": 20}, 20), ({"MaxPayloadInMB": 0}, 100), ({"MaxPayloadInMB": 100}, 100)],
)
def test_payload_limit_is_6_mb_unset_the_value_set_and_100_when_streamed(request_, limit):
    assert limits.payload_limit_mb(request_) == limit


def test_payload_over_100_mb_or_over_100_mb_across_concurrent_requests_is_refused():
    with pytest.raises(limits.LimitExceeded, match="MaxPayloadInMB=101: SageMaker allows at most 100 MB"):
        limits.payload_limit_mb({"MaxPayloadInMB": 101})
    with pytest.raises(limits.LimitExceeded, match="MaxConcurrentTransforms x MaxPayloadInMB = 4 x 30 MB"):
        limits.payload_limit_mb({"MaxPayloadInMB": 30, "MaxConcurrentTransforms": 4})


def test_a_request_over_the_default_payload_names_the_limit_the_size_and_the_field():
    with pytest.raises(limits.LimitExceeded) as raised:
        limits.check_transform_payload({"TransformInput": {"SplitType": "None"}}, 7 * MB, "s3://b/in/part-0.csv")
    message = str(raised.value)
    assert "s3://b/in/part-0.csv is 7.00 MB, over the payload limit of 6 MB" in message
    assert "MaxPayloadInMB unset (default 6 MB)" in message
    limits.check_transform_payload({"TransformInput": {"SplitType": "None"}, "MaxPayloadInMB": 8}, 7 * MB, "f")


def test_an_invocation_over_the_timeout_names_the_setting():
    limits.check_invocation_time({}, 599.0, "f")
    with pytest.raises(
        limits.LimitExceeded,
        match=r"took 601.0 s, over the invocation timeout of 600 s "
        r"\(ModelClientConfig.InvocationsTimeoutInSeconds unset",
    ):
        limits.check_invocation_time({}, 601.0, "f")


# --- transform jobs of the local SageMaker client ----------------------------------------------
def _transform(sm, name, model, source, **extra):
    sm.create_transform_job(
        TransformJobName=name,
        ModelName=model,
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}},
            "ContentType": "text/csv",
            "SplitType": "None",
        },
        TransformOutput={"S3OutputPath": f"s3://b/{name}-out", "Accept": "text/csv", "AssembleWith": "None"},
        TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
        **extra,
    )
    return sm.describe_transform_job(TransformJobName=name)


def _context(frame):
    context = frame.copy()
    context.loc[context.groupby("item_id").cumcount() >= 120 - HORIZON, "target_value"] = None
    return context


def test_given_a_file_over_6_mb_and_no_max_payload_then_the_transform_fails_naming_the_limit(trained):  # noqa: F811
    settings, sm, s3, frame, described = trained
    sm.create_model(
        ModelName="m-payload", Containers=described["BestCandidate"]["InferenceContainers"], ExecutionRoleArn=ROLE
    )
    header, *rows = _context(frame).to_csv(index=False).splitlines()
    copies = 6 * MB // len("\n".join(rows)) + 2  # whole rows repeated past 6 MB, one file
    body = "\n".join([header, *rows * copies]) + "\n"
    assert len(body.encode()) > 6 * MB
    s3.put_object(Bucket="b", Key="big/part-00000.csv", Body=body)

    job = _transform(sm, "tx-big", "m-payload", "s3://b/big/")

    assert job["TransformJobStatus"] == "Failed"
    assert "s3://b/big/part-00000.csv is 6." in job["FailureReason"]
    assert "over the payload limit of 6 MB (MaxPayloadInMB unset (default 6 MB))" in job["FailureReason"]
    assert not local_path("s3://b/tx-big-out", settings).exists()


def test_given_max_payload_over_100_then_create_transform_job_is_a_validation_error(trained):  # noqa: F811
    _, sm, s3, frame, described = trained
    sm.create_model(
        ModelName="m-101", Containers=described["BestCandidate"]["InferenceContainers"], ExecutionRoleArn=ROLE
    )
    put_csv(s3, _context(frame), "small/part-00000.csv")
    with pytest.raises(ClientError, match="ValidationException.*MaxPayloadInMB=101"):
        _transform(sm, "tx-101", "m-101", "s3://b/small/", MaxPayloadInMB=101)


def test_given_an_invocation_slower_than_the_timeout_then_the_transform_fails_naming_it(trained, monkeypatch):  # noqa: F811
    from forecasting import artifact

    _, sm, s3, frame, described = trained
    sm.create_model(
        ModelName="m-slow", Containers=described["BestCandidate"]["InferenceContainers"], ExecutionRoleArn=ROLE
    )
    put_csv(s3, _context(frame), "slow/part-00000.csv")
    model_class = next(c for c in vars(artifact).values() if isinstance(c, type) and hasattr(c, "predict_file"))
    real = model_class.predict_file

    def slow_predict(self, in_path, out_path):  # a model that takes longer than the invocation timeout
        time.sleep(1.3)
        return real(self, in_path, out_path)

    monkeypatch.setattr(model_class, "predict_file", slow_predict)
    job = _transform(sm, "tx-slow", "m-slow", "s3://b/slow/", ModelClientConfig={"InvocationsTimeoutInSeconds": 1})
    assert job["TransformJobStatus"] == "Failed"
    assert (
        "over the invocation timeout of 1 s (ModelClientConfig.InvocationsTimeoutInSeconds=1)" in job["FailureReason"]
    )
    fast = _transform(sm, "tx-slow-ok", "m-slow", "s3://b/slow/", ModelClientConfig={"InvocationsTimeoutInSeconds": 60})
    assert fast["TransformJobStatus"] == "Completed", fast.get("FailureReason")


# --- processing steps: StoppingCondition.MaxRuntimeInSeconds -----------------------------------
def test_given_a_step_past_its_max_runtime_then_it_is_stopped_and_fails_naming_the_limit(settings):
    step = processing("Sleep", "sleep.py")
    step["Arguments"]["StoppingCondition"] = {"MaxRuntimeInSeconds": 2}
    started = time.monotonic()
    code, _, record = run(definition([step], []), settings)

    assert code == 1 and time.monotonic() - started < 30  # sleep.py alone takes 60 s
    assert statuses(record) == [("Sleep", "Failed")]
    assert "StoppingCondition.MaxRuntimeInSeconds=2 and was stopped" in record["steps"][0]["failure_reason"]


# --- Lambda steps: 10 minutes ------------------------------------------------------------------
def _lambda_step(settings):
    return {
        "Name": "Deploy",
        "Type": "Lambda",
        "FunctionArn": f"arn:aws:lambda:us-east-1:000000000000:function:{settings.deploy_function_name}",
        "Arguments": {"model_package_arn": "arn:aws:sagemaker:us-east-1:000000000000:model-package/g/1"},
        "OutputParameters": [{"OutputName": "left", "OutputType": "String"}],
    }


def test_given_a_lambda_step_past_its_limit_then_it_fails_naming_the_limit(settings, monkeypatch):
    import deploy.handler

    monkeypatch.setattr(limits, "LAMBDA_STEP_TIMEOUT_SECONDS", 1)
    monkeypatch.setattr(deploy.handler, "lambda_handler", lambda event, context: time.sleep(2.5) or {"left": "0"})
    code, _, record = run(definition([_lambda_step(settings)], []), settings)

    assert code == 1
    assert "did not return within 1 s, the pipeline Lambda step's limit (1 s)" in record["steps"][0]["failure_reason"]


def test_a_lambda_handler_is_told_the_time_left_within_the_10_minutes(settings, monkeypatch):
    import deploy.handler

    monkeypatch.setattr(
        deploy.handler, "lambda_handler", lambda event, context: {"left": str(context.get_remaining_time_in_millis())}
    )
    code, _, record = run(definition([_lambda_step(settings)], []), settings)

    assert code == 0, record["steps"][0]["failure_reason"]
    assert 590_000 < int(record["steps"][0]["outputs"]["left"]) <= 600_000
