"""The loopback SageMaker API against real boto3 clients and raw requests in its wire protocol."""

from __future__ import annotations

import datetime
import json
import urllib.error
import urllib.request

import boto3
import botocore.parsers
import botocore.session
import pytest
from botocore.exceptions import ClientError

from pipelines.local.aws_api import CONTENT_TYPE, LocalAWSServer

GROUP = "demand-forecasting"


@pytest.fixture
def sm(local_api):
    return boto3.client("sagemaker", region_name="us-east-1")


def raw(server: LocalAWSServer, operation: str, body: bytes) -> tuple:
    """POST one request the way botocore frames it; returns (status, headers, body)."""
    request = urllib.request.Request(
        server.url + "/",
        data=body,
        method="POST",
        headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": f"SageMaker.{operation}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def parsed_error(status: int, headers: dict, body: bytes, operation: str) -> dict:
    """What botocore makes of the reply (its own json parser, as a client would)."""
    model = botocore.session.get_session().get_service_model("sagemaker").operation_model(operation)
    response = {"status_code": status, "headers": headers, "body": body}
    return botocore.parsers.create_parser("json").parse(response, model.output_shape)["Error"]


def test_describe_of_a_missing_job_is_resource_not_found(sm, local_api):
    with pytest.raises(ClientError) as raised:
        sm.describe_auto_ml_job_v2(AutoMLJobName="never-started")

    assert raised.value.response["Error"]["Code"] == "ResourceNotFound"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "never-started" in raised.value.response["Error"]["Message"]
    assert sm.exceptions.ResourceNotFound is type(raised.value)  # botocore's modelled exception class
    assert local_api.take_calls() == [
        {
            "service": "sagemaker",
            "operation": "DescribeAutoMLJobV2",
            "status": 400,
            "error": "ResourceNotFound",
            "count": 1,
        }
    ]


def test_a_poll_answered_the_same_way_is_reported_once_then_counted(sm, local_api):
    # given the calls reported to a step's log
    lines: list = []
    local_api.sink = lines.append
    # when a job is polled three times, then something else is asked, then it is polled twice more
    for name in ("never-started",) * 3 + ("other",) + ("never-started",) * 2:
        with pytest.raises(ClientError):
            sm.describe_auto_ml_job_v2(AutoMLJobName=name)
    local_api.sink = None  # the step ends
    # then each run of identical lines is its first line and a count, the count when the answer changed
    first, other = lines[0], lines[2]
    assert (
        first.startswith("[aws api] sagemaker DescribeAutoMLJobV2 -> 400 ResourceNotFound: ")
        and "never-started" in first
    )
    assert "other" in other and "never-started" not in other
    assert lines == [first, f"{first} (x2 more)", other, first, f"{first} (x1 more)"]
    # and the record still has every call
    assert sum(c["count"] for c in local_api.take_calls()) == 6


def test_a_request_breaking_the_service_model_is_a_validation_exception(local_api):
    """botocore itself skips patterns and some bounds; the server checks them like AWS does."""
    body = json.dumps({"ModelPackageGroupName": "no spaces allowed", "Tags": [{"Key": "k"}]}).encode()

    status, headers, reply = raw(local_api, "CreateModelPackageGroup", body)

    assert status == 400 and headers["x-amzn-ErrorType"] == "ValidationException"
    error = parsed_error(status, headers, reply, "CreateModelPackageGroup")
    assert error["Code"] == "ValidationException"
    assert "ModelPackageGroupName" in error["Message"] and "does not match the pattern" in error["Message"]
    assert "Tags[0]: missing required member Value" in error["Message"]


def test_a_body_that_is_not_json_is_a_serialization_exception(local_api):
    status, headers, reply = raw(local_api, "DescribeModel", b"{not json")
    assert status == 400
    assert parsed_error(status, headers, reply, "DescribeModel")["Code"] == "SerializationException"


def test_datetimes_round_trip_as_epoch_seconds(sm, local_api):
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)

    described = sm.describe_model_package_group(ModelPackageGroupName=GROUP)

    created = described["CreationTime"]
    assert isinstance(created, datetime.datetime) and created.tzinfo is not None
    assert before <= created <= datetime.datetime.now(datetime.timezone.utc)
    status, _, body = raw(local_api, "DescribeModelPackageGroup", json.dumps({"ModelPackageGroupName": GROUP}).encode())
    assert status == 200 and isinstance(json.loads(body)["CreationTime"], (int, float))  # epoch seconds on the wire
    # and a timestamp sent in a request arrives as one: groups created after `before` include ours
    listed = sm.list_model_package_groups(CreationTimeAfter=before)["ModelPackageGroupSummaryList"]
    assert [g["ModelPackageGroupName"] for g in listed] == [GROUP]
    assert (
        sm.list_model_package_groups(CreationTimeAfter=created + datetime.timedelta(hours=1))[
            "ModelPackageGroupSummaryList"
        ]
        == []
    )


