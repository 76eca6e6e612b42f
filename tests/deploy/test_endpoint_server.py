"""A server process started ahead (deploy.endpoint_server.prestart): it becomes the endpoint only when
one is started, serves exactly what a fresh server serves, and ends when nobody takes it."""

from __future__ import annotations

import pathlib
import time

import pytest

from deploy import endpoint, endpoint_server
from tests.deploy import endpoint_support as support

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]  # real server processes


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    frame = support.sales()
    return frame, support.train_model(frame, tmp_path_factory.mktemp("model") / "a")


@pytest.fixture(autouse=True)
def _no_standby_left():
    yield
    endpoint_server.discard_standby()


def _cmdline(pid: int) -> list:
    return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _ended(process, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return process.poll() is not None


def _held(home) -> object:
    held = endpoint_server._STANDBY.get(str(home))
    assert held is not None
    return held[0]


def test_given_a_server_started_ahead_when_an_endpoint_starts_then_it_serves_what_a_fresh_one_serves(model, tmp_path):
    frame, model_dir = model
    ahead, fresh = tmp_path / "ahead", tmp_path / "fresh"
    endpoint_server.prestart(ahead, workers=2)
    standby = _held(ahead)
    assert "--standby" in standby.args
    assert not endpoint_server.endpoints_dir(ahead).exists()  # no endpoint (no state, no port) before it is started
    try:
        state = endpoint.start("e", model_dir, home=ahead, port=support.free_port(), workers=2)
        assert state["pid"] == standby.pid and str(ahead) not in endpoint_server._STANDBY
        other = endpoint.start("e", model_dir, home=fresh, port=support.free_port(), workers=2)
        assert "--standby" not in _cmdline(other["pid"])
        body = support.inference_csv(frame)
        answers = [
            endpoint.http_request(s["url"] + "/invocations", "POST", body, {"Content-Type": "text/csv"}, timeout=60)
            for s in (state, other)
        ]
        assert [a[0] for a in answers] == [200, 200] and answers[0][2] == answers[1][2]
        assert "listening on" in (ahead / "endpoints" / "e.log").read_text()  # its output went to the endpoint's log
        # the supervisor forked its workers with the engine imported and no BLAS thread of its own
        assert "pandas/_libs" in pathlib.Path(f"/proc/{state['pid']}/maps").read_text()
        threads = [
            pathlib.Path(task, "comm").read_text().strip()
            for task in pathlib.Path(f"/proc/{state['pid']}/task").iterdir()
        ]
        assert len([name for name in threads if name != "jemalloc_bg_thd"]) == 1, threads
    finally:
        endpoint.stop(ahead, "e")
        endpoint.stop(fresh, "e")


def test_given_a_server_started_ahead_for_other_workers_then_a_fresh_process_serves_and_it_ends(model, tmp_path):
    _, model_dir = model
    endpoint_server.prestart(tmp_path, workers=1)
    standby = _held(tmp_path)
    try:
        state = endpoint.start("e", model_dir, home=tmp_path, port=support.free_port(), workers=2)
        assert state["pid"] != standby.pid and "--standby" not in _cmdline(state["pid"])
        assert _ended(standby)
    finally:
        endpoint.stop(tmp_path, "e")


def test_given_a_server_started_ahead_that_no_endpoint_takes_when_discarded_then_it_ends_without_a_trace(tmp_path):
    endpoint_server.prestart(tmp_path, workers=2)
    standby = _held(tmp_path)
    endpoint_server.prestart(tmp_path, workers=2)  # one per home: a second call keeps the first
    assert _held(tmp_path) is standby

    endpoint_server.discard_standby(tmp_path)

    assert _ended(standby) and str(tmp_path) not in endpoint_server._STANDBY
    assert not endpoint_server.endpoints_dir(tmp_path).exists()


def test_given_a_state_file_then_only_its_owner_can_read_it_since_it_holds_the_admin_token(tmp_path):
    path = endpoint_server.state_path(tmp_path, "private")
    endpoint_server.write_state(path, {"pid": 1, "admin_token": "secret"})
    assert path.stat().st_mode & 0o777 == 0o600
    assert endpoint_server.read_state(tmp_path, "private")["admin_token"] == "secret"
    endpoint_server.write_state(path, {"pid": 2, "admin_token": "other"})  # rewritten: still private
    assert path.stat().st_mode & 0o777 == 0o600 and endpoint_server.read_state(tmp_path, "private")["pid"] == 2
