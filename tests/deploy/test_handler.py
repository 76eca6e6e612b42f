"""The deploy handler against a moto server on loopback; every request validated against botocore."""

from __future__ import annotations

import json

import pytest

from deploy import clients, handler
from deploy.handler import PACKAGE_TAG, DeployError, lambda_handler, resource_name
from tests.deploy.aws_support import aws_requests, ensure_group, register_version, sagemaker_target  # noqa: F401 - fixtures

GROUP = "demand-forecasting"


def eventbridge(arn: str, status: str = "Approved") -> dict:
    return {
        "version": "0",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "detail": {"ModelPackageGroupName": GROUP, "ModelPackageArn": arn, "ModelApprovalStatus": status},
    }


@pytest.fixture
def sm(sagemaker_target, aws_requests):
    client = clients.client("sagemaker", sagemaker_target)
    ensure_group(client, GROUP)
    return client


def endpoint_tags(sm, name: str) -> dict:
    arn = sm.describe_endpoint(EndpointName=name)["EndpointArn"]
    return {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=arn)["Tags"]}


def test_given_an_approved_package_when_the_event_arrives_then_model_config_and_endpoint_are_created(sm, aws_requests):
    arn = register_version(sm, GROUP, status="Approved")

    result = lambda_handler(eventbridge(arn))

    assert result["status"] == "deployed" and result["action"] == "created"
    model = sm.describe_model(ModelName=result["model_name"])
    assert model["Containers"] == [{"ModelPackageName": arn}]
    assert model["ExecutionRoleArn"] == "arn:aws:iam::123456789012:role/forecast-pipeline"
    config = sm.describe_endpoint_config(EndpointConfigName=result["endpoint_config_name"])
    assert config["ProductionVariants"][0]["ModelName"] == result["model_name"]
    endpoint = sm.describe_endpoint(EndpointName="demand-forecast")
    assert endpoint["EndpointConfigName"] == result["endpoint_config_name"]
    assert endpoint_tags(sm, "demand-forecast")[PACKAGE_TAG] == arn
    assert {"CreateModel", "CreateEndpointConfig", "CreateEndpoint"} <= set(aws_requests.operations("sagemaker"))


def test_given_a_pending_package_when_the_handler_runs_then_nothing_is_created(sm, aws_requests):
    arn = register_version(sm, GROUP, status="PendingManualApproval")

    result = lambda_handler({"model_package_arn": arn, "endpoint_name": "demand-forecast"})

    assert result["status"] == "skipped"
    assert "PendingManualApproval" in result["message"]
    assert sm.list_endpoints()["Endpoints"] == []
    assert not {"CreateModel", "CreateEndpoint", "UpdateEndpoint"} & set(aws_requests.operations())


def test_given_a_stale_approved_event_for_a_rejected_package_then_the_registry_status_wins(sm):
    arn = register_version(sm, GROUP, status="Rejected")

    result = lambda_handler(eventbridge(arn, status="Approved"))

    assert result["status"] == "skipped" and result["approval_status"] == "Rejected"


def test_given_a_deployed_package_when_the_event_repeats_then_nothing_changes(sm, aws_requests):
    arn = register_version(sm, GROUP, status="Approved")
    lambda_handler(eventbridge(arn))
    before = len(aws_requests.calls)

    again = lambda_handler(eventbridge(arn))
    pipeline_step = lambda_handler({"model_package_arn": arn, "endpoint_name": "demand-forecast"})

    assert again["status"] == "skipped" and pipeline_step["status"] == "skipped"
    assert "already serves" in again["message"]
    later = [op for _, op, _ in aws_requests.calls[before:]]
    assert not {"CreateModel", "CreateEndpointConfig", "CreateEndpoint", "UpdateEndpoint"} & set(later)


def test_given_a_second_approved_version_then_the_endpoint_is_updated_in_place_and_retagged(sm, aws_requests):
    first = register_version(sm, GROUP, status="Approved", execution="exec-1")
    created = lambda_handler(eventbridge(first))
    second = register_version(sm, GROUP, status="Approved", execution="exec-2")

    updated = lambda_handler(eventbridge(second))

    assert updated["status"] == "deployed" and updated["action"] == "updated"
    assert updated["endpoint_config_name"] != created["endpoint_config_name"]
    update = aws_requests.params("UpdateEndpoint")
    assert update == [{"EndpointName": "demand-forecast", "EndpointConfigName": updated["endpoint_config_name"]}]
    assert sm.describe_endpoint(EndpointName="demand-forecast")["EndpointConfigName"] == updated["endpoint_config_name"]
    assert endpoint_tags(sm, "demand-forecast")[PACKAGE_TAG] == second
    assert len(sm.list_models()["Models"]) == 2


