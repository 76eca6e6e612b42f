"""The endpoint's HTTP server: worker processes that share one listening socket.

`serve` (what ``python -m deploy.endpoint serve`` runs) binds the port, writes the state file
(``<home>/endpoints/<name>.json``: pid, URL, admin token, model), and hands the socket to a
`WorkerPool`, which forks `workers` processes (setting endpoint_workers, FORECAST_ENDPOINT_WORKERS,
default the number of cores) and replaces any that dies. Each worker is an `EndpointServer`
answering with threads (`_Handler`: the routes) and following the shared board for model swaps
(a swap loads the model in every worker beside the old one before anyone answers the reload,
so no request fails or waits during it). The supervisor imports no model code and starts no
thread before forking (fork-safe).

Bodies are read and written by `deploy.endpoint_codec`; the model and the board are
`deploy.model_slot`'s; the HTTP hygiene (JSON errors, 405, timed and bounded reads) is
`deploy.http_base`'s.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from deploy.endpoint_codec import (
    INVOCATION_TIMEOUT_SECONDS,
    REALTIME_PAYLOAD_LIMIT_BYTES,
    BadRequest,
    check_span,
    check_values,
    parse_body,
    render_body,
    text_columns,
)
from deploy.http_base import HttpError, JsonHttpServer, JsonRequestHandler
from deploy.model_slot import LoadedModel, ModelSlot, ResponseCache, SharedBoard, engine_loader
from processing.atomic import staged_file
from processing.kernel.process_env import configure_threads
from processing.kernel.processes import process_start, terminate

LOG = logging.getLogger(__name__)
HOST = "127.0.0.1"
ADMIN_HEADER = "X-Admin-Token"
CACHE_HEADER = "X-Forecast-Cache"
MAX_BODY_BYTES = REALTIME_PAYLOAD_LIMIT_BYTES  # the container refuses what SageMaker would never pass on
# A request's compute deadline: the invocation timeout less a margin for the last check, the
# answer and its trip back, so the client reads our error (413) rather than SageMaker's timeout.
COMPUTE_MARGIN_SECONDS = 5.0
COMPUTE_SECONDS = INVOCATION_TIMEOUT_SECONDS - COMPUTE_MARGIN_SECONDS
FOLLOW_SECONDS = 0.02  # how often a worker looks for a new model on the board
RELOAD_TIMEOUT_SECONDS = 300.0  # every worker must have loaded a new model within this
STATE_WATCH_SECONDS = 2.0  # a server whose state file disappears stops itself
STOP_TIMEOUT_SECONDS = 15.0  # a server, or a worker, asked to stop (SIGTERM) is killed after this
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


class EndpointError(RuntimeError):
    """Starting, reaching or stopping a local endpoint failed; the message says what to do."""


# --------------------------------------------------------------------------------------------
# The HTTP server (one per worker process; all share the listening socket)
# --------------------------------------------------------------------------------------------
class EndpointServer(JsonHttpServer):
    """A threaded HTTP server on loopback; joins in-flight requests when it closes.

    Standalone (tests, one process) it binds its own socket and has a one-slot board; as a
    pre-fork worker it takes the supervisor's listening socket and its slot on the shared board.
    """

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    request_queue_size = 128  # many clients connecting at once must queue, not be refused

    def __init__(
        self,
        port: int,
        name: str,
        slot: ModelSlot,
        host: str = HOST,
        admin_token: Optional[str] = None,
        board: Optional[SharedBoard] = None,
        index: int = 0,
        sock: Optional[socket.socket] = None,
        state_file: Optional[Path] = None,
    ):
        if sock is None:
            super().__init__((host, port), _Handler)
        else:
            super().__init__(sock.getsockname(), _Handler, bind_and_activate=False)
            self.socket.close()
            self.socket = sock
        self.name = name
        self.slot = slot
        self.board = board or SharedBoard(1)
        self.index = index
        self._owns_board = board is None
        if board is None:
            self.board.set(0, "pid", os.getpid())
        self.admin_token = admin_token  # when set, /admin/reload needs it (it is in the 0600 state file)
        self.state_file = state_file
        self._offered: dict[int, LoadedModel] = {}
        self._follower: Optional[threading.Thread] = None
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.port}"

    @property
    def ready(self) -> bool:
        """This worker serves a model and every worker has loaded one (a replaced worker accepts only once loaded)."""
        return self.slot.current is not None and self.board.ready

    # -- following the board --
    def start_follower(self, parent_pid: Optional[int] = None, exit_on_first_failure: bool = False) -> None:
        self._follower = threading.Thread(
            target=self._follow, args=(parent_pid, exit_on_first_failure), name=f"follower-{self.index}", daemon=True
        )
        self._follower.start()

    def server_close(self) -> None:
        self._stopping.set()
        super().server_close()
        if self._owns_board:
            with contextlib.suppress(OSError):
                os.unlink(self.board.lock_path)

    def _follow(self, parent_pid: Optional[int], exit_on_first_failure: bool) -> None:
        while not self._stopping.wait(FOLLOW_SECONDS):
            if parent_pid is not None and os.getppid() != parent_pid:
                LOG.warning("worker %d: the supervisor is gone; stopping", self.index)
                threading.Thread(target=self.shutdown, daemon=True).start()
                return
            try:
                self.follow_once(exit_on_first_failure)
            except Exception:  # noqa: BLE001 - the follower must outlive any one load
                LOG.exception("worker %d: following the model board failed", self.index)

    def follow_once(self, exit_on_first_failure: bool = False) -> None:
        seen = (self.board.get(self.index, "loaded_generation"), self.board.get(self.index, "failed_generation"))
        if self.board.generation in seen:
            return
        generation, record = self.board.desired()
        if record is None or generation in seen:
            return
        current = self.slot.current
        loaded = self._offered.pop(generation, None)
        try:
            if (
                loaded is None
                and current is not None
                and current.source == record["model_dir"]
                and current.model_package_arn == record.get("model_package_arn")
            ):
                loaded = current  # a roll-back to what this worker still serves
            if loaded is None:
                loaded = self.slot.prepare(record["model_dir"], record.get("model_package_arn"))
        except Exception as error:  # noqa: BLE001 - reported on the board; the old model keeps serving
            message = f"{type(error).__name__}: {error}"
            LOG.warning("worker %d cannot load %s: %s", self.index, record["model_dir"], message)
            self.board.record(self.index, "other", 500, 0.0, f"loading {record['model_dir']}: {message}")
            if current is None and exit_on_first_failure:
                LOG.error("cannot load the model from %s: %s", record["model_dir"], message)
                os._exit(3)
            self.board.set(self.index, "failed_generation", generation)
            return
        if loaded is not current:
            self.slot.swap(loaded)
        self.board.set(self.index, "cache_entries", 0)
        self.board.set(self.index, "loaded_generation", generation)

    # -- coordinating a swap across the workers --
    def coordinate_load(
        self, model_dir: str, model_package_arn: Optional[str] = None, timeout: float = RELOAD_TIMEOUT_SECONDS
    ) -> dict:
        """Load `model_dir` in every worker, then answer; on any failure all go back to the previous model."""
        with self.board.reload_lock(timeout):
            loaded = self.slot.prepare(model_dir, model_package_arn)  # a bad model fails here, nobody swapped
            _, previous = self.board.desired()
            generation = self.board.publish({"model_dir": str(model_dir), "model_package_arn": model_package_arn})
            self._offered[generation] = loaded
            failed = self._wait_for(generation, timeout)
            if failed:
                reasons = "; ".join(f"worker {i}: {self.board.error_text(i)}" for i in failed)
                if previous is not None:
                    self._wait_for(self.board.publish(previous), timeout)
                raise HttpError(
                    500,
                    f"{len(failed)} worker(s) could not load the model ({reasons}); "
                    "every worker keeps serving the previous model",
                )
            reloads = self.board.count_reload() if previous is not None else self.board.reloads
        if self.state_file is not None:
            update_state(self.state_file, loaded)
        return {
            "model_dir": loaded.model_dir,
            "model_package_arn": loaded.model_package_arn,
            "reloads": reloads,
            "workers": len(self.board.live()),
            "generation": generation,
        }

    def _wait_for(self, generation: int, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        if self._follower is None:  # a server without a follower thread follows here
            self.follow_once()
        while True:
            live = self.board.live()
            failed = [i for i in live if self.board.get(i, "failed_generation") == generation]
            pending = [i for i in live if i not in failed and self.board.get(i, "loaded_generation") != generation]
            if not pending:
                return failed
            if time.monotonic() > deadline:
                raise HttpError(500, f"worker(s) {pending} did not load the model within {timeout:.0f} s")
            time.sleep(0.01)


class _Handler(JsonRequestHandler):
    server: EndpointServer
    # HTTP/1.0: one request per connection, so closing the server never waits on idle keep-alives
    server_version = "forecast-local-endpoint/1"
    compute_seconds = COMPUTE_SECONDS  # per /invocations request, from its arrival (tests lower it)

    def on_method_not_allowed(self, method: str) -> None:
        self.server.board.record(self.server.index, self.path.split("?")[0], 405, 0.0)

    # -- plumbing --
    def _send(self, status: int, body: bytes, content_type: str, headers: Optional[dict] = None) -> None:
        """Stage the response: it is written after the metrics count it (a reader never lags a client)."""
        self._response = (status, body, content_type, headers or {})

    def _send_json(self, status: int, document: dict, headers: Optional[dict] = None) -> None:
        self._send(status, json.dumps(document, default=str).encode(), "application/json", headers)

    def _write(self) -> None:
        self.send_body(*self._response)

    def _read_body(self) -> bytes:
        return self.read_body(MAX_BODY_BYTES, HttpError(413, f"HTTP content length exceeded {MAX_BODY_BYTES} bytes."))

    def _route(self, method: str) -> None:
        route = self.path.split("?")[0]
        started = time.perf_counter()
        error = None
        self._response = (500, b'{"error": "no response"}', "application/json", {})
        try:
            self._dispatch(method, route)
        except HttpError as problem:
            error = str(problem)
            self._send_json(problem.status, {"error": error}, problem.headers)
        except BadRequest as problem:
            error = str(problem)
            self._send_json(400, {"error": error})
        except Exception as problem:  # noqa: BLE001 - the server answers 500 instead of dying
            error = f"{type(problem).__name__}: {problem}"
            LOG.exception("request %s %s failed", method, route)
            what = "the model failed to forecast" if route == "/invocations" else f"{method} {route} failed"
            self._send_json(500, {"error": f"{what}: {error}"})
        self.server.board.record(self.server.index, route, self._response[0], time.perf_counter() - started, error)
        self._write()

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._route("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    # -- routes --
    def _dispatch(self, method: str, route: str) -> int:
        loaded = self.server.slot.current
        if method == "GET" and route == "/ping":
            if not self.server.ready:
                self._send_json(503, {"status": "loading"})
                return 503
            self._send(200, b"", "text/plain")
            return 200
        if method == "GET" and route == "/metrics":
            self._send_json(200, self._metrics(loaded))
            return 200
        if method == "POST" and route == "/invocations":
            return self._invoke(loaded)
        if method == "POST" and route == "/admin/reload":
            token = self.server.admin_token
            if token and not secrets.compare_digest(self.headers.get(ADMIN_HEADER, ""), token):
                self._read_body()
                self._send_json(403, {"error": f"reloading needs the {ADMIN_HEADER} header from the state file"})
                return 403
            return self._reload()
        if route in ("/ping", "/metrics", "/invocations", "/admin/reload"):
            allow = "GET" if route in ("/ping", "/metrics") else "POST"
            raise HttpError(405, f"method {method} is not allowed on {route}; use {allow}", {"Allow": allow})
        self._read_body()
        self._send_json(
            404,
            {
                "error": f"no route {method} {route}; routes: GET /ping, POST /invocations, "
                "GET /metrics, POST /admin/reload"
            },
        )
        return 404

    def _invoke(self, loaded: Optional[LoadedModel]) -> int:
        deadline = time.monotonic() + self.compute_seconds
        body = self._read_body()
        if loaded is None:
            self._send_json(503, {"error": "no model is loaded yet; retry when GET /ping answers 200"})
            return 503
        board, index = self.server.board, self.server.index
        content_type, accept = self.headers.get("Content-Type"), self.headers.get("Accept")
        key = ResponseCache.key(body, content_type, accept)
        cached = loaded.cache.get(key)
        if cached is not None:
            board.add(index, "cache_hits")
            self._send(200, cached[0], cached[1], {CACHE_HEADER: "hit"})
            return 200
        board.add(index, "cache_misses")
        context = parse_body(body, content_type, text_columns(loaded.model))
        check_values(context)
        check_span(context, loaded.model)
        try:
            forecast = loaded.model.predict(context, deadline=deadline)
        except (ValueError, KeyError, TypeError) as problem:
            raise BadRequest(f"cannot forecast this input: {problem}") from None
        except RuntimeError as problem:
            from forecasting.models.base import TimeBudgetExceeded  # the engine: never imported before the fork

            if not isinstance(problem, TimeBudgetExceeded):
                raise
            item = getattr(getattr(loaded.model, "config", None), "item_id_column", None)
            items = f"{context[item].nunique()} items, " if item in context.columns else ""
            # 413 (content larger than the server is able to process): the client's fix is a smaller request
            raise HttpError(
                413,
                f"the request was too large to forecast within {self.compute_seconds:g} s "
                f"({items}{len(context)} rows; SageMaker's real-time invocation "
                f"timeout is {INVOCATION_TIMEOUT_SECONDS:g} s): send fewer items per "
                "request, or use batch transform for large sets",
            ) from None
        payload, media = render_body(forecast, accept)
        loaded.cache.put(key, payload, media)
        if loaded is self.server.slot.current:
            board.set(index, "cache_entries", len(loaded.cache))
        self._send(200, payload, media, {CACHE_HEADER: "miss"})
        return 200

    def _reload(self) -> int:
        try:
            request = json.loads(self._read_body() or b"{}")
        except ValueError as error:
            raise BadRequest(f"reload body is not JSON: {error}") from None
        if not isinstance(request, dict) or not isinstance(request.get("model_dir"), str):
            raise BadRequest('reload needs {"model_dir": "<path>", "model_package_arn": "<arn, optional>"}')
        self._send_json(200, self.server.coordinate_load(request["model_dir"], request.get("model_package_arn")))
        return 200

    def _metrics(self, loaded: Optional[LoadedModel]) -> dict:
        document = {"endpoint_name": self.server.name, "url": self.server.url, "pid": os.getpid()}
        document |= self.server.board.snapshot()
        document |= {
            "model_loaded": loaded is not None,
            "model_package_arn": loaded.model_package_arn if loaded else None,
            "model_dir": loaded.model_dir if loaded else None,
            "model_loaded_at": _iso(loaded.loaded_at) if loaded else None,
            "model_reloads": self.server.board.reloads,
        }
        return document


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# The state file (written by the server, read by deploy.endpoint's process control)
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


def write_state(path: Path, document: dict) -> None:
    """Atomically, and readable by its owner only (0600): it holds the admin token of /admin/reload."""
    with staged_file(path) as temporary:
        os.chmod(temporary, 0o600)  # before the token is in it
        temporary.write_text(json.dumps(document, indent=2, default=str))


def update_state(path: Path, loaded: LoadedModel) -> None:
    """Record the model now served in the state file (after a coordinated swap)."""
    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return
    state |= {
        "model_dir": loaded.model_dir,
        "model_package_arn": loaded.model_package_arn,
        "model_loaded_at": _iso(loaded.loaded_at),
    }
    write_state(path, state)


# --------------------------------------------------------------------------------------------
# The pre-fork server: bind, fork the workers, supervise them
# --------------------------------------------------------------------------------------------
def serve(
    model_dir: str | Path,
    *,
    home: Path,
    name: str,
    port: int,
    model_package_arn: Optional[str] = None,
    any_port_if_busy: bool = False,
    workers: Optional[int] = None,
    loader: Callable[[Path], Any] = engine_loader,
) -> int:
    """Bind, fork `workers` server processes on the one socket, supervise them until SIGTERM/SIGINT.

    The supervisor imports no model code and starts no thread before forking (fork-safe); each
    worker loads the model itself, serves with threads, and follows the shared board for swaps.
    A worker that dies is replaced (it loads the model being served). Returns the exit code.
    """
    home = Path(home)
    workers = max(1, int(workers or os.cpu_count() or 1))
    sock = _listen(port, any_port_if_busy)
    board = SharedBoard(workers)
    board.publish({"model_dir": str(model_dir), "model_package_arn": model_package_arn})
    url = f"http://{HOST}:{sock.getsockname()[1]}"
    path = state_path(home, name)
    token = secrets.token_hex(16)
    # pid and its start time: deploy.endpoint tells this server from a later process given the same pid
    state = {
        "name": name,
        "pid": os.getpid(),
        "process_start": process_start(os.getpid()),
        "host": HOST,
        "port": sock.getsockname()[1],
        "url": url,
        "admin_token": token,
        "workers": workers,
        "started_at": _iso(time.time()),
        "log": str(endpoints_dir(home) / f"{name}.log"),
        "model_dir": str(model_dir),
        "model_package_arn": model_package_arn,
    }
    write_state(path, state)
    thread_environment(workers)
    supervisor = WorkerPool(
        sock, board, name=name, token=token, state_file=path, loader=loader, cache_root=endpoints_dir(home) / "models"
    )
    LOG.info(
        "endpoint %r listening on %s with %d worker process(es); loading model from %s", name, url, workers, model_dir
    )
    code = supervisor.run()
    try:
        os.unlink(board.lock_path)
    except OSError:
        pass
    current = read_state(home, name)
    if current and current.get("pid") == os.getpid():
        path.unlink(missing_ok=True)
    LOG.info("endpoint %r stopped", name)
    return code


def thread_environment(workers: int) -> None:
    """The threading variables of a server with `workers` processes, set before the engine loads."""
    configure_threads()  # the workers load the model (LightGBM, torch) after this
    if workers > 1:  # one thread per model worker, as statsforecast pins BLAS in its worker processes
        for variable in THREAD_VARIABLES:
            os.environ.setdefault(variable, "1")


def _listen(port: int, any_port_if_busy: bool) -> socket.socket:
    def bind(number: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, number))
        except OSError:
            sock.close()
            raise
        sock.listen(EndpointServer.request_queue_size)
        sock.setblocking(False)  # workers race to accept: the losers get EAGAIN instead of blocking
        return sock

    try:
        return bind(port)
    except OSError as error:
        if not any_port_if_busy:
            raise EndpointError(
                f"cannot listen on {HOST}:{port}: {error}; pick another --port (or FORECAST_ENDPOINT_PORT)"
            ) from None
        LOG.warning("port %d is busy (%s); listening on a free port instead", port, error)
        return bind(0)


class WorkerPool:
    """Forks the workers, replaces the ones that die, stops them all on SIGTERM/SIGINT."""

    def __init__(
        self,
        sock: socket.socket,
        board: SharedBoard,
        *,
        name: str,
        token: str,
        state_file: Path,
        loader: Callable[[Path], Any],
        cache_root: Path,
    ):
        self.sock, self.board, self.name, self.token = sock, board, name, token
        self.state_file, self.loader, self.cache_root = state_file, loader, cache_root
        self.children: dict[int, int] = {}  # pid -> slot
        self.started: dict[int, float] = {}  # slot -> when its worker was forked
        self.stopping = False
        self.exit_code = 0

    def run(self) -> int:
        def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
            self.stopping = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        for index in range(self.board.workers):
            self._spawn(index)
        announced, watched = False, time.monotonic()
        while not self.stopping:
            self._reap()
            if (
                not announced
                and self.board.live()
                and all(self.board.get(i, "loaded_generation") > 0 for i in self.board.live())
            ):
                _, record = self.board.desired()
                LOG.info(
                    "model loaded from %s by %d worker(s); /ping answers 200",
                    record["model_dir"],
                    len(self.board.live()),
                )
                announced = True
            if time.monotonic() - watched > STATE_WATCH_SECONDS:
                watched = time.monotonic()
                if not self._owns_state_file():
                    LOG.warning("state file %s is gone or taken over; stopping", self.state_file)
                    self.stopping = True
            time.sleep(0.05)
        self._stop_workers()
        self.sock.close()
        return self.exit_code

    def _owns_state_file(self) -> bool:
        try:
            return json.loads(self.state_file.read_text()).get("pid") == os.getpid()
        except FileNotFoundError:
            return False
        except ValueError:
            return True  # being rewritten

    def _spawn(self, index: int) -> None:
        self.board.reset_slot(index)
        sys.stdout.flush()
        sys.stderr.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                code = _worker_main(
                    self.sock,
                    self.board,
                    index,
                    name=self.name,
                    token=self.token,
                    state_file=self.state_file,
                    loader=self.loader,
                    cache_root=self.cache_root,
                    parent_pid=parent,
                )
            except BaseException:  # noqa: BLE001 - a worker reports and exits; never returns into the supervisor
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = index
        self.started[index] = time.monotonic()
        self.board.set(index, "pid", pid)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            index = self.children.pop(pid, None)
            if index is None:
                continue
            self.board.reset_slot(index)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                continue
            if code == 3 and not self.board.ready:  # the model cannot be loaded at all: nothing to serve
                LOG.error("worker %d could not load the model; stopping the endpoint", index)
                self.exit_code, self.stopping = 3, True
                return
            LOG.warning("worker %d (pid %d) exited with code %d; starting a new one", index, pid, code)
            if time.monotonic() - self.started.get(index, 0.0) < 1.0:
                time.sleep(1.0)  # a worker dying at once: do not fork in a tight loop
            self._spawn(index)

    def _stop_workers(self) -> None:
        terminate(list(self.children), STOP_TIMEOUT_SECONDS)
        self.children.clear()


def _worker_main(
    sock: socket.socket,
    board: SharedBoard,
    index: int,
    *,
    name: str,
    token: str,
    state_file: Path,
    loader: Callable[[Path], Any],
    cache_root: Path,
    parent_pid: int,
) -> int:
    """One worker: a threaded HTTP server on the shared socket plus the thread that follows the board.

    It loads the model before it accepts any connection, so a replacement worker never answers
    "no model loaded" while the others serve.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # until the server exists, SIGTERM just ends us
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which stops us
    board.set(index, "pid", os.getpid())
    server = EndpointServer(
        0,
        name,
        ModelSlot(loader, cache_root),
        admin_token=token,
        board=board,
        index=index,
        sock=sock,
        state_file=state_file,
    )
    server.follow_once(exit_on_first_failure=True)

    def _shutdown(signum, frame):  # noqa: ARG001 - signal handler signature
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    server.start_follower(parent_pid=parent_pid, exit_on_first_failure=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


# --------------------------------------------------------------------------------------------
# A server process started ahead (standby): the interpreter and the engine's imports done early
# --------------------------------------------------------------------------------------------
PROJECT_ROOT = Path(__file__).resolve().parent.parent
_STANDBY: dict = {}  # home -> (process, environment, workers): started ahead, not yet given an endpoint
_STANDBY_LOCK = threading.Lock()


def server_environment(home: Path) -> dict:
    """The environment of an endpoint's server process (deploy.endpoint's start, and a standby)."""
    return dict(
        os.environ,
        FORECAST_HOME=str(home),
        PYTHONPATH=os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p),
    )


