"""Local end to end: approving a version deploys it to the local HTTP endpoint; a second approval
swaps the model; rollback brings the first back; teardown stops the server."""
from __future__ import annotations

import json
import shutil

import pytest

from deploy import approve as cli
from deploy import clients, monitoring, teardown
from deploy.endpoint import http_request, running_state
from processing.kernel.settings import resolve
from tests.deploy.endpoint_support import free_port, inference_csv, sales, train_model

GROUP = "demand-forecasting"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A real (small) engine model, trained once for the module."""
    frame = sales(days=56)
    return frame, train_model(frame, tmp_path_factory.mktemp("engine"))


def register_local(sm, settings, model_dir, version_tag: str) -> str:
    """Put the model in the local object store and register it as RegisterModel would."""
    destination = settings.home_path / "s3" / "forecast-local" / "models" / version_tag / "model"
    shutil.copytree(model_dir, destination)
    uri = f"s3://forecast-local/models/{version_tag}/model"
    return sm.create_model_package(
        ModelPackageGroupName=GROUP, ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={"Containers": [{"Image": "local/forecasting-engine", "ModelDataUrl": uri}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
        CustomerMetadataProperties={"metric_wape": "0.1", "pipeline_execution_id": version_tag})["ModelPackageArn"]


def served_package(settings) -> str:
    state = running_state(settings.home_path, settings.endpoint_name)
    status, _, body = http_request(state["url"] + "/metrics", timeout=10)
    assert status == 200
    return json.loads(body)["model_package_arn"]


@pytest.mark.timeout(300)
def test_approving_locally_deploys_swaps_rolls_back_and_teardown_stops_the_endpoint(tiny_model, monkeypatch, capsys):
    frame, model_dir = tiny_model
    monkeypatch.setenv("FORECAST_TARGET", "local")
    monkeypatch.setenv("FORECAST_ENDPOINT_PORT", str(free_port()))
    settings = resolve()
    sm = clients.client("sagemaker", settings)
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    first = register_local(sm, settings, model_dir, "exec-1")
    try:
        # approve v1 -> the deploy handler runs in-process and starts the endpoint
        assert cli.main(["approve", "--latest", "--reason", "first model"]) == 0
        printed = capsys.readouterr().out
        state = running_state(settings.home_path, settings.endpoint_name)
        assert state is not None
        # it says where the endpoint listens (a free port when the configured one is busy)
        assert f"endpoint {settings.endpoint_name} listens on {state['url']}" in printed
        assert json.loads(printed[printed.index("\n{\n") + 1:])["endpoint_url"] == state["url"]
        assert http_request(state["url"] + "/ping", timeout=10)[0] == 200
        status, _, body = http_request(state["url"] + "/invocations", "POST", inference_csv(frame),
                                       {"Content-Type": "text/csv"}, timeout=60)
        assert status == 200 and body.decode().splitlines()[0].split(",")[-1] == "mean"
        assert served_package(settings) == first
        assert monitoring.main([]) == 0   # locally: the endpoint's own /metrics
        assert json.loads(capsys.readouterr().out)["model_package_arn"] == first

        # approving v2 updates the endpoint in place
        second = register_local(sm, settings, model_dir, "exec-2")
        cli.approve(sm, settings, second, "second model", log=lambda _: None)
        assert served_package(settings) == second
        assert cli.deployed_package(sm, settings.endpoint_name) == second

        # approving v2 again is a no-op
        again = cli.approve(sm, settings, second, "again", log=lambda _: None)
        assert again["deployment"]["status"] == "skipped"

        # rollback serves v1 again and rejects v2
        cli.rollback(sm, settings, "bad forecasts", log=lambda _: None)
        assert served_package(settings) == first
        assert sm.describe_model_package(ModelPackageName=second)["ModelApprovalStatus"] == "Rejected"
    finally:
        assert teardown.teardown(settings, yes=True, log=lambda _: None) == 0
    assert running_state(settings.home_path, settings.endpoint_name) is None
    assert (settings.home_path / "registry.sqlite").exists()
