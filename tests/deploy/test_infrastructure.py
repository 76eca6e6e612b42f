"""The deploy Lambda, its role and the approval rule, against moto (created, never invoked)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import pytest

from deploy import clients, infrastructure
from tests.deploy.aws_support import aws_requests, sagemaker_target  # noqa: F401 - fixtures


def no_sleep(_: float) -> None:
    return None


def test_given_nothing_when_ensured_then_function_rule_target_and_permission_exist(sagemaker_target, aws_requests):
    result = infrastructure.ensure_deploy_function(sagemaker_target, log=lambda _: None, sleep=no_sleep)

    lam = clients.client("lambda", sagemaker_target)
    function = lam.get_function(FunctionName="demand-forecast-deploy")["Configuration"]
    assert function["Runtime"] == "python3.12" and function["Handler"] == "deploy.handler.lambda_handler"
    assert function["Environment"]["Variables"]["FORECAST_TARGET"] == "sagemaker"
    assert function["Environment"]["Variables"]["FORECAST_ROLE_ARN"] == sagemaker_target.role_arn
    assert function["Role"] == result["role_arn"]
    events = clients.client("events", sagemaker_target)
    rule = events.describe_rule(Name="demand-forecast-deploy-on-approval")
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": ["demand-forecasting"], "ModelApprovalStatus": ["Approved"]},
    }
    targets = events.list_targets_by_rule(Rule="demand-forecast-deploy-on-approval")["Targets"]
    assert [t["Arn"] for t in targets] == [result["function_arn"]]
    policy = json.loads(lam.get_policy(FunctionName="demand-forecast-deploy")["Policy"])
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert result["rule_arn"] in json.dumps(statement)
    role_policy = clients.client("iam", sagemaker_target).get_role_policy(
        RoleName="demand-forecast-deploy-role", PolicyName="deploy-endpoint"
    )["PolicyDocument"]
    assert "sagemaker:UpdateEndpoint" in json.dumps(role_policy)
    assert {"CreateFunction", "PutRule", "PutTargets", "AddPermission", "CreateRole"} <= set(aws_requests.operations())


def test_given_everything_exists_when_ensured_again_then_nothing_is_recreated_or_reuploaded(
    sagemaker_target, aws_requests
):
    infrastructure.ensure_deploy_function(sagemaker_target, log=lambda _: None, sleep=no_sleep)
    before = len(aws_requests.calls)

    infrastructure.ensure_deploy_function(sagemaker_target, log=lambda _: None, sleep=no_sleep)

    again = {op for _, op, _ in aws_requests.calls[before:]}
    assert not again & {
        "CreateFunction",
        "UpdateFunctionCode",
        "UpdateFunctionConfiguration",
        "AddPermission",
        "CreateRole",
    }


def test_given_changed_settings_when_ensured_then_the_configuration_is_updated(sagemaker_target, aws_requests):
    infrastructure.ensure_deploy_function(sagemaker_target, log=lambda _: None, sleep=no_sleep)

    infrastructure.ensure_deploy_function(
        sagemaker_target.replace(endpoint_name="forecast-blue"), log=lambda _: None, sleep=no_sleep
    )

    [update] = aws_requests.params("UpdateFunctionConfiguration")
    assert update["Environment"]["Variables"]["FORECAST_ENDPOINT_NAME"] == "forecast-blue"


def test_the_bundle_is_deterministic_and_imports_the_handler_on_its_own(tmp_path):
    bundle = infrastructure.build_bundle()
    assert bundle == infrastructure.build_bundle()
    assert sorted(zipfile.ZipFile(io.BytesIO(bundle)).namelist()) == sorted(infrastructure.BUNDLE_FILES)
    path = tmp_path / "function.zip"
    path.write_bytes(bundle)

    # only the zip (and the runtime's boto3) on the path, as in Lambda
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import deploy.handler, sys; "
            "assert deploy.handler.__file__.startswith(sys.argv[1]); print(deploy.handler.lambda_handler.__name__)",
            str(path),
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "lambda_handler"


def test_given_the_local_target_then_it_explains_there_is_no_lambda():
    from processing.kernel.settings import resolve

    with pytest.raises(ValueError, match="SageMaker target only"):
        infrastructure.ensure_deploy_function(resolve({"target": "local"}))