def test_given_a_model_left_by_a_failed_attempt_when_retried_then_it_is_reused(sm, aws_requests):
    arn = register_version(sm, GROUP, status="Approved")
    settings = handler.resolve()
    version = sm.describe_model_package(ModelPackageName=arn)["ModelPackageVersion"]
    name = resource_name("demand-forecast", version, arn, settings.role_arn, handler.DEFAULT_INSTANCE_TYPE, "1")
    sm.create_model(ModelName=name, Containers=[{"ModelPackageName": arn}], ExecutionRoleArn=settings.role_arn)
    before = len(aws_requests.params("CreateModel"))

    result = lambda_handler(eventbridge(arn))

    assert result["status"] == "deployed" and result["model_name"] == name
    assert len(aws_requests.params("CreateModel")) == before


def test_given_an_unknown_package_then_the_error_names_it(sm):
    missing = "arn:aws:sagemaker:us-east-1:123456789012:model-package/demand-forecasting/42"

    with pytest.raises(DeployError, match="model-package/demand-forecasting/42 does not exist"):
        lambda_handler(eventbridge(missing))


def test_given_an_event_without_a_package_arn_then_the_error_says_what_is_expected():
    with pytest.raises(DeployError, match="no model_package_arn"):
        lambda_handler({"endpoint_name": "x"})


@pytest.mark.parametrize("endpoint_name", ["demand-forecast", "e" * 63, "a-very-long-endpoint-name-" * 3])
def test_resource_names_fit_sagemakers_limits_and_pattern(endpoint_name):
    from processing.kernel.aws_validation import request_problems

    name = resource_name(endpoint_name, 123456789, "arn", "role", "ml.m5.xlarge", "1")

    assert len(name) <= 63 and name.endswith("-v123456789-" + name[-8:])
    assert request_problems("sagemaker", "DescribeModel", {"ModelName": name}) == []
    assert request_problems("sagemaker", "DescribeEndpointConfig", {"EndpointConfigName": name}) == []


def test_given_a_concurrent_deployment_creating_the_endpoint_first_then_the_handler_skips(sagemaker_target):
    """The pipeline's Deploy step and the EventBridge rule both fire for a package registered Approved.

    moto lets CreateEndpoint overwrite an existing endpoint (SageMaker refuses), so this runs on a
    botocore Stubber playing SageMaker's answers, with every request's parameters expected exactly.
    """
    import datetime

    import boto3
    from botocore.stub import ANY, Stubber

    from tests.deploy.aws_support import Recorded, instrument

    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/demand-forecasting/3"
    settings = sagemaker_target
    name = resource_name("demand-forecast", 3, arn, settings.role_arn, handler.DEFAULT_INSTANCE_TYPE, "1")
    now = datetime.datetime.now(datetime.timezone.utc)
    sm = instrument(boto3.session.Session(region_name="us-east-1").client("sagemaker"), Recorded())
    missing = {"service_error_code": "ValidationException", "http_status_code": 400}
    with Stubber(sm) as stub:
        stub.add_response(
            "describe_model_package",
            {
                "ModelPackageName": "demand-forecasting",
                "ModelPackageArn": arn,
                "ModelPackageVersion": 3,
                "CreationTime": now,
                "ModelPackageStatus": "Completed",
                "ModelApprovalStatus": "Approved",
                "ModelPackageStatusDetails": {"ValidationStatuses": []},
            },
            {"ModelPackageName": arn},
        )
        stub.add_client_error(
            "describe_endpoint",
            service_message='Could not find endpoint "demand-forecast".',
            expected_params={"EndpointName": "demand-forecast"},
            **missing,
        )
        stub.add_client_error(
            "describe_model",
            service_message=f'Could not find model "{name}".',
            expected_params={"ModelName": name},
            **missing,
        )
        stub.add_response(
            "create_model",
            {"ModelArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{name}"},
            {
                "ModelName": name,
                "Containers": [{"ModelPackageName": arn}],
                "ExecutionRoleArn": settings.role_arn,
                "Tags": ANY,
            },
        )
        stub.add_client_error(
            "describe_endpoint_config",
            service_message="Could not find endpoint configuration",
            expected_params={"EndpointConfigName": name},
            **missing,
        )
        stub.add_response(
            "create_endpoint_config",
            {"EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{name}"},
            {
                "EndpointConfigName": name,
                "Tags": ANY,
                "ProductionVariants": [
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": name,
                        "InitialInstanceCount": 1,
                        "InstanceType": "ml.m5.xlarge",
                    }
                ],
            },
        )
        stub.add_client_error(
            "create_endpoint",
            service_error_code="ValidationException",
            service_message="Cannot create already existing endpoint "
            '"arn:aws:sagemaker:us-east-1:123456789012:endpoint/demand-forecast".',
            expected_params={"EndpointName": "demand-forecast", "EndpointConfigName": name, "Tags": ANY},
        )
        stub.add_response(
            "describe_endpoint",
            {
                "EndpointName": "demand-forecast",
                "EndpointConfigName": name,
                "EndpointStatus": "Creating",
                "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/demand-forecast",
                "CreationTime": now,
                "LastModifiedTime": now,
            },
            {"EndpointName": "demand-forecast"},
        )

        result = handler.deploy(sm, settings, handler.parse_event(eventbridge(arn), settings), log=lambda _: None)

        stub.assert_no_pending_responses()
    assert result["status"] == "skipped" and "concurrent" in result["message"]


