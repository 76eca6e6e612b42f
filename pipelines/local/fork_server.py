"""The warm step launcher's server: runs in the processing steps' interpreter, forks one child per step.

Started by pipelines.local.launcher (one per execution) as `<step python> fork_server.py <fd>`,
with the base environment the steps get. It imports the heavy third-party modules of the image
(numpy, pandas, boto3/botocore) once, then, per request on its control socket, forks a child that
becomes the step exactly as `python -m <module> <args>` would start it: its own session and process
group, SIGKILL when this server dies (which dies with the runtime), the step's exact environment,
cwd, sys.path (cwd, then the step's PYTHONPATH, then the interpreter's own), argv, stdin /dev/null,
stdout and stderr on the runtime's pipe (received with SCM_RIGHTS). The server reports the child's
pid and, once reaped, its exit status (subprocess's convention: -N for signal N) on the step's own
socket. The project's code is never imported here: it comes from the step's code bundle, in the child.

A request {"serve": {"path": <overlay>, "preload": [...]}} with one socket forks a server of the same kind
for the steps whose PYTHONPATH carries that requirements overlay (matplotlib for the plotting steps):
it imports those modules too, with the overlay ahead of the interpreter's own folders as the steps have
it, and serves its steps on that socket; it dies with this server.

Standard library only, and nothing of the project: this file runs in the image's environment, by
path; its own folder is taken off sys.path first so nothing beside it is importable by a step.
"""

import sys

del sys.path[0]  # the folder of this file (pipelines/local): never importable by a step

import array  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402

PRELOAD = ("numpy", "pandas", "boto3", "botocore.session")  # in the image; the project imports them at start
_PR_SET_PDEATHSIG = 1
MAX_REQUEST = 1 << 20


def _die_with_parent() -> None:
    """PR_SET_PDEATHSIG(SIGKILL): this process dies with the one that started it (Linux)."""
    try:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        if name:
            ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def preload(names=PRELOAD) -> list:
    """Import the heavy modules once; one that fails to import is simply not preloaded."""
    loaded = []
    for name in names:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception:  # noqa: BLE001 - the step imports it again, and reports its own error
            pass
    return loaded


def openmp_loaded() -> bool:
    """Is an OpenMP runtime mapped in this process? (Only then do KMP_* variables matter to a fork.)"""
    try:
        with open("/proc/self/maps") as maps:
            return any(("libgomp" in line or "libomp" in line or "libiomp" in line) for line in maps)
    except OSError:
        return True


def _exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


def _send(sock: socket.socket, message: dict) -> None:
    try:
        sock.sendall(json.dumps(message).encode() + b"\n")
    except OSError:  # the runtime closed its end: nothing to tell
        pass


def _detach(parent: int, close: list) -> None:
    """In a forked child: no wakeup fd of the parent's loop, death with `parent` (at once when it is
    already gone: it died before the signal was set), and the parent's descriptors in `close` shut."""
    signal.set_wakeup_fd(-1)
    _die_with_parent()
    if os.getppid() != parent:
        os._exit(1)
    for fd in close:
        try:
            os.close(fd)
        except OSError:
            pass


def run_step(request: dict, out_fd: int, close: list, base_path: list, server: int) -> None:
    """In the child: become the step (`python -m module args`) and exit with its code. Never returns."""
    code = 1
    try:
        os.setsid()
        for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _detach(server, close)  # the server: the step dies with it
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        paths = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
        sys.path[:] = [os.getcwd()] + paths + base_path  # what `python -m` builds
        importlib.invalidate_caches()
        if "numpy.random" in sys.modules:  # a spawned step seeds numpy's global generator from the OS; so does this
            sys.modules["numpy.random"].seed()
        sys.modules["__main__"] = types.ModuleType("__main__")
        sys.argv = ["-m"] + list(request["argv"])
        import runpy
        import threading

        try:
            runpy._run_module_as_main(request["module"], alter_argv=True)
            code = 0
        except SystemExit as done:
            value = done.code
            if value is None:
                code = 0
            elif isinstance(value, int):
                code = value
            else:
                print(value, file=sys.stderr)
                code = 1
        except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
            sys.excepthook(*sys.exc_info())
            code = 1
        try:  # the interpreter's own shutdown: non-daemon threads, then atexit
            threading._shutdown()
            import atexit

            atexit._run_exitfuncs()
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
    except BaseException:  # noqa: BLE001 - setting up the step failed: say so on its output
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
        os._exit(code & 0xFF)  # as the interpreter: sys.exit(256) is 0, sys.exit(-1) is 255


