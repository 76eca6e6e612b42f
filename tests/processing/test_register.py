"""RegisterModel against a moto server on 127.0.0.1 and botocore's service model."""

from __future__ import annotations

import json

import boto3
import pytest

from processing import register
from processing.kernel import contracts
from processing.kernel.aws_validation import request_problems

GROUP = "demand-forecasting"
EVALUATION_URI = "s3://bucket/prefix/executions/abc/Evaluate/evaluation/evaluation.json"
CONTAINERS = [
    {
        "Image": "111.dkr.ecr.us-east-1.amazonaws.com/automl-dpp:2.5",
        "ModelDataUrl": "s3://b/dpp/model.tar.gz",
        "Environment": {"AUTOML_TRANSFORM_MODE": "feature-transform"},
    },
    {
        "Image": "111.dkr.ecr.us-east-1.amazonaws.com/automl-forecast:1.0",
        "ModelDataUrl": "s3://b/ens/model.tar.gz",
        "Environment": {"AUTOML_INFERENCE_QUANTILES": "p10,p50,p90"},
    },
]
AUTOML_RESULT = {
    "status": "Completed",
    "job_name": "fc-abc",
    "job_arn": "arn:aws:sagemaker:us-east-1:123456789012:automl-job/fc-abc",
    "best_candidate_name": "ensemble-1",
    "model_name": "fc-abc-model",
    "inference_containers": CONTAINERS,
    "objective_metric": {"name": "AverageWeightedQuantileLoss", "value": 0.0512},
    "reports": {"explainability": "", "model_insights": "", "backtest_results": ""},
}
EVALUATION = {
    # evaluation.json's format: every metric as {"value": ...}
    "forecast_metrics": {
        name: {"value": value}
        for name, value in {
            "wape": 0.2134,
            "mape": 0.25,
            "mase": 0.81,
            "rmse": 4.5,
            "mae": 3.2,
            "wql": 0.052,
            "coverage": 0.79,
        }.items()
    },
    "skill": {"wape": {"value": 0.31}},
    "quality_gate": {"metric": "WAPE", "value": 0.2134, "threshold": 0.3, "passed": True},
}

AUTOML_REQUEST = {
    "AutoMLProblemTypeConfig": {
        "TimeSeriesForecastingJobConfig": {
            "ForecastFrequency": "D",
            "ForecastHorizon": 14,
            "ForecastQuantiles": ["p10", "p50", "p90"],
            "TimeSeriesConfig": {
                "TargetAttributeName": "target_value",
                "TimestampAttributeName": "timestamp",
                "ItemIdentifierAttributeName": "item_id",
            },
        }
    }
}


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "automl").mkdir()
    (tmp_path / "automl" / contracts.AUTOML_RESULT_FILE).write_text(json.dumps(AUTOML_RESULT))
    (tmp_path / "automl" / "automl_request.json").write_text(json.dumps(AUTOML_REQUEST))
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / contracts.EVALUATION_FILE).write_text(json.dumps(EVALUATION))
    return tmp_path


def _cli(tmp_path, *extra, execution_id="abc"):
    return [
        f"--automl-result-dir={tmp_path / 'automl'}",
        f"--evaluation-dir={tmp_path / 'evaluation'}",
        f"--evaluation-uri={EVALUATION_URI}",
        f"--model-package-group={GROUP}",
        f"--execution-id={execution_id}",
        f"--result-dir={tmp_path / 'out'}",
        *extra,
    ]


def _sagemaker():
    return boto3.session.Session(region_name="us-east-1").client("sagemaker")


def _request(**overrides):
    values = dict(
        automl_result=AUTOML_RESULT,
        evaluation=EVALUATION,
        evaluation_uri=EVALUATION_URI,
        group=GROUP,
        approval_status="PendingManualApproval",
        execution_id="abc",
        transform_instance_types=["ml.m5.xlarge"],
        realtime_instance_types=["ml.m5.large"],
        tags={"project": "demand-forecasting"},
    )
    values.update(overrides)
    return register.package_request(**values)


def test_given_the_automl_result_when_building_the_package_request_then_it_validates_with_every_container():
    request = _request()

    assert request_problems("sagemaker", "CreateModelPackage", request) == []
    spec = request["InferenceSpecification"]
    assert spec["Containers"] == CONTAINERS
    assert spec["SupportedContentTypes"] == ["text/csv"] and spec["SupportedResponseMIMETypes"] == ["text/csv"]
    assert request["ModelMetrics"]["ModelQuality"]["Statistics"] == {
        "ContentType": "application/json",
        "S3Uri": EVALUATION_URI,
    }
    metadata = request["CustomerMetadataProperties"]
    assert metadata["pipeline_execution_id"] == "abc"
    assert metadata["metric_wape"] == "0.2134" and metadata["quality_gate_passed"] == "true"
    assert metadata["metric_coverage"] == "0.79" and metadata["skill_wape"] == "0.31"
    assert all(isinstance(v, str) for v in metadata.values())


def test_given_the_automl_request_when_building_then_the_forecast_configuration_is_in_the_metadata():
    metadata = _request(automl_request=AUTOML_REQUEST)["CustomerMetadataProperties"]

    assert {
        k: metadata[k]
        for k in ("forecast_frequency", "forecast_horizon", "forecast_quantiles", "item_id_column", "target_column")
    } == {
        "forecast_frequency": "D",
        "forecast_horizon": "14",
        "forecast_quantiles": "p10 p50 p90",
        "item_id_column": "item_id",
        "target_column": "target_value",
    }


