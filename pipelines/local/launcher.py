"""The warm step launcher: processing steps forked from a server that has imported numpy, pandas and boto3.

Every local processing step is a fresh `python -m processing.entry <module>` in the image's
environment; its interpreter start and the imports of numpy, pandas and boto3 cost about a second
each time, 6-7 times per run. With `step_launcher = fork` (the setting; FORECAST_STEP_LAUNCHER,
`--step-launcher`), the first processing step of an execution starts a server
(pipelines/local/fork_server.py) with the same interpreter and base environment, which imports
those modules once; that step and each later one is a child
forked from it that sets the step's exact environment, cwd, argv and sys.path before running its
module as `python -m` does. The runtime sees it as it sees a spawned process: a pid leading its own
process group (stopped and killed as a group), its exit status, its output on a pipe, death with
the runtime (the server dies with the runtime, the step with the server).

A step falls back to a plain spawn, saying why in its log, whenever forking could make it see
something a fresh interpreter would not: another interpreter, a command other than `python -m`,
an environment differing from the server's in anything but FORECAST_*, AWS_*, SM_* and PYTHONPATH
(OMP/OpenBLAS threads and every PYTHON* variable take effect at start), or a PYTHONPATH entry
(code bundle, requirements overlay) that would shadow a module the server preloaded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from pipelines.local import supervision

logger = logging.getLogger(__name__)

SERVER = Path(__file__).resolve().with_name("fork_server.py")
# what may differ between steps without a fresh interpreter: read by the step's code, not at start
PER_STEP_PREFIXES = ("FORECAST_", "AWS_", "SM_", "SAGEMAKER_")
PER_STEP = ("PYTHONPATH",)
READY_TIMEOUT_SECONDS = 300  # the server's imports on a busy machine; a step never waits longer
LAUNCHERS = ("fork", "spawn")
# what a server for the steps of a requirements overlay imports, by the overlay's top-level packages:
# the plotting steps' matplotlib (Evaluate's plots, Report's charts: 0.3-0.5 s of CPU each)
OVERLAY_PRELOAD = {
    "matplotlib": ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.dates")
}


class LaunchedProcess:
    """A step forked by the server, seen as subprocess.Popen is: pid, stdout, poll, wait, returncode."""

    def __init__(self, pid: int, stdout, status: socket.socket):
        self.pid = pid
        self.stdout = stdout
        self.returncode: Optional[int] = None
        self.cpu_seconds: Optional[float] = None  # the step's CPU (and its waited-for children'), at exit
        self._status = status
        self._buffer = b""
        self.args = None

    def _read(self, timeout: Optional[float]) -> None:
        """Wait up to `timeout` for the server's word on the exit; a server gone means the step is gone."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._status], [], [], left)
            if not ready:
                return
            chunk = self._status.recv(4096)
            if not chunk:  # the server died: its child got SIGKILL (PR_SET_PDEATHSIG)
                self._finish(-9)
                return
            self._buffer += chunk
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                message = json.loads(line)
                if "exit" in message:
                    self.cpu_seconds = message.get("cpu")
                    self._finish(int(message["exit"]))

    def _finish(self, code: int) -> None:
        self.returncode = code
        self._status.close()

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            self._read(0)
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        self._read(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args or "step", timeout)
        return self.returncode

    def send_signal(self, number: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, number)

    def terminate(self) -> None:
        self.send_signal(15)

    def kill(self) -> None:
        self.send_signal(9)


