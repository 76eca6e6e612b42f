"""The HTTP hygiene both servers share: the one way a response is written."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time

import pytest

from deploy.http_base import JsonHttpServer, JsonRequestHandler


class _Handler(JsonRequestHandler):
    """A route that answers after a pause (time for a client to hang up), and reports send_body's result."""

    results: list = []

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.route == "/slow":
            time.sleep(0.3)
        body = b"x" * 200_000 if self.route == "/slow" else b'{"ok": true}'
        self.results.append((self.route, self.send_body(200, body, "application/json", {"X-Extra": "1"})))


@pytest.fixture
def server():
    _Handler.results = []
    httpd = JsonHttpServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _get(server, path: str, method: str = "GET"):
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def _results(count: int) -> list:
    """The routes' send_body results, once `count` have been recorded (the answer is out before)."""
    deadline = time.monotonic() + 10
    while len(_Handler.results) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return _Handler.results


def test_given_a_route_when_it_answers_then_type_length_extra_headers_and_body_are_written(server):
    status, headers, body = _get(server, "/ok?q=1")
    assert status == 200 and body == b'{"ok": true}'
    assert headers["content-type"] == "application/json" and headers["content-length"] == str(len(body))
    assert headers["x-extra"] == "1"
    assert _results(1) == [("/ok", True)]  # the route is the path without its query


def test_given_an_unrouted_method_then_the_json_405_goes_through_the_same_writer(server):
    status, headers, body = _get(server, "/ok", method="DELETE")
    assert status == 405 and headers["allow"] == "GET, POST" and headers["connection"] == "close"
    assert b'"error"' in body and headers["content-length"] == str(len(body))
    status, headers, body = _get(server, "/ok", method="HEAD")  # HEAD: the headers, no body
    assert status == 405 and body == b"" and int(headers["content-length"]) > 0


def test_given_a_client_that_hangs_up_before_the_answer_then_it_is_logged_and_the_server_serves_on(server, caplog):
    # given: a client that sends its request and closes at once (RST on close: SO_LINGER 0)
    raw = socket.create_connection(("127.0.0.1", server.server_address[1]))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    raw.sendall(b"GET /slow HTTP/1.0\r\n\r\n")
    raw.close()
    # when
    with caplog.at_level(logging.INFO, logger=__name__):
        first = list(_results(1))
        status, _, _ = _get(server, "/ok")
    # then: send_body said the answer did not get out, the serving module's log says why, and the next client is served
    assert first == [("/slow", False)]
    assert any("client closed the connection before the GET /slow response" in r.getMessage() for r in caplog.records)
    assert status == 200