def test_given_a_group_name_when_building_the_group_request_then_it_validates():
    assert (
        request_problems(
            "sagemaker", "CreateModelPackageGroup", register.group_request(GROUP, {"project": "demand-forecasting"})
        )
        == []
    )


def test_given_no_group_when_registering_on_moto_then_group_and_package_are_created(inputs, moto_endpoint):
    sm = _sagemaker()

    code = register.main(_cli(inputs), sm=sm)

    assert code == 0
    registration = json.loads((inputs / "out" / contracts.REGISTRATION_FILE).read_text())
    arn = registration[contracts.MODEL_PACKAGE_ARN_PATH]
    package = sm.describe_model_package(ModelPackageName=arn)
    assert package["ModelPackageGroupName"] == GROUP
    assert package["ModelApprovalStatus"] == "PendingManualApproval" == registration["approval_status"]
    assert package["InferenceSpecification"]["Containers"] == CONTAINERS
    assert package["CustomerMetadataProperties"]["metric_wql"] == "0.052"
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == EVALUATION_URI


def test_given_the_step_is_retried_when_registering_again_then_the_same_package_is_reused(inputs, moto_endpoint):
    sm = _sagemaker()

    assert register.main(_cli(inputs), sm=sm) == 0
    first = json.loads((inputs / "out" / contracts.REGISTRATION_FILE).read_text())
    assert register.main(_cli(inputs), sm=sm) == 0
    second = json.loads((inputs / "out" / contracts.REGISTRATION_FILE).read_text())
    assert register.main(_cli(inputs, execution_id="def"), sm=sm) == 0
    third = json.loads((inputs / "out" / contracts.REGISTRATION_FILE).read_text())

    assert second["model_package_arn"] == first["model_package_arn"] and second["created"] is False
    assert third["model_package_arn"] != first["model_package_arn"]
    packages = sm.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    assert len(packages) == 2


def test_given_an_approved_status_when_registering_then_the_package_is_approved(inputs, moto_endpoint):
    sm = _sagemaker()

    register.main(_cli(inputs, "--approval-status=Approved"), sm=sm)

    arn = json.loads((inputs / "out" / contracts.REGISTRATION_FILE).read_text())["model_package_arn"]
    assert sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Approved"


def test_given_an_unknown_approval_status_when_building_then_the_error_names_the_parameter():
    with pytest.raises(register.RegistrationError, match="ModelApprovalStatus"):
        _request(approval_status="Pending")


def test_given_a_result_without_containers_when_building_then_nothing_is_registered():
    with pytest.raises(register.RegistrationError, match="no inference_containers"):
        _request(automl_result=dict(AUTOML_RESULT, inference_containers=[]))


def test_given_no_evaluation_file_when_registering_then_the_error_names_the_flag(inputs, capsys):
    (inputs / "evaluation" / contracts.EVALUATION_FILE).unlink()

    assert register.main(_cli(inputs), sm=_sagemaker()) == 1
    assert "--evaluation-dir" in capsys.readouterr().err


def test_given_the_local_api_when_registering_twice_then_one_version_carries_every_container(inputs, local_api):
    """The CLI's plain boto3 reaches the local registry through the runtime's loopback API."""
    assert register.main(_cli(inputs)) == 0
    assert register.main(_cli(inputs)) == 0

    sm = local_api.client
    packages = sm.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    assert len(packages) == 1
    package = sm.describe_model_package(ModelPackageName=packages[0]["ModelPackageArn"])
    assert package["InferenceSpecification"]["Containers"] == CONTAINERS


def test_given_the_prepare_profile_when_registering_on_moto_then_the_training_schema_is_in_the_metadata(
    inputs, moto_endpoint
):
    columns = ["item_id", "timestamp", "target_value", "region", "price", "promotion", "store size"]
    (inputs / "profile").mkdir()
    (inputs / "profile" / contracts.PROFILE_FILE).write_text(json.dumps({"train_columns": columns}))
    sm = _sagemaker()

    assert register.main(_cli(inputs, f"--profile-dir={inputs / 'profile'}"), sm=sm) == 0

    arn = json.loads((inputs / "out" / contracts.REGISTRATION_FILE).read_text())[contracts.MODEL_PACKAGE_ARN_PATH]
    metadata = sm.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    assert contracts.decode_training_columns(metadata) == columns


def test_given_many_long_column_names_then_the_schema_survives_the_metadata_limits():
    columns = ["item_id", "timestamp", "target_value"] + [f"related series {i:02d}, EUR=" for i in range(25)]
    request = _request(columns=columns)
    assert request_problems("sagemaker", "CreateModelPackage", request) == []
    assert contracts.decode_training_columns(request["CustomerMetadataProperties"]) == columns


def test_given_the_holdouts_horizon_spread_factor_then_it_is_in_the_metadata_and_absent_without_it():
    """The batch report's inventory reads it (processing.inventory); an old evaluation has none."""
    with_factor = register.customer_metadata(
        {**EVALUATION, "horizon_totals": {"spread_factor": 3.94117, "basis": "..."}}, {}, "abc"
    )
    assert with_factor[contracts.HORIZON_SPREAD_KEY] == "3.94117"
    assert contracts.HORIZON_SPREAD_KEY not in register.customer_metadata(EVALUATION, {}, "abc")
    unmeasured = {**EVALUATION, "horizon_totals": {"spread_factor": None}}
    assert contracts.HORIZON_SPREAD_KEY not in register.customer_metadata(unmeasured, {}, "abc")
