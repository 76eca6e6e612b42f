"""The local endpoint: real HTTP server processes with the SageMaker inference-container contract.

Approving a model locally deploys it here, the way SageMaker hosts an Autopilot model:

    GET  /ping             200 when every worker has a model loaded (503 while loading)
    POST /invocations      Autopilot's inference input -> Autopilot's output layout
    GET  /metrics          requests, errors, latency percentiles, cache, workers, model package ARN
    POST /admin/reload     {"model_dir": ..., "model_package_arn": ...}: swap the model in every worker
                           (header X-Admin-Token: the token in the server's 0600 state file)

Like SageMaker's model servers it uses every core: a supervisor binds the port and forks
`workers` processes (setting endpoint_workers, FORECAST_ENDPOINT_WORKERS, default the number
of cores) that accept on the one listening socket, each serving with threads; a model swap
reaches every worker before the reload is answered, and /metrics sums all their counters.
A repeated request (same body, content type and accept) is answered from the model's bounded
cache (header X-Forecast-Cache: hit); a swap drops the cache with the old model.
Bad input answers 4xx with {"error": message} (400 malformed or non-finite values, 405 other
methods, 408 a body that does not arrive in time, 413 over the 6 MB real-time payload limit);
model failures 500; never a traceback.

The parts, one module each: the body codec (`deploy.endpoint_codec`: the input and output
layouts), the model slot and the board the workers share (`deploy.model_slot`), the HTTP
server and its worker processes (`deploy.endpoint_server`). This module is the CLI and the
process control (`LocalEndpoints`): start, stop, reload and report an endpoint's server process.

Process control (state file ``<home>/endpoints/<name>.json``, log ``<name>.log`` beside it):
    python -m deploy.endpoint serve --model-dir D [--port P] [--name N] [--workers W]   (foreground)
    python -m deploy.endpoint start --model-dir D [--port P] [--name N] [--workers W]   (background)
    python -m deploy.endpoint reload --model-dir D [--model-package-arn A]
    python -m deploy.endpoint status | stop
`status` exits 0 for a live server, 1 for none, 3 for a dead one (its state file is left but its
process was killed or crashed).
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from deploy.endpoint_codec import BadRequest, parse_body, render_body  # noqa: F401 - the endpoint's names
from deploy.endpoint_server import (  # noqa: F401 - importers reach the server's parts through this module
    ADMIN_HEADER,
    CACHE_HEADER,
    HOST,
    MAX_BODY_BYTES,
    REALTIME_PAYLOAD_LIMIT_BYTES,
    STOP_TIMEOUT_SECONDS,
    EndpointError,
    EndpointServer,
    endpoints_dir,
    read_state,
    serve,
    server_environment,
    state_path,
    take_standby,
    write_state,
)
from deploy.model_slot import MODEL_ARCHIVE_SUFFIXES, ModelSlot, engine_loader, resolve_model_dir  # noqa: F401
from processing.kernel.processes import pid_alive, terminate
from processing.kernel.settings import resolve, sources

LOG = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Talking to a server
# --------------------------------------------------------------------------------------------
def http_request(
    url: str, method: str = "GET", body: bytes = b"", headers: Optional[dict] = None, timeout: float = 60.0
) -> tuple[int, dict, bytes]:
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


def _error_message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error"))
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:500]


def server_alive(state: Optional[dict]) -> bool:
    """The state file's server process still runs: its pid, and the start time it recorded (a reused pid is not it)."""
    return bool(state and state.get("pid") and pid_alive(int(state["pid"]), state.get("process_start")))


