"""The local endpoint: a real HTTP server with the SageMaker inference-container contract.

Approving a model locally deploys it here, the way SageMaker hosts an Autopilot model:

    GET  /ping             200 when a model is loaded (503 while loading)
    POST /invocations      Autopilot's inference input -> Autopilot's output layout
    GET  /metrics          requests, errors, latency percentiles, model package ARN, uptime
    POST /admin/reload     {"model_dir": ..., "model_package_arn": ...}: swap the model
                           (header X-Admin-Token: the token in the server's 0600 state file)

/invocations input (the same rows a batch transform reads; history rows carry the target,
future rows carry known covariates and an EMPTY target):
  - ``text/csv`` (default): CSV with a header row.
  - ``application/json``: ``{"instances": [{"item_id": "a", "timestamp": "...", ...}, ...]}``
    (a missing or null target means "forecast this"), or the pandas "split" shape
    ``{"columns": ["item_id", ...], "data": [["a", ...], ...]}``.
Output: CSV with a header (item id, grouping columns, timestamp, p10, p50, p90, mean), or,
with ``Accept: application/json``, ``{"predictions": [{column: value, ...}, ...]}``.
Bad input answers 400 with {"error": message}; other failures 500; never a traceback.

A redeploy never drops requests: the new model is loaded completely beside the old one,
then a single reference is swapped under a lock; requests already running finish on the
model they started with.

Process control (state file ``<home>/endpoints/<name>.json``, log ``<name>.log`` beside it):
    python -m deploy.endpoint serve --model-dir D [--port P] [--name N]   (foreground)
    python -m deploy.endpoint start --model-dir D [--port P] [--name N]   (background, waits for /ping)
    python -m deploy.endpoint reload --model-dir D [--model-package-arn A]
    python -m deploy.endpoint status | stop
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import http.client
import io
import json
import logging
import os
import shutil
import secrets
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional
from processing.atomic import write_text_atomic

LOG = logging.getLogger("deploy.endpoint")
HOST = "127.0.0.1"
ADMIN_HEADER = "X-Admin-Token"
MAX_BODY_BYTES = 64 * 1024 * 1024        # SageMaker real-time payloads are capped far lower (6 MB)
STATE_WATCH_SECONDS = 2.0                # a server whose state file disappears stops itself
LATENCY_WINDOW = 10_000                  # recent invocations kept for the percentiles
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class BadRequest(ValueError):
    """The caller's input is wrong (answered with 400 and this message)."""


class EndpointError(RuntimeError):
    """Starting, reaching or stopping a local endpoint failed; the message says what to do."""


# --------------------------------------------------------------------------------------------
# Request and response bodies
# --------------------------------------------------------------------------------------------
def _media_type(header: Optional[str]) -> str:
    return (header or "").split(";")[0].strip().lower()


def parse_body(body: bytes, content_type: Optional[str], text_columns: tuple = ()):
    """Inference input -> DataFrame. CSV (header present) by default; JSON by content type.

    `text_columns` (the model's item id, grouping and timestamp columns) are read as text, so
    an item called "007" stays "007" instead of becoming the number 7.
    """
    import pandas as pd

    if not body or not body.strip():
        raise BadRequest("empty request body: send the item's history rows and future rows "
                         "(CSV with a header, or JSON {\"instances\": [...]})")
    media = _media_type(content_type)
    if media in ("application/json", "application/jsonlines", "text/json"):
        frame = _parse_json(body)
        for column in text_columns:
            if column in frame.columns:
                frame[column] = frame[column].map(lambda v: v if v is None or isinstance(v, str) else str(v))
        return frame
    if media not in ("", "text/csv", "text/plain", "application/octet-stream", "*/*"):
        raise BadRequest(f"unsupported Content-Type {content_type!r}: use text/csv (header present) "
                         "or application/json")
    try:
        frame = pd.read_csv(io.BytesIO(body), dtype={c: str for c in text_columns})
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise BadRequest(f"the body is not a CSV with a header row: {error}") from None
    if frame.empty:
        raise BadRequest("the CSV has a header but no rows: send history rows and future rows")
    return frame