def prestart(home: Path, workers: Optional[int] = None) -> None:
    """Start a server process ahead of the endpoint it will be: its interpreter and the engine's
    imports (0.5-0.7 s of CPU) run while the steps before the deploy do. The next `take_standby`
    under this home, with the same environment and `workers`, gives it its `serve` arguments; until
    then it binds no port and writes no state (no endpoint exists), and it ends when its owner
    closes the pipe (`discard_standby`, or the owner's exit)."""
    key = str(Path(home))
    with _STANDBY_LOCK:
        held = _STANDBY.get(key)
        if held is not None and held[0].poll() is None:
            return
        env = server_environment(Path(home))
        command = [sys.executable, "-m", "deploy.endpoint_server", "--standby", str(workers or 0)]
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # as deploy.endpoint's start: the endpoint outlives its starter
        )
        _STANDBY[key] = (process, env, workers)


def take_standby(
    home: Path, env: dict, workers: Optional[int], argv: list, log_path: Path
) -> Optional[subprocess.Popen]:
    """The home's server started ahead, given `argv` (deploy.endpoint's command line) and its log, when it
    was started with this environment and `workers`; else None (and a mismatched one is ended)."""
    with _STANDBY_LOCK:
        held = _STANDBY.pop(str(Path(home)), None)
    if held is None:
        return None
    process, started_with, started_workers = held
    if process.poll() is None and started_with == env and started_workers == workers:
        try:
            assert process.stdin is not None
            process.stdin.write((json.dumps({"argv": argv, "log": str(log_path)}) + "\n").encode())
            process.stdin.close()
            return process
        except (OSError, ValueError):  # it died meanwhile: start one as usual
            pass
    _discard(process)
    return None


