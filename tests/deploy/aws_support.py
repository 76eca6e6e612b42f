"""Test support for the AWS-facing deploy code: capture and validate every boto3 request.

`aws_requests` wraps deploy.clients.client so that every boto3 client the code under test
gets registers a `before-parameter-build` hook: each request is recorded and validated against
botocore's service model (processing.kernel.aws_validation) BEFORE it is sent to the moto server.
The clients are built like the factory builds them, but from one boto3 session per region and
reused within a test (service models are parsed once: the tests run several times faster).

moto 5 does not implement UpdateEndpoint, DeleteModelPackage nor DeleteModelPackageGroup. For
those operations only, a `before-call` hook answers in moto's place and applies the change to
moto's in-process backend (the ThreadedMotoServer shares it), so later calls see the effect.
The request is still validated and recorded like every other.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, Callable

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from deploy import clients
from processing.kernel.aws_validation import validate_request
from processing.kernel.settings import Settings

MOTO_ACCOUNT = "123456789012"
ROLE_ARN = "arn:aws:iam::123456789012:role/forecast-pipeline"


@dataclasses.dataclass
class Recorded:
    calls: list = dataclasses.field(default_factory=list)  # (service, operation, params)

    def operations(self, service: str | None = None) -> list[str]:
        return [op for svc, op, _ in self.calls if service is None or svc == service]

    def params(self, operation: str) -> list[dict]:
        return [params for _, op, params in self.calls if op == operation]


def _sagemaker_backend(region: str):
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[MOTO_ACCOUNT][region]


def _answer(parsed: dict) -> tuple:
    return AWSResponse("http://moto", 200, {}, None), {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200}}


def _moto_update_endpoint(params: dict, region: str) -> tuple:
    backend = _sagemaker_backend(region)
    endpoint = backend.endpoints[params["EndpointName"]]
    config = backend.describe_endpoint_config(params["EndpointConfigName"])
    endpoint.endpoint_config_name = params["EndpointConfigName"]
    endpoint.production_variants = endpoint._process_production_variants(config["ProductionVariants"])
    endpoint.last_modified_time = datetime.datetime.now(datetime.timezone.utc).isoformat()
    return _answer({"EndpointArn": endpoint.arn})


def _moto_delete_model_package(params: dict, region: str) -> tuple:
    backend = _sagemaker_backend(region)
    name = params["ModelPackageName"]
    for key, package in list(backend.model_packages.items()):
        if name in (key, package.arn):
            del backend.model_packages[key]
    return _answer({})


def _moto_delete_model_package_group(params: dict, region: str) -> tuple:
    backend = _sagemaker_backend(region)
    backend.model_package_groups.pop(params["ModelPackageGroupName"], None)
    return _answer({})


MOTO_GAPS: dict[str, Callable[[dict, str], tuple]] = {
    "UpdateEndpoint": _moto_update_endpoint,
    "DeleteModelPackage": _moto_delete_model_package,
    "DeleteModelPackageGroup": _moto_delete_model_package_group,
}


def instrument(client: Any, recorded: Recorded) -> Any:
    """Record + validate every request of a boto3 client; fill moto's gaps."""
    service = client.meta.service_model.service_name
    region = client.meta.region_name

    def check(params: dict, model: Any, **_: Any) -> None:
        recorded.calls.append((service, model.name, dict(params)))
        validate_request(service, model.name, params)

    client.meta.events.register("before-parameter-build.*.*", check)
    if service == "sagemaker":
        for operation, answer in MOTO_GAPS.items():
            client.meta.events.register(
                f"before-call.sagemaker.{operation}",
                lambda params, answer=answer, **_: answer(_decoded(params), region),
            )
    return client


def _decoded(request_dict: dict) -> dict:
    import json

    body = request_dict.get("body") or b"{}"
    return json.loads(body.decode() if isinstance(body, bytes) else body)


_SESSIONS: dict = {}


def _boto3_session(region: str) -> Any:
    """One boto3 session per region for the test run: service models are parsed once, not per client."""
    if region not in _SESSIONS:
        _SESSIONS[region] = boto3.session.Session(region_name=region)
    return _SESSIONS[region]


@pytest.fixture
def aws_requests(monkeypatch) -> Recorded:
    """Every boto3 client from deploy.clients.client is recorded and validated."""
    recorded = Recorded()
    real_client = clients.client
    made: dict = {}

    def client(service: str, settings: Settings) -> Any:
        if settings.is_local:
            return real_client(service, settings)
        key = (service, settings.region)
        if key not in made:  # what clients.client builds, from one shared botocore session (speed)
            made[key] = instrument(_boto3_session(settings.region).client(service), recorded)
        return made[key]

    monkeypatch.setattr(clients, "client", client)
    return recorded


@pytest.fixture
def sagemaker_target(moto_endpoint, monkeypatch) -> Settings:
    """Settings for the SageMaker target, pointed at the moto server."""
    from processing.kernel.settings import resolve

    monkeypatch.setenv("FORECAST_TARGET", "sagemaker")
    monkeypatch.setenv("FORECAST_ROLE_ARN", ROLE_ARN)
    monkeypatch.setenv("FORECAST_BUCKET", "forecast-test-bucket")
    return resolve()


def local_sagemaker(settings: Settings) -> Any:
    """The local SageMaker stand-in, from the same factory the code uses."""
    return clients.client("sagemaker", settings)


CONTAINERS = [
    {
        "Image": "382416733822.dkr.ecr.us-east-1.amazonaws.com/sagemaker-forecasting:1",
        "ModelDataUrl": "s3://forecast-test-bucket/models/model.tar.gz",
        "Environment": {"AUTOML_TRANSFORM_MODE": "feature-transform"},
    },
    {
        "Image": "382416733822.dkr.ecr.us-east-1.amazonaws.com/sagemaker-forecasting-predict:1",
        "ModelDataUrl": "s3://forecast-test-bucket/models/model.tar.gz",
        "Environment": {"AUTOML_INFERENCE_MODE": "predict"},
    },
]


def register_version(
    sm: Any, group: str, status: str = "PendingManualApproval", wape: str = "0.2", execution: str = "exec-1"
) -> str:
    """A model package as RegisterModel creates it (every container, metrics, lineage)."""
    request = {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": status,
        "ModelPackageDescription": "AutoML time-series model",
        "InferenceSpecification": {
            "Containers": CONTAINERS,
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    "S3Uri": f"s3://forecast-test-bucket/evaluation/{execution}/evaluation.json",
                }
            }
        },
        "CustomerMetadataProperties": {
            "metric_wape": wape,
            "quality_gate_passed": "true",
            "pipeline_execution_id": execution,
        },
        "MetadataProperties": {
            "GeneratedBy": f"arn:aws:sagemaker:us-east-1:{MOTO_ACCOUNT}:pipeline/demandforecasttraining/"
            f"execution/{execution}"
        },
    }
    validate_request("sagemaker", "CreateModelPackage", request)
    return sm.create_model_package(**request)["ModelPackageArn"]


def ensure_group(sm: Any, group: str) -> None:
    try:
        sm.describe_model_package_group(ModelPackageGroupName=group)
    except ClientError as error:  # not found, on either backend
        if "exist" not in str(error) and "not found" not in str(error).lower():
            raise
        sm.create_model_package_group(ModelPackageGroupName=group)