def _parse_json(body: bytes):
    import pandas as pd

    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"the body is not valid JSON: {error}") from None
    if isinstance(document, dict) and "instances" in document:
        rows = document["instances"]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise BadRequest('"instances" must be a non-empty list of objects, one per row '
                             '({"item_id": ..., "timestamp": ..., "target_value": ...})')
        return pd.DataFrame.from_records(rows)
    if isinstance(document, dict) and "columns" in document and "data" in document:
        columns, data = document["columns"], document["data"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise BadRequest('"columns" must be a list of column names')
        if not isinstance(data, list) or not data:
            raise BadRequest('"data" must be a non-empty list of rows')
        for index, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(columns):
                raise BadRequest(f'"data" row {index} must be a list of {len(columns)} values '
                                 f"(one per column), got {row!r:.80}")
        return pd.DataFrame(data, columns=columns)
    raise BadRequest('JSON input must be {"instances": [{...row...}, ...]} or '
                     '{"columns": [...], "data": [[...], ...]}')


def render_body(frame, accept: Optional[str]) -> tuple[bytes, str]:
    """Forecast frame -> (body, content type): CSV unless the caller accepts only JSON."""
    media = _media_type(accept)
    if media in ("application/json", "text/json"):
        records = json.loads(frame.to_json(orient="records", date_format="iso"))
        return json.dumps({"predictions": records}).encode(), "application/json"
    return frame.to_csv(index=False).encode(), "text/csv"


# --------------------------------------------------------------------------------------------
# The model slot (hot swap) and metrics
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LoadedModel:
    model: Any
    model_dir: str
    model_package_arn: Optional[str]
    loaded_at: float


def engine_loader(model_dir: Path) -> Any:
    from forecasting import load_model  # the engine is heavy: import it only where it serves

    return load_model(model_dir)


def resolve_model_dir(path: Path, cache_root: Path) -> Path:
    """A model directory from what a ModelDataUrl points at: a directory or a model.tar.gz."""
    path = Path(path)
    if path.is_dir():
        # a training output folder (leaderboard.csv + model/) rather than the artifact itself
        nested = path / "model"
        if nested.is_dir() and not any(p.suffix in (".joblib", ".pkl") for p in path.iterdir()):
            return nested
        return path
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        stat = path.stat()
        target = cache_root / f"{path.name.split('.')[0]}-{stat.st_size}-{int(stat.st_mtime_ns)}"
        if not target.is_dir():
            cache_root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=cache_root))
            with tarfile.open(path) as archive:
                archive.extractall(staging, filter="data")
            if target.exists():   # another loader won the race
                shutil.rmtree(staging, ignore_errors=True)
            else:
                os.replace(staging, target)
        return target
    raise BadRequest(f"model artifact {path} does not exist (expected a model directory or "
                     "model.tar.gz written by the AutoML step)")


class ModelSlot:
    """Holds the serving model; `swap` loads the new one fully before replacing the reference."""

    def __init__(self, loader: Callable[[Path], Any], cache_root: Path):
        self._loader = loader
        self._cache_root = cache_root
        self._lock = threading.Lock()          # guards the reference
        self._reload_lock = threading.Lock()   # one load at a time
        self._current: Optional[LoadedModel] = None
        self.reloads = 0

    @property
    def current(self) -> Optional[LoadedModel]:
        with self._lock:
            return self._current

    def load(self, model_dir: str | Path, model_package_arn: Optional[str] = None) -> LoadedModel:
        with self._reload_lock:
            directory = resolve_model_dir(Path(model_dir), self._cache_root)
            model = self._loader(directory)            # slow part, outside the reference lock
            loaded = LoadedModel(model, str(directory), model_package_arn, time.time())
            with self._lock:
                replaced, self._current = self._current, loaded
            if replaced is not None:
                self.reloads += 1
            return loaded


