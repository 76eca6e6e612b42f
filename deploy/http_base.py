"""The HTTP hygiene the endpoint and the API servers share: every answer is JSON, nothing hangs.

`JsonRequestHandler` (a BaseHTTPRequestHandler) answers what the standard library would
answer with an HTML page or a hang:

  - a method the server does not route (PUT, DELETE, HEAD, OPTIONS, PATCH, anything else):
    405 with an ``Allow`` header and a JSON body (none for HEAD);
  - ``Content-Length`` that is not a whole number of ASCII digits, negative, or given twice with
    different values: 400; a body over the limit:
    413 (the body is drained first when that is cheap, so the client reads the answer
    instead of a reset connection); ``Transfer-Encoding`` without a length: 411;
  - a client that sends slower than the read timeout (per socket read, and in total for the
    request line and headers, and again for the body): the connection is closed (headers) or
    answered 408 (body), so no worker thread waits on a slow client, however it drips its bytes,
    for much more than `READ_TIMEOUT_SECONDS` per phase;
  - errors the standard library raises itself (a malformed request line, too many headers):
    the same status with a JSON body.
"""

from __future__ import annotations

import json
import logging
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

LOG = logging.getLogger(__name__)

READ_TIMEOUT_SECONDS = 10.0  # a client that sends nothing for this long is dropped
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # an oversized body up to this size is read and discarded before the 413
_CHUNK = 256 * 1024
_DIGITS = re.compile(r"[0-9]+", re.ASCII)  # str.isdigit() also accepts '²', which int() refuses


class HttpError(Exception):
    """An answer other than 200 decided while reading the request: status, message, extra headers."""

    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class _HeadReader:
    """The connection's reader, with one deadline for the request line and headers together.

    A socket timeout bounds each read, not a head dripped one byte at a time; `readline` (all
    http.server uses for the head) reads what one recv brings, checks the deadline, and goes on.
    Everything else (the body's read1/read) goes straight to the buffered reader.
    """

    def __init__(self, rfile: Any, connection: Any, deadline: float):
        self._rfile, self._connection, self.deadline = rfile, connection, deadline

    def readline(self, limit: int = -1) -> bytes:
        parts, size = [], 0
        while limit < 0 or size < limit:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request line and headers did not arrive in time")
            self._connection.settimeout(left)
            chunk = self._rfile.peek(1)  # what is buffered, or one recv
            if not chunk:
                break
            end = chunk.find(b"\n")
            take = len(chunk) if end < 0 else end + 1
            if limit >= 0:
                take = min(take, limit - size)
            data = self._rfile.read(take)  # from the buffer: no further recv
            parts.append(data)
            size += len(data)
            if data.endswith(b"\n"):
                break
        return b"".join(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rfile, name)


