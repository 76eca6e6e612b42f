"""S3 and CloudWatch on the local runtime's loopback API, in boto3's own wire protocols.

Steps that read and write S3 objects themselves (ChampionForecast copies its transform output,
MonitorForecasts keeps forecasts and reads earlier runs) and that publish CloudWatch metrics
(MonitorForecasts) make the same requests locally as on AWS; this serves them:

* S3 (rest-xml, path-style because the endpoint is an IP): ListObjectsV2 (`GET /bucket?list-type=2`),
  GetObject (`GET /bucket/key`, with a `bytes=a-b` Range), HeadObject, PutObject, over the local
  store (pipelines.local.store.LocalS3Client: <home>/s3/<bucket>/<key>).
* CloudWatch PutMetricData, appended one datum a line to <home>/cloudwatch/metrics.jsonl, in
  both protocols botocore uses for it: smithy-rpc-v2-cbor (botocore 1.43, the processing image's:
  `POST /service/GraniteServiceVersion20100801/operation/PutMetricData`) and awsJson1_0 (newer
  botocore: `POST /` with `X-Amz-Target: GraniteServiceVersion20100801.PutMetricData`).

Requests are checked against botocore's service model, as on AWS; other operations of these
services are answered with an error naming them.
"""

from __future__ import annotations

import datetime
import io
import json
import threading
import urllib.parse
from typing import Any, Optional
from xml.sax.saxutils import escape

from processing.kernel.aws_validation import request_problems
from processing.kernel.settings import Settings

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
CLOUDWATCH_PATH = "/service/GraniteServiceVersion20100801/operation/"
METRICS_FILE = ("cloudwatch", "metrics.jsonl")


class ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class Reply:
    """status, headers, body of one answer."""

    def __init__(self, status: int, body: bytes = b"", headers: Optional[dict] = None):
        self.status, self.body, self.headers = status, body, dict(headers or {})


