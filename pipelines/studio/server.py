"""`python -m pipelines.studio`: the local Studio, a web UI over FORECAST_HOME on 127.0.0.1.

    python -m pipelines.studio                 # http://127.0.0.1:8090/ (FORECAST_STUDIO_PORT)
    python -m pipelines.studio --port 0        # any free port (printed)

Pages: / (executions), /executions/<id> (graph, live steps, logs, outputs, metrics, plots),
/registry (approve / reject), /endpoints. Standard library http.server only.

Cross-site protection of the only writes (approve, reject): POST only; a per-server CSRF token
in every form; the Origin (or Referer) must be this server; the Host must be this server's
loopback name (which also stops DNS-rebinding reads of the pages).
"""

from __future__ import annotations

import argparse
import hmac
import json
import mimetypes
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pipelines.studio import pages, state
from processing.kernel import console
from processing.kernel.settings import Settings, SettingsError, resolve, sources

HOST = "127.0.0.1"
MAX_FORM_BYTES = 16 * 1024
MAX_MESSAGES = 100


class StudioServer(ThreadingHTTPServer):
    """The HTTP server: settings, the CSRF token and a lock that serialises approvals."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, settings: Settings, port: int, host: str = HOST):
        super().__init__((host, port), _Handler)
        self.settings = settings
        self.csrf_token = secrets.token_urlsafe(32)
        self.approval_lock = threading.Lock()
        self.messages: dict = {}  # flash messages after a POST, by one-time key

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def allowed_hosts(self) -> set:
        return {f"{HOST}:{self.port}", f"localhost:{self.port}"}


class _Handler(BaseHTTPRequestHandler):
    server: StudioServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: the Studio prints its URL, not every request

    # -- responses
    def _send(self, status: int, body: bytes, content_type: str, extra: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "same-origin")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; "
            "style-src 'unsafe-inline'; script-src 'unsafe-inline'; form-action 'self'; "
            "frame-ancestors 'none'",
        )
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _html(self, status: int, text: str) -> None:
        self._send(status, text.encode("utf-8"), "text/html; charset=utf-8")

    def _file(self, path: Path, content_type: Optional[str] = None) -> None:
        kind = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if kind.startswith("text/") and "charset" not in kind:
            kind += "; charset=utf-8"
        self._send(200, path.read_bytes(), kind)

    def _redirect(self, location: str) -> None:
        self._send(303, b"", "text/plain", {"Location": location})

    # -- checks
    def _host_ok(self) -> bool:
        return (self.headers.get("Host") or "").lower() in self.server.allowed_hosts()

    def _same_origin(self) -> bool:
        origin = self.headers.get("Origin")
        if origin:
            return origin.lower() in {f"http://{h}" for h in self.server.allowed_hosts()}
        referer = self.headers.get("Referer")
        if referer:
            return urlsplit(referer).netloc.lower() in self.server.allowed_hosts()
        return False  # neither header: not a form posted from the Studio's own page

    # -- routing
    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        if not self._host_ok():
            self._send(421, b"wrong Host header: open the Studio at its 127.0.0.1 address", "text/plain")
            return
        try:
            self._get(urlsplit(self.path))
        except BrokenPipeError:
            pass
        except Exception as error:  # noqa: BLE001 - a page that breaks says why, the server keeps serving
            self._html(
                500,
                pages.page(
                    "Error", f"<h1>Error</h1><pre>{pages.esc(type(error).__name__)}: {pages.esc(str(error))}</pre>"
                ),
            )

    def _get(self, url) -> None:
        settings = self.server.settings
        parts = [unquote(p) for p in url.path.split("/") if p]
        if not parts:
            self._html(200, pages.executions_page(settings))
            return
        if parts == ["favicon.ico"]:
            self._send(200, pages.FAVICON_SVG.encode(), "image/svg+xml")
            return
        if parts == ["registry"]:
            key = parse_qs(url.query).get("m", [""])[0]
            message, error = self.server.messages.pop(key, (None, False))
            self._html(200, pages.registry_page(settings, self.server.csrf_token, message, error))
            return
        if parts == ["endpoints"]:
            self._html(200, pages.endpoints_page(settings))
            return
        if parts == ["api", "executions"]:
            records = state.load_executions(settings)
            body = [
                {
                    "execution_id": r.get("execution_id"),
                    "pipeline_name": r.get("pipeline_name"),
                    "status": r.get("status"),
                    "start_time": r.get("start_time"),
                    "duration_seconds": r.get("duration_seconds"),
                }
                for r in records
            ]
            self._send(200, json.dumps(body).encode(), "application/json")
            return
        if len(parts) == 3 and parts[:2] == ["api", "executions"]:
            record = state.load_execution(settings, parts[2])
            if record is None:
                self._send(404, json.dumps({"error": f"no execution {parts[2]}"}).encode(), "application/json")
                return
            self._send(200, json.dumps(pages.live_fragment(record, settings)).encode(), "application/json")
            return
        if parts[0] == "executions" and len(parts) >= 2:
            record = state.load_execution(settings, parts[1])
            if record is None:
                self._html(
                    404, pages.not_found(f"There is no execution {parts[1]!r} under {state.executions_root(settings)}.")
                )
                return
            self._execution(record, parts[2:])
            return
        self._html(404, pages.not_found(f"No page at {url.path}."))

    def _execution(self, record: dict, rest: list) -> None:
        settings = self.server.settings
        if not rest:
            self._html(200, pages.execution_page(record, settings))
            return
        if rest == ["record"]:  # rendered now, so a record written by an older version reads like a new one
            self._html(200, pages.report.render_report(record, None, settings))
            return
        if len(rest) == 2 and rest[0] == "plots" and rest[1].isdigit():
            images = pages.report.plots(record, settings)
            if int(rest[1]) < len(images):
                self._file(images[int(rest[1])], "image/png")
                return
        if len(rest) == 3 and rest[0] == "steps" and rest[2] == "log":
            step = next((s for s in record.get("steps") or [] if s.get("name") == rest[1]), None)
            if step and step.get("log") and Path(step["log"]).is_file():
                self._file(Path(step["log"]), "text/plain")
                return
        if len(rest) >= 2 and rest[0] == "planner":
            folder = state.planner_report_dir(record, settings)
            target = state.contained_file(folder, "/".join(rest[1:])) if folder else None
            if target is not None:
                self._file(target)
                return
        self._html(404, pages.not_found(f"Execution {record.get('execution_id')} has nothing at {'/'.join(rest)}."))

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok() or not self._same_origin():
            self._send(403, b"cross-site request refused: use the Studio's own pages", "text/plain")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_FORM_BYTES:
            self._send(413, b"form too large", "text/plain")
            return
        form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        token = form.get("csrf", [""])[0]
        if not hmac.compare_digest(token.encode(), self.server.csrf_token.encode()):
            self._send(403, b"missing or wrong CSRF token: reload the registry page", "text/plain")
            return
        path = urlsplit(self.path).path
        if path not in ("/registry/approve", "/registry/reject"):
            self._send(404, b"no such action", "text/plain")
            return
        arn = form.get("arn", [""])[0]
        message, error = self._act(path.rsplit("/", 1)[-1], arn)
        key = secrets.token_urlsafe(8)
        while len(self.server.messages) >= MAX_MESSAGES:  # messages nobody came back for
            self.server.messages.pop(next(iter(self.server.messages)))
        self.server.messages[key] = (message, error)
        self._redirect(f"/registry?m={quote(key)}")

    def _act(self, action: str, arn: str) -> tuple:
        """Approve (which deploys) or reject through deploy.approve; returns (message, is_error)."""
        from botocore.exceptions import ClientError

        from deploy import approve as governance
        from deploy.handler import DeployError

        settings = self.server.settings
        lines: list = []
        with self.server.approval_lock:
            try:
                sm = state.sagemaker_client(settings)
                arn = governance.describe(sm, arn)["ModelPackageArn"]
                if action == "approve":
                    result = governance.approve(
                        sm, settings, arn, "approved in the local Studio", log=lambda line: None
                    )
                    version = arn.rsplit("/", 1)[-1]
                    deployment = result.get("deployment") or {}
                    lines.append(f"Approved version {version}.")
                    if deployment.get("message"):
                        lines.append(f"Deploy: {deployment['message']}.")
                    if result.get("endpoint_url"):
                        lines.append(f"Endpoint URL: {result['endpoint_url']} (POST /invocations)")
                else:
                    governance.reject(sm, settings, arn, "rejected in the local Studio", log=lines.append)
            except (governance.ApprovalError, DeployError, ClientError) as failure:
                return f"{action} failed: {failure}", True
        return "\n".join(line for line in lines if line), False


def make_server(settings: Settings, port: Optional[int] = None) -> StudioServer:
    """A Studio server on 127.0.0.1 (port 0 = any free port); call serve_forever() on it."""
    return StudioServer(settings, settings.studio_port if port is None else port)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.studio", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port on 127.0.0.1 (default: {sources('studio_port')}, else 8090; 0 = any free port)",
    )
    p.add_argument("--config", default=None, help="config file (default ./forecast.toml, or FORECAST_CONFIG)")
    return p


def main(argv: Optional[list] = None) -> int:
    console.setup()
    args = parser().parse_args(argv)
    try:
        settings = resolve({"config_file": args.config, "target": "local"})
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        server = make_server(settings, args.port)
    except OSError as error:
        port = settings.studio_port if args.port is None else args.port
        print(
            f"error: cannot listen on {HOST}:{port} ({error.strerror}); pass --port N (or --port 0 for any free port)",
            file=sys.stderr,
        )
        return 1
    print(f"Forecast Studio: {server.url}/  (state: {settings.home_path}; Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
