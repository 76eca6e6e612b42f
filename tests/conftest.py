"""Shared fixtures: a moto server on loopback, dummy AWS credentials, isolated FORECAST_HOME."""

from __future__ import annotations

import pytest

from processing.kernel.process_env import configure_threads

configure_threads()  # the test process trains and serves models in-process: sleeping OpenMP threads

FAKE_ACCOUNT_ROLE = "arn:aws:iam::123456789012:role/forecast-pipeline"


@pytest.fixture(autouse=True)
def _offline_aws_environment(monkeypatch, tmp_path):
    """No test may reach real AWS: dummy credentials, a fixed region, state under tmp_path."""
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "FORECAST_ROLE_ARN",
        "FORECAST_BUCKET",
        "FORECAST_TARGET",
        "FORECAST_CONFIG",
        "FORECAST_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / "forecast-home"))


@pytest.fixture(autouse=True)
def _console_reset_after_each_test():
    """A CLI a test runs sets up the console (processing.kernel.console); the next test starts without it."""
    yield
    from processing.kernel import console

    console.reset()


@pytest.fixture(autouse=True)
def _every_aws_request_matches_the_service_model(monkeypatch):
    """Whatever a test drives (scripts, handlers, CLIs; moto, Stubber or local stand-ins behind
    them), each boto3 request is checked against botocore's service model before it is made."""
    import botocore.client

    from processing.kernel.aws_validation import request_problems

    original = botocore.client.BaseClient._make_api_call

    def checked(self, operation_name, api_params):
        problems = request_problems(self.meta.service_model.service_name, operation_name, api_params)
        if problems:
            raise AssertionError(f"invalid AWS request {operation_name}: " + "; ".join(problems))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", checked)


@pytest.fixture(scope="session")
def moto_server():
    """A real moto server on 127.0.0.1 (random port); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto_endpoint(moto_server, monkeypatch):
    """Point every boto3 client at the moto server (AWS_ENDPOINT_URL) and reset its state."""
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


@pytest.fixture
def local_api(monkeypatch):
    """The local runtime's loopback SageMaker API (127.0.0.1, random port), with boto3 in this
    process pointed at it the way the runtime points its steps at it; stopped afterwards."""
    from pipelines.local.aws_api import LocalAWSServer
    from processing.kernel.settings import resolve

    server = LocalAWSServer(resolve()).start()
    for name in LocalAWSServer.UNSET_IN_STEPS:
        monkeypatch.delenv(name, raising=False)
    for name, value in server.step_environment().items():
        monkeypatch.setenv(name, value)
    yield server
    server.close()


# --- the fast subset ---------------------------------------------------------------------------
# `integration` (pytest.ini) marks tests that start a loopback server, a subprocess or a local
# pipeline run, render a definition afresh, or train a real network: correct and needed, but they
# are what makes the suite take minutes. A test is integration when it carries the marker itself
# or when it uses one of these fixtures (each starts a server, a process or a model build):
INTEGRATION_FIXTURES = {
    "moto_server",  # the moto server on 127.0.0.1 (moto_endpoint, sagemaker_target)
}  # (local_api, the runtime's loopback API in a thread of this process, starts in milliseconds: fast)
# fixtures of one module (their names are local to it)
INTEGRATION_MODULE_FIXTURES = {
    "tests/deploy/test_api.py": {"deployed", "holiday_data", "api_server"},  # trained models, endpoint and API servers
    "tests/deploy/test_endpoint.py": {"models"},  # trained models behind endpoint servers
    "tests/pipelines/local/test_sagemaker_jobs.py": {"trained"},  # AutoML jobs in training processes
    "tests/pipelines/local/test_sagemaker_endpoints.py": {"model_dir", "served"},
    "tests/pipelines/local/test_step_env.py": {"cache"},  # step interpreters and pip in subprocesses
    "tests/pipelines/local/test_runtime.py": {"settings"},  # local pipeline runs (steps are processes)
    "tests/pipelines/test_run.py": {"definition_dir"},  # the CLI in a fresh interpreter
    "tests/pipelines/local/test_limits.py": {"trained", "settings"},  # a trained model; local pipeline runs
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        uses = set(getattr(item, "fixturenames", ()))
        moto_param = "moto" in getattr(getattr(item, "callspec", None), "id", "").split(
            "-"
        )  # a backend fixture's moto side
        if moto_param or uses & (INTEGRATION_FIXTURES | INTEGRATION_MODULE_FIXTURES.get(module, set())):
            item.add_marker(pytest.mark.integration)
