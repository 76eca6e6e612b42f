"""Process supervision for the local runtime: who is alive, and nothing left running after a crash.

A record names its processes by identity (pid, host, start time), so a reused pid is never taken
for the runtime or a step. A step process dies with the runtime (Linux: PR_SET_PDEATHSIG), and
what survives a crash anyway (a step started elsewhere, an AutoML training process) is killed
when the dead execution is noticed (`reap`) or retried.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime
import logging
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from pipelines.local import records

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def process_identity(pid: int) -> dict:
    """pid, host and the process's start time (Linux /proc), so a reused pid is not taken for the runtime."""
    return {"pid": pid, "host": hostname(), "started": process_start(pid)}


def hostname() -> str:
    return socket.gethostname()


def process_start(pid: int) -> Optional[str]:
    """Start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or None where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()   # after "(comm)": state is field 3, starttime field 22
    return fields[19] if len(fields) > 19 else None


def process_alive(identity: Optional[Mapping[str, Any]]) -> Optional[bool]:
    """True/False for a process on this host; None when it cannot be told (other host, no record)."""
    if not identity or not identity.get("pid") or identity.get("host") != hostname():
        return None
    pid = int(identity["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                                           # exists, owned by someone else
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return not Path("/proc/self/stat").exists()    # no /proc (macOS): os.kill said it exists
    if state[state.rindex(")") + 2:].split()[0] in ("Z", "X"):   # killed, not yet reaped
        return False
    started = identity.get("started")
    return started is None or started == process_start(pid)


def kill_group(identity: Optional[Mapping[str, Any]], why: str) -> bool:
    """SIGKILL the process group led by `identity` when that very process still runs; True if it did."""
    if process_alive(identity) is not True:
        return False
    pid = int(identity["pid"])                     # type: ignore[index]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
        logger.info("killed process group %s (%s)", pid, why)
        return True
    return False


def _die_with_parent_hook() -> Optional[Callable[[], None]]:
    """A preexec_fn that makes the child get SIGKILL when the thread that started it dies (Linux only).

    The thread that spawns a step waits for it, so the step outlives it only when the whole
    runtime dies: then the step dies too instead of running on unobserved.
    """
    name = ctypes.util.find_library("c")
    if not name or not Path("/proc/self").exists():
        return None
    try:
        prctl = ctypes.CDLL(name, use_errno=True).prctl     # resolved before fork: the hook only calls it
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    return hook


_DIE_WITH_PARENT = _die_with_parent_hook()


def spawn(command: list, *, cwd: Path, env: Mapping[str, str]) -> subprocess.Popen:
    """Start a step process in its own process group (stopped as a whole), dying with the runtime."""
    return subprocess.Popen(command, cwd=str(cwd), env=dict(env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                            text=True, errors="replace", bufsize=1, preexec_fn=_DIE_WITH_PARENT)


def stop(process: Optional[subprocess.Popen], grace_seconds: float = 10) -> None:
    """Terminate a running step process (its whole process group), then kill it."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace_seconds)
    except (ProcessLookupError, PermissionError):
        pass
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def mark_if_dead(record: dict, path: Path) -> dict:
    """An Executing record whose runtime process is gone becomes Failed, with the reason, on disk too.

    A step process the dead runtime left behind (its own process group) is killed on the way.
    """
    if record.get("status") != records.EXECUTING or process_alive(record.get("runtime_process")) is not False:
        return record
    typed = records.ExecutionRecord.from_dict(record)
    pid = (typed.runtime_process or {}).get("pid")
    kill_group(typed.step_process, f"a step of dead execution {typed.execution_id}")
    running = [s.name for s in typed.steps if s.status == records.EXECUTING]
    where = f" while step {', '.join(running)} was Executing" if running else ""
    reason = (f"the local runtime process (pid {pid}) is gone: it was killed or crashed{where}; "
              f"retry it from there with python -m pipelines.run --retry {typed.execution_id}")
    ended = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
    for step in typed.steps:
        if step.status == records.EXECUTING:
            step.status, step.failure_reason, step.end_time = records.FAILED, reason, records.iso(ended)
        elif step.status == records.PENDING:
            step.status = records.NOT_EXECUTED
    typed.status, typed.failure_reason, typed.end_time = records.FAILED, reason, records.iso(ended)
    typed.step_pid = typed.step_process = None
    if typed.start_time:
        started = datetime.datetime.fromisoformat(typed.start_time)
        typed.duration_seconds = round((ended - started).total_seconds(), 1)
    for attempt in typed.attempts:
        if attempt.status == records.EXECUTING:
            attempt.status, attempt.failure_reason, attempt.end_time = records.FAILED, reason, records.iso(ended)
    document = typed.to_dict()
    records.write_json(path, document)
    return document


__all__ = ["process_identity", "process_alive", "process_start", "hostname", "kill_group", "mark_if_dead",
           "spawn", "stop"]