class Metrics:
    """Thread-safe request counters and a window of recent invocation latencies."""

    def __init__(self):
        self._lock = threading.Lock()
        self.started = time.time()
        self.requests: collections.Counter = collections.Counter()
        self.statuses: collections.Counter = collections.Counter()
        self.invocations = 0
        self.invocation_errors = 0
        self.invocation_statuses: collections.Counter = collections.Counter()   # "4xx"/"5xx", like SageMaker
        self.last_error: Optional[str] = None
        self._latencies: collections.deque = collections.deque(maxlen=LATENCY_WINDOW)

    def record(self, route: str, status: int, seconds: float, error: Optional[str] = None) -> None:
        with self._lock:
            self.requests[route] += 1
            self.statuses[str(status)] += 1
            if route == "/invocations":
                self.invocations += 1
                self._latencies.append(seconds)
                if status >= 400:
                    self.invocation_errors += 1
                    self.invocation_statuses[f"{status // 100}xx"] += 1
            if error:
                self.last_error = error

    def snapshot(self) -> dict:
        import numpy as np

        with self._lock:
            latencies = np.array(self._latencies, dtype=float) * 1000.0
            counts = dict(self.requests)
            statuses = dict(self.statuses)
            invocations, errors, last_error = self.invocations, self.invocation_errors, self.last_error
            by_class = dict(self.invocation_statuses)
        percentiles = ({f"p{q}": round(float(np.percentile(latencies, q)), 3) for q in (50, 90, 99)}
                       | {"max": round(float(latencies.max()), 3)} if latencies.size else {})
        return {
            "uptime_seconds": round(time.time() - self.started, 3),
            "requests": sum(counts.values()), "requests_by_route": counts, "responses_by_status": statuses,
            "invocations": invocations, "invocation_errors": errors,
            "errors_4xx": by_class.get("4xx", 0), "errors_5xx": by_class.get("5xx", 0),   # of /invocations
            "latency_ms": percentiles | {"window": int(latencies.size)},
            "last_error": last_error,
        }


# --------------------------------------------------------------------------------------------
# The HTTP server
# --------------------------------------------------------------------------------------------
class EndpointServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on loopback; joins in-flight requests when it closes."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    request_queue_size = 128   # many clients connecting at once must queue, not be refused

    def __init__(self, port: int, name: str, slot: ModelSlot, host: str = HOST,
                 admin_token: Optional[str] = None):
        super().__init__((host, port), _Handler)
        self.name = name
        self.slot = slot
        self.metrics = Metrics()
        self.admin_token = admin_token   # when set, /admin/reload needs it (it is in the 0600 state file)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.port}"


class _Handler(BaseHTTPRequestHandler):
    server: EndpointServer
    # HTTP/1.0: one request per connection, so closing the server never waits on idle keep-alives
    server_version = "forecast-local-endpoint/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        LOG.debug("%s " + format, self.address_string(), *args)

    # -- plumbing --
    def _send(self, status: int, body: bytes, content_type: str) -> None:
        """Stage the response: it is written after the metrics count it (a reader never lags a client)."""
        self._response = (status, body, content_type)

    def _send_json(self, status: int, document: dict) -> None:
        self._send(status, json.dumps(document, default=str).encode(), "application/json")

    def _write(self) -> None:
        status, body, content_type = self._response
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise BadRequest(f"request body of {length} bytes exceeds the {MAX_BODY_BYTES} byte limit")
        return self.rfile.read(length) if length else b""

    def _route(self, method: str) -> None:
        route = self.path.split("?")[0]
        started = time.perf_counter()
        error = None
        self._response = (500, b'{"error": "no response"}', "application/json")
        try:
            self._dispatch(method, route)
        except BadRequest as problem:
            error = str(problem)
            self._send_json(400, {"error": error})
        except Exception as problem:  # noqa: BLE001 - the server answers 500 instead of dying
            error = f"{type(problem).__name__}: {problem}"
            LOG.exception("request %s %s failed", method, route)
            self._send_json(500, {"error": f"the model failed to forecast: {error}"})
        self.server.metrics.record(route, self._response[0], time.perf_counter() - started, error)
        try:
            self._write()
        except (BrokenPipeError, ConnectionResetError):
            LOG.info("client closed the connection before the %s %s response", method, route)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    # -- routes --
    def _dispatch(self, method: str, route: str) -> int:
        loaded = self.server.slot.current
        if method == "GET" and route == "/ping":
            if loaded is None:
                self._send_json(503, {"status": "loading"})
                return 503
            self._send(200, b"", "text/plain")
            return 200
        if method == "GET" and route == "/metrics":
            self._send_json(200, self._metrics(loaded))
            return 200
        if method == "POST" and route == "/invocations":
            body = self._read_body()
            if loaded is None:
                self._send_json(503, {"error": "no model is loaded yet; retry when GET /ping answers 200"})
                return 503
            context = parse_body(body, self.headers.get("Content-Type"), _text_columns(loaded.model))
            try:
                forecast = loaded.model.predict(context)
            except (ValueError, KeyError, TypeError) as problem:
                raise BadRequest(f"cannot forecast this input: {problem}") from None
            payload, content_type = render_body(forecast, self.headers.get("Accept"))
            self._send(200, payload, content_type)
            return 200
        if method == "POST" and route == "/admin/reload":
            token = self.server.admin_token
            if token and not secrets.compare_digest(self.headers.get(ADMIN_HEADER, ""), token):
                self._read_body()
                self._send_json(403, {"error": f"reloading needs the {ADMIN_HEADER} header from the state file"})
                return 403
            return self._reload()
        self._read_body()
        self._send_json(404, {"error": f"no route {method} {route}; routes: GET /ping, POST /invocations, "
                                       "GET /metrics, POST /admin/reload"})
        return 404

    def _reload(self) -> int:
        try:
            request = json.loads(self._read_body() or b"{}")
        except ValueError as error:
            raise BadRequest(f"reload body is not JSON: {error}") from None
        if not isinstance(request, dict) or not isinstance(request.get("model_dir"), str):
            raise BadRequest('reload needs {"model_dir": "<path>", "model_package_arn": "<arn, optional>"}')
        loaded = self.server.slot.load(request["model_dir"], request.get("model_package_arn"))
        _update_state(self.server, loaded)
        self._send_json(200, {"model_dir": loaded.model_dir, "model_package_arn": loaded.model_package_arn,
                              "reloads": self.server.slot.reloads})
        return 200

    def _metrics(self, loaded: Optional[LoadedModel]) -> dict:
        document = {"endpoint_name": self.server.name, "url": self.server.url, "pid": os.getpid()}
        document |= self.server.metrics.snapshot()
        document |= {
            "model_loaded": loaded is not None,
            "model_package_arn": loaded.model_package_arn if loaded else None,
            "model_dir": loaded.model_dir if loaded else None,
            "model_loaded_at": _iso(loaded.loaded_at) if loaded else None,
            "model_reloads": self.server.slot.reloads,
        }
        return document