def test_an_operation_it_does_not_serve_is_named(sm):
    with pytest.raises(ClientError) as raised:
        sm.list_pipelines()
    assert raised.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "does not serve SageMaker ListPipelines" in raised.value.response["Error"]["Message"]
    assert "CreateAutoMLJobV2" in raised.value.response["Error"]["Message"]  # ... and says what it serves


@pytest.mark.parametrize(
    "service, call, named",
    [
        ("s3", lambda c: c.delete_bucket(Bucket="forecast-local"), "s3 DELETE /forecast-local"),
        ("sts", lambda c: c.get_caller_identity(), "sts GetCallerIdentity"),
        ("lambda", lambda c: c.list_functions(), "lambda GET /2015-03-31/functions"),
        ("logs", lambda c: c.describe_log_groups(), "logs Logs_20140328.DescribeLogGroups"),
    ],
)
def test_any_other_aws_service_lands_on_loopback_and_fails_naming_the_call(local_api, service, call, named):
    """AWS_ENDPOINT_URL sends every other service here too: a step can reach no AWS at all."""
    with pytest.raises(ClientError) as raised:
        call(boto3.client(service, region_name="us-east-1"))
    assert raised.value.response["Error"]["Code"] == "NotServedLocally"
    assert f"this step called {named}" in raised.value.response["Error"]["Message"]
    [served] = local_api.take_calls()
    assert (served["service"], served["status"], served["error"]) == (service, 400, "NotServedLocally")


def test_a_step_environment_points_boto3_at_loopback_with_dummy_credentials(local_api):
    env = local_api.step_environment()
    assert env["AWS_ENDPOINT_URL_SAGEMAKER"] == env["AWS_ENDPOINT_URL"] == local_api.url
    assert local_api.url.startswith("http://127.0.0.1:")
    assert env["AWS_EC2_METADATA_DISABLED"] == "true" and env["AWS_REGION"] == "us-east-1"
    assert boto3.client("sagemaker", region_name="us-east-1").meta.endpoint_url == local_api.url


def test_closing_the_server_stops_the_automl_jobs_it_started(sm, local_api, tmp_path):
    """No training process outlives the runtime that owns it."""
    from pipelines.local import automl_worker
    from processing.automl_request import build_request

    request = build_request(
        train_uri="s3://b/train/",
        output_uri="s3://b/automl",
        job_name="job-orphan",
        role_arn="arn:aws:iam::000000000000:role/forecast-local",
        horizon=7,
        algorithms="npts",
        holiday_country="",
        max_runtime_seconds=600,
    )
    sm.create_auto_ml_job_v2(**request)
    process = automl_worker._JOBS[(str(local_api.settings.home_path), "job-orphan")].process
    assert sm.describe_auto_ml_job_v2(AutoMLJobName="job-orphan")["AutoMLJobStatus"] == "InProgress"

    assert local_api.close() == ["job-orphan"]

    assert process.poll() is not None
    assert local_api.client.describe_auto_ml_job_v2(AutoMLJobName="job-orphan")["AutoMLJobStatus"] == "Stopped"


