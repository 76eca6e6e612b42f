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

pytestmark = pytest.mark.integration  # each test trains a model and runs local endpoint servers

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
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification={
            "Containers": [{"Image": "local/forecasting-engine", "ModelDataUrl": uri}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={"metric_wape": "0.1", "pipeline_execution_id": version_tag},
    )["ModelPackageArn"]


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
        assert json.loads(printed[printed.index("\n{\n") + 1 :])["endpoint_url"] == state["url"]
        assert http_request(state["url"] + "/ping", timeout=10)[0] == 200
        status, _, body = http_request(
            state["url"] + "/invocations", "POST", inference_csv(frame), {"Content-Type": "text/csv"}, timeout=60
        )
        assert status == 200 and body.decode().splitlines()[0].split(",")[-1] == "mean"
        assert served_package(settings) == first
        assert monitoring.main([]) == 0  # locally: the endpoint's own /metrics
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


@pytest.fixture
def local_backend(monkeypatch):
    """Local target, a free endpoint port, one worker per endpoint (a light server on a shared machine)."""
    monkeypatch.setenv("FORECAST_TARGET", "local")
    monkeypatch.setenv("FORECAST_ENDPOINT_PORT", str(free_port()))
    monkeypatch.setenv("FORECAST_ENDPOINT_WORKERS", "1")
    settings = resolve()
    sm = clients.client("sagemaker", settings)
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    yield settings, sm
    teardown.teardown(settings, yes=True, log=lambda _: None)


@pytest.mark.timeout(300)
def test_given_a_killed_endpoint_when_approved_again_then_it_is_restarted_and_answers(
    tiny_model, local_backend, capsys
):
    import os
    import signal

    from deploy import endpoint

    frame, model_dir = tiny_model
    settings, sm = local_backend
    arn = register_local(sm, settings, model_dir, "exec-1")
    assert cli.main(["approve", "--latest"]) == 0
    dead = running_state(settings.home_path, settings.endpoint_name)
    os.kill(dead["pid"], signal.SIGKILL)  # the supervisor: a crash, not a stop
    for _ in range(100):
        if running_state(settings.home_path, settings.endpoint_name) is None:
            break
        import time

        time.sleep(0.05)
    assert sm.describe_endpoint(EndpointName=settings.endpoint_name)["EndpointStatus"] == "OutOfService"
    capsys.readouterr()
    assert endpoint.main(["status"]) == 3
    assert f"endpoint '{settings.endpoint_name}' is dead" in capsys.readouterr().out

    assert cli.main(["approve", "--latest"]) == 0

    printed = capsys.readouterr().out
    assert "nothing to do" not in printed and "restarted endpoint" in printed
    assert sm.describe_endpoint(EndpointName=settings.endpoint_name)["EndpointStatus"] == "InService"
    state = running_state(settings.home_path, settings.endpoint_name)
    assert state is not None and state["pid"] != dead["pid"]
    status, _, body = http_request(
        state["url"] + "/invocations", "POST", inference_csv(frame), {"Content-Type": "text/csv"}, timeout=60
    )
    assert status == 200 and body.decode().splitlines()[0].split(",")[-1] == "mean"
    assert served_package(settings) == arn
    assert endpoint.main(["status"]) == 0
    # the restarted endpoint (a copy of the config, same model) is recognised as this version's
    assert cli.approve(sm, settings, arn, log=lambda _: None)["deployment"]["status"] == "skipped"


def deploy_concurrently(settings, arns: list, stagger: float) -> list:
    """One deploy-handler invocation per ARN, each in its own thread (as concurrent Lambda invocations
    for approval events), started `stagger` seconds apart; returns their results in the same order."""
    import threading
    import time

    from deploy.handler import lambda_handler

    results: list = [None] * len(arns)

    def run(index: int, arn: str) -> None:
        try:
            results[index] = lambda_handler({"model_package_arn": arn}, settings=settings)
        except Exception as error:  # noqa: BLE001 - reported by the test
            results[index] = error

    threads = [threading.Thread(target=run, args=(i, arn)) for i, arn in enumerate(arns)]
    for thread in threads:
        thread.start()
        time.sleep(stagger)
    for thread in threads:
        thread.join(timeout=240)
    assert not any(thread.is_alive() for thread in threads), "a deployment hung"
    return results


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("order, stagger", [((3, 2, 1), 0.3), ((1, 3, 2), 0.0), ((2, 1, 3), 0.1)])
def test_given_concurrent_deployments_of_three_versions_then_the_newest_is_served_and_rollback_works(
    tiny_model, local_backend, order, stagger, capsys
):
    frame, model_dir = tiny_model
    settings, sm = local_backend
    arns = {}
    for version in (1, 2, 3):  # three training runs registering with ModelApprovalStatus=Approved
        arns[version] = register_local(sm, settings, model_dir, f"exec-{version}")
        sm.update_model_package(ModelPackageArn=arns[version], ModelApprovalStatus="Approved")

    results = deploy_concurrently(settings, [arns[v] for v in order], stagger)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert served_package(settings) == arns[3]
    assert cli.deployed_package(sm, settings.endpoint_name) == arns[3]
    by_version = dict(zip(order, results))
    assert by_version[3]["status"] == "deployed"
    # a replayed approval event of an older version changes nothing
    assert cli.approve(sm, settings, arns[1], log=lambda _: None)["deployment"]["status"] == "skipped"
    assert served_package(settings) == arns[3]

    # an explicit rollback to version 1 puts it back over the newer ones
    capsys.readouterr()
    assert cli.main(["approve", "--version", "1", "--rollback", "--reason", "v3 and v2 drift"]) == 0
    assert "rolled back endpoint" in capsys.readouterr().out
    assert served_package(settings) == arns[1]
    status, _, _ = http_request(
        running_state(settings.home_path, settings.endpoint_name)["url"] + "/invocations",
        "POST",
        inference_csv(frame),
        {"Content-Type": "text/csv"},
        timeout=60,
    )
    assert status == 200
