"""The local SageMaker client's registry operations: boto3 request AND response shapes, AWS errors."""

from __future__ import annotations

import datetime

import pytest
from botocore.exceptions import ClientError

from processing.kernel.aws_validation import _check, _service_model
from processing.kernel.settings import resolve
from tests.deploy.aws_support import CONTAINERS, local_sagemaker, register_version

GROUP = "demand-forecasting"


def response_problems(operation: str, response: dict) -> list[str]:
    """Violations of the operation's OUTPUT shape in botocore's model (types, required, patterns)."""
    shape = _service_model("sagemaker").operation_model(operation).output_shape
    problems: list[str] = []
    _check(shape, {k: v for k, v in response.items() if k != "ResponseMetadata"}, operation, problems)
    return problems


@pytest.fixture
def sm():
    client = local_sagemaker(resolve({"target": "local"}))
    client.create_model_package_group(ModelPackageGroupName=GROUP, ModelPackageGroupDescription="forecasts")
    return client


def test_given_a_registered_version_then_describe_answers_boto3s_shape_with_every_container(sm):
    arn = register_version(sm, GROUP, execution="exec-9")

    package = sm.describe_model_package(ModelPackageName=arn)

    assert response_problems("DescribeModelPackage", package) == []
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:model-package/demand-forecasting/1"
    assert package["ModelPackageVersion"] == 1 and package["ModelPackageGroupName"] == GROUP
    assert package["InferenceSpecification"]["Containers"] == CONTAINERS
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].endswith("exec-9/evaluation.json")
    assert package["MetadataProperties"]["GeneratedBy"].endswith("/execution/exec-9")
    assert isinstance(package["CreationTime"], datetime.datetime)
    assert sm.describe_model_package(ModelPackageName=f"{GROUP}/1")["ModelPackageArn"] == arn


def test_group_operations_answer_boto3_shapes(sm):
    described = sm.describe_model_package_group(ModelPackageGroupName=GROUP)
    listed = sm.list_model_package_groups(NameContains="forecast")

    assert response_problems("DescribeModelPackageGroup", described) == []
    assert response_problems("ListModelPackageGroups", listed) == []
    assert described["ModelPackageGroupDescription"] == "forecasts"
    assert [g["ModelPackageGroupName"] for g in listed["ModelPackageGroupSummaryList"]] == [GROUP]
    arn = described["ModelPackageGroupArn"]
    assert sm.describe_model_package_group(ModelPackageGroupName=arn)["ModelPackageGroupName"] == GROUP


def test_given_twelve_versions_when_listing_by_pages_then_every_version_comes_once_in_order(sm):
    for _ in range(12):
        register_version(sm, GROUP)

    seen, params = (
        [],
        {"ModelPackageGroupName": GROUP, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 5},
    )
    while True:
        page = sm.list_model_packages(**params)
        assert response_problems("ListModelPackages", page) == []
        seen += [s["ModelPackageVersion"] for s in page["ModelPackageSummaryList"]]
        if "NextToken" not in page:
            break
        params["NextToken"] = page["NextToken"]

    assert seen == list(range(12, 0, -1))


def test_given_mixed_statuses_then_listing_filters_by_approval_status(sm):
    register_version(sm, GROUP, status="Approved")
    register_version(sm, GROUP, status="Rejected")
    register_version(sm, GROUP, status="Approved")

    approved = sm.list_model_packages(ModelPackageGroupName=GROUP, ModelApprovalStatus="Approved")

    assert [s["ModelPackageVersion"] for s in approved["ModelPackageSummaryList"]] == [1, 3]


def test_given_an_update_then_status_reason_and_metadata_change_and_modified_time_moves(sm):
    arn = register_version(sm, GROUP)

    response = sm.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus="Approved",
        ApprovalDescription="looks good",
        CustomerMetadataProperties={"owner": "ops"},
        CustomerMetadataPropertiesToRemove=["quality_gate_passed"],
    )

    assert response_problems("UpdateModelPackage", response) == []
    package = sm.describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "Approved" and package["ApprovalDescription"] == "looks good"
    assert package["CustomerMetadataProperties"]["owner"] == "ops"
    assert "quality_gate_passed" not in package["CustomerMetadataProperties"]
    assert package["LastModifiedTime"] >= package["CreationTime"]
    assert [h["status"] for h in sm.model_package_history(arn)] == ["PendingManualApproval", "Approved"]


def test_given_an_unknown_package_then_describe_fails_with_a_validation_exception(sm):
    with pytest.raises(ClientError, match="ModelPackage demand-forecasting/4 does not exist") as raised:
        sm.describe_model_package(ModelPackageName="demand-forecasting/4")
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_given_a_request_breaking_the_service_model_then_it_is_rejected_before_anything_is_stored(sm):
    with pytest.raises(ClientError, match="ModelApprovalStatus: 'approved' is not one of"):
        sm.create_model_package(ModelPackageGroupName=GROUP, ModelApprovalStatus="approved")
    with pytest.raises(ClientError, match="missing required member ModelPackageGroupName"):
        sm.describe_model_package_group()
    assert sm.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"] == []


def test_given_an_unversioned_package_request_then_the_error_explains_the_local_limit(sm):
    with pytest.raises(ClientError, match="versioned model packages only"):
        sm.create_model_package(ModelPackageName="standalone", InferenceSpecification={"Containers": CONTAINERS})


def test_given_a_group_with_versions_then_delete_conflicts_until_they_are_gone(sm):
    arn = register_version(sm, GROUP)

    with pytest.raises(ClientError, match="still has 1 model package version") as raised:
        sm.delete_model_package_group(ModelPackageGroupName=GROUP)
    assert raised.value.response["Error"]["Code"] == "ConflictException"
    sm.delete_model_package(ModelPackageName=arn)
    sm.delete_model_package_group(ModelPackageGroupName=GROUP)
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_given_a_second_client_process_view_then_it_sees_the_same_registry(sm):
    arn = register_version(sm, GROUP)
    other = local_sagemaker(resolve({"target": "local"}))

    assert other.describe_model_package(ModelPackageName=arn)["ModelPackageVersion"] == 1