# --- S3 and CloudWatch, the calls ChampionForecast and MonitorForecasts make -----------------------
def test_s3_objects_round_trip_through_the_local_store(local_api):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket="forecast-local", Key="p/forecast-history/e1/forecasts.csv", Body=b"item_id\n007\n")
    s3.put_object(Bucket="forecast-local", Key="p/forecast-history/e2/meta & <odd>.json", Body=b"{}")
    s3.put_object(Bucket="forecast-local", Key="other/x.csv", Body=b"x")

    stored = local_api.settings.home_path / "s3" / "forecast-local" / "p" / "forecast-history" / "e1" / "forecasts.csv"
    assert stored.read_bytes() == b"item_id\n007\n"
    keys = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket="forecast-local", Prefix="p/forecast-history/", PaginationConfig={"PageSize": 1}
        )
        for item in page.get("Contents") or []
    ]
    assert keys == ["p/forecast-history/e1/forecasts.csv", "p/forecast-history/e2/meta & <odd>.json"]
    assert s3.list_objects_v2(Bucket="forecast-local", Prefix="p/", Delimiter="/")["CommonPrefixes"] == [
        {"Prefix": "p/forecast-history/"}
    ]
    assert s3.list_objects_v2(Bucket="forecast-local", Prefix="empty/")["KeyCount"] == 0
    body = s3.get_object(Bucket="forecast-local", Key="p/forecast-history/e1/forecasts.csv")["Body"].read()
    assert body == b"item_id\n007\n"
    ranged = s3.get_object(Bucket="forecast-local", Key="p/forecast-history/e1/forecasts.csv", Range="bytes=8-10")
    assert ranged["Body"].read() == b"007" and ranged["ContentRange"] == "bytes 8-10/12"
    assert s3.head_object(Bucket="forecast-local", Key="other/x.csv")["ContentLength"] == 1
    with pytest.raises(ClientError) as raised:
        s3.get_object(Bucket="forecast-local", Key="p/missing.csv")
    assert raised.value.response["Error"]["Code"] == "NoSuchKey"
    assert s3.exceptions.NoSuchKey is type(raised.value)
    operations = [(c["service"], c["operation"], c["status"]) for c in local_api.take_calls()]
    assert ("s3", "PutObject", 200) in operations and ("s3", "ListObjectsV2", 200) in operations
    assert operations[-1] == ("s3", "GetObject", 404)


def test_s3_download_file_uses_ranged_gets_that_the_server_serves(local_api, tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    data = bytes(range(256)) * 40000  # 10 MB: s3transfer splits it into ranged GETs
    s3.put_object(Bucket="forecast-local", Key="big.bin", Body=data)
    s3.download_file("forecast-local", "big.bin", str(tmp_path / "big.bin"))
    assert (tmp_path / "big.bin").read_bytes() == data


def cloudwatch_model_speaking(protocol, tmp_path, monkeypatch):
    """botocore's CloudWatch model with only `protocol`: a real client in that protocol whatever
    this botocore prefers (botocore 1.43, the processing image's, speaks smithy-rpc-v2-cbor; 1.44 json)."""
    loader = botocore.session.get_session().get_component("data_loader")
    model = loader.load_service_model("cloudwatch", "service-2")
    model["metadata"]["protocol"] = protocol
    model["metadata"]["protocols"] = [protocol]
    version = model["metadata"]["apiVersion"]
    folder = tmp_path / "models" / "cloudwatch" / version
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path / "models"))