def test_given_an_endpoint_still_updating_then_the_handler_waits_before_updating(sagemaker_target):
    """SageMaker refuses UpdateEndpoint while an update runs (moto has no such state): Stubber plays it."""
    import datetime

    import boto3
    from botocore.stub import ANY, Stubber

    from tests.deploy.aws_support import Recorded, instrument

    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/demand-forecasting/5"
    settings = sagemaker_target
    name = resource_name("demand-forecast", 5, arn, settings.role_arn, handler.DEFAULT_INSTANCE_TYPE, "1")
    now = datetime.datetime.now(datetime.timezone.utc)
    endpoint_arn = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/demand-forecast"

    def endpoint(status: str, config: str = "demand-forecast-v4-0123abcd") -> dict:
        return {
            "EndpointName": "demand-forecast",
            "EndpointArn": endpoint_arn,
            "EndpointConfigName": config,
            "EndpointStatus": status,
            "CreationTime": now,
            "LastModifiedTime": now,
        }

    sm = instrument(boto3.session.Session(region_name="us-east-1").client("sagemaker"), Recorded())
    sleeps: list[float] = []
    with Stubber(sm) as stub:
        stub.add_response(
            "describe_model_package",
            {
                "ModelPackageName": "demand-forecasting",
                "ModelPackageArn": arn,
                "ModelPackageVersion": 5,
                "CreationTime": now,
                "ModelPackageStatus": "Completed",
                "ModelApprovalStatus": "Approved",
                "ModelPackageStatusDetails": {"ValidationStatuses": []},
            },
            {"ModelPackageName": arn},
        )
        stub.add_response("describe_endpoint", endpoint("Updating"), {"EndpointName": "demand-forecast"})
        stub.add_response(
            "describe_model",
            {
                "ModelName": name,
                "ModelArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{name}",
                "CreationTime": now,
                "ExecutionRoleArn": settings.role_arn,
            },
            {"ModelName": name},
        )
        stub.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": name,
                "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{name}",
                "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": name}],
                "CreationTime": now,
            },
            {"EndpointConfigName": name},
        )
        stub.add_response("describe_endpoint", endpoint("Updating"), {"EndpointName": "demand-forecast"})
        stub.add_response("describe_endpoint", endpoint("InService"), {"EndpointName": "demand-forecast"})
        stub.add_response(
            "update_endpoint",
            {"EndpointArn": endpoint_arn},
            {"EndpointName": "demand-forecast", "EndpointConfigName": name},
        )
        stub.add_response("add_tags", {"Tags": []}, {"ResourceArn": endpoint_arn, "Tags": ANY})
        stub.add_response("describe_endpoint", endpoint("InService", name), {"EndpointName": "demand-forecast"})

        result = handler.deploy(
            sm,
            settings,
            handler.parse_event({"model_package_arn": arn}, settings),
            log=lambda _: None,
            sleep=sleeps.append,
        )

        stub.assert_no_pending_responses()
    assert result["status"] == "deployed" and result["action"] == "updated"
    assert result["endpoint_status"] == "InService"
    assert sleeps == [15]


