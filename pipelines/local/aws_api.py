"""The SageMaker API (and the S3 and CloudWatch calls steps make) on loopback, in boto3's own
wire protocols, for the local runtime's steps.

Step scripts call SageMaker through plain boto3, with no local branch. For an execution the
runtime starts this server on 127.0.0.1 and points the steps at it (`step_environment`:
AWS_ENDPOINT_URL_SAGEMAKER, AWS_ENDPOINT_URL for every other service, dummy credentials), so a
step makes the same requests it makes on AWS, and they reach the local SageMaker client
(pipelines.local.sagemaker) instead.

Protocol (SageMaker is awsJson1_1): POST / with `X-Amz-Target: SageMaker.<Operation>` and a JSON
body; the reply is JSON with timestamps as epoch seconds; an error is HTTP 400 (500 for a bug
here) with `{"__type": Code, "message": ...}` and `x-amzn-ErrorType`, which botocore turns into
ClientError. Requests are checked against botocore's service model first (ValidationException,
like AWS); an operation or service this server does not serve is answered with an error that
names it. Every call is recorded (`take_calls`) and reported to `sink` as it happens.

S3 (ListObjectsV2, GetObject, HeadObject, PutObject over the local store) and CloudWatch
(PutMetricData into <home>/cloudwatch/metrics.jsonl) are served by pipelines.local.aws_services.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

from botocore import xform_name

from pipelines.local import automl_worker
from processing.kernel.aws_validation import request_problems
from processing.kernel.settings import Settings

SERVICE = "sagemaker"
TARGET_PREFIX = "SageMaker"
CONTENT_TYPE = "application/x-amz-json-1.1"
DUMMY_ACCESS_KEY = "LOCALRUNTIME"  # botocore signs requests; the server does not check signatures
_SCOPE = re.compile(r"Credential=[^/]*/[^/]*/[^/]*/([^/]*)/aws4_request")


class APIError(Exception):
    """An error answered the way AWS answers it."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


