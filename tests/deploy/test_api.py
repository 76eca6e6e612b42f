"""The real-time forecast API: real prepared data in the local store, a real endpoint process, a real model."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pandas as pd
import pytest

from deploy import api, endpoint
from pipelines.local.store import local_path
from pipelines.settings import resolve
from tests.deploy import endpoint_support as support

pytestmark = pytest.mark.timeout(300)


def prepared_uri(settings, execution: str) -> str:
    return settings.s3_uri("executions", execution, "PrepareData")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """Training pipeline outputs in a local home: PrepareData of one execution, a model, the endpoint."""
    home = tmp_path_factory.mktemp("api-home")
    settings = resolve({"home": str(home), "endpoint_port": support.free_port()})
    frame = support.sales()
    prepared = support.prepare(frame, local_path(prepared_uri(settings, "exec-1"), settings))
    model_dir = support.train_model(pd.read_csv(prepared / "train" / "train.csv"), home / "training")
    try:
        support.deploy(settings, model_dir, version=1)
        yield {"settings": settings, "frame": frame, "model_dir": model_dir, "home": home}
    finally:
        endpoint.stop(home, settings.endpoint_name)


@pytest.fixture
def forecast_api(deployed):
    return api.ForecastApi(deployed["settings"])


def call(forecast_api, request) -> tuple[int, dict]:
    response = forecast_api and api.handler({"body": json.dumps(request) if not isinstance(request, str) else request},
                                            None, forecast_api)
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def test_given_a_known_item_when_forecast_then_real_history_quantiles_mean_and_package_arn(forecast_api, deployed):
    status, body = call(forecast_api, {"item_id": "bread", "horizon": 3, "quantiles": ["p10", "p90"]})

    assert status == 200, body
    assert [row["timestamp"] for row in body["forecast"]] == ["2024-03-25", "2024-03-26", "2024-03-27"]
    assert all(set(row) == {"timestamp", "p10", "p90", "mean"} for row in body["forecast"])
    assert all(row["p10"] <= row["p90"] for row in body["forecast"])
    assert body["model_package_arn"] == support.package_arn(1)
    assert body["history"]["last_timestamp"] == "2024-03-24"        # includes the holdout actuals
    assert body["history"]["points"] == 84
    covariates = body["future_covariates"]
    assert covariates["assumed_zero"] == ["promotion"] and "assumes 0" in covariates["note"]
    assert covariates["from_calendar"] == {"day_of_week": "day_of_week"}
    generated = dt.datetime.fromisoformat(body["generated_at"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.timezone.utc) - generated).total_seconds()) < 60


def test_given_a_known_item_when_forecast_then_values_equal_the_model_on_the_items_real_history(forecast_api, deployed):
    from forecasting import load_model

    status, body = call(forecast_api, {"item_id": "milk"})

    history = deployed["frame"][deployed["frame"]["item_id"] == "milk"]
    context = pd.read_csv(pd.io.common.BytesIO(support.inference_csv(history)), dtype={"item_id": str})
    expected = load_model(deployed["model_dir"]).predict(context)
    assert status == 200 and body["horizon"] == support.HORIZON and body["quantiles"] == list(support.QUANTILES)
    got = pd.DataFrame(body["forecast"])
    assert got["timestamp"].tolist() == expected["timestamp"].tolist()
    for column in ("p10", "p50", "p90", "mean"):
        assert got[column].round(6).tolist() == expected[column].round(6).tolist()


@pytest.mark.parametrize("column, stamps, values, rule", [
    ("dow", pd.date_range("2024-01-01", periods=21, freq="D"), lambda s: s.dayofweek, "day_of_week"),
    ("m", pd.date_range("2024-01-01", periods=20, freq="W-SUN"), lambda s: s.month, "month"),
    ("q", pd.date_range("2024-01-01", periods=30, freq="MS"), lambda s: s.quarter, "quarter"),
    ("promo", pd.date_range("2024-01-01", periods=21, freq="D"), lambda s: [0, 1, 0] * 7, None),
    ("short", pd.date_range("2024-01-01", periods=5, freq="D"), lambda s: s.dayofweek, None),
])
def test_given_a_covariate_column_when_checked_against_the_calendar_then_only_exact_rules_match(column, stamps,
                                                                                                values, rule):
    assert api.calendar_rule(pd.Series(stamps.strftime("%Y-%m-%d")), pd.Series(list(values(stamps)))) == rule


def test_given_future_covariates_in_the_request_when_forecast_then_the_response_says_they_were_used(forecast_api):
    status, body = call(forecast_api, {"item_id": "apple", "covariates": {"promotion": [1] * support.HORIZON}})

    assert status == 200
    assert body["future_covariates"]["from_request"] == ["promotion"] and body["future_covariates"]["assumed_zero"] == []


@pytest.mark.parametrize("request_body, message", [
    ({"horizon": 3}, 'missing "item_id"'),
    ({"item_id": ["apple"]}, '"item_id" must be a string, got list'),
    ({"item_id": True}, '"item_id" must be a string, got boolean'),
    ({"item_id": "apple", "horizon": "3"}, '"horizon" must be a whole number of periods, got string'),
    ({"item_id": "apple", "horizon": 2.5}, '"horizon" must be a whole number'),
    ({"item_id": "apple", "horizon": 0}, '"horizon" must be at least 1'),
    ({"item_id": "apple", "horizon": support.HORIZON + 1}, "beyond the model's forecast horizon of 7"),
    ({"item_id": "apple", "quantiles": "p10"}, '"quantiles" must be a non-empty list'),
    ({"item_id": "apple", "quantiles": ["0.1"]}, "is not a quantile name"),
    ({"item_id": "apple", "quantiles": ["p10", "p10"]}, "lists a quantile twice"),
    ({"item_id": "apple", "quantiles": ["p95"]}, "not produced by the deployed model"),
    ({"item_id": "apple", "colour": "red"}, "unknown field(s) ['colour']"),
    ({"item_id": "apple", "covariates": {"promotion": [1]}}, "give one per future period: 7"),
    ({"item_id": "apple", "covariates": {"price": [1] * 7}}, "not covariates of this model"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
])
def test_given_a_malformed_request_when_forecast_then_400_naming_the_field(forecast_api, request_body, message):
    status, body = call(forecast_api, request_body)

    assert status == 400 and message in body["error"]
    assert "Traceback" not in body["error"]


def test_given_an_unknown_item_when_forecast_then_404(forecast_api):
    status, body = call(forecast_api, {"item_id": "caviar"})

    assert status == 404 and "unknown item_id 'caviar'" in body["error"]


def test_given_a_newer_prepared_dataset_when_forecast_then_the_latest_data_is_used(deployed, tmp_path):
    settings = deployed["settings"]
    longer = support.sales(days=91)
    support.prepare(longer, local_path(prepared_uri(settings, "exec-2"), settings))
    try:
        status, body = call(api.ForecastApi(settings), {"item_id": "apple", "horizon": 1})
    finally:
        import shutil

        shutil.rmtree(local_path(prepared_uri(settings, "exec-2"), settings))
    assert status == 200
    assert body["history"]["last_timestamp"] == "2024-03-31" and "exec-2" in body["history"]["source"]
    assert body["forecast"][0]["timestamp"] == "2024-04-01"


def test_given_no_prepared_data_when_forecast_then_503_saying_how_to_get_some(tmp_path):
    settings = resolve({"home": str(tmp_path / "empty")})
    local_path(settings.s3_uri(), settings).mkdir(parents=True)

    status, body = call(api.ForecastApi(settings), {"item_id": "apple"})

    assert status == 503 and "no prepared data" in body["error"] and "pipelines.run" in body["error"]


def test_given_a_stopped_endpoint_when_forecast_then_502(deployed):
    settings = deployed["settings"]
    support.deploy(settings, deployed["model_dir"], version=1, endpoint_name="stopped-endpoint")
    endpoint.stop(deployed["home"], "stopped-endpoint")

    status, body = call(api.ForecastApi(settings, endpoint_name="stopped-endpoint"), {"item_id": "apple"})

    assert status == 502 and "stopped-endpoint" in body["error"]


def test_given_a_second_approved_version_when_deployed_then_the_api_serves_it(deployed, tmp_path):
    settings = deployed["settings"]
    name = "swap-endpoint"
    support.deploy(settings, deployed["model_dir"], version=1, endpoint_name=name)
    try:
        v2 = support.train_model(deployed["frame"], tmp_path / "v2", quantiles=("p25", "p50", "p75"))
        status_before, before = call(api.ForecastApi(settings, endpoint_name=name), {"item_id": "apple"})
        described = support.deploy(settings, v2, version=2, endpoint_name=name)
        status_after, after = call(api.ForecastApi(settings, endpoint_name=name), {"item_id": "apple"})
    finally:
        endpoint.stop(deployed["home"], name)
    assert (status_before, status_after) == (200, 200)
    assert described["EndpointStatus"] == "InService" and described["EndpointConfigName"] == f"{name}-v2"
    assert before["quantiles"] == ["p10", "p50", "p90"] and before["model_package_arn"] == support.package_arn(1)
    assert after["quantiles"] == ["p25", "p50", "p75"] and after["model_package_arn"] == support.package_arn(2)


def run_cli(deployed, *args):
    return subprocess.run([sys.executable, "-m", "deploy.api", *args, "--home", str(deployed["home"])],
                          capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "FORECAST_ENDPOINT_PORT": str(deployed["settings"].endpoint_port)})


def test_given_the_invoke_cli_when_the_item_is_known_then_it_prints_the_forecast_and_exits_0(deployed):
    result = run_cli(deployed, "invoke", "--item-id", "apple", "--horizon", "2", "--quantiles", "p50")

    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert len(body["forecast"]) == 2 and set(body["forecast"][0]) == {"timestamp", "p50", "mean"}


@pytest.mark.parametrize("args, message", [(("--item-id", "caviar"), "unknown item_id"),
                                           (("--item-id", "apple", "--horizon", "99"), "beyond")])
def test_given_the_invoke_cli_when_the_request_fails_then_it_prints_the_error_and_exits_non_zero(deployed, args,
                                                                                               message):
    result = run_cli(deployed, "invoke", *args)

    assert result.returncode == 1 and message in json.loads(result.stdout)["error"]


def test_given_the_api_server_when_posted_then_it_answers_like_the_handler(deployed):
    port = support.free_port()
    server = subprocess.Popen([sys.executable, "-m", "deploy.api", "serve", "--port", str(port),
                               "--home", str(deployed["home"])], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert "/forecast" in server.stdout.readline().decode()
        url = f"http://127.0.0.1:{port}"
        status, _, body = endpoint.http_request(url + "/forecast", "POST", b'{"item_id": "bread", "horizon": 2}')
        bad_status, _, bad = endpoint.http_request(url + "/forecast", "POST", b'{"horizon": 2}')
        via_cli = run_cli(deployed, "invoke", "--item-id", "bread", "--url", url)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert status == 200 and len(json.loads(body)["forecast"]) == 2
    assert bad_status == 400 and "item_id" in json.loads(bad)["error"]
    assert via_cli.returncode == 0 and json.loads(via_cli.stdout)["item_id"] == "bread"


def test_given_two_registered_versions_when_each_is_approved_then_the_endpoint_and_api_serve_it(tmp_path):
    """Local end to end: PrepareData -> engine -> registry -> approve (deploy handler) -> endpoint -> API."""
    from deploy.approve import approve
    from pipelines.clients import client
    from pipelines.local.store import to_uri

    settings = resolve({"home": str(tmp_path / "home"), "endpoint_port": support.free_port()})
    sm = client("sagemaker", settings)
    prepared = support.prepare(support.sales(), local_path(prepared_uri(settings, "exec-9"), settings))
    train = pd.read_csv(prepared / "train" / "train.csv")
    sm.create_model_package_group(ModelPackageGroupName=settings.model_package_group)
    arns = []
    for version, quantiles in ((1, ("p10", "p50", "p90")), (2, ("p25", "p50", "p75"))):
        model_dir = support.train_model(train, local_path(settings.s3_uri("automl", f"v{version}"), settings),
                                        quantiles=quantiles)
        arns.append(sm.create_model_package(
            ModelPackageGroupName=settings.model_package_group, ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={"Containers": [{"Image": "local/forecasting",
                                                    "ModelDataUrl": to_uri(model_dir, settings)}],
                                    "SupportedContentTypes": ["text/csv"],
                                    "SupportedResponseMIMETypes": ["text/csv"]})["ModelPackageArn"])
    try:
        first = approve(sm, settings, arns[0], log=lambda *_: None)
        state = endpoint.running_state(settings.home_path, settings.endpoint_name)
        assert first["deployment"]["status"] == "deployed" and endpoint.ping(state["url"])
        status, _, body = endpoint.http_request(state["url"] + "/invocations", "POST",
                                                support.inference_csv(support.sales()), {"Content-Type": "text/csv"})
        assert status == 200 and b"p10,p50,p90,mean" in body
        status_1, answer_1 = call(api.ForecastApi(settings), {"item_id": "apple"})

        approve(sm, settings, arns[1], log=lambda *_: None)
        status_2, answer_2 = call(api.ForecastApi(settings), {"item_id": "apple"})
        same_server = endpoint.running_state(settings.home_path, settings.endpoint_name)["pid"] == state["pid"]
    finally:
        endpoint.stop(settings.home_path, settings.endpoint_name)
    assert (status_1, answer_1["model_package_arn"], answer_1["quantiles"]) == (200, arns[0], ["p10", "p50", "p90"])
    assert (status_2, answer_2["model_package_arn"], answer_2["quantiles"]) == (200, arns[1], ["p25", "p50", "p75"])
    assert same_server     # updated in place, no restart


def test_given_the_invoke_request_then_it_validates_against_the_botocore_model():
    from pipelines.aws_validation import request_problems

    params = api.invoke_params("demand-forecast", support.inference_csv(support.sales()).decode())

    assert request_problems("sagemaker-runtime", "InvokeEndpoint", params) == []


def test_given_the_sagemaker_target_when_forecast_then_s3_data_the_endpoint_and_its_tags_are_used(moto_endpoint,
                                                                                                    tmp_path):
    """The AWS path against a moto server on loopback: boto3 clients from the factory, nothing local."""
    import boto3
    import requests

    from tests.conftest import FAKE_ACCOUNT_ROLE

    settings = resolve({"target": "sagemaker", "region": "us-east-1", "bucket": "forecast-api-test",
                        "role_arn": FAKE_ACCOUNT_ROLE})
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=settings.bucket)
    frame = support.sales()
    prepared = support.prepare(frame, tmp_path / "prep")
    prefix = f"{settings.prefix}/executions/e-1/PrepareData"
    for path in prepared.rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), settings.bucket, f"{prefix}/{path.relative_to(prepared).as_posix()}")
    sm = boto3.client("sagemaker", region_name="us-east-1")
    sm.create_model(ModelName="m1", ExecutionRoleArn=FAKE_ACCOUNT_ROLE, PrimaryContainer={
        "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/forecast:1",
        "ModelDataUrl": f"s3://{settings.bucket}/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName="c1", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "m1", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName=settings.endpoint_name, EndpointConfigName="c1",
                       Tags=[{"Key": "model-package-arn", "Value": support.package_arn(5)}])
    model = support.train_model(frame, tmp_path / "model")
    from forecasting import load_model

    apple = frame[frame["item_id"] == "apple"]
    context = pd.read_csv(pd.io.common.BytesIO(support.inference_csv(apple)), dtype={"item_id": str})
    forecast_csv = load_model(model).predict(context).to_csv(index=False)
    requests.post(f"{moto_endpoint}/moto-api/static/sagemaker/endpoint-results", timeout=10,
                  json={"results": [{"Body": forecast_csv, "ContentType": "text/csv"}]})

    status, body = call(api.ForecastApi(settings), {"item_id": "apple", "horizon": 2})

    assert status == 200, body
    assert body["history"]["source"] == f"s3://{settings.bucket}/{prefix}" and body["history"]["points"] == 84
    assert body["model_package_arn"] == support.package_arn(5)
    assert [row["timestamp"] for row in body["forecast"]] == ["2024-03-25", "2024-03-26"]


def test_given_items_sold_in_several_stores_when_forecast_then_grouping_picks_the_series(tmp_path):
    settings = resolve({"home": str(tmp_path / "home"), "endpoint_port": support.free_port()})
    north, south = support.sales(), support.sales(scale=3.0, seed=1)
    frame = pd.concat([north.assign(store="north"), south.assign(store="south")], ignore_index=True)
    prepared = support.prepare(frame, local_path(prepared_uri(settings, "exec-g"), settings), grouping=("store",))
    model_dir = support.train_model(pd.read_csv(prepared / "train" / "train.csv"), tmp_path / "model",
                                    grouping=("store",))
    support.deploy(settings, model_dir, version=1)
    forecast_api = api.ForecastApi(settings)
    try:
        ambiguous = call(forecast_api, {"item_id": "apple"})
        north_status, north_body = call(forecast_api, {"item_id": "apple", "grouping": {"store": "north"}})
        south_status, south_body = call(forecast_api, {"item_id": "apple", "grouping": {"store": "south"}})
        missing = call(forecast_api, {"item_id": "apple", "grouping": {"store": "east"}})
        wrong_column = call(forecast_api, {"item_id": "apple", "grouping": {"region": "north"}})
    finally:
        endpoint.stop(settings.home_path, settings.endpoint_name)
    assert ambiguous[0] == 400 and "has 2 series" in ambiguous[1]["error"] and "'store': 'south'" in ambiguous[1]["error"]
    assert (north_status, south_status) == (200, 200)
    assert north_body["grouping"] == {"store": "north"} and south_body["grouping"] == {"store": "south"}
    mean = lambda body: sum(row["mean"] for row in body["forecast"])  # noqa: E731
    assert mean(south_body) > 2 * mean(north_body)       # the south store sells three times as much
    assert missing[0] == 404 and "no series with grouping {'store': 'east'}" in missing[1]["error"]
    assert wrong_column[0] == 400 and "not grouping columns of this model (['store'])" in wrong_column[1]["error"]


def test_given_loaded_data_when_the_next_lookup_finds_none_then_the_api_keeps_serving_what_it_has(deployed):
    import shutil

    settings = deployed["settings"].replace(prefix="copied")
    source = local_path(prepared_uri(deployed["settings"], "exec-1"), settings)
    shutil.copytree(source, local_path(prepared_uri(settings, "exec-1"), settings))
    forecast_api = api.ForecastApi(settings)
    first = call(forecast_api, {"item_id": "apple", "horizon": 1})
    shutil.rmtree(local_path(settings.s3_uri(), settings))
    forecast_api._data_checked = 0.0          # the 30 s re-check is due now

    second = call(forecast_api, {"item_id": "apple", "horizon": 1})

    assert first[0] == second[0] == 200 and first[1]["forecast"] == second[1]["forecast"]
    assert call(api.ForecastApi(settings), {"item_id": "apple"})[0] == 503   # a fresh API has nothing to serve


def test_given_item_ids_with_leading_zeros_when_forecast_then_007_and_7_are_two_items(tmp_path):
    """The API's history reader keeps ids as text: '007' is not item 7."""
    settings = resolve({"home": str(tmp_path / "home"), "endpoint_port": support.free_port()})
    frame = support.sales()
    codes = dict(zip(sorted(frame["item_id"].unique()), ["007", "7", "0042", "42"]))
    frame["item_id"] = frame["item_id"].map(codes)
    prepared = support.prepare(frame, local_path(prepared_uri(settings, "exec-z"), settings))
    model_dir = support.train_model(pd.read_csv(prepared / "train" / "train.csv", dtype={"item_id": str}),
                                    tmp_path / "model")
    support.deploy(settings, model_dir, version=1)
    forecast_api = api.ForecastApi(settings)
    try:
        answers = {item: call(forecast_api, {"item_id": item}) for item in ("007", "7")}
    finally:
        endpoint.stop(settings.home_path, settings.endpoint_name)
    assert [answers[item][0] for item in ("007", "7")] == [200, 200], answers
    assert answers["007"][1]["item_id"] == "007" and answers["7"][1]["item_id"] == "7"
    assert answers["007"][1]["forecast"] != answers["7"][1]["forecast"]
