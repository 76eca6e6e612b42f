"""Local endpoint configs and endpoints (boto3 shapes) and invoke_endpoint over loopback HTTP."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from botocore.exceptions import WaiterError

from deploy import endpoint
from deploy.clients import client
from pipelines.local.errors import LocalClientError
from processing.kernel.settings import resolve
from tests.deploy import endpoint_support as support

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return support.train_model(support.sales(), tmp_path_factory.mktemp("model") / "out")


@pytest.fixture
def settings(tmp_path):
    return resolve({"home": str(tmp_path / "home"), "endpoint_port": support.free_port()})


@pytest.fixture
def sm(settings):
    return client("sagemaker", settings)


@pytest.fixture
def served(settings, model_dir):
    """Endpoint `demand-forecast` serving the model (version 1); stopped afterwards whatever happens."""
    try:
        yield support.deploy(settings, model_dir, version=1)
    finally:
        endpoint.stop(settings.home_path, settings.endpoint_name)


def test_given_a_model_when_an_endpoint_config_is_created_then_it_is_described_and_listed(sm, settings, model_dir):
    import shutil

    from pipelines.local.store import local_path

    uri = settings.s3_uri("models", "m1")
    shutil.copytree(model_dir, local_path(uri, settings))
    sm.create_model(
        ModelName="m1",
        ExecutionRoleArn=settings.effective_role_arn,
        PrimaryContainer={"Image": "local", "ModelDataUrl": uri},
    )
    variants = [
        {"VariantName": "AllTraffic", "ModelName": "m1", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    ]

    arn = sm.create_endpoint_config(EndpointConfigName="cfg-b", ProductionVariants=variants)["EndpointConfigArn"]
    sm.create_endpoint_config(EndpointConfigName="cfg-a", ProductionVariants=variants)

    described = sm.describe_endpoint_config(EndpointConfigName="cfg-b")
    assert arn.endswith(":endpoint-config/cfg-b") and described["EndpointConfigArn"] == arn
    assert described["ProductionVariants"] == variants and described["CreationTime"].tzinfo is not None
    names = [
        c["EndpointConfigName"]
        for c in sm.list_endpoint_configs(SortBy="Name", SortOrder="Ascending")["EndpointConfigs"]
    ]
    assert names == ["cfg-a", "cfg-b"]
    page = sm.list_endpoint_configs(SortBy="Name", SortOrder="Ascending", MaxResults=1)
    assert [c["EndpointConfigName"] for c in page["EndpointConfigs"]] == ["cfg-a"] and page["NextToken"]
    assert sm.list_endpoint_configs(NameContains="-a")["EndpointConfigs"][0]["EndpointConfigName"] == "cfg-a"
    with pytest.raises(LocalClientError, match="Cannot create already existing endpoint configuration"):
        sm.create_endpoint_config(EndpointConfigName="cfg-a", ProductionVariants=variants)
    sm.delete_endpoint_config(EndpointConfigName="cfg-a")
    with pytest.raises(LocalClientError, match="Could not find endpoint configuration"):
        sm.describe_endpoint_config(EndpointConfigName="cfg-a")


def test_given_a_malformed_or_dangling_config_request_then_validation_errors_name_the_problem(sm):
    with pytest.raises(LocalClientError, match="missing required member ProductionVariants"):
        sm.create_endpoint_config(EndpointConfigName="cfg")
    with pytest.raises(LocalClientError, match="does not match the pattern"):
        sm.create_endpoint_config(
            EndpointConfigName="bad_name!", ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "m"}]
        )
    with pytest.raises(LocalClientError, match='Could not find model ".*model/missing"'):
        sm.create_endpoint_config(
            EndpointConfigName="cfg",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "missing",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        )


def test_given_a_config_when_an_endpoint_is_created_then_a_server_answers_and_it_is_in_service(served, sm, settings):
    assert served["EndpointStatus"] == "InService"
    assert served["ProductionVariants"][0]["VariantName"] == "AllTraffic"
    state = endpoint.running_state(settings.home_path, settings.endpoint_name)
    assert state and endpoint.ping(state["url"])
    summary = sm.list_endpoints(StatusEquals="InService")["Endpoints"]
    assert [e["EndpointName"] for e in summary] == [settings.endpoint_name]
    tags = sm.list_tags(ResourceArn=served["EndpointArn"])["Tags"]
    assert {"Key": "model-package-arn", "Value": support.package_arn(1)} in tags
    sm.get_waiter("endpoint_in_service").wait(EndpointName=settings.endpoint_name)


def test_given_an_endpoint_when_invoked_through_the_runtime_client_then_the_forecast_csv_comes_back(served, settings):
    runtime = client("sagemaker-runtime", settings)

    response = runtime.invoke_endpoint(
        EndpointName=settings.endpoint_name, ContentType="text/csv", Body=support.inference_csv(support.sales())
    )

    assert response["ContentType"] == "text/csv"
    forecast = pd.read_csv(response["Body"])
    assert len(forecast) == len(support.ITEMS) * support.HORIZON and "mean" in forecast.columns


def test_given_bad_input_when_invoked_then_model_error_with_the_servers_message(served, settings):
    runtime = client("sagemaker-runtime", settings)

    with pytest.raises(LocalClientError, match=r"Received client error \(400\).*empty request body") as caught:
        runtime.invoke_endpoint(EndpointName=settings.endpoint_name, ContentType="text/csv", Body=b"")
    assert caught.value.response["Error"]["Code"] == "ModelError"
    assert caught.value.response["OriginalStatusCode"] == 400


def test_given_no_such_endpoint_when_invoked_then_validation_error(settings):
    with pytest.raises(LocalClientError, match="Endpoint nowhere of account .* not found"):
        client("sagemaker-runtime", settings).invoke_endpoint(EndpointName="nowhere", Body=b"x", ContentType="text/csv")


def test_given_a_running_endpoint_when_updated_then_the_new_model_serves_without_a_restart(
    served, sm, settings, tmp_path
):
    pid = endpoint.running_state(settings.home_path, settings.endpoint_name)["pid"]
    v2 = support.train_model(support.sales(), tmp_path / "v2", quantiles=("p25", "p50", "p75"))

    described = support.deploy(settings, v2, version=2)

    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == f"{settings.endpoint_name}-v2"
    state = endpoint.running_state(settings.home_path, settings.endpoint_name)
    assert state["pid"] == pid and state["model_package_arn"] == support.package_arn(2)
    body = client("sagemaker-runtime", settings).invoke_endpoint(
        EndpointName=settings.endpoint_name, ContentType="text/csv", Body=support.inference_csv(support.sales())
    )
    assert list(pd.read_csv(body["Body"]).columns)[-4:] == ["p25", "p50", "p75", "mean"]


def test_given_a_broken_model_when_updated_then_the_endpoint_keeps_the_old_config_and_says_why(
    served, sm, settings, tmp_path
):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.joblib").write_text("not a model")

    described = support.deploy(settings, broken, version=3)

    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == f"{settings.endpoint_name}-v1"
    assert described["FailureReason"].startswith("Update failed, kept the previous configuration")
    metrics = json.loads(
        endpoint.http_request(endpoint.running_state(settings.home_path, settings.endpoint_name)["url"] + "/metrics")[2]
    )
    assert metrics["model_dir"].endswith("/v1")  # still serving version 1


def test_given_a_stopped_server_when_described_then_out_of_service_and_an_update_restarts_it(
    served, sm, settings, model_dir
):
    endpoint.stop(settings.home_path, settings.endpoint_name)

    assert sm.describe_endpoint(EndpointName=settings.endpoint_name)["EndpointStatus"] == "OutOfService"
    with pytest.raises(WaiterError, match="Max attempts exceeded"):
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=settings.endpoint_name, WaiterConfig={"Delay": 0, "MaxAttempts": 2}
        )
    described = support.deploy(settings, model_dir, version=4)
    assert described["EndpointStatus"] == "InService"
    assert endpoint.ping(endpoint.running_state(settings.home_path, settings.endpoint_name)["url"])


def test_given_an_endpoint_when_deleted_then_the_server_stops_and_it_is_gone(served, sm, settings):
    url = endpoint.running_state(settings.home_path, settings.endpoint_name)["url"]

    sm.delete_endpoint(EndpointName=settings.endpoint_name)

    assert not endpoint.ping(url)
    with pytest.raises(LocalClientError, match="Could not find endpoint"):
        sm.describe_endpoint(EndpointName=settings.endpoint_name)
    assert sm.list_endpoints()["Endpoints"] == []
    sm.get_waiter("endpoint_deleted").wait(EndpointName=settings.endpoint_name)


def test_given_a_resource_when_tags_are_added_and_deleted_then_list_tags_follows(sm):
    arn = "arn:aws:sagemaker:us-east-1:000000000000:endpoint/x"
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "a", "Value": "3"}])
    sm.delete_tags(ResourceArn=arn, TagKeys=["b"])

    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "a", "Value": "3"}]
    with pytest.raises(LocalClientError, match="Tags"):
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": "a"}])


def test_given_an_update_in_progress_when_another_update_comes_then_it_is_refused_at_once_like_sagemaker(
    served, sm, settings, model_dir
):
    import threading

    support.deploy(settings, model_dir, version=2)  # creates config demand-forecast-v2 (and serves it)
    outcome: list = []

    def update_to_v1() -> None:
        try:
            outcome.append(
                sm.update_endpoint(
                    EndpointName=settings.endpoint_name, EndpointConfigName=f"{settings.endpoint_name}-v1"
                )
            )
        except LocalClientError as error:
            outcome.append(error)

    with sm._locked(f"endpoint-{settings.endpoint_name}"):  # what a running create/update holds
        other = threading.Thread(target=update_to_v1)
        other.start()
        other.join(timeout=10)
        refused_at_once = not other.is_alive()
    other.join(timeout=120)
    assert refused_at_once, "UpdateEndpoint waited behind the running update instead of refusing"
    assert isinstance(outcome[0], LocalClientError) and "Cannot update in-progress endpoint" in str(outcome[0])
    assert (
        sm.describe_endpoint(EndpointName=settings.endpoint_name)["EndpointConfigName"]
        == f"{settings.endpoint_name}-v2"
    )


def test_given_an_update_whose_process_died_then_describe_reports_it_settled_and_an_update_works(
    served, sm, settings, model_dir
):
    path = settings.home_path / "sagemaker" / "endpoints" / f"{settings.endpoint_name}.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps(record | {"EndpointStatus": "Updating"}))  # killed mid-update: nobody holds the lock

    assert sm.describe_endpoint(EndpointName=settings.endpoint_name)["EndpointStatus"] == "InService"
    assert support.deploy(settings, model_dir, version=5)["EndpointStatus"] == "InService"