def test_given_an_endpoint_that_never_settles_then_the_error_says_to_retry(sagemaker_target):
    import datetime

    import boto3
    from botocore.stub import Stubber

    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/demand-forecasting/5"
    now = datetime.datetime.now(datetime.timezone.utc)
    sm = boto3.session.Session(region_name="us-east-1").client("sagemaker")
    busy = {
        "EndpointName": "demand-forecast",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/demand-forecast",
        "EndpointConfigName": "demand-forecast-v4-0123abcd",
        "EndpointStatus": "Creating",
        "CreationTime": now,
        "LastModifiedTime": now,
    }
    with Stubber(sm) as stub:
        stub.add_response(
            "describe_model_package",
            {
                "ModelPackageName": "demand-forecasting",
                "ModelPackageArn": arn,
                "ModelPackageVersion": 5,
                "CreationTime": now,
                "ModelPackageStatus": "Completed",
                "ModelApprovalStatus": "Approved",
                "ModelPackageStatusDetails": {"ValidationStatuses": []},
            },
        )
        stub.add_response("describe_endpoint", busy)
        stub.add_response(
            "describe_model",
            {"ModelName": "m", "ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m", "CreationTime": now},
        )
        stub.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": "c",
                "EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/c",
                "ProductionVariants": [{"VariantName": "AllTraffic"}],
                "CreationTime": now,
            },
        )
        stub.add_response("describe_endpoint", busy)

        with pytest.raises(DeployError, match="still Creating; retry the deployment when it is InService"):
            handler.deploy(
                sm,
                sagemaker_target,
                handler.parse_event({"model_package_arn": arn}, sagemaker_target),
                log=lambda _: None,
                wait_seconds=0,
                sleep=lambda _: None,
            )


def _stub_first_deployment(stub, arn, name, settings, now):
    """SageMaker's answers up to a successful CreateEndpoint of a new endpoint (Stubber, exact parameters)."""
    from botocore.stub import ANY

    missing = {"service_error_code": "ValidationException", "http_status_code": 400}
    stub.add_response(
        "describe_model_package",
        {
            "ModelPackageName": "demand-forecasting",
            "ModelPackageArn": arn,
            "ModelPackageVersion": 3,
            "CreationTime": now,
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": "Approved",
            "ModelPackageStatusDetails": {"ValidationStatuses": []},
        },
        {"ModelPackageName": arn},
    )
    stub.add_client_error(
        "describe_endpoint",
        service_message='Could not find endpoint "demand-forecast".',
        expected_params={"EndpointName": "demand-forecast"},
        **missing,
    )
    stub.add_client_error(
        "describe_model",
        service_message=f'Could not find model "{name}".',
        expected_params={"ModelName": name},
        **missing,
    )
    stub.add_response(
        "create_model",
        {"ModelArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{name}"},
        {
            "ModelName": name,
            "Containers": [{"ModelPackageName": arn}],
            "ExecutionRoleArn": settings.role_arn,
            "Tags": ANY,
        },
    )
    stub.add_client_error(
        "describe_endpoint_config",
        service_message="Could not find endpoint configuration",
        expected_params={"EndpointConfigName": name},
        **missing,
    )
    stub.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{name}"},
        {
            "EndpointConfigName": name,
            "Tags": ANY,
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.xlarge",
                }
            ],
        },
    )
    stub.add_response(
        "create_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {"EndpointName": "demand-forecast", "EndpointConfigName": name, "Tags": ANY},
    )


ENDPOINT_ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/demand-forecast"


def _endpoint(status, config, now, reason=None):
    answer = {
        "EndpointName": "demand-forecast",
        "EndpointArn": ENDPOINT_ARN,
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": now,
        "LastModifiedTime": now,
    }
    return dict(answer, FailureReason=reason) if reason else answer