class JsonHttpServer(ThreadingHTTPServer):
    """A threaded server whose unexpected handler failures go to the log, not to stderr."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        LOG.exception("unexpected failure while serving %s", client_address)


class JsonRequestHandler(BaseHTTPRequestHandler):
    """Base handler: JSON errors, 405 for unrouted methods, bounded and timed head and body reads."""

    allowed_methods: tuple = ("GET", "POST")
    timeout = READ_TIMEOUT_SECONDS  # socket timeout of each connection (StreamRequestHandler)
    read_timeout = READ_TIMEOUT_SECONDS

    def setup(self) -> None:
        super().setup()
        self.rfile = _HeadReader(self.rfile, self.connection, time.monotonic() + self.read_timeout)

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self.connection.settimeout(self.timeout)  # the head is in: the body has its own deadline
        return parsed

    # -- what the standard library would answer in HTML --
    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """JSON instead of the standard library's HTML error page."""
        text = message or self.responses.get(code, ("Error", ""))[0]
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # a garbled request line still gets a status line
        if explain:
            text = f"{text}: {explain}"
        self.close_connection = True
        self.send_json_error(code, text)

    def send_json_error(self, status: int, message: str, headers: Optional[dict] = None) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_body(status, body, "application/json", {"Connection": "close", **(headers or {})})

    # -- the one way a response is written (the endpoint's and the API's routes, the errors above) --
    @property
    def route(self) -> str:
        """The request's path without its query string."""
        return self.path.split("?")[0]

    def send_body(
        self, status: int, body: bytes, content_type: str = "application/json", headers: Optional[dict] = None
    ) -> bool:
        """Write one whole response: status line, Content-Type, Content-Length, `headers`, then the
        body (none for HEAD). False, and a log line, when the client has already gone."""
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if getattr(self, "command", None) != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            logging.getLogger(type(self).__module__).info(
                "client closed the connection before the %s %s response", getattr(self, "command", "?"), self.route
            )
            return False
        return True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """The standard library's access log line, at debug level in the serving module's log."""
        logging.getLogger(type(self).__module__).debug("%s " + format, self.address_string(), *args)

    def method_not_allowed(self) -> None:
        allow = ", ".join(self.allowed_methods)
        try:  # read what was sent, so the client gets the answer, not a reset
            self.read_body(DRAIN_LIMIT_BYTES)
        except HttpError:
            pass
        self.close_connection = True
        self.on_method_not_allowed(self.command)
        self.send_json_error(
            405, f"method {self.command} is not allowed on {self.route}; use {allow}", {"Allow": allow}
        )

    def on_method_not_allowed(self, method: str) -> None:
        """Hook for counting the refusal (the endpoint's metrics)."""

    do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = do_TRACE = do_CONNECT = method_not_allowed  # noqa: N815

    def __getattr__(self, name: str):
        # http.server looks up do_<METHOD> and answers 501 in HTML when it is missing
        if name.startswith("do_") and name[3:].isupper():
            return self.method_not_allowed
        raise AttributeError(name)

    # -- the body --
    def read_body(self, limit: int, limit_error: Optional[HttpError] = None) -> bytes:
        """The request body, at most `limit` bytes, within the read timeout; HttpError otherwise."""
        values = {value.strip() for value in self.headers.get_all("Content-Length") or ()}
        if len(values) > 1:
            self.close_connection = True
            raise HttpError(
                400,
                f"Content-Length given {len(values)} times with different values "
                f"({', '.join(sorted(values))}); send one",
            )
        text = values.pop() if values else None
        if text is None:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                raise HttpError(
                    411, "send the body with a Content-Length header (chunked transfer encoding is not accepted)"
                )
            return b""
        if not _DIGITS.fullmatch(text):
            self.close_connection = True
            raise HttpError(400, f"Content-Length must be a whole number of bytes, got {text!r}")
        length = int(text)
        if length > limit:
            self.close_connection = True
            if length <= DRAIN_LIMIT_BYTES:
                self._drain(length)
            raise limit_error or HttpError(
                413, f"the request body of {length} bytes exceeds the limit of {limit} bytes"
            )
        return self._read_exactly(length)

    def _read_exactly(self, length: int) -> bytes:
        deadline = time.monotonic() + self.read_timeout
        parts, remaining = [], length
        try:
            while remaining:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(min(left, self.timeout or left))
                chunk = (
                    self.rfile.read1(min(remaining, _CHUNK))
                    if hasattr(self.rfile, "read1")
                    else self.rfile.read(min(remaining, _CHUNK))
                )
                if not chunk:
                    self.close_connection = True
                    raise HttpError(
                        400, f"the body ended after {length - remaining} of the {length} bytes Content-Length announced"
                    )
                parts.append(chunk)
                remaining -= len(chunk)
        except OSError:  # the socket timeout (TimeoutError) or a reset
            self.close_connection = True
            raise HttpError(
                408,
                f"the request body did not arrive within {self.read_timeout:.0f} s "
                f"({length - remaining} of {length} bytes)",
            ) from None
        return b"".join(parts)

    def _drain(self, length: int) -> None:
        """Read and drop an oversized body (bounded by the read timeout) so the 413 reaches the client."""
        try:
            self._read_exactly(length)
        except HttpError:
            pass
