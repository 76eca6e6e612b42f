"""The local endpoint's SageMaker container contract, over real HTTP on 127.0.0.1, with real engine models."""
from __future__ import annotations

import concurrent.futures
import io
import json
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from deploy import endpoint
from tests.deploy import endpoint_support as support

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two tiny real models: A forecasts p10/p50/p90, B (a later version) p25/p50/p75."""
    root = tmp_path_factory.mktemp("models")
    frame = support.sales()
    return {"frame": frame,
            "a": support.train_model(frame, root / "a"),
            "b": support.train_model(frame, root / "b", quantiles=("p25", "p50", "p75"))}


@pytest.fixture
def server(models, tmp_path):
    """An endpoint server in this process (thread) serving model A on a free port; always shut down."""
    slot = endpoint.ModelSlot(endpoint.engine_loader, tmp_path / "cache")
    instance = endpoint.EndpointServer(0, "test", slot)
    thread = threading.Thread(target=instance.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield instance
    instance.shutdown()
    instance.server_close()


@pytest.fixture
def loaded(server, models):
    server.slot.load(models["a"], "arn:aws:sagemaker:us-east-1:000000000000:model-package/demand/1")
    return server


def post(server, body, content_type="text/csv", accept=None, route="/invocations"):
    headers = {"Content-Type": content_type} | ({"Accept": accept} if accept else {})
    status, headers, answer = endpoint.http_request(server.url + route, "POST", body, headers)
    return status, headers, answer


def test_given_no_model_yet_when_pinged_then_503_and_invocations_refused(server):
    assert endpoint.http_request(server.url + "/ping")[0] == 503
    status, _, body = post(server, support.inference_csv(support.sales()))
    assert status == 503 and "no model is loaded" in json.loads(body)["error"]


def test_given_a_loaded_model_when_pinged_then_200(loaded):
    assert endpoint.http_request(loaded.url + "/ping")[0] == 200


def test_given_inference_csv_when_invoked_then_autopilot_layout_for_every_item_and_future_period(loaded, models):
    status, headers, body = post(loaded, support.inference_csv(models["frame"]))

    assert status == 200 and headers["content-type"] == "text/csv"
    out = pd.read_csv(io.BytesIO(body))
    assert list(out.columns) == ["item_id", "timestamp", "p10", "p50", "p90", "mean"]
    assert sorted(out["item_id"].unique()) == sorted(support.ITEMS)
    assert out.groupby("item_id").size().eq(support.HORIZON).all()
    last = models["frame"]["timestamp"].max()
    assert (out["timestamp"] > last).all()
    assert ((out["p10"] <= out["p50"]) & (out["p50"] <= out["p90"])).all()
    assert ((out["p10"] <= out["mean"]) & (out["mean"] <= out["p90"])).all()   # one coherent distribution


def test_given_json_instances_when_invoked_with_accept_json_then_same_forecast_as_csv(loaded, models):
    csv_body = support.inference_csv(models["frame"])
    rows = json.loads(pd.read_csv(io.BytesIO(csv_body)).to_json(orient="records"))
    for row in rows:   # "forecast this" may be a missing target as well as a null one
        if row["target_value"] is None:
            del row["target_value"]

    status, headers, body = post(loaded, json.dumps({"instances": rows}).encode(), "application/json",
                                 accept="application/json")

    assert status == 200 and headers["content-type"] == "application/json"
    predictions = pd.DataFrame(json.loads(body)["predictions"])
    expected = pd.read_csv(io.BytesIO(post(loaded, csv_body)[2]))
    pd.testing.assert_frame_equal(predictions.reset_index(drop=True), expected, check_dtype=False)


def test_given_the_split_json_shape_when_invoked_then_it_forecasts(loaded, models):
    frame = pd.read_csv(io.BytesIO(support.inference_csv(models["frame"])))
    document = json.loads(frame.to_json(orient="split", index=False))

    status, _, body = post(loaded, json.dumps({"columns": document["columns"], "data": document["data"]}).encode(),
                           "application/json")

    assert status == 200
    assert len(pd.read_csv(io.BytesIO(body))) == len(support.ITEMS) * support.HORIZON


@pytest.mark.parametrize("body, content_type, message", [
    (b"", "text/csv", "empty request body"),
    (b"{not json", "application/json", "not valid JSON"),
    (b'{"rows": []}', "application/json", '{"instances"'),
    (b'{"columns": ["a", "b"], "data": [[1]]}', "application/json", "row 0 must be a list of 2 values"),
    (b"item_id,timestamp,target_value\n", "text/csv", "no rows"),
    (b"a,b\n1,2\n", "text/csv", "cannot forecast this input"),
    (b"x", "application/xml", "unsupported Content-Type"),
])
def test_given_bad_input_when_invoked_then_400_with_a_message_and_no_traceback(loaded, body, content_type, message):
    status, headers, answer = post(loaded, body, content_type)

    assert status == 400 and headers["content-type"] == "application/json"
    error = json.loads(answer)["error"]
    assert message in error and "Traceback" not in error


def test_given_history_without_future_covariates_when_invoked_then_400_naming_the_problem(loaded, models):
    history_only = models["frame"].to_csv(index=False).encode()

    status, _, answer = post(loaded, history_only)

    assert status == 400
    assert "future rows" in json.loads(answer)["error"]


def test_given_some_traffic_when_metrics_read_then_counts_latency_and_package_arn(loaded, models):
    good = support.inference_csv(models["frame"])
    for _ in range(3):
        assert post(loaded, good)[0] == 200
    assert post(loaded, b"")[0] == 400

    status, _, body = endpoint.http_request(loaded.url + "/metrics")

    metrics = json.loads(body)
    assert status == 200
    assert metrics["invocations"] == 4 and metrics["invocation_errors"] == 1
    assert metrics["errors_4xx"] == 1 and metrics["errors_5xx"] == 0
    assert metrics["latency_ms"]["window"] == 4
    assert 0 < metrics["latency_ms"]["p50"] <= metrics["latency_ms"]["p99"]
    assert metrics["model_package_arn"].endswith("model-package/demand/1")
    assert metrics["uptime_seconds"] > 0


def test_given_traffic_when_the_model_is_swapped_then_no_request_fails_and_the_new_model_serves(loaded, models):
    body = support.inference_csv(models["frame"])
    stop = threading.Event()

    def hammer():
        statuses = []
        while not stop.is_set():
            statuses.append(post(loaded, body)[0])
        return statuses

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        clients = [pool.submit(hammer) for _ in range(4)]
        time.sleep(0.3)
        status, _, answer = post(loaded, json.dumps({"model_dir": str(models["b"]),
                                                     "model_package_arn": "arn:b"}).encode(),
                                 "application/json", route="/admin/reload")
        time.sleep(0.3)
        stop.set()
        statuses = [s for future in clients for s in future.result()]

    assert status == 200 and json.loads(answer)["reloads"] == 1
    assert len(statuses) > 4 and set(statuses) == {200}
    after = pd.read_csv(io.BytesIO(post(loaded, body)[2]))
    assert list(after.columns) == ["item_id", "timestamp", "p25", "p50", "p75", "mean"]   # model B answers
    metrics = json.loads(endpoint.http_request(loaded.url + "/metrics")[2])
    assert metrics["model_package_arn"] == "arn:b" and metrics["model_reloads"] == 1


def test_given_a_missing_model_dir_when_reloaded_then_400_and_the_old_model_keeps_serving(loaded, models, tmp_path):
    status, _, answer = post(loaded, json.dumps({"model_dir": str(tmp_path / "nope")}).encode(),
                             "application/json", route="/admin/reload")

    assert status == 400 and "does not exist" in json.loads(answer)["error"]
    assert post(loaded, support.inference_csv(models["frame"]))[0] == 200


def test_given_a_model_archive_when_resolved_then_extracted_once(models, tmp_path):
    import tarfile

    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in models["a"].iterdir():
            tar.add(path, arcname=path.name)

    first = endpoint.resolve_model_dir(archive, tmp_path / "cache")
    second = endpoint.resolve_model_dir(archive, tmp_path / "cache")

    assert first == second and (first / "model.joblib").is_file()
    assert endpoint.engine_loader(first).config.horizon == support.HORIZON


def test_given_the_cli_when_started_then_status_reports_it_and_stop_ends_it(models, tmp_path):
    home = tmp_path / "home"
    env_home = ["--home", str(home), "--name", "cli-test"]
    run = lambda *args: subprocess.run([sys.executable, "-m", "deploy.endpoint", *args, *env_home],  # noqa: E731
                                       capture_output=True, text=True, timeout=240)

    started = run("start", "--model-dir", str(models["a"]), "--port", str(support.free_port()))
    try:
        assert started.returncode == 0, started.stderr
        state = json.loads(started.stdout)
        assert endpoint.ping(state["url"])
        status = run("status")
        assert status.returncode == 0 and json.loads(status.stdout)["metrics"]["model_loaded"] is True
        anonymous = endpoint.http_request(state["url"] + "/admin/reload", "POST",
                                          json.dumps({"model_dir": str(models["b"])}).encode())
        assert anonymous[0] == 403 and "X-Admin-Token" in json.loads(anonymous[2])["error"]
        reloaded = run("reload", "--model-dir", str(models["b"]))
        assert reloaded.returncode == 0 and json.loads(reloaded.stdout)["reloads"] == 1
    finally:
        stopped = run("stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not endpoint.ping(state["url"]) and not endpoint.state_path(home, "cli-test").exists()
    assert run("status").returncode == 1


def test_given_a_busy_port_when_started_then_it_listens_on_a_free_port_and_says_so(models, tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        state = endpoint.start("busy", models["a"], home=tmp_path, port=busy.getsockname()[1])
        try:
            assert state["port"] != busy.getsockname()[1] and endpoint.ping(state["url"])
        finally:
            assert endpoint.stop(tmp_path, "busy") is True
    assert endpoint.running_state(tmp_path, "busy") is None


def test_given_a_running_server_when_its_state_file_is_removed_then_it_stops_itself(models, tmp_path):
    state = endpoint.start("orphan", models["a"], home=tmp_path, port=support.free_port())
    try:
        endpoint.state_path(tmp_path, "orphan").unlink()     # e.g. the local state was deleted

        deadline = time.monotonic() + 15
        while endpoint.pid_alive(state["pid"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not endpoint.pid_alive(state["pid"]) and not endpoint.ping(state["url"])
    finally:
        if endpoint.pid_alive(state["pid"]):
            endpoint._terminate(state["pid"])


def test_given_concurrent_requests_for_different_items_then_each_gets_the_same_forecast_as_alone(loaded, models):
    frame = models["frame"]
    bodies = {item: support.inference_csv(frame[frame["item_id"] == item]) for item in support.ITEMS}
    alone = {item: post(loaded, body)[2] for item, body in bodies.items()}

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda item: (item, post(loaded, bodies[item])[2]), list(support.ITEMS) * 6))

    assert all(answer == alone[item] for item, answer in together)
    assert len(set(alone.values())) == len(support.ITEMS)     # distinct items, distinct forecasts