# --- shapes <-> wire ------------------------------------------------------------------------------
def _from_wire(shape, value: Any) -> Any:
    """JSON request values -> what boto3 callers pass (timestamps as datetimes, blobs as bytes)."""
    if shape is None or value is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {k: _from_wire(shape.members.get(k), v) for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_from_wire(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _from_wire(shape.value, v) for k, v in value.items()}
    if kind == "timestamp" and isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    if kind == "blob" and isinstance(value, str):
        return base64.b64decode(value)
    return value


def _to_wire(shape, value: Any) -> Any:
    """A response value -> JSON by the output shape: known members only, epoch-second timestamps."""
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for name, member in shape.members.items():
            if isinstance(value, dict) and value.get(name) is not None:
                out[name] = _to_wire(member, value[name])
        return out
    if kind == "list":
        return [_to_wire(shape.member, v) for v in value]
    if kind == "map":
        return {str(k): _to_wire(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        return _epoch(value)
    if kind == "blob":
        return base64.b64encode(value if isinstance(value, bytes) else str(value).encode()).decode()
    if kind in ("integer", "long"):
        return int(value)
    if kind in ("float", "double"):
        return float(value)
    if kind == "boolean":
        return bool(value)
    return value if isinstance(value, str) else str(value)


def _epoch(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return round(value.timestamp(), 3)


# --- the server ----------------------------------------------------------------------------------
class LocalAWSServer:
    """One per execution: `with LocalAWSServer(settings) as api: ...`; leaving it stops the server
    and every AutoML job it started."""

    def __init__(self, settings: Settings, sink: Optional[Callable[[str], None]] = None):
        from pipelines.local.sagemaker import LocalSageMakerClient
        from processing.kernel.aws_validation import _service_model

        self.settings = settings
        self._sink = sink
        self._last_line: Optional[str] = None  # the last [aws api] line reported, and how often it came again since
        self._repeats = 0
        self.client = LocalSageMakerClient(settings)
        self.client.automl_output = lambda line: self._emit(line)
        from pipelines.local.aws_services import LocalCloudWatchService, LocalS3Service

        self.s3 = LocalS3Service(settings)
        self.cloudwatch = LocalCloudWatchService(settings)
        self.model = _service_model(SERVICE)
        self.calls: list = []
        self._taken = 0
        self._lock = threading.Lock()  # one request at a time reaches the local client
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle
    def start(self) -> "LocalAWSServer":
        api = self

        class Handler(_Handler):
            server_api = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # polled every 50 ms (not the default 0.5 s) so that close() returns at once when a run ends
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-aws-api", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> list:
        """Stop the server, the AutoML jobs still training and an endpoint server started ahead that no
        deploy took; returns the names of the jobs stopped."""
        stopped = automl_worker.stop_all(self.settings)
        endpoint_server = sys.modules.get("deploy.endpoint_server")  # imported where one was started ahead
        if endpoint_server is not None:
            endpoint_server.discard_standby(self.settings.home_path)  # a server started ahead that no deploy took
        for name in stopped:  # record them Stopped, as StopAutoMLJob would
            self.client.stop_auto_ml_job(AutoMLJobName=name)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        return stopped

    def __enter__(self) -> "LocalAWSServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def step_environment(self) -> dict:
        """What a step's boto3 needs to reach this server, and nothing that reaches AWS."""
        region = self.settings.effective_region
        return {
            "AWS_ENDPOINT_URL_SAGEMAKER": self.url,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": "local-runtime",
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }

    # unset in a step's environment: they would pick the user's profile or bypass the endpoints
    UNSET_IN_STEPS = (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
    )

    # -- calls
    def take_calls(self) -> list:
        """The calls served since the last take, consecutive repeats folded: [{operation, status, count}]."""
        with self._lock:
            calls, self._taken = self.calls[self._taken :], len(self.calls)
        folded: list = []
        for call in calls:
            key = {k: call[k] for k in ("service", "operation", "status", "error")}
            if folded and {k: folded[-1][k] for k in key} == key:
                folded[-1]["count"] += 1
            else:
                folded.append(dict(key, count=1))
        return folded

    @property
    def sink(self) -> Optional[Callable[[str], None]]:
        """Where the calls and the AutoML job's output are reported (a step's log); None: nowhere."""
        return self._sink

    @sink.setter
    def sink(self, sink: Optional[Callable[[str], None]]) -> None:
        self.flush_repeats()  # a count still owed goes to the sink it belongs to
        self._sink = sink

    def _emit(self, line: str) -> None:
        sink = self._sink
        if sink is not None:
            sink(line)

    def flush_repeats(self) -> None:
        """Report how often the last call line came again since it was reported (once, then reset)."""
        with self._lock:
            line, repeats = self._last_line, self._repeats
            self._last_line, self._repeats = None, 0
        if line is not None and repeats:
            self._emit(f"{line} (x{repeats} more)")

    def _record(self, service: str, operation: str, status: int, error: Optional[APIError]) -> None:
        """Record the call and report it; a poll answered the same way again and again (DescribeAutoMLJobV2
        while the job trains: ~60 a run) is reported once, then as a count when the answer changes
        or the step ends."""
        detail = f" {error.code}: {error.message.splitlines()[0]}" if error else ""
        line = f"[aws api] {service} {operation} -> {status}{detail}"
        with self._lock:
            self.calls.append(
                {"service": service, "operation": operation, "status": status, "error": error.code if error else None}
            )
            repeated = line == self._last_line
            if repeated:
                self._repeats += 1
        if repeated:
            return
        self.flush_repeats()
        with self._lock:
            self._last_line = line
        self._emit(line)

    # -- dispatch
    def handle(self, target: str, body: bytes) -> dict:
        """One SageMaker JSON request -> the response document; raises APIError."""
        prefix, _, operation = target.partition(".")
        if prefix != TARGET_PREFIX:
            raise APIError(
                "UnknownOperationException",
                f"the local runtime serves SageMaker ({TARGET_PREFIX}.*) on this endpoint, not {target!r}",
            )
        if operation not in self.model.operation_names:
            raise APIError("UnknownOperationException", f"SageMaker has no operation {operation!r}")
        method = getattr(self.client, xform_name(operation), None)
        if method is None:
            raise APIError(
                "UnknownOperationException",
                f"the local runtime does not serve SageMaker {operation}; it serves "
                + ", ".join(sorted(self.served_operations())),
            )
        try:
            params = json.loads(body or b"{}")
        except ValueError as error:
            raise APIError("SerializationException", f"{operation}: the body is not JSON ({error})") from None
        if not isinstance(params, dict):
            raise APIError("SerializationException", f"{operation}: the body must be a JSON object")
        problems = request_problems(SERVICE, operation, params)
        if problems:
            raise APIError(
                "ValidationException", f"{len(problems)} validation error(s) detected: " + "; ".join(problems)
            )
        operation_model = self.model.operation_model(operation)
        params = _from_wire(operation_model.input_shape, params)
        from botocore.exceptions import ClientError

        try:
            with self._lock:
                response = method(**params)
        except ClientError as error:
            details = error.response.get("Error", {})
            raise APIError(details.get("Code", "ValidationException"), details.get("Message", str(error))) from None
        except TypeError as error:  # a member the local client does not take
            raise APIError("ValidationException", f"{operation}: {error}") from None
        shape = operation_model.output_shape
        return _to_wire(shape, response or {}) if shape is not None else {}

    def served_operations(self) -> list:
        return [op for op in self.model.operation_names if callable(getattr(self.client, xform_name(op), None))]


class _Handler(BaseHTTPRequestHandler):
    server_api: LocalAWSServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - calls are recorded, not printed
        return

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _service(self) -> str:
        found = _SCOPE.search(self.headers.get("Authorization", ""))
        return found.group(1) if found else "unknown"

    def _reply(
        self, status: int, document: Any, content_type: str = CONTENT_TYPE, error_type: Optional[str] = None
    ) -> None:
        payload = document if isinstance(document, bytes) else json.dumps(document).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", "local-" + str(id(self)))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send(self, reply: Any) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("x-amzn-RequestId", "local-" + str(id(self)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _other_service(self, service: str, operation: str, serve: Callable[[], Any], error_reply: Callable) -> None:
        """S3 or CloudWatch: answer, record, and turn a failure into the service's own error format."""
        from pipelines.local.aws_services import ServiceError

        api = self.server_api
        try:
            reply = serve()
        except ServiceError as error:
            api._record(service, operation, error.status, APIError(error.code, error.message, error.status))
            return self._send(error_reply(error))
        except Exception as error:  # a bug in a stand-in: InternalError, like AWS's 500
            import traceback

            api._emit(traceback.format_exc())
            failure = ServiceError("InternalError", f"{type(error).__name__}: {error}", 500)
            api._record(service, operation, 500, APIError(failure.code, failure.message, 500))
            return self._send(error_reply(failure))
        api._record(service, operation, reply.status, None)
        self._send(reply)

    def _serve_s3(self, body: bytes) -> None:
        from pipelines.local.aws_services import Reply, s3_error_body

        s3 = self.server_api.s3

        def error_reply(error):
            return Reply(
                error.status,
                b"" if self.command == "HEAD" else s3_error_body(error, self.path),
                {"Content-Type": "application/xml"},
            )

        self._other_service(
            "s3",
            s3.operation(self.command, self.path),
            lambda: s3.handle(self.command, self.path, self.headers, body),
            error_reply,
        )

    def _serve_cloudwatch(self, body: bytes) -> None:
        from pipelines.local.aws_services import CBOR_HEADERS, Reply, cbor_text_map

        cloudwatch = self.server_api.cloudwatch

        def error_reply(error):
            return Reply(error.status, cbor_text_map({"__type": error.code, "message": error.message}), CBOR_HEADERS)

        self._other_service(
            "cloudwatch", cloudwatch.operation(self.path), lambda: cloudwatch.handle(self.path, body), error_reply
        )

    def _serve_cloudwatch_json(self, target: str, body: bytes) -> None:
        from pipelines.local.aws_services import JSON_CONTENT_TYPE, Reply

        def error_reply(error):
            return Reply(
                error.status,
                json.dumps({"__type": error.code, "message": error.message}).encode(),
                {"Content-Type": JSON_CONTENT_TYPE, "x-amzn-ErrorType": error.code},
            )

        self._other_service(
            "cloudwatch",
            target.partition(".")[2],
            lambda: self.server_api.cloudwatch.handle_json(target, body),
            error_reply,
        )

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        target = self.headers.get("X-Amz-Target")
        if self._service() == "monitoring" and self.path.startswith("/service/"):
            return self._serve_cloudwatch(body)
        from pipelines.local.aws_services import JSON_TARGET_PREFIX

        if self._service() == "monitoring" and (target or "").startswith(JSON_TARGET_PREFIX):
            return self._serve_cloudwatch_json(target, body)
        if self._service() == "s3":
            return self._serve_s3(body)
        if not target or self._service() not in (SERVICE, "unknown"):
            return self._not_served(body)
        api = self.server_api
        operation = target.partition(".")[2] or target
        try:
            document = api.handle(target, body)
        except APIError as error:
            api._record(SERVICE, operation, error.status, error)
            return self._reply(error.status, {"__type": error.code, "message": error.message}, error_type=error.code)
        except Exception as error:  # a bug in a stand-in: InternalFailure, like AWS's 500
            import traceback

            api._emit(traceback.format_exc())
            failure = APIError("InternalFailure", f"{type(error).__name__}: {error}", 500)
            api._record(SERVICE, operation, 500, failure)
            return self._reply(500, {"__type": failure.code, "message": failure.message}, error_type=failure.code)
        api._record(SERVICE, operation, 200, None)
        self._reply(200, document)

    def _not_served(self, body: bytes) -> None:
        """Any other AWS service (or SageMaker's runtime API): a clear error in the service's own format."""
        service = self._service()
        action = self.headers.get("X-Amz-Target") or ""
        if not action:
            found = re.search(r"(?:^|&)Action=([A-Za-z0-9]+)", body.decode("utf-8", "replace"))
            action = found.group(1) if found else f"{self.command} {self.path.split('?')[0]}"
        error = APIError(
            "NotServedLocally",
            f"the local runtime serves the SageMaker API, S3 objects and "
            f"CloudWatch metrics to steps; this "
            f"step called {service} {action}, which it does not serve",
        )
        self.server_api._record(service, action, 400, error)
        content_type = self.headers.get("Content-Type", "")
        if (
            self.headers.get("X-Amz-Target")
            or "json" in content_type
            or service not in ("s3", "unknown")
            and "x-www-form-urlencoded" not in content_type
        ):
            return self._reply(
                400, {"__type": error.code, "message": error.message}, "application/json", error_type=error.code
            )
        xml = (
            f"<ErrorResponse><Error><Code>{error.code}</Code><Message>{error.message}</Message></Error>"
            f"<RequestId>local</RequestId></ErrorResponse>"
        )
        if service == "s3":
            xml = f"<Error><Code>{error.code}</Code><Message>{error.message}</Message></Error>"
        self._reply(400, xml.encode("utf-8"), "text/xml")

    def do_GET(self) -> None:  # noqa: N802
        body = self._body()
        if self._service() == "s3":
            return self._serve_s3(body)
        self._not_served(body)

    do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET
