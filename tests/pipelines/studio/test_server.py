"""The Studio over HTTP: pages on an empty or small state, cross-site refusals, safe file routes."""

from __future__ import annotations

import http.client
import json
import re
import threading
from urllib.parse import urlencode

import pytest

from pipelines.local.sagemaker import LocalSageMakerClient
from pipelines.studio import server as studio
from pipelines.studio import state
from processing.kernel.settings import resolve

GROUP = "demand-forecasting"


@pytest.fixture
def settings():
    return resolve().replace(endpoint_port=0)


@pytest.fixture
def running(settings):
    """A Studio on 127.0.0.1, a random port; yields the server."""
    server = studio.make_server(settings, port=0)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )  # quick shutdown
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(server, method, path, body=b"", headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    base = {"Host": f"127.0.0.1:{server.port}"}
    connection.request(method, path, body=body or None, headers={**base, **(headers or {})})
    response = connection.getresponse()
    result = response.status, dict(response.getheaders()), response.read()
    connection.close()
    return result


def post_form(server, path, fields, origin=True, **headers):
    extra = {"Content-Type": "application/x-www-form-urlencoded"}
    if origin:
        extra["Origin"] = f"http://127.0.0.1:{server.port}"
    return request(server, "POST", path, urlencode(fields).encode(), {**extra, **headers})


def register(settings, metrics: dict, status="PendingManualApproval") -> str:
    sm = LocalSageMakerClient(settings)
    try:
        sm.create_model_package_group(ModelPackageGroupName=GROUP)
    except Exception:  # noqa: BLE001 - the group exists already
        pass
    return sm.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [{"Image": "forecast-local-engine:latest"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={f"metric_{k}": str(v) for k, v in metrics.items()},
    )["ModelPackageArn"]


def test_given_an_empty_home_then_every_page_says_what_to_do(running):
    for path, text in (
        ("/", "python -m pipelines.run"),
        ("/registry", "a training run registers one"),
        ("/endpoints", "approve a version"),
    ):
        status, headers, body = request(running, "GET", path)
        assert status == 200 and text in body.decode(), path
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert not re.search(r"""(src|href)=["']https?://""", body.decode()), path  # nothing from the internet


def test_reading_the_pages_of_a_removed_home_does_not_create_it_again(tmp_path, monkeypatch):
    """After `deploy.teardown --include-data`, a Studio left running recreated the home (its
    marker) on /endpoints and an empty registry.sqlite on /registry."""
    from pipelines.studio import pages

    home = tmp_path / "gone"
    monkeypatch.setenv("FORECAST_HOME", str(home))
    settings = resolve()
    assert "a training run registers one" in pages.registry_page(settings, "token")
    assert "approve a version" in pages.endpoints_page(settings)
    assert not home.exists()


def test_given_another_host_header_then_pages_are_refused(running):
    status, _, _ = request(running, "GET", "/", headers={"Host": "attacker.example:80"})
    assert status == 421


def test_given_posts_without_token_or_from_another_origin_then_they_are_refused_and_nothing_changes(running, settings):
    arn = register(settings, {"wape": 0.1})
    cases = [
        ({"arn": arn}, {}),  # no token
        ({"arn": arn, "csrf": "guess"}, {}),  # wrong token
        ({"arn": arn, "csrf": running.csrf_token}, {"Origin": "http://evil.example"}),  # right token, other site
    ]
    for fields, headers in cases:
        status, _, body = post_form(running, "/registry/reject", fields, **headers)
        assert status == 403, body
    status, _, _ = post_form(running, "/registry/reject", {"arn": arn, "csrf": running.csrf_token}, origin=False)
    assert status == 403  # neither Origin nor Referer
    assert (
        LocalSageMakerClient(settings).describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]
        == "PendingManualApproval"
    )
    status, _, _ = request(running, "GET", "/registry/reject?" + urlencode({"arn": arn, "csrf": running.csrf_token}))
    assert status == 404  # no state change over GET


def test_given_a_form_from_the_registry_page_then_reject_goes_through_deploy_approve(running, settings):
    arn = register(settings, {"wape": 0.1})
    page = request(running, "GET", "/registry")[2].decode()
    token = re.search(r"name='csrf' value='([^']+)'", page).group(1)
    assert token == running.csrf_token
    status, headers, _ = post_form(running, "/registry/reject", {"arn": arn, "csrf": token})
    assert status == 303 and headers["Location"].startswith("/registry?m=")
    assert (
        LocalSageMakerClient(settings).describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Rejected"
    )
    page = request(running, "GET", headers["Location"])[2].decode()
    assert "rejected version 1" in page


def test_given_an_unknown_version_when_approving_then_the_page_shows_the_approval_error(running, settings):
    register(settings, {"wape": 0.1})
    missing = "arn:aws:sagemaker:us-east-1:000000000000:model-package/demand-forecasting/9"
    status, headers, _ = post_form(running, "/registry/approve", {"arn": missing, "csrf": running.csrf_token})
    page = request(running, "GET", headers["Location"])[2].decode()
    assert status == 303 and "flash error" in page and "not found in the registry" in page


def test_a_version_the_champion_gate_compared_shows_that_same_holdout_comparison_not_the_registration_metrics(
    settings,
):
    """Each version's registration metrics come from its own holdout: v2, trained two weeks later,
    had the lower WAPE (0.62% vs 0.93%) and got a green arrow, while on the same holdout the
    ChampionGate had measured it worse than v1 (0.62% vs 0.54%)."""
    from pipelines.studio import pages
    from processing.register import champion_metadata

    register(settings, {"wape": 0.0093}, status="Approved")
    arn = register(settings, {"wape": 0.0062, "wql": 0.0039})
    recorded = champion_metadata(
        {"status": "compared", "version": 1, "champion_value": 0.0054, "challenger_value": 0.0062, "tolerance": 0.2}
    )
    LocalSageMakerClient(settings).update_model_package(
        ModelPackageArn=arn, CustomerMetadataProperties={"quality_gate_metric": "WAPE", **recorded}
    )
    newest = state.registry_groups(settings)[0]["versions"][0]
    assert newest["comparison"] == {"wape": (0.0062, 0.0054, False)}  # worse, on the same holdout
    assert newest["comparison_basis"] == "same holdout"
    page = pages.registry_page(settings, "token")
    assert "&#9650; vs 0.54% (v1, same holdout)" in page
    assert "vs 0.93%" not in page
    assert "on its own holdout" in page


def test_given_a_champion_then_each_version_is_compared_with_it(settings):
    register(settings, {"wape": 0.2, "mase": 0.9}, status="Approved")
    register(settings, {"wape": 0.1, "mase": 1.1})
    groups = state.registry_groups(settings)
    newest, champion = groups[0]["versions"]
    assert groups[0]["champion"]["version"] == champion["version"] == 1
    assert newest["comparison"]["wape"] == (0.1, 0.2, True)  # better than the champion
    assert newest["comparison"]["mase"] == (1.1, 0.9, False)  # worse
    assert champion["comparison"] == {}


def test_given_path_tricks_then_no_file_outside_the_execution_is_served(running, settings):
    record_dir = settings.home_path / "executions" / "abc123"
    record_dir.mkdir(parents=True)
    (record_dir / "execution.json").write_text(json.dumps({"execution_id": "abc123", "steps": []}))
    (settings.home_path / "secret.txt").write_text("secret")
    for path in (
        "/executions/..%2Fsecret.txt",
        "/executions/abc123/planner/..%2F..%2Fsecret.txt",
        "/executions/abc123/plots/0",
        "/executions/abc123/steps/x/log",
        "/executions/nope",
    ):
        status, _, body = request(running, "GET", path)
        assert status == 404 and b"secret" not in body.replace(b"secret.txt", b""), path


def test_given_a_running_execution_then_the_json_endpoint_reports_live_elapsed_times(running, settings):
    record_dir = settings.home_path / "executions" / "live123"
    record_dir.mkdir(parents=True)
    record = {
        "execution_id": "live123",
        "pipeline_name": "DemandForecastTraining",
        "status": "Executing",
        "start_time": "2026-01-01T00:00:00+00:00",
        "steps": [
            {
                "name": "PrepareData",
                "type": "Processing",
                "status": "Executing",
                "depends_on": [],
                "start_time": "2026-01-01T00:00:00+00:00",
                "duration_seconds": None,
            }
        ],
    }
    (record_dir / "execution.json").write_text(json.dumps(record))
    status, headers, body = request(running, "GET", "/api/executions/live123")
    live = json.loads(body)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert live["status"] == "Executing" and live["step_status"] == {"PrepareData": "Executing"}
    assert 'data-status="Executing"' in live["graph"] and "Executing" in live["steps"]
    assert re.search(r"\d+m\d\ds", live["duration"])  # elapsed so far, not "-"
    page = request(running, "GET", "/")[2].decode()
    assert '<meta http-equiv="refresh" content="3">' in page  # the list refreshes while one runs


def test_given_a_busy_port_then_main_says_how_to_pick_another(settings, capsys, monkeypatch):
    blocker = studio.make_server(settings, port=0)
    try:
        monkeypatch.setenv("FORECAST_STUDIO_PORT", str(blocker.port))
        assert studio.main([]) == 1
        assert f"cannot listen on 127.0.0.1:{blocker.port}" in capsys.readouterr().err
    finally:
        blocker.server_close()


def test_given_the_environment_then_the_port_setting_comes_from_forecast_studio_port():
    assert resolve(environ={}).studio_port == 8090
    assert resolve(environ={"FORECAST_STUDIO_PORT": "9123"}).studio_port == 9123


def test_given_a_batch_run_then_its_planner_report_and_charts_are_served_and_linked(running, settings, tmp_path):
    folder = tmp_path / "report"
    (folder / "charts").mkdir(parents=True)
    (folder / "report.html").write_text("<html><img src='charts/top.png'></html>")
    (folder / "charts" / "top.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "outside.txt").write_text("not in the report")
    record_dir = settings.home_path / "executions" / "batch123"
    record_dir.mkdir(parents=True)
    (record_dir / "execution.json").write_text(
        json.dumps(
            {
                "execution_id": "batch123",
                "pipeline_name": settings.batch_pipeline_name,
                "status": "Succeeded",
                "steps": [
                    {
                        "name": "Report",
                        "type": "Processing",
                        "status": "Succeeded",
                        "depends_on": [],
                        "outputs": {"report": str(folder)},
                    }
                ],
            }
        )
    )
    page = request(running, "GET", "/executions/batch123")[2].decode()
    assert "href='/executions/batch123/planner/report.html'" in page
    status, headers, body = request(running, "GET", "/executions/batch123/planner/report.html")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"charts/top.png" in body
    status, headers, _ = request(running, "GET", "/executions/batch123/planner/charts/top.png")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert request(running, "GET", "/executions/batch123/planner/..%2Foutside.txt")[0] == 404
    status, _, body = request(running, "GET", "/executions/batch123/record")
    assert status == 200 and b"<svg" in body and b"Report" in body


def test_given_a_retried_execution_with_a_cache_hit_then_the_pages_say_attempt_reused_and_cache_hit(running, settings):
    record_dir = settings.home_path / "executions" / "retried1234"
    record_dir.mkdir(parents=True)
    source = "arn:aws:sagemaker:us-east-1:000000000000:pipeline/p/execution/source123456"
    step = {
        "type": "Processing",
        "status": "Succeeded",
        "depends_on": [],
        "duration_seconds": 1.0,
        "start_time": "2026-01-01T00:00:00+00:00",
        "end_time": "2026-01-01T00:00:01+00:00",
    }
    record = {
        "execution_id": "retried1234",
        "pipeline_name": "DemandForecastTraining",
        "status": "Succeeded",
        "start_time": "2026-01-01T00:00:00+00:00",
        "end_time": "2026-01-01T00:05:00+00:00",
        "duration_seconds": 300.0,
        "attempt": 2,
        "steps": [
            dict(
                step, name="PrepareData", CacheHitResult={"SourcePipelineExecutionArn": source}, reused=True, attempt=1
            ),
            dict(step, name="AutoML", depends_on=["PrepareData"], reused=True, attempt=1),
            dict(step, name="Evaluate", depends_on=["AutoML"], attempt=2, attempt_count=2),
        ],
    }
    (record_dir / "execution.json").write_text(json.dumps(record))
    listing = request(running, "GET", "/")[2].decode()
    assert "attempt 2" in listing
    live = json.loads(request(running, "GET", "/api/executions/retried1234")[2])
    assert "cache hit: outputs of execution source123456" in live["steps"]
    assert "reused from attempt 1 (retry)" in live["steps"]


def test_the_registry_page_shows_metrics_as_deploy_approve_list_does(settings):
    from deploy.approve import metrics_text
    from pipelines.studio import pages

    metrics = {
        "wape": 0.009875,
        "wql": 0.006895,
        "mape": 0.012249,
        "coverage": 0.746857,
        "mase": 0.7262,
        "mae": 15.6355,
    }
    register(settings, {"wape": 0.02, "mase": 0.9}, status="Approved")
    arn = register(settings, metrics)
    gate = {"quality_gate_metric": "WAPE", "quality_gate_value": "0.009875", "quality_gate_threshold": "0.3"}
    LocalSageMakerClient(settings).update_model_package(ModelPackageArn=arn, CustomerMetadataProperties=gate)

    page = pages.registry_page(settings, "token")

    cells = re.findall(r"<td class='metric'>([^<]*)<", page)
    assert cells[:6] == ["0.99%", "0.69%", "0.73", "1.22%", "-", "74.69%"]  # WAPE wQL MASE MAPE RMSE coverage
    assert "<th>WAPE</th><th>wQL</th><th>MASE</th><th>MAPE</th><th>RMSE</th><th>coverage</th>" in page
    assert "vs 2.00%" in page and "vs 0.90" in page  # the champion's values, same format
    assert "WAPE 0.99% &le; 30.00%" in page
    assert "0.009875" not in page and "0.7262" not in page
    listed = metrics_text({f"metric_{k}": str(v) for k, v in metrics.items()})
    for shown in ("WAPE 0.99%", "wQL 0.69%", "MAPE 1.22%", "coverage 74.69%", "MASE 0.73"):
        assert shown in listed


def test_the_execution_page_shows_evaluation_metrics_as_deploy_approve_list_does(settings):
    from pipelines.studio import pages
    from processing.kernel import contracts

    evaluation = {
        "quality_gate": {"metric": "WAPE", "value": 0.009875, "threshold": 0.3, "passed": True},
        "forecast_metrics": {"wape": {"value": 0.009875}, "mase": {"value": 0.7262}, "mae": {"value": 1534.5}},
        "baseline": {"method": "seasonal_naive", "forecast_metrics": {"wape": 0.0451, "mase": 1.9}},
        "skill": {"wape": 0.781, "mase": 0.6178},
    }
    path = settings.home_path / "s3" / "forecast-local" / "x" / "Evaluate" / "evaluation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(evaluation))
    uri = "s3://forecast-local/x/Evaluate/evaluation.json"
    step = {"name": "Evaluate", "status": "Succeeded", "property_files": {contracts.EVALUATION_RESULT_NAME: uri}}

    section = pages.evaluation_section({"steps": [step]}, settings)

    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", section)
    assert rows == [("WAPE", "0.99%", "4.51%", "0.78"), ("MASE", "0.73", "1.90", "0.62"), ("MAE", "1,534.50", "-", "-")]
    assert "= 0.99%, threshold 30.00%" in section and "0.009875" not in section


def test_the_port_flag_help_names_its_variable_and_config_key():
    from pipelines.studio.server import parser

    text = " ".join(parser().format_help().split())
    assert "FORECAST_STUDIO_PORT; studio_port in forecast.toml, else 8090" in text


def test_the_evaluation_card_shows_the_champion_gate_comparison_on_the_same_holdout():
    """A ChallengerLost run's page showed only the challenger's metrics: nothing said what it lost to."""
    from pipelines.studio import pages

    champion = {
        "status": "compared",
        "metric": "WAPE",
        "key": "wape",
        "version": 1,
        "challenger_value": 0.0062,
        "champion_value": 0.0054,
        "tolerance": 0.0,
        "limit": 0.0054,
        "passed": False,
        "challenger_metrics": {"wape": 0.0062, "wql": 0.0039},
        "champion_metrics": {"wape": 0.0054, "wql": 0.0033},
    }
    html_text = pages.champion_section({"champion": champion})
    assert "Champion (version 1) versus challenger, same holdout" in html_text
    assert "WAPE: champion 0.54%, challenger 0.62%, limit 0.54% (ChallengerTolerance 0.0)" in html_text
    assert "champion stays (challenger not registered)" in html_text
    assert "<tr><td>wQL</td><td>0.33%</td><td>0.39%</td></tr>" in html_text
    within = pages.champion_section({"champion": {**champion, "tolerance": 0.2, "limit": 0.00648, "passed": True}})
    assert "challenger registered: worse than the champion, within the tolerance" in within
    assert pages.champion_section({"champion": {"status": "none"}}) == ""


def test_the_evaluation_card_tells_a_challenger_just_above_the_limit_from_it_as_challengerlost_does():
    from evaluation import champion
    from pipelines.studio import pages

    section = champion.comparison(
        {"forecast_metrics": {"wape": {"value": 0.118004}}},
        {"forecast_metrics": {"wape": {"value": 0.118}}},
        {"model_package_version": 3},
        "WAPE",
        0.0,
    )
    html_text = pages.champion_section({"champion": section})
    assert "WAPE: champion 11.8000%, challenger 11.8004%, limit 11.8000%" in html_text
