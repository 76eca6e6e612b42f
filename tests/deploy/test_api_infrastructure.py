"""The forecast API on AWS (Lambda, role, throttle, IAM-authenticated URL) against moto."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import boto3
import pytest
from botocore.stub import Stubber

from deploy import api_infrastructure, clients
from processing.kernel.settings import SettingsError, resolve
from tests.deploy.aws_support import aws_requests, sagemaker_target  # noqa: F401 - fixtures

EMPTY_ZIP = b"PK\x05\x06" + b"\0" * 18


def quiet(_: str) -> None:
    return None


def no_sleep(_: float) -> None:
    return None


@pytest.fixture
def pandas_layer(sagemaker_target) -> str:
    """moto resolves layers in its own account: publish one named like AWS's managed layer."""
    return clients.client("lambda", sagemaker_target).publish_layer_version(
        LayerName="AWSSDKPandas-Python312", Content={"ZipFile": EMPTY_ZIP}, CompatibleRuntimes=["python3.12"]
    )["LayerVersionArn"]


def ensure(settings, layer, **kwargs):
    return api_infrastructure.ensure_forecast_api(settings, layer_arn=layer, log=quiet, sleep=no_sleep, **kwargs)


def test_given_nothing_when_ensured_then_role_function_throttle_and_iam_url_exist(
    sagemaker_target, aws_requests, pandas_layer
):
    result = ensure(sagemaker_target, pandas_layer)

    lam = clients.client("lambda", sagemaker_target)
    function = lam.get_function(FunctionName="demand-forecast-api")["Configuration"]
    assert function["Handler"] == "deploy.api.handler" and function["Runtime"] == "python3.12"
    assert [layer["Arn"] for layer in function["Layers"]] == [pandas_layer]
    assert function["Role"] == result["role_arn"]
    assert function["Environment"]["Variables"] == {
        "FORECAST_TARGET": "sagemaker",
        "FORECAST_BUCKET": "forecast-test-bucket",
        "FORECAST_PREFIX": "demand-forecasting",
        "FORECAST_ENDPOINT_NAME": "demand-forecast",
    }
    assert lam.get_function_concurrency(FunctionName="demand-forecast-api")["ReservedConcurrentExecutions"] == 10
    url = lam.get_function_url_config(FunctionName="demand-forecast-api")
    assert url["AuthType"] == "AWS_IAM" and url["FunctionUrl"] == result["url"]
    policy = clients.client("iam", sagemaker_target).get_role_policy(
        RoleName="demand-forecast-api-role", PolicyName="forecast-api"
    )["PolicyDocument"]
    assert policy == api_infrastructure.api_role_policy(sagemaker_target)
    assert {
        "CreateRole",
        "PutRolePolicy",
        "CreateFunction",
        "PutFunctionConcurrency",
        "CreateFunctionUrlConfig",
    } <= set(aws_requests.operations())


def test_given_everything_exists_when_ensured_again_then_nothing_is_created_or_updated(
    sagemaker_target, aws_requests, pandas_layer
):
    ensure(sagemaker_target, pandas_layer)
    before = len(aws_requests.calls)

    ensure(sagemaker_target, pandas_layer)

    again = {op for _, op, _ in aws_requests.calls[before:]}
    assert not again & {
        "CreateFunction",
        "UpdateFunctionCode",
        "UpdateFunctionConfiguration",
        "CreateRole",
        "PutFunctionConcurrency",
        "CreateFunctionUrlConfig",
        "UpdateFunctionUrlConfig",
    }


def test_given_changed_settings_when_ensured_then_configuration_and_throttle_are_updated(
    sagemaker_target, aws_requests, pandas_layer
):
    ensure(sagemaker_target, pandas_layer)

    ensure(
        sagemaker_target.replace(serving_data_uri="s3://forecast-test-bucket/demand-forecasting/x"),
        pandas_layer,
        concurrency=3,
    )

    [update] = aws_requests.params("UpdateFunctionConfiguration")
    assert (
        update["Environment"]["Variables"]["FORECAST_SERVING_DATA"] == "s3://forecast-test-bucket/demand-forecasting/x"
    )
    assert aws_requests.params("PutFunctionConcurrency")[-1]["ReservedConcurrentExecutions"] == 3


def test_given_a_public_url_when_ensured_then_it_is_switched_to_iam_auth(sagemaker_target, aws_requests, pandas_layer):
    ensure(sagemaker_target, pandas_layer)
    lam = clients.client("lambda", sagemaker_target)
    lam.update_function_url_config(FunctionName="demand-forecast-api", AuthType="NONE")

    ensure(sagemaker_target, pandas_layer)

    assert lam.get_function_url_config(FunctionName="demand-forecast-api")["AuthType"] == "AWS_IAM"