class _ForkedServer:
    """A server the launcher's server forked (for an overlay's steps), seen as subprocess.Popen is by
    close() and the tests, by pid: its parent, the launcher's server, reaps it (and so counts its CPU)."""

    def __init__(self) -> None:
        self.pid: Optional[int] = None
        self.returncode: Optional[int] = None

    def _state(self) -> str:
        """'' when reaped (or never started), else its /proc state letter ('Z': ended, not reaped yet)."""
        if self.pid is None:
            return ""
        try:
            with open(f"/proc/{self.pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return ""

    def poll(self) -> Optional[int]:
        if self.returncode is None and self._state() in ("", "Z", "X"):
            self.returncode = -9 if self.pid is not None else 0
        return self.returncode

    def kill(self) -> None:
        if self.pid is not None and self.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, 9)

    def wait(self, timeout: Optional[float] = 2.0) -> Optional[int]:
        """Until its parent has reaped it (at most `timeout` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._state() and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.005)
        return self.poll()


class StepLauncher:
    """One fork server for one execution's processing steps (started at the first one).

    `overlays` holds the servers forked from it for the steps of a requirements overlay
    (`with_overlay`): those have the overlay's heavy modules imported too, and `overlay` names it."""

    def __init__(self, python: str, env: Mapping[str, str], cwd: Optional[Path], _control=None):
        self.python = python
        self.base_env = {k: v for k, v in env.items() if not _per_step(k)}
        self.overlay: Optional[Path] = None
        self.overlays: dict = {}  # overlay folder -> the StepLauncher of the server forked for it
        self._lock = threading.Lock()  # the control socket: the runtime's thread and a preparing one
        self.ready: Optional[dict] = None
        self.broken: Optional[str] = None
        self.announced = False  # its "started" line is in the log of the first step that used it
        self.used = False  # a step was forked from it
        if _control is not None:  # a server forked by another one (with_overlay)
            self.control, self.server = _control, _ForkedServer()
            return
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.server = subprocess.Popen(
                [python, str(SERVER), str(theirs.fileno())],
                cwd=str(cwd),
                env=dict(self.base_env, PYTHONPATH=""),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                preexec_fn=supervision._DIE_WITH_PARENT,
            )
        except OSError:
            self.control.close()
            raise
        finally:
            theirs.close()

    def with_overlay(self, overlay: Path) -> Optional["StepLauncher"]:
        """The launcher of a server forked from this one for the steps whose PYTHONPATH carries the
        requirements overlay `overlay`, with its heavy modules (OVERLAY_PRELOAD) imported from it; made
        once, its imports beside the steps that run meanwhile. None when the overlay has none of those,
        or has its own copy of a module this server preloaded (its steps fork from this one then: the
        shadow check spawns them)."""
        overlay = Path(overlay)
        if overlay in self.overlays:
            return self.overlays[overlay]
        names = _top_level_names(overlay)
        modules = [module for top in sorted(names) for module in OVERLAY_PRELOAD.get(top, ())]
        if not modules or not self._wait_ready() or names & set(self.ready.get("modules") or []):
            return None
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with self._lock:
                self.control.sendmsg(
                    [json.dumps({"serve": {"path": str(overlay), "preload": modules}}).encode()],
                    [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _fds(theirs.fileno()))],
                )
        except OSError:
            mine.close()
            return None
        finally:
            theirs.close()
        forked = StepLauncher(self.python, self.base_env, None, _control=mine)
        forked.overlay = overlay
        forked.announced = True
        self.overlays[overlay] = forked
        return forked

    def for_step(self, env: Mapping[str, str]) -> "StepLauncher":
        """The server a step with `env` forks from: the one for its overlay when there is one, else this."""
        for entry in filter(None, env.get("PYTHONPATH", "").split(os.pathsep)):
            forked = self.overlays.get(Path(entry))
            if forked is not None and not forked.broken:
                return forked
        return self

    def started_with(self, env: Mapping[str, str]) -> bool:
        """Was this server started with `env` (apart from the per-step variables)?"""
        return {k: v for k, v in env.items() if not _per_step(k)} == self.base_env

    def ready_now(self) -> bool:
        """Has the server said it is ready (without waiting)?"""
        if self.ready is not None or self.broken:
            return True
        try:
            readable, _, _ = select.select([self.control], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable) and self._wait_ready()

    def _wait_ready(self) -> bool:
        with self._lock:
            return self._read_ready()

    def _read_ready(self) -> bool:
        if self.ready is not None or self.broken:
            return self.ready is not None
        buffer = b""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while b"\n" not in buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.control], [], [], max(0.0, left))
            chunk = self.control.recv(1 << 16) if ready else b""
            if not chunk:
                self.broken = "the step launcher did not start" if ready else "the step launcher was not ready in time"
                self.close()
                return False
            buffer += chunk
        self.ready = json.loads(buffer.split(b"\n", 1)[0])
        if isinstance(self.server, _ForkedServer):
            self.server.pid = int(self.ready.get("pid") or 0) or None
        return True

    def why_not(self, command: list, env: Mapping[str, str]) -> Optional[str]:
        """None when `command` may be forked from this server; else why it is spawned instead."""
        if self.broken:
            return self.broken
        if len(command) < 3 or command[1] != "-m":
            return "not a `python -m` command"
        if command[0] != self.python:
            return f"another interpreter ({command[0]})"
        if not self._wait_ready():
            return self.broken
        # KMP_* is read by an OpenMP runtime when it loads (joblib and sklearn set KMP_INIT_AT_FORK
        # when the runtime imports them): it matters only when the server has one loaded already
        openmp = self.ready.get("openmp", True)
        differs = sorted(
            k
            for k in set(env) | set(self.base_env)
            if not _per_step(k) and env.get(k) != self.base_env.get(k) and (openmp or not k.startswith("KMP_"))
        )
        if differs:
            return "environment differs from the launcher's in " + ", ".join(differs[:5])
        preloaded = set(self.ready.get("modules") or [])
        for entry in filter(None, env.get("PYTHONPATH", "").split(os.pathsep)):
            if self.overlay is not None and Path(entry) == self.overlay:
                continue  # what this server preloaded from it is what the step would import from it
            shadowed = sorted(preloaded & _top_level_names(Path(entry)))
            if shadowed:
                return f"{entry} has its own {', '.join(shadowed[:5])}"
        return None

    def launch(self, command: list, cwd: Path, env: Mapping[str, str]) -> LaunchedProcess:
        """Fork the step; raises OSError when the server is gone (the caller spawns instead)."""
        read_end, write_end = os.pipe()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            request = {"module": command[2], "argv": command[3:], "cwd": str(cwd), "env": dict(env)}
            with self._lock:
                self.control.sendmsg(
                    [json.dumps(request).encode()],
                    [(socket.SOL_SOCKET, socket.SCM_RIGHTS, _fds(write_end, theirs.fileno()))],
                )
        except OSError:
            os.close(read_end)
            mine.close()
            raise
        finally:
            os.close(write_end)
            theirs.close()
        stdout = open(read_end, "r", errors="replace", buffering=1)
        buffer = b""
        while b"\n" not in buffer:
            chunk = mine.recv(4096)
            if not chunk:
                stdout.close()
                mine.close()
                raise OSError("the step launcher closed the step's socket before it started")
            buffer += chunk
        line, rest = buffer.split(b"\n", 1)
        message = json.loads(line)
        if "pid" not in message:
            stdout.close()
            mine.close()
            raise OSError(f"the step launcher refused the step: {message.get('error')}")
        process = LaunchedProcess(int(message["pid"]), stdout, mine)
        self.used = True
        process._buffer = rest
        process.args = command
        return process

    def close(self) -> None:
        """Stop the server: closing its control socket ends it; it is then killed, not waited for.

        Its forked steps have ended (or were stopped) by now and it holds nothing to flush, so the
        runtime does not wait the half second an interpreter with pandas loaded takes to tear down."""
        for forked in list(self.overlays.values()):
            forked.close()
        try:
            self.control.close()
        except OSError:
            pass
        if isinstance(self.server, _ForkedServer):  # it exits at once; reaped by the launcher's server, alive
            self.server.wait()  # until the overlays' servers are closed, so that their CPU is counted there
        if self.server.poll() is None:
            with contextlib.suppress(OSError):
                self.server.kill()
        self.server.wait()