@pytest.mark.parametrize(
    "wait_seconds, answers, expected",
    [
        (600, ["Creating", "InService"], ("deployed", "InService")),
        (0, ["Creating"], ("in_progress", "Creating")),
    ],
)
def test_given_a_new_endpoint_then_the_result_is_its_real_state_within_the_budget(
    sagemaker_target, wait_seconds, answers, expected
):
    import datetime

    import boto3
    from botocore.stub import Stubber

    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/demand-forecasting/3"
    settings = sagemaker_target
    name = resource_name("demand-forecast", 3, arn, settings.role_arn, handler.DEFAULT_INSTANCE_TYPE, "1")
    now = datetime.datetime.now(datetime.timezone.utc)
    sm = boto3.session.Session(region_name="us-east-1").client("sagemaker")
    sleeps: list = []
    with Stubber(sm) as stub:
        _stub_first_deployment(stub, arn, name, settings, now)
        for status in answers:
            stub.add_response("describe_endpoint", _endpoint(status, name, now), {"EndpointName": "demand-forecast"})

        result = handler.deploy(
            sm,
            settings,
            handler.parse_event({"model_package_arn": arn}, settings),
            log=lambda _: None,
            wait_seconds=wait_seconds,
            sleep=sleeps.append,
        )

        stub.assert_no_pending_responses()
    assert (result["status"], result["endpoint_status"]) == expected
    assert len(sleeps) == len(answers) - 1
    if expected[0] == "in_progress":
        assert "still Creating" in result["message"]


def test_given_a_new_endpoint_that_fails_then_the_handler_raises_with_the_reason(sagemaker_target):
    """A Deploy step must not stay green over a Failed endpoint: the handler raises, the Lambda step fails."""
    import datetime

    import boto3
    from botocore.stub import Stubber

    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/demand-forecasting/3"
    settings = sagemaker_target
    name = resource_name("demand-forecast", 3, arn, settings.role_arn, handler.DEFAULT_INSTANCE_TYPE, "1")
    now = datetime.datetime.now(datetime.timezone.utc)
    sm = boto3.session.Session(region_name="us-east-1").client("sagemaker")
    with Stubber(sm) as stub:
        _stub_first_deployment(stub, arn, name, settings, now)
        stub.add_response("describe_endpoint", _endpoint("Creating", name, now), {"EndpointName": "demand-forecast"})
        stub.add_response(
            "describe_endpoint",
            _endpoint("Failed", name, now, "The primary container did not pass the ping health check."),
            {"EndpointName": "demand-forecast"},
        )
        with pytest.raises(
            DeployError,
            match="endpoint demand-forecast is Failed after it was created with model "
            "package .*did not pass the ping health check",
        ):
            handler.deploy(
                sm,
                settings,
                handler.parse_event({"model_package_arn": arn}, settings),
                log=lambda _: None,
                sleep=lambda _: None,
            )
        stub.assert_no_pending_responses()


class _Context:
    def __init__(self, seconds):
        self.seconds = seconds

    def get_remaining_time_in_millis(self):
        return int(self.seconds * 1000)


def test_the_wait_budget_stays_within_the_pipeline_lambda_steps_10_minutes():
    # the function has 15 minutes; the pipeline step that invoked it waits 10
    assert handler.wait_budget(_Context(900), "pipeline") == 600 - handler.RETURN_MARGIN_SECONDS
    assert handler.wait_budget(_Context(900), "eventbridge") == 900 - handler.RETURN_MARGIN_SECONDS
    assert handler.wait_budget(_Context(100), "pipeline") == 100 - handler.RETURN_MARGIN_SECONDS
    assert handler.wait_budget(None, "pipeline") == 600 - handler.RETURN_MARGIN_SECONDS
    assert handler.wait_budget(_Context(10), "pipeline") == 0


def test_given_an_endpoint_the_function_is_not_scoped_to_then_the_error_says_how_to_rescope(sagemaker_target):
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/demand-forecasting/3"
    with pytest.raises(
        DeployError,
        match="endpoint_name 'other-endpoint': this deploy function, its IAM role and "
        "the approval rule are scoped to endpoint 'demand-forecast'",
    ):
        handler.parse_event({"model_package_arn": arn, "endpoint_name": "other-endpoint"}, sagemaker_target)