def _text_columns(model: Any) -> tuple:
    """The identifier columns of the model's data (read as text), when the model says which."""
    config = getattr(model, "config", None)
    names = [getattr(config, "item_id_column", None), getattr(config, "timestamp_column", None),
             *(getattr(config, "grouping_columns", None) or ())]
    return tuple(n for n in names if isinstance(n, str))


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# State files and process control
# --------------------------------------------------------------------------------------------
def endpoints_dir(home: Path) -> Path:
    return Path(home) / "endpoints"


def state_path(home: Path, name: str) -> Path:
    return endpoints_dir(home) / f"{name}.json"


def read_state(home: Path, name: str) -> Optional[dict]:
    try:
        return json.loads(state_path(home, name).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _write_json_atomically(path: Path, document: dict) -> None:
    write_text_atomic(path, json.dumps(document, indent=2, default=str))


_STATE_FILES: dict[int, Path] = {}   # id(server) -> its state file (servers run by serve())


def _update_state(server: EndpointServer, loaded: LoadedModel) -> None:
    path = _STATE_FILES.get(id(server))
    if path is None:
        return
    state = json.loads(path.read_text()) if path.exists() else {}
    state |= {"model_dir": loaded.model_dir, "model_package_arn": loaded.model_package_arn,
              "model_loaded_at": _iso(loaded.loaded_at)}
    _write_json_atomically(path, state)


_CHILDREN: dict[int, subprocess.Popen] = {}   # servers this process started (reaped on stop)


def pid_alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie answers kill(0) but serves nothing
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def http_request(url: str, method: str = "GET", body: bytes = b"", headers: Optional[dict] = None,
                 timeout: float = 60.0) -> tuple[int, dict, bytes]:
    """One HTTP exchange on loopback (stdlib only): (status, headers, body)."""
    address = url.split("://", 1)[-1]
    hostport, _, path = address.partition("/")
    host, _, port = hostport.partition(":")
    connection = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
    try:
        connection.request(method, "/" + path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def ping(url: str, timeout: float = 2.0) -> bool:
    try:
        return http_request(url.rstrip("/") + "/ping", timeout=timeout)[0] == 200
    except OSError:
        return False


def running_state(home: Path, name: str) -> Optional[dict]:
    """The state of a live server called `name`, or None (stale state files are ignored)."""
    state = read_state(home, name)
    if state and state.get("pid") and pid_alive(int(state["pid"])):
        return state
    return None


def start(name: str, model_dir: str | Path, *, home: Path, port: int,
          model_package_arn: Optional[str] = None, timeout: float = 180.0,
          any_port_if_busy: bool = True) -> dict:
    """Start `serve` as a background process and wait until /ping answers 200; returns its state."""
    home = Path(home)
    if running_state(home, name):
        raise EndpointError(f"endpoint {name!r} is already running ({state_path(home, name)}); "
                            "reload it with a new model or stop it first")
    directory = endpoints_dir(home)
    directory.mkdir(parents=True, exist_ok=True)
    state_path(home, name).unlink(missing_ok=True)
    log_path = directory / f"{name}.log"
    command = [sys.executable, "-m", "deploy.endpoint", "serve", "--name", name, "--home", str(home),
               "--model-dir", str(model_dir), "--port", str(port)]
    if model_package_arn:
        command += ["--model-package-arn", model_package_arn]
    if any_port_if_busy:
        command.append("--any-port-if-busy")
    env = dict(os.environ, FORECAST_HOME=str(home),
               PYTHONPATH=os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p))
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=env, start_new_session=True)
    _CHILDREN[process.pid] = process
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EndpointError(f"endpoint {name!r} exited with code {process.returncode} while starting; "
                                f"log {log_path}:\n{_tail(log_path)}")
        state = read_state(home, name)
        if state and state.get("pid") == process.pid and ping(state["url"]):
            return state
        time.sleep(0.2)
    _terminate(process.pid)
    raise EndpointError(f"endpoint {name!r} did not answer /ping within {timeout:.0f}s; "
                        f"log {log_path}:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _terminate(pid: int, timeout: float = 15.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        child.wait(timeout=5)


def stop(home: Path, name: str) -> bool:
    """Stop the server called `name`; False when none was running. Removes its state file."""
    state = read_state(home, name)
    was_running = bool(state and state.get("pid") and pid_alive(int(state["pid"])))
    if was_running:
        _terminate(int(state["pid"]))
    state_path(home, name).unlink(missing_ok=True)
    return was_running


def reload(home: Path, name: str, model_dir: str | Path, model_package_arn: Optional[str] = None,
           timeout: float = 300.0) -> dict:
    """Swap the running server's model (no downtime); raises EndpointError when it fails."""
    state = running_state(home, name)
    if state is None:
        raise EndpointError(f"endpoint {name!r} is not running; start it with "
                            f"python -m deploy.endpoint start --name {name} --model-dir {model_dir}")
    body = json.dumps({"model_dir": str(model_dir), "model_package_arn": model_package_arn}).encode()
    headers = {"Content-Type": "application/json", ADMIN_HEADER: state.get("admin_token", "")}
    status, _, answer = http_request(state["url"] + "/admin/reload", "POST", body, headers, timeout=timeout)
    if status != 200:
        raise EndpointError(f"endpoint {name!r} refused the new model {model_dir}: "
                            f"{_error_message(answer)} (it keeps serving the previous model)")
    return json.loads(answer)


def _error_message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error"))
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:500]


