"""Is this pid still the process that was started? And stopping a process or a process group. Stdlib only.

A pid alone is not an identity: once a process has exited, the kernel hands its pid to the next
one. A process is therefore named by (pid, host, start time) where the start time is field 22 of
/proc/<pid>/stat, and a zombie (exited, not yet reaped) counts as gone: it answers kill(pid, 0)
but runs nothing. The local runtime's records, the local AutoML worker and the local endpoint's
state files all ask here, so they agree on what "alive" means.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

logger = logging.getLogger(__name__)


def hostname() -> str:
    return socket.gethostname()


def _stat_fields(pid: int) -> Optional[list]:
    """/proc/<pid>/stat after "(comm)": index 0 is the state (field 3), 19 the start time (field 22)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_start(pid: int) -> Optional[str]:
    """Start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or None where there is no /proc."""
    fields = _stat_fields(pid)
    return fields[19] if fields is not None and len(fields) > 19 else None


def process_identity(pid: int) -> dict:
    """pid, host and the process's start time (Linux /proc), so a reused pid is not taken for it later."""
    return {"pid": pid, "host": hostname(), "started": process_start(pid)}


def pid_alive(pid: Any, started: Optional[str] = None) -> bool:
    """The process `pid` runs (no zombie); with `started` (process_start's value), it is that very process."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:  # kill(0 or -n) would signal a group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _stat_fields(pid)
    if fields is None:
        return not Path("/proc/self/stat").exists()  # no /proc (macOS): os.kill said it exists
    if not fields or fields[0] in ("Z", "X"):  # exited, not yet reaped
        return False
    return started is None or started == (fields[19] if len(fields) > 19 else None)


def process_alive(identity: Optional[Mapping[str, Any]]) -> Optional[bool]:
    """True/False for a process on this host; None when it cannot be told (other host, no record)."""
    if not identity or not identity.get("pid") or identity.get("host") != hostname():
        return None
    return pid_alive(int(identity["pid"]), identity.get("started"))


def kill_group(identity: Optional[Mapping[str, Any]], why: str) -> bool:
    """SIGKILL the process group led by `identity` when that very process still runs; True if it did."""
    if not identity or process_alive(identity) is not True:
        return False
    pid = int(identity["pid"])
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
        logger.info("killed process group %s (%s)", pid, why)
        return True
    return False


def stop_group(process: subprocess.Popen, grace_seconds: float) -> None:
    """SIGTERM the process group `process` leads (started with start_new_session), SIGKILL after the grace."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_seconds)
    except (ProcessLookupError, PermissionError):
        pass
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def terminate(pids: Iterable[int], timeout: float) -> None:
    """SIGTERM each pid, wait up to `timeout` for all of them to end, then SIGKILL what is left.

    Reaps those that are this process's children (no zombies left behind); a pid that is not a
    child (a server another command started) counts as ended once it no longer runs.
    """
    pending = set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            pending.add(pid)
    deadline = time.monotonic() + timeout
    while pending:
        pending = {pid for pid in pending if not _ended(pid)}
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _ended(pid, block=True)


def _ended(pid: int, block: bool = False) -> bool:
    """Reap `pid` when it is a child that has exited (waiting for it with `block`); else: does it still run?"""
    try:
        reaped, _ = os.waitpid(pid, 0 if block else os.WNOHANG)
    except ChildProcessError:  # not a child of this process, or already reaped (by a reaper thread)
        return not pid_alive(pid)
    return reaped == pid


__all__ = [
    "hostname",
    "kill_group",
    "pid_alive",
    "process_alive",
    "process_identity",
    "process_start",
    "stop_group",
    "terminate",
]


def exit_when_orphaned(
    every_seconds: float, code: int, say: Optional[Callable[[], None]] = None, owner: Optional[int] = None
) -> None:
    """End this process (os._exit(code), after `say`) once its parent is gone, checked every
    `every_seconds` in a daemon thread: a worker that must not run on unobserved, or wait for ever
    on a pipe whose write end its own siblings hold. `owner`: the parent's pid as the parent saw it
    before starting this process; without it the parent this process has now, which is already
    the reaper when the parent died before this call (a loaded machine: a pool worker's initializer
    ran after its owner's exit, and the worker waited for ever)."""
    owner = os.getppid() if owner is None else owner

    def watch() -> None:
        while True:
            time.sleep(every_seconds)
            if os.getppid() != owner:
                if say is not None:
                    say()
                os._exit(code)

    threading.Thread(target=watch, name="exit-when-orphaned", daemon=True).start()