def test_given_a_newer_version_served_when_an_older_one_is_approved_then_it_is_kept_unless_rolling_back(
    sm, aws_requests
):
    older = register_version(sm, GROUP, status="Approved", execution="exec-1")
    newer = register_version(sm, GROUP, status="Approved", execution="exec-2")
    lambda_handler(eventbridge(newer))
    before = len(aws_requests.calls)

    late = lambda_handler(eventbridge(older))  # e.g. run 1's event delivered after run 2's

    assert late["status"] == "skipped" and "serves version 2, newer than version 1" in late["message"]
    assert "--rollback" in late["message"]
    later = [op for _, op, _ in aws_requests.calls[before:]]
    assert not {"CreateModel", "CreateEndpointConfig", "UpdateEndpoint"} & set(later)
    assert endpoint_tags(sm, "demand-forecast")[PACKAGE_TAG] == newer

    back = lambda_handler({**eventbridge(older), "rollback": True})

    assert back["status"] == "deployed" and back["action"] == "rolled back"
    assert endpoint_tags(sm, "demand-forecast")[PACKAGE_TAG] == older
    assert sm.describe_endpoint(EndpointName="demand-forecast")["EndpointConfigName"] == back["endpoint_config_name"]


def _package(arn, version, now):
    return {
        "ModelPackageName": "demand-forecasting",
        "ModelPackageArn": arn,
        "ModelPackageVersion": version,
        "CreationTime": now,
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": "Approved",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
    }


def test_given_a_concurrent_newer_update_refused_as_in_progress_then_the_handler_decides_again_and_keeps_it(
    sagemaker_target,
):
    """Runs 1 and 2 both saw version 0 served; run 2's UpdateEndpoint got in first, so SageMaker refuses
    run 1's ("Cannot update in-progress endpoint"); run 1 waits, sees version 2 and leaves it."""
    import datetime

    import boto3
    from botocore.stub import Stubber

    from tests.deploy.aws_support import Recorded, instrument

    settings = sagemaker_target
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/demand-forecasting/1"
    name = resource_name("demand-forecast", 1, arn, settings.role_arn, handler.DEFAULT_INSTANCE_TYPE, "1")
    newer = "demand-forecast-v2-0123abcd"
    now = datetime.datetime.now(datetime.timezone.utc)
    sm = instrument(boto3.session.Session(region_name="us-east-1").client("sagemaker"), Recorded())
    sleeps: list = []
    with Stubber(sm) as stub:
        stub.add_response("describe_model_package", _package(arn, 1, now), {"ModelPackageName": arn})
        stub.add_response("describe_endpoint", _endpoint("InService", "demand-forecast-v0-0123abcd", now))
        stub.add_response(
            "describe_model",
            {
                "ModelName": name,
                "ModelArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{name}",
                "CreationTime": now,
            },
        )
        stub.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": name,
                "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{name}",
                "ProductionVariants": [{"VariantName": "AllTraffic"}],
                "CreationTime": now,
            },
        )
        stub.add_client_error(
            "update_endpoint",
            service_error_code="ValidationException",
            http_status_code=400,
            service_message=f'Cannot update in-progress endpoint "{ENDPOINT_ARN}".',
            expected_params={"EndpointName": "demand-forecast", "EndpointConfigName": name},
        )
        stub.add_response(
            "describe_endpoint",
            dict(
                _endpoint("Updating", "demand-forecast-v0-0123abcd", now),
                PendingDeploymentSummary={"EndpointConfigName": newer},
            ),
        )

        result = handler.deploy(
            sm, settings, handler.parse_event(eventbridge(arn), settings), log=lambda _: None, sleep=sleeps.append
        )

        stub.assert_no_pending_responses()
    assert result["status"] == "skipped" and "serves version 2, newer than version 1" in result["message"]
    assert sleeps == []