def serve(model_dir: str | Path, *, home: Path, name: str, port: int,
          model_package_arn: Optional[str] = None, any_port_if_busy: bool = False,
          loader: Callable[[Path], Any] = engine_loader) -> None:
    """Bind, load the model, write the state file, serve until SIGTERM/SIGINT, clean up."""
    home = Path(home)
    slot = ModelSlot(loader, endpoints_dir(home) / "models")
    token = secrets.token_hex(16)
    try:
        server = EndpointServer(port, name, slot, admin_token=token)
    except OSError as error:
        if not any_port_if_busy:
            raise EndpointError(f"cannot listen on {HOST}:{port}: {error}; pick another --port "
                                "(or FORECAST_ENDPOINT_PORT)") from None
        print(f"port {port} is busy ({error}); listening on a free port instead", flush=True)
        server = EndpointServer(0, name, slot, admin_token=token)
    path = state_path(home, name)
    _STATE_FILES[id(server)] = path
    state = {"name": name, "pid": os.getpid(), "host": HOST, "port": server.port, "url": server.url,
             "admin_token": server.admin_token,
             "started_at": _iso(time.time()), "log": str(endpoints_dir(home) / f"{name}.log"),
             "model_dir": str(model_dir), "model_package_arn": model_package_arn}
    _write_json_atomically(path, state)

    def _shutdown(signum, frame):  # noqa: ARG001 - signal handler signature
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    print(f"endpoint {name!r} listening on {server.url}; loading model from {model_dir}", flush=True)
    loader_thread = threading.Thread(target=_initial_load, args=(server, model_dir, model_package_arn),
                                     daemon=True)
    loader_thread.start()
    threading.Thread(target=_watch_state_file, args=(server, path), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        current = read_state(home, name)
        if current and current.get("pid") == os.getpid():
            path.unlink(missing_ok=True)
        print(f"endpoint {name!r} stopped", flush=True)


def _watch_state_file(server: EndpointServer, path: Path, every: float = STATE_WATCH_SECONDS) -> None:
    """Stop when the state file is gone or names another process (local state removed, home deleted):
    nothing could find or stop this server any more, so it must not linger."""
    while True:
        time.sleep(every)
        try:
            owner = json.loads(path.read_text()).get("pid")
        except FileNotFoundError:
            owner = None
        except ValueError:
            continue
        if owner != os.getpid():
            print(f"state file {path} is gone or taken over; stopping", flush=True)
            server.shutdown()
            return


def _initial_load(server: EndpointServer, model_dir, model_package_arn) -> None:
    try:
        loaded = server.slot.load(model_dir, model_package_arn)
    except Exception as error:  # noqa: BLE001 - reported, then the process exits non-zero
        LOG.exception("loading the model failed")
        print(f"cannot load the model from {model_dir}: {type(error).__name__}: {error}", flush=True)
        os._exit(3)
    _update_state(server, loaded)
    print(f"model loaded from {loaded.model_dir}; /ping answers 200", flush=True)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.endpoint", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    descriptions = {
        "serve": "Run the endpoint server in the foreground (GET /ping, POST /invocations, GET /metrics).",
        "start": "Start the endpoint server in the background and wait until /ping answers; prints its state "
                 "(URL, pid, port).",
        "reload": "Swap the running endpoint's model without dropping requests.",
        "status": "Print the running endpoint's state and /metrics (requests, errors, latency).",
        "stop": "Stop the running endpoint server.",
    }
    for command in ("serve", "start", "reload"):
        sub = commands.add_parser(command, help=descriptions[command].split(" (")[0].rstrip("."),
                                  description=descriptions[command])
        sub.add_argument("--model-dir", required=True, help="the engine's model directory (or model.tar.gz)")
        sub.add_argument("--model-package-arn", default=None, help="reported by /metrics and the API")
        if command != "reload":
            sub.add_argument("--port", type=int, default=None, help="default: settings endpoint_port")
            sub.add_argument("--any-port-if-busy", action="store_true",
                             help="listen on a free port when --port is taken (the state file says which)")
    for command in ("status", "stop"):
        commands.add_parser(command, help=descriptions[command].split(" (")[0].rstrip("."),
                            description=descriptions[command])
    for sub in commands.choices.values():
        sub.add_argument("--name", default=None, help="endpoint name (default: settings endpoint_name)")
        sub.add_argument("--home", default=None, help="local state folder (default: FORECAST_HOME)")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    from pipelines.settings import resolve

    args = _parser().parse_args(argv)
    settings = resolve({"home": args.home})
    home, name = settings.home_path, args.name or settings.endpoint_name
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            serve(args.model_dir, home=home, name=name, port=args.port or settings.endpoint_port,
                  model_package_arn=args.model_package_arn, any_port_if_busy=args.any_port_if_busy)
        elif args.command == "start":
            state = start(name, args.model_dir, home=home, port=args.port or settings.endpoint_port,
                          model_package_arn=args.model_package_arn, any_port_if_busy=args.any_port_if_busy)
            print(json.dumps(state, indent=2))
        elif args.command == "reload":
            print(json.dumps(reload(home, name, args.model_dir, args.model_package_arn), indent=2))
        elif args.command == "status":
            return _status(home, name)
        elif args.command == "stop":
            print(f"endpoint {name!r} stopped" if stop(home, name) else f"endpoint {name!r} was not running")
    except (EndpointError, BadRequest) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _status(home: Path, name: str) -> int:
    state = running_state(home, name)
    if state is None:
        print(f"endpoint {name!r} is not running (no live server in {endpoints_dir(home)})")
        return 1
    document = {"state": {k: v for k, v in state.items() if k != "admin_token"}}
    try:
        status, _, body = http_request(state["url"] + "/metrics", timeout=5)
        document["metrics"] = json.loads(body) if status == 200 else {"error": body.decode(errors="replace")}
    except OSError as error:
        document["metrics"] = {"error": f"{state['url']} unreachable: {error}"}
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