def discard_standby(home: Optional[Path] = None) -> None:
    """End the servers started ahead (under `home`, or all) that got no endpoint (at the owner's exit, too)."""
    with _STANDBY_LOCK:
        keys = [key for key in _STANDBY if home is None or key == str(Path(home))]
        held = [_STANDBY.pop(key) for key in keys]
    for process, _, _ in held:
        _discard(process)


def _discard(process: subprocess.Popen) -> None:
    with contextlib.suppress(OSError, ValueError):
        process.stdin.close()  # type: ignore[union-attr]
    with contextlib.suppress(OSError):
        process.terminate()  # waiting for an endpoint only: nothing to lose
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=2)


atexit.register(discard_standby)


def _standby(workers: Optional[int]) -> int:
    """A server started ahead: the threading variables `serve` sets for its workers, the engine imported,
    then {"argv": deploy.endpoint's arguments, "log": path} read from stdin and run as
    `python -m deploy.endpoint <argv>` would run (its exit code); 0 when the owner closes stdin without one."""
    from processing.kernel.settings import resolve

    count = workers or resolve().effective_endpoint_workers  # what `serve` is given without --workers
    thread_environment(max(1, int(count or os.cpu_count() or 1)))
    if all(os.environ.get(variable) == "1" for variable in THREAD_VARIABLES):
        # BLAS pinned to one thread (as `serve` pins it for several workers): importing the engine now
        # starts no BLAS thread before the workers fork, so every worker forks with it imported
        try:
            import forecasting  # noqa: F401 - what every worker's first model load imports
        except Exception:  # noqa: BLE001 - the workers import it again and report the error in the log
            pass
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    job = json.loads(line)
    log = os.open(job["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for fd in (1, 2):  # as deploy.endpoint's start: the server's output goes to the endpoint's log
        os.dup2(log, fd)
    os.close(log)
    with open(os.devnull) as devnull:
        os.dup2(devnull.fileno(), 0)
    import runpy

    sys.argv = ["deploy.endpoint", *job["argv"]]
    runpy.run_module("deploy.endpoint", run_name="__main__", alter_sys=True)  # `python -m deploy.endpoint ...`
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["--standby"] or len(sys.argv) != 3:
        sys.exit("usage: python -m deploy.endpoint_server --standby WORKERS  (0: the settings' endpoint_workers)")
    from deploy import endpoint_server  # the module deploy.endpoint uses, not this __main__ copy

    sys.exit(endpoint_server._standby(int(sys.argv[2]) or None))