# --------------------------------------------------------------------------------------------
# Process control
# --------------------------------------------------------------------------------------------
class LocalEndpoints:
    """Start, stop, reload and report the endpoint server processes of one local home.

    What is running is read from each endpoint's state file (``<home>/endpoints/<name>.json``,
    written by the server itself), never remembered here, so any process (the CLI, the local
    control plane, a test) sees the same endpoints. A server this process starts is reaped by
    a thread waiting on it, so a stopped or crashed one leaves no zombie behind.
    """

    def __init__(self, home: Path):
        self.home = Path(home)

    def state_path(self, name: str) -> Path:
        return state_path(self.home, name)

    def read_state(self, name: str) -> Optional[dict]:
        return read_state(self.home, name)

    def running_state(self, name: str) -> Optional[dict]:
        """The state of a live server called `name`, or None (stale state files are ignored)."""
        state = self.read_state(name)
        if server_alive(state):
            return state
        return None

    def start(
        self,
        name: str,
        model_dir: str | Path,
        *,
        port: int,
        model_package_arn: Optional[str] = None,
        timeout: float = 180.0,
        any_port_if_busy: bool = True,
        workers: Optional[int] = None,
    ) -> dict:
        """Start `serve` as a background process and wait until /ping answers 200; returns its state."""
        if self.running_state(name):
            raise EndpointError(
                f"endpoint {name!r} is already running ({self.state_path(name)}); "
                "reload it with a new model or stop it first"
            )
        directory = endpoints_dir(self.home)
        directory.mkdir(parents=True, exist_ok=True)
        self.state_path(name).unlink(missing_ok=True)
        log_path = directory / f"{name}.log"
        command = [
            sys.executable,
            "-m",
            "deploy.endpoint",
            "serve",
            "--name",
            name,
            "--home",
            str(self.home),
            "--model-dir",
            str(model_dir),
            "--port",
            str(port),
        ]
        if model_package_arn:
            command += ["--model-package-arn", model_package_arn]
        if any_port_if_busy:
            command.append("--any-port-if-busy")
        if workers:
            command += ["--workers", str(workers)]
        env = server_environment(self.home)
        process = take_standby(self.home, env, workers, command[3:], log_path)  # one started ahead, if any
        if process is None:
            with open(log_path, "ab") as log:
                process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,
                )
        threading.Thread(target=process.wait, name=f"reap-endpoint-{process.pid}", daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EndpointError(
                    f"endpoint {name!r} exited with code {process.returncode} while starting; "
                    f"log {log_path}:\n{_tail(log_path)}"
                )
            state = self.read_state(name)
            if state and state.get("pid") == process.pid and ping(state["url"]):
                return state
            time.sleep(0.2)
        terminate([process.pid], STOP_TIMEOUT_SECONDS)
        raise EndpointError(
            f"endpoint {name!r} did not answer /ping within {timeout:.0f}s; log {log_path}:\n{_tail(log_path)}"
        )

    def stop(self, name: str) -> bool:
        """Stop the server called `name`; False when none was running. Removes its state file."""
        state = self.read_state(name)
        was_running = server_alive(state)
        if was_running:
            terminate([int(state["pid"])], STOP_TIMEOUT_SECONDS)  # type: ignore[index]  (server_alive: a state with a pid)
        self.state_path(name).unlink(missing_ok=True)
        return was_running

    def reload(
        self, name: str, model_dir: str | Path, model_package_arn: Optional[str] = None, timeout: float = 300.0
    ) -> dict:
        """Swap the running server's model (no downtime); raises EndpointError when it fails."""
        state = self.running_state(name)
        if state is None:
            raise EndpointError(
                f"endpoint {name!r} is not running; start it with "
                f"python -m deploy.endpoint start --name {name} --model-dir {model_dir}"
            )
        body = json.dumps({"model_dir": str(model_dir), "model_package_arn": model_package_arn}).encode()
        headers = {"Content-Type": "application/json", ADMIN_HEADER: state.get("admin_token", "")}
        status, _, answer = http_request(state["url"] + "/admin/reload", "POST", body, headers, timeout=timeout)
        if status != 200:
            raise EndpointError(
                f"endpoint {name!r} refused the new model {model_dir}: "
                f"{_error_message(answer)} (it keeps serving the previous model)"
            )
        return json.loads(answer)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# The functions other modules call, each over a LocalEndpoints of the given home
def running_state(home: Path, name: str) -> Optional[dict]:
    """The state of a live server called `name`, or None (stale state files are ignored)."""
    return LocalEndpoints(home).running_state(name)


def start(
    name: str,
    model_dir: str | Path,
    *,
    home: Path,
    port: int,
    model_package_arn: Optional[str] = None,
    timeout: float = 180.0,
    any_port_if_busy: bool = True,
    workers: Optional[int] = None,
) -> dict:
    """Start `serve` as a background process and wait until /ping answers 200; returns its state."""
    return LocalEndpoints(home).start(
        name,
        model_dir,
        port=port,
        model_package_arn=model_package_arn,
        timeout=timeout,
        any_port_if_busy=any_port_if_busy,
        workers=workers,
    )


def stop(home: Path, name: str) -> bool:
    """Stop the server called `name`; False when none was running. Removes its state file."""
    return LocalEndpoints(home).stop(name)


def reload(
    home: Path, name: str, model_dir: str | Path, model_package_arn: Optional[str] = None, timeout: float = 300.0
) -> dict:
    """Swap the running server's model (no downtime); raises EndpointError when it fails."""
    return LocalEndpoints(home).reload(name, model_dir, model_package_arn, timeout)


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
        sub = commands.add_parser(
            command, help=descriptions[command].split(" (")[0].rstrip("."), description=descriptions[command]
        )
        sub.add_argument("--model-dir", required=True, help="the engine's model directory (or model.tar.gz)")
        sub.add_argument("--model-package-arn", default=None, help="reported by /metrics and the API")
        if command != "reload":
            sub.add_argument("--port", type=int, default=None, help=f"the port (or {sources('endpoint_port')})")
            sub.add_argument(
                "--any-port-if-busy",
                action="store_true",
                help="listen on a free port when --port is taken (the state file says which)",
            )
            sub.add_argument(
                "--workers",
                type=int,
                default=None,
                help=f"model worker processes (or {sources('endpoint_workers')}; by default the number of cores)",
            )
    for command in ("status", "stop"):
        commands.add_parser(
            command, help=descriptions[command].split(" (")[0].rstrip("."), description=descriptions[command]
        )
    for sub in commands.choices.values():
        sub.add_argument("--name", default=None, help=f"endpoint name (or {sources('endpoint_name')})")
        sub.add_argument("--home", default=None, help=f"local state folder (or {sources('home')})")
    return parser


def model_dir_problem(model_dir: str) -> Optional[str]:
    """Why --model-dir cannot be served (resolve_model_dir's accepted shapes), or None."""
    path = Path(model_dir)
    if path.is_dir():
        return None
    if path.is_file():
        if path.name.endswith(MODEL_ARCHIVE_SUFFIXES):
            return None
        return f"--model-dir {model_dir} is a file, not a model directory or model.tar.gz"
    return (
        f"--model-dir {model_dir} does not exist (expected the engine's model directory or the model.tar.gz "
        "the AutoML step wrote)"
    )


def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    settings = resolve({"home": args.home})
    home, name = settings.home_path, args.name or settings.endpoint_name
    port = settings.endpoint_port if getattr(args, "port", None) is None else args.port  # 0: any free port
    problem = model_dir_problem(args.model_dir) if hasattr(args, "model_dir") else None
    if problem:  # before a server starts and logs its way to the same error
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # the server's messages (serve) go to stderr, which `start` sends to <home>/endpoints/<name>.log
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            return serve(
                args.model_dir,
                home=home,
                name=name,
                port=port,
                model_package_arn=args.model_package_arn,
                any_port_if_busy=args.any_port_if_busy,
                workers=args.workers or settings.effective_endpoint_workers,
            )
        elif args.command == "start":
            state = start(
                name,
                args.model_dir,
                home=home,
                port=port,
                model_package_arn=args.model_package_arn,
                any_port_if_busy=args.any_port_if_busy,
                workers=args.workers,
            )
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
        left = read_state(home, name)
        if left and left.get("pid"):  # a state file whose server is gone: killed or crashed, not stopped
            package = left.get("model_package_arn")
            again = (
                f"approving its version again restarts it: python -m deploy.approve approve "
                f"{package.rsplit('/', 1)[-1]}"
                if package
                else f"start it again: python -m deploy.endpoint start --name {name} --model-dir ..."
            )
            print(
                f"endpoint {name!r} is dead: its server process (pid {left['pid']}, {left.get('url', 'no url')}) "
                f"is gone (killed or crashed; `stop` was not used); {again}"
            )
            return 3
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
