"""ChampionForecast step on a moto server: every request validated against botocore's model."""

from __future__ import annotations

import json

import boto3
import pytest

from processing import champion
from processing.kernel import contracts
from tests.deploy.aws_support import CONTAINERS, ROLE_ARN, ensure_group

BUCKET = "forecast-test-bucket"
OUTPUT = f"s3://{BUCKET}/p/executions/exec-9/ChampionForecast/transform"


@pytest.fixture
def aws(moto_endpoint):
    s3, sm = boto3.client("s3", region_name="us-east-1"), boto3.client("sagemaker", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    return s3, sm


def _args(tmp_path, **changes):
    values = dict(
        model_package_group="demand",
        backtest_uri=f"s3://{BUCKET}/p/backtest",
        output_uri=OUTPUT,
        execution_id="exec-9",
        role_arn=ROLE_ARN,
        instance_type="ml.m5.xlarge",
        horizon=14,
        quantiles="p10,p50,p90",
        frequency="D",
        result_dir=tmp_path / "out",
    )
    values.update(changes)
    return champion.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in values.items()])


def _approved(sm, horizon="14"):
    ensure_group(sm, "demand")
    return sm.create_model_package(
        ModelPackageGroupName="demand",
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": CONTAINERS,
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={
            "metric_wape": "0.2",
            "forecast_horizon": horizon,
            "forecast_quantiles": "p10 p50 p90",
            "forecast_frequency": "D",
        },
    )["ModelPackageArn"]


def test_given_no_group_then_there_is_no_champion_and_nothing_is_created(aws, tmp_path):
    s3, sm = aws
    document = champion.forecast_with_champion(sm, s3, _args(tmp_path), log=lambda _: None)
    assert document["status"] == "none" and "has no Approved version" in document["reason"]
    assert sm.list_models()["Models"] == []


def test_given_an_approved_champion_then_it_forecasts_the_backtest_and_the_forecasts_are_copied(aws, tmp_path):
    s3, sm = aws
    arn = _approved(sm)
    # what the transform job writes on SageMaker (moto records the job but runs no container)
    s3.put_object(
        Bucket=BUCKET,
        Key="p/executions/exec-9/ChampionForecast/transform/part-00000.csv.out",
        Body=b"item_id,timestamp,p10,p50,p90,mean\nA,2024-01-01,1,2,3,2\n",
    )
    document = champion.forecast_with_champion(sm, s3, _args(tmp_path), log=lambda _: None, poll_seconds=0)

    assert document["status"] == "available", document
    assert document["model_package_arn"] == arn and document["registered_metrics"] == {"wape": 0.2}
    [model] = sm.list_models()["Models"]
    assert model["ModelName"] == "fc-champion-exec-9"
    job = sm.describe_transform_job(TransformJobName="fc-champion-exec-9")
    assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/p/backtest"
    assert job["TransformOutput"]["S3OutputPath"] == OUTPUT
    copied = tmp_path / "out" / contracts.CHAMPION_FORECASTS_DIR / "part-00000.csv.out"
    assert copied.read_text().startswith("item_id,timestamp,p10")


def test_given_a_champion_of_another_horizon_then_it_is_unavailable_and_says_why(aws, tmp_path):
    s3, sm = aws
    _approved(sm, horizon="28")
    document = champion.forecast_with_champion(sm, s3, _args(tmp_path), log=lambda _: None)
    assert document["status"] == "unavailable"
    assert "the champion was trained for horizon 28 (this run: 14)" in document["reason"]
    assert sm.list_models()["Models"] == []


def test_given_the_script_then_champion_json_is_always_written(aws, tmp_path, monkeypatch):
    s3, sm = aws
    monkeypatch.setenv("FORECAST_TARGET", "sagemaker")
    monkeypatch.setenv("FORECAST_REGION", "us-east-1")
    monkeypatch.setenv("FORECAST_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("FORECAST_BUCKET", BUCKET)
    args = _args(tmp_path)
    argv = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()]
    made = []
    real_client = boto3.client
    monkeypatch.setattr(boto3, "client", lambda service, **kw: made.append(service) or real_client(service, **kw))
    assert champion.main(argv) == 0
    assert json.loads((tmp_path / "out" / contracts.CHAMPION_FILE).read_text())["status"] == "none"
    assert made == ["sagemaker"]  # no champion: the S3 client is never made


def test_given_a_lazy_client_then_it_is_made_once_on_first_use():
    made = []
    client = champion._OnFirstUse(lambda: made.append(1) or {"k": 1})
    assert made == []
    assert client.get("k") == 1 and client.get("x") is None and made == [1]


def test_the_transform_request_is_the_backtest_transform_and_valid():
    request = champion.transform_request("n", "m", "s3://b/in", "s3://b/out", "ml.m5.xlarge", {"project": "x"})
    assert request["TransformInput"]["SplitType"] == "None"
    assert request["TransformOutput"]["AssembleWith"] == "None"
    assert champion.job_name_for("a" * 80) == "fc-champion-" + "a" * 51


def test_the_champion_transform_sets_what_the_backtest_forecast_step_sets():
    """Same payload streaming and invocation timeout as BacktestForecast, so the champion is not
    the one to fail on a large whole-series file."""
    from tests.pipelines.definition_support import step, training_definition

    backtest = step(training_definition(), "BacktestForecast")["Arguments"]
    request = champion.transform_request("n", "m", "s3://b/in", "s3://b/out", "ml.m5.xlarge")
    for key in ("MaxPayloadInMB", "ModelClientConfig"):
        assert request[key] == backtest[key], key
    for key in ("ContentType", "SplitType"):
        assert request["TransformInput"][key] == backtest["TransformInput"][key], key
    assert request["TransformOutput"]["AssembleWith"] == backtest["TransformOutput"]["AssembleWith"]