@pytest.mark.parametrize("protocol", ["smithy-rpc-v2-cbor", "json"])
def test_put_metric_data_lands_in_the_metrics_file_in_either_protocol(local_api, protocol, tmp_path, monkeypatch):
    cloudwatch_model_speaking(protocol, tmp_path, monkeypatch)
    cloudwatch = boto3.session.Session().client("cloudwatch", region_name="us-east-1")
    sent = []
    cloudwatch.meta.events.register("before-send", lambda request, **_: sent.append(dict(request.headers)))
    stamp = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)
    cloudwatch.put_metric_data(
        Namespace="DemandForecasting/Accuracy",
        MetricData=[
            {
                "MetricName": "WQL",
                "Value": 0.25,
                "Unit": "None",
                "Timestamp": stamp,
                "Dimensions": [{"Name": "ModelPackageVersion", "Value": "3"}],
            }
        ],
    )

    [datum] = local_api.cloudwatch.read()
    assert datum["Namespace"] == "DemandForecasting/Accuracy" and datum["MetricName"] == "WQL"
    assert datum["Value"] == 0.25 and datum["Dimensions"] == [{"Name": "ModelPackageVersion", "Value": "3"}]
    assert datetime.datetime.fromisoformat(datum["Timestamp"]) == stamp
    assert local_api.cloudwatch.path == local_api.settings.home_path / "cloudwatch" / "metrics.jsonl"
    expected = b"application/cbor" if protocol == "smithy-rpc-v2-cbor" else b"application/x-amz-json-1.0"
    assert sent[0]["Content-Type"] == expected
    with pytest.raises(ClientError) as raised:
        cloudwatch.list_metrics()
    assert raised.value.response["Error"]["Code"] == "NotServedLocally"
    assert [(c["service"], c["operation"], c["status"]) for c in local_api.take_calls()] == [
        ("cloudwatch", "PutMetricData", 200),
        ("cloudwatch", "ListMetrics", 400),
    ]


def test_a_cbor_put_metric_data_breaking_the_model_is_rejected(local_api):
    from botocore.serialize import RpcV2CBORSerializer

    model = botocore.session.get_session().get_service_model("cloudwatch")
    body = bytearray()
    RpcV2CBORSerializer()._serialize_data_item(
        body, {"Namespace": "N", "MetricData": [{"Value": 1.0}]}, model.operation_model("PutMetricData").input_shape
    )
    raw_request = urllib.request.Request(
        local_api.url + "/service/GraniteServiceVersion20100801/operation/PutMetricData",
        data=bytes(body),
        method="POST",
        headers={
            "Content-Type": "application/cbor",
            "smithy-protocol": "rpc-v2-cbor",
            "Authorization": "AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/monitoring/"
            "aws4_request, SignedHeaders=host, Signature=0",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(raw_request, timeout=30)
    assert raised.value.code == 400 and raised.value.headers["Content-Type"] == "application/cbor"
    error = botocore.parsers.RpcV2CBORParser().parse_data_item(__import__("io").BytesIO(raised.value.read()))
    assert error["__type"] == "ValidationError" and "MetricName" in error["message"]
    assert local_api.cloudwatch.read() == []


def test_the_definition_checks_and_the_api_read_the_sagemaker_service_model_once(monkeypatch):
    """The runtime checks the definition's property paths, then starts the API: one JSON parse, not two."""
    import botocore.loaders

    from pipelines.local import graph
    from processing.kernel import aws_validation

    monkeypatch.setattr(aws_validation, "_SESSION", None)  # a process that has read no service model yet
    graph._sagemaker_model.cache_clear()
    loaded: list = []
    original = botocore.loaders.JSONFileLoader.load_file

    def counting(self, file_path):
        loaded.append(str(file_path))
        return original(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", counting)
    assert graph._sagemaker_model().operation_model("DescribeProcessingJob").output_shape is not None
    assert aws_validation._service_model("sagemaker").operation_model("CreateAutoMLJobV2") is not None
    models = [path for path in loaded if "/sagemaker/" in path and path.rsplit("/", 1)[-1] == "service-2"]
    assert len(models) == 1, loaded
    graph._sagemaker_model.cache_clear()