def _per_step(name: str) -> bool:
    return name.startswith(PER_STEP_PREFIXES) or name in PER_STEP


def _fds(*numbers: int) -> bytes:
    import array

    return array.array("i", numbers).tobytes()


def _top_level_names(folder: Path) -> set:
    """Importable top-level names in a PYTHONPATH folder: packages, modules, extension modules."""
    names = set()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return names
    for entry in entries:
        name = entry.name
        if entry.is_dir():
            if name.isidentifier():
                names.add(name)
        elif name.endswith((".py", ".pyc", ".so", ".pyd")):
            names.add(name.split(".", 1)[0])
    return names


def spawn_or_fork(
    execution, command: list, cwd: Path, env: Mapping[str, str], log, meanwhile: Optional[Callable[[], None]] = None
) -> object:
    """The step's process: forked from the execution's launcher when the settings ask for it and it is
    safe, else spawned (supervision.spawn). `log` gets one line saying which, and why not forked.
    `meanwhile`: work of the runtime's own to do before waiting for a launcher still importing."""
    if getattr(execution.settings, "step_launcher", "spawn") != "fork" or not _fork_supported():
        return supervision.spawn(command, cwd=cwd, env=env)
    launcher = getattr(execution, "launcher", None)
    forkable = len(command) >= 3 and command[1] == "-m"
    if launcher is not None and forkable and not launcher.used and not launcher.started_with(env):
        # started ahead (WarmStart) with the environment the steps were expected to get, which is not this
        # first step's: of no use to it (nor to the steps after it, which get the same); one with it replaces it
        log("[runtime] the step launcher started ahead has another environment than the step's: replaced")
        close(execution)
        launcher = None
    if launcher is None:
        if not forkable:
            return supervision.spawn(command, cwd=cwd, env=env)
        try:
            launcher = execution.launcher = StepLauncher(command[0], env, cwd.parent)
        except OSError as error:
            log(f"[runtime] step launcher not started ({error}): spawning")
            return supervision.spawn(command, cwd=cwd, env=env)
        # this step waits for the server's imports rather than doing the same imports itself beside it:
        # the same wall time on idle cores, a second less of CPU (and of wall on busy ones)
        log("[runtime] step launcher started: numpy, pandas and boto3 imported once, for every step")
        launcher.announced = True
    elif not launcher.announced:  # started with the execution (WarmStart), its imports done meanwhile
        log("[runtime] step launcher started with the execution: numpy, pandas and boto3 imported once, for every step")
        launcher.announced = True
    if meanwhile is not None and not launcher.ready_now():
        meanwhile()
    forked = launcher.for_step(env)
    if forked is not launcher:  # a server with the step's overlay's modules imported already
        if forked.why_not(command, env) is None:
            try:
                process = forked.launch(command, cwd, env)
                base = set((launcher.ready or {}).get("ready") or [])
                preloaded = ", ".join(name for name in forked.ready.get("ready", []) if name not in base)
                log(
                    f"[runtime] forked from the step launcher's server for the step's requirements overlay "
                    f"(pid {process.pid}; {preloaded} imported from it ahead)"
                )
                return process
            except OSError as error:
                forked.broken = str(error)
    reason = launcher.why_not(command, env)
    if reason is None:
        try:
            process = launcher.launch(command, cwd, env)
            log(f"[runtime] forked from the step launcher (pid {process.pid})")
            return process
        except OSError as error:
            reason = str(error)
            launcher.broken = reason
    log(f"[runtime] spawned, not forked: {reason}")
    return supervision.spawn(command, cwd=cwd, env=env)