def serve(control: socket.socket, overlay=None) -> None:
    """Fork a step per request until the runtime closes the control socket.

    overlay: (folder, modules) for a server forked from another one for the steps with that
    requirements overlay: the modules are imported from it (the folder first on sys.path meanwhile;
    a step's own sys.path is built from its PYTHONPATH, which carries the folder)."""
    base_path = list(sys.path)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd hears of exits
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    running: dict = {}  # child pid -> its step socket
    loaded = preload()
    if overlay is not None:
        folder, names = overlay
        sys.path[:] = [folder] + base_path
        loaded += preload(names)
        sys.path[:] = base_path
    modules = sorted({name.split(".")[0] for name in sys.modules})
    _send(
        control,
        {"ready": loaded, "modules": modules, "openmp": openmp_loaded(), "path": base_path, "pid": os.getpid()},
    )
    while True:
        readable, _, _ = select.select([control, wake_r], [], [])
        if wake_r in readable:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
        while True:  # reap every child that ended (steps, and servers forked for an overlay)
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            step = running.pop(pid, None)
            if step is not None:
                cpu = usage.ru_utime + usage.ru_stime  # the step and the children it waited for
                _send(step, {"exit": _exit_status(status), "cpu": round(cpu, 3)})
                step.close()
        if control not in readable:
            continue
        fds = array.array("i")
        try:
            data, ancdata, _, _ = control.recvmsg(MAX_REQUEST, socket.CMSG_LEN(2 * fds.itemsize))
        except InterruptedError:
            continue
        if not data:  # the runtime closed its end (or died): the server is done
            return
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
        try:
            request = json.loads(data.decode())
        except ValueError:
            request = None
        close = [control.fileno(), wake_r, wake_w] + [s.fileno() for s in running.values()]
        if isinstance(request, dict) and "serve" in request and len(fds) == 1:
            _fork_server(request["serve"], int(fds[0]), close)
            continue
        if len(fds) != 2:
            for fd in fds:
                os.close(fd)
            continue
        out_fd, step_fd = fds
        step = socket.socket(fileno=step_fd)
        if not isinstance(request, dict) or "module" not in request:
            _send(step, {"error": "bad request"})
            os.close(out_fd)
            step.close()
            continue
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        server = os.getpid()
        pid = os.fork()
        if pid == 0:
            run_step(request, out_fd, close + [step.fileno()], base_path, server)
        os.close(out_fd)
        running[pid] = step
        _send(step, {"pid": pid})


def _fork_server(spec: dict, control_fd: int, close: list) -> None:
    """A server for the steps with one requirements overlay, forked from this one (it has this one's
    modules already): it imports the overlay's and serves on `control_fd`; it dies with this server."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    parent = os.getpid()
    if os.fork() != 0:
        os.close(control_fd)
        return
    code = 0
    try:
        _detach(parent, close)
        control = socket.socket(fileno=control_fd)
        serve(control, overlay=(str(spec["path"]), list(spec.get("preload") or [])))
    except BaseException:  # noqa: BLE001 - the runtime sees its control socket close and spawns instead
        code = 1
    os._exit(code)


def main() -> None:
    _die_with_parent()
    control = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(control)
    finally:
        control.close()


if __name__ == "__main__":
    main()