def _iso(value: datetime.datetime) -> str:
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _http_date(value: datetime.datetime) -> str:
    return value.astimezone(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")


def _check(service: str, operation: str, params: dict) -> None:
    problems = request_problems(service, operation, params)
    if problems:
        raise ServiceError(
            "InvalidArgument" if service == "s3" else "ValidationError", f"{operation}: " + "; ".join(problems)
        )


# --- S3 -------------------------------------------------------------------------------------------
def s3_error_body(error: ServiceError, resource: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{escape(error.code)}</Code>'
        f"<Message>{escape(error.message)}</Message><Resource>{escape(resource)}</Resource>"
        "<RequestId>local</RequestId></Error>"
    ).encode("utf-8")


def _dechunk(body: bytes) -> bytes:
    """The payload of an aws-chunked body (`<hex size>;chunk-signature=...\\r\\n<data>\\r\\n` ... `0`)."""
    stream, out = io.BytesIO(body), bytearray()
    while True:
        header = stream.readline().strip()
        if not header:
            break
        size = int(header.split(b";")[0], 16)
        if size == 0:
            break
        out += stream.read(size)
        stream.readline()
    return bytes(out)


class LocalS3Service:
    """The S3 operations steps use, answered as S3's REST API answers them."""

    def __init__(self, settings: Settings):
        from pipelines.local.store import LocalS3Client

        self.client = LocalS3Client(settings)

    @staticmethod
    def operation(method: str, path: str) -> str:
        parsed = urllib.parse.urlsplit(path)
        bucket, _, key = urllib.parse.unquote(parsed.path).lstrip("/").partition("/")
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        if not key:
            if method == "GET" and query.get("list-type") == ["2"]:
                return "ListObjectsV2"
            return f"{method} /{bucket}" + ("?" + parsed.query if parsed.query else "")
        return {"GET": "GetObject", "HEAD": "HeadObject", "PUT": "PutObject"}.get(method, f"{method} /{bucket}/...")

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> Reply:
        from botocore.exceptions import ClientError

        parsed = urllib.parse.urlsplit(path)
        bucket, _, key = urllib.parse.unquote(parsed.path).lstrip("/").partition("/")
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
        operation = self.operation(method, path)
        try:
            if operation == "ListObjectsV2":
                return self._list(bucket, query)
            if operation in ("GetObject", "HeadObject"):
                return self._get(bucket, key, headers, head=operation == "HeadObject")
            if operation == "PutObject":
                if "aws-chunked" in (headers.get("Content-Encoding") or ""):
                    body = _dechunk(body)
                _check("s3", "PutObject", {"Bucket": bucket, "Key": key})
                etag = self.client.put_object(Bucket=bucket, Key=key, Body=body)["ETag"]
                return Reply(200, b"", {"ETag": etag})
        except ClientError as error:
            code = error.response["Error"]["Code"]
            status = {"NoSuchKey": 404, "404": 404, "NoSuchBucket": 404}.get(code, 400)
            raise ServiceError(
                "NoSuchKey" if code == "404" else code, error.response["Error"]["Message"], status
            ) from None
        raise ServiceError(
            "NotServedLocally",
            f"the local runtime serves S3 ListObjectsV2, GetObject, HeadObject "
            f"and PutObject to steps; this step called s3 {operation}, which it does not serve",
        )

    def _list(self, bucket: str, query: dict) -> Reply:
        params = {
            "Bucket": bucket,
            "Prefix": query.get("prefix", ""),
            "Delimiter": query.get("delimiter", ""),
            "MaxKeys": int(query.get("max-keys", 1000)),
            "ContinuationToken": query.get("continuation-token", ""),
            "StartAfter": query.get("start-after", ""),
        }
        _check("s3", "ListObjectsV2", {k: v for k, v in params.items() if v != ""})
        page = self.client.list_objects_v2(**params)
        parts = [
            f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{S3_NS}">',
            f"<Name>{escape(bucket)}</Name><Prefix>{escape(params['Prefix'])}</Prefix>",
            f"<KeyCount>{page['KeyCount']}</KeyCount><MaxKeys>{params['MaxKeys']}</MaxKeys>",
            f"<IsTruncated>{str(page['IsTruncated']).lower()}</IsTruncated>",
        ]
        if params["Delimiter"]:
            parts.append(f"<Delimiter>{escape(params['Delimiter'])}</Delimiter>")
        if params["ContinuationToken"]:
            parts.append(f"<ContinuationToken>{escape(params['ContinuationToken'])}</ContinuationToken>")
        for item in page.get("Contents") or []:
            parts.append(
                f"<Contents><Key>{escape(item['Key'])}</Key><LastModified>{_iso(item['LastModified'])}"
                f"</LastModified><ETag>{escape(item['ETag'])}</ETag><Size>{item['Size']}</Size>"
                "<StorageClass>STANDARD</StorageClass></Contents>"
            )
        for prefix in page.get("CommonPrefixes") or []:
            parts.append(f"<CommonPrefixes><Prefix>{escape(prefix['Prefix'])}</Prefix></CommonPrefixes>")
        if page.get("NextContinuationToken"):
            parts.append(f"<NextContinuationToken>{escape(page['NextContinuationToken'])}</NextContinuationToken>")
        parts.append("</ListBucketResult>")
        return Reply(200, "".join(parts).encode("utf-8"), {"Content-Type": "application/xml"})

    def _get(self, bucket: str, key: str, headers: Any, head: bool) -> Reply:
        _check("s3", "HeadObject" if head else "GetObject", {"Bucket": bucket, "Key": key})
        found = self.client.get_object(Bucket=bucket, Key=key)
        data = found["Body"].read()
        reply_headers = {
            "ETag": found["ETag"],
            "Last-Modified": _http_date(found["LastModified"]),
            "Content-Type": "binary/octet-stream",
            "Accept-Ranges": "bytes",
        }
        wanted = headers.get("Range")
        if wanted and not head:
            unit, _, span = wanted.partition("=")
            start_text, _, end_text = span.partition("-")
            if unit.strip() != "bytes" or not start_text.isdigit() or "," in span:
                raise ServiceError("InvalidRange", f"GetObject: unsupported Range {wanted!r} (bytes=a-b only)", 416)
            start = int(start_text)
            end = min(int(end_text) if end_text.isdigit() else len(data) - 1, len(data) - 1)
            if start >= len(data):
                raise ServiceError("InvalidRange", f"GetObject: Range {wanted!r} starts beyond {len(data)} bytes", 416)
            reply_headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return Reply(206, data[start : end + 1], reply_headers)
        return Reply(200, data, reply_headers)


# --- CloudWatch (smithy-rpc-v2-cbor) --------------------------------------------------------------
def cbor_text_map(values: dict) -> bytes:
    """A CBOR map of text to text (error bodies)."""

    def head(major: int, size: int) -> bytes:
        if size < 24:
            return bytes([major << 5 | size])
        if size < 256:
            return bytes([major << 5 | 24, size])
        return bytes([major << 5 | 25]) + min(size, 65535).to_bytes(2, "big")

    out = bytearray(head(5, len(values)))
    for key, value in values.items():
        for text in (key, value):
            data = str(text).encode("utf-8")[:65535]
            out += head(3, len(data)) + data
    return bytes(out)


JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
JSON_TARGET_PREFIX = "GraniteServiceVersion20100801."
CBOR_HEADERS = {"smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor"}


class LocalCloudWatchService:
    """PutMetricData into <home>/cloudwatch/metrics.jsonl (one datum a line, with its namespace)."""

    def __init__(self, settings: Settings):
        self.path = settings.home_path.joinpath(*METRICS_FILE)
        self._lock = threading.Lock()

    @staticmethod
    def operation(path: str) -> str:
        return path.split("?")[0][len(CLOUDWATCH_PATH) :] if path.startswith(CLOUDWATCH_PATH) else path

    @staticmethod
    def _served(operation: str) -> None:
        if operation != "PutMetricData":
            raise ServiceError(
                "NotServedLocally",
                "the local runtime serves CloudWatch PutMetricData to steps; "
                f"this step called cloudwatch {operation}, which it does not serve",
            )

    def handle(self, path: str, body: bytes) -> Reply:
        """smithy-rpc-v2-cbor (botocore 1.43, the processing image's)."""
        self._served(self.operation(path))
        from botocore.parsers import RpcV2CBORParser

        try:
            params = RpcV2CBORParser().parse_data_item(io.BytesIO(body)) if body else {}
        except Exception as error:  # noqa: BLE001 - any decoding failure is the caller's
            raise ServiceError("SerializationException", f"PutMetricData: the body is not CBOR ({error})") from None
        if not isinstance(params, dict):
            raise ServiceError("SerializationException", "PutMetricData: the body must be a CBOR map")
        self._put(params)
        return Reply(200, b"\xa0", CBOR_HEADERS)

    def handle_json(self, target: str, body: bytes) -> Reply:
        """awsJson1_0 with `X-Amz-Target: GraniteServiceVersion20100801.<Operation>` (newer botocore)."""
        self._served(target.partition(".")[2])
        try:
            params = json.loads(body or b"{}")
        except ValueError as error:
            raise ServiceError("SerializationException", f"PutMetricData: the body is not JSON ({error})") from None
        if not isinstance(params, dict):
            raise ServiceError("SerializationException", "PutMetricData: the body must be a JSON object")
        for datum in params.get("MetricData") or []:
            if isinstance(datum, dict) and isinstance(datum.get("Timestamp"), (int, float)):
                datum["Timestamp"] = datetime.datetime.fromtimestamp(datum["Timestamp"], tz=datetime.timezone.utc)
        self._put(params)
        return Reply(200, b"{}", {"Content-Type": JSON_CONTENT_TYPE})

    def _put(self, params: dict) -> None:
        _check("cloudwatch", "PutMetricData", params)
        lines = []
        for datum in params.get("MetricData") or []:
            stamp = datum.get("Timestamp")
            if isinstance(stamp, (int, float)):
                stamp = datetime.datetime.fromtimestamp(stamp, tz=datetime.timezone.utc)
            lines.append(
                json.dumps(
                    dict(datum, Namespace=params["Namespace"], Timestamp=stamp.isoformat() if stamp else None),
                    default=str,
                )
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in lines))

    def read(self) -> list:
        """Every datum put so far (for tests and summaries)."""
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