def test_given_the_api_when_removed_then_url_function_and_role_are_gone_and_a_second_removal_does_nothing(
    sagemaker_target, aws_requests, pandas_layer
):
    ensure(sagemaker_target, pandas_layer)

    assert api_infrastructure.remove_forecast_api(sagemaker_target, log=quiet) == [
        "function URL",
        "Lambda function",
        "IAM role policy",
        "IAM role",
    ]

    lam = clients.client("lambda", sagemaker_target)
    assert "demand-forecast-api" not in [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    assert api_infrastructure.remove_forecast_api(sagemaker_target, log=quiet) == []


def test_a_bad_concurrency_is_refused_naming_the_flag(sagemaker_target, aws_requests, pandas_layer):
    with pytest.raises(SettingsError, match="--concurrency 0"):
        ensure(sagemaker_target, pandas_layer, concurrency=0)


def test_the_layer_arn_comes_from_aws_public_ssm_parameter_for_the_region(sagemaker_target, monkeypatch):
    """moto cannot hold /aws/service/... parameters (reserved names): botocore's Stubber answers."""
    ssm = boto3.session.Session(region_name="eu-west-1").client("ssm")
    arn = "arn:aws:lambda:eu-west-1:336392948345:layer:AWSSDKPandas-Python312:16"
    name = "/aws/service/aws-sdk-pandas/3.11.0/py3.12/x86_64/layer-arn"
    monkeypatch.delenv("FORECAST_PANDAS_LAYER_ARN", raising=False)
    monkeypatch.setattr(clients, "client", lambda service, settings: ssm)
    with Stubber(ssm) as stub:
        stub.add_response(
            "get_parameter", {"Parameter": {"Name": name, "Value": arn, "Type": "String"}}, {"Name": name}
        )
        stub.add_client_error("get_parameter", "ParameterNotFound", expected_params={"Name": name})
        assert api_infrastructure.pandas_layer_arn(sagemaker_target) == arn
        with pytest.raises(SettingsError, match="FORECAST_PANDAS_LAYER_ARN"):
            api_infrastructure.pandas_layer_arn(sagemaker_target)


def test_a_given_layer_arn_is_used_as_is_and_a_malformed_one_refused(sagemaker_target, monkeypatch):
    monkeypatch.setenv("FORECAST_PANDAS_LAYER_ARN", "arn:aws:lambda:eu-west-1:1:layer:mine:3")
    assert api_infrastructure.pandas_layer_arn(sagemaker_target) == "arn:aws:lambda:eu-west-1:1:layer:mine:3"
    with pytest.raises(SettingsError, match="not a Lambda layer version ARN"):
        api_infrastructure.pandas_layer_arn(sagemaker_target, "pandas")


@pytest.mark.integration
def test_the_bundle_is_deterministic_and_serves_a_request_from_the_zip_alone(tmp_path):
    bundle = api_infrastructure.build_bundle()
    assert bundle == api_infrastructure.build_bundle()
    names = zipfile.ZipFile(io.BytesIO(bundle)).namelist()
    assert {
        "deploy/__init__.py",
        "deploy/api.py",
        "processing/kernel/__init__.py",
        "processing/kernel/settings.py",
        "deploy/clients.py",
        "processing/kernel/contracts.py",
    } <= set(names)
    assert not [n for n in names if n.startswith("pipelines/local/")] and "deploy/endpoint.py" not in names
    assert "deploy/endpoint_codec.py" in names  # the API reads the endpoint's answer with its codec
    path = tmp_path / "function.zip"
    path.write_bytes(bundle)

    # the zip first on the path, pandas from the host's site-packages (the layer's part), the checkout nowhere
    import pandas

    site = str(__import__("pathlib").Path(pandas.__file__).parent.parent)
    code = (
        "import sys, json, deploy.api as api; assert api.__file__.startswith(sys.argv[1]); "
        "print(json.dumps(api.handler({'body': 'not json'})))"
    )
    completed = subprocess.run(
        [sys.executable, "-S", "-c", code, str(path)],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{path}:{site}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["statusCode"] == 400


def test_given_the_local_target_then_it_points_to_the_local_server():
    with pytest.raises(SettingsError, match="deploy.api serve"):
        api_infrastructure.ensure_forecast_api(resolve({"target": "local"}))