class WarmStart:
    """The processing steps' interpreter resolved, and the step launcher started, in a thread from the
    start of a local run, so that they are ready (or nearly) when the first processing step needs
    them instead of costing that step a second or more of wall time.

    `resolve()` gives the StepEnvironment (pipelines.local.step_env.resolve), at once. `early()`, when
    given, is called next, before the execution exists: (environment, cwd) to start the launcher with
    at once (the environment the steps are expected to get; None: wait for the plan), so that its
    imports overlap the runtime's own start (rendering, the definition's checks, the loopback API).
    `plan(environment, cwd)`, once the execution exists, says what the launcher needs: `environment()`
    is the first processing step's environment (None: a step that is not `python -m`, or one known only
    when it runs; then the launcher started early, if any, is kept for that step to judge). A launcher
    started early whose environment is not the planned one (apart from the per-step variables) is
    replaced by one that has it. The first processing step calls `take()`: what it gets is what it
    would have made itself, and it makes it itself when this failed.

    The thread lives until `close()`: a step launcher dies with the thread that started it
    (PR_SET_PDEATHSIG), so the thread must outlive the launcher's use.
    """

    def __init__(
        self,
        resolve: Callable[[], Any],
        early: Optional[Callable[[], Optional[tuple]]] = None,
    ):
        self._resolve = resolve
        self._early = early
        self._environment: Optional[Callable[[], Optional[Mapping[str, str]]]] = None
        self._cwd: Optional[Path] = None
        self.step_env: Any = None
        self.error: Optional[BaseException] = None
        self.launcher: Optional[StepLauncher] = None
        self.started_early = False  # the launcher is the one started before the plan (for the log)
        self._planned, self._prepared, self._done = threading.Event(), threading.Event(), threading.Event()
        self._taken = False
        self._thread = threading.Thread(target=self._work, name="warm-start", daemon=True)
        self._thread.start()

    def plan(self, environment: Optional[Callable[[], Optional[Mapping[str, str]]]], cwd: Path) -> None:
        """What the launcher is started with (environment None: no launcher, only the interpreter)."""
        self._environment, self._cwd = environment, cwd
        self._planned.set()

    def _start(self, env: Mapping[str, str], cwd: Path) -> None:
        cwd.mkdir(parents=True, exist_ok=True)
        self.launcher = StepLauncher(self.step_env.python, env, cwd)

    def _work(self) -> None:
        try:
            self.step_env = self._resolve()
            guess = self._early() if self._early is not None and not self._done.is_set() else None
            if guess is not None and _fork_supported():
                self._start(*guess)
                self.started_early = True
            while not (self._planned.wait(0.5) or self._done.is_set()):
                pass
            env = self._environment() if self._environment is not None and not self._done.is_set() else None
            if env is not None and self.launcher is not None and not self.launcher.started_with(env):
                self.launcher.close()  # started early with another environment: of no use to the steps
                self.launcher, self.started_early = None, False
            if env is not None and self.launcher is None and _fork_supported() and self._cwd is not None:
                self._start(env, self._cwd)
        except BaseException as error:  # noqa: BLE001 - the first step reports it (or redoes the work)
            self.error = error
            logger.debug("warm start failed: %s", error)
        finally:
            self._prepared.set()
        self._done.wait()
        if self.launcher is not None and not self._taken:  # closed before a step took it
            self.launcher.close()

    def take(self) -> tuple:
        """(StepEnvironment or None, StepLauncher or None, error or None) once the thread has made them."""
        if not self._planned.is_set():  # a caller that gives no plan gets no launcher
            self.plan(None, Path("."))
        while not self._prepared.wait(0.5):  # a bounded wait: Ctrl-C gets through
            pass
        self._taken = True
        return self.step_env, self.launcher, self.error

    def close(self) -> None:
        """Stop the thread, and the launcher when no step took it (the thread closes it as it ends)."""
        self._done.set()
        if self._prepared.is_set():  # else it is still resolving (building the environment): it ends after
            self._thread.join(timeout=5)


def close(execution) -> None:
    """End the execution's launcher, if it started one."""
    launcher = getattr(execution, "launcher", None)
    if launcher is not None:
        execution.launcher = None
        launcher.close()


def _fork_supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "SCM_RIGHTS")