def test_given_an_out_of_service_endpoint_on_the_approved_config_then_it_is_restarted(sagemaker_target, monkeypatch):
    """Approving again brings back an endpoint that stopped serving, instead of 'nothing to do'."""
    import datetime
    import time

    import boto3
    from botocore.stub import ANY, Stubber

    from tests.deploy.aws_support import Recorded, instrument

    settings = sagemaker_target
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/demand-forecasting/3"
    name = resource_name("demand-forecast", 3, arn, settings.role_arn, handler.DEFAULT_INSTANCE_TYPE, "1")
    monkeypatch.setattr(time, "time_ns", lambda: 42)
    copy = resource_name("demand-forecast", 3, arn, settings.role_arn, handler.DEFAULT_INSTANCE_TYPE, "1", "restart-42")
    now = datetime.datetime.now(datetime.timezone.utc)
    sm = instrument(boto3.session.Session(region_name="us-east-1").client("sagemaker"), Recorded())
    with Stubber(sm) as stub:
        stub.add_response("describe_model_package", _package(arn, 3, now), {"ModelPackageName": arn})
        stub.add_response("describe_endpoint", _endpoint("OutOfService", name, now))
        stub.add_response(
            "describe_model",
            {
                "ModelName": name,
                "ModelArn": f"arn:aws:sagemaker:us-east-1:123456789012:model/{name}",
                "CreationTime": now,
            },
        )
        stub.add_response(
            "describe_endpoint_config",
            {
                "EndpointConfigName": name,
                "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{name}",
                "ProductionVariants": [{"VariantName": "AllTraffic"}],
                "CreationTime": now,
            },
        )
        # "To update an endpoint, you must create a new EndpointConfig": a copy, same model and variant
        stub.add_response(
            "create_endpoint_config",
            {"EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{copy}"},
            {
                "EndpointConfigName": copy,
                "Tags": ANY,
                "ProductionVariants": [
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": name,
                        "InitialInstanceCount": 1,
                        "InstanceType": "ml.m5.xlarge",
                    }
                ],
            },
        )
        stub.add_response(
            "update_endpoint",
            {"EndpointArn": ENDPOINT_ARN},
            {"EndpointName": "demand-forecast", "EndpointConfigName": copy},
        )
        stub.add_response("add_tags", {"Tags": []}, {"ResourceArn": ENDPOINT_ARN, "Tags": ANY})
        stub.add_response("describe_endpoint", _endpoint("Updating", name, now))
        stub.add_response("describe_endpoint", _endpoint("InService", copy, now))

        result = handler.deploy(
            sm, settings, handler.parse_event(eventbridge(arn), settings), log=lambda _: None, sleep=lambda _: None
        )

        stub.assert_no_pending_responses()
    assert result["status"] == "deployed" and result["action"] == "restarted"
    assert result["endpoint_status"] == "InService" and result["endpoint_config_name"] == copy
    assert copy != name and handler.CONFIG_NAME_VERSION.search(copy).group(1) == "3"


def test_given_a_rollback_flag_that_is_not_a_boolean_then_the_error_names_it(sagemaker_target):
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/demand-forecasting/3"
    with pytest.raises(DeployError, match="rollback must be true or false, got 'yes'"):
        handler.parse_event({"model_package_arn": arn, "rollback": "yes"}, sagemaker_target)


def test_given_a_local_run_then_the_handler_logs_a_sentence_not_a_json_line(sm, capsys, monkeypatch):
    """deploy.approve and the local Deploy step show the handler's log: a sentence, no raw JSON."""
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    arn = register_version(sm, GROUP, status="Approved")

    lambda_handler(eventbridge(arn))

    lines = capsys.readouterr().out.splitlines()
    assert lines and not [line for line in lines if line.lstrip().startswith("{")]
    assert f"deploy handler (EventBridge approval event): model package {arn} -> endpoint demand-forecast" in lines


def test_given_the_lambda_runtime_then_the_first_line_is_one_json_object_for_cloudwatch(sm, capsys, monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "demand-forecast-deploy")
    arn = register_version(sm, GROUP, status="Approved")

    lambda_handler({"model_package_arn": arn, "endpoint_name": "demand-forecast"})

    first = capsys.readouterr().out.splitlines()[0]
    assert json.loads(first) == {
        "event_source": "pipeline",
        "model_package_arn": arn,
        "endpoint_name": "demand-forecast",
        "target": "sagemaker",
    }


def test_given_a_rollback_event_then_the_handler_sentence_says_it_is_a_rollback(sagemaker_target):
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/demand-forecasting/2"
    request = handler.parse_event({**eventbridge(arn), "rollback": True}, sagemaker_target)
    line = handler.invocation_line(request, sagemaker_target, structured=False)
    assert line.startswith("deploy handler (EventBridge approval event, rollback): model package")
