"""Process supervision for the local runtime: who is alive, and nothing left running after a crash.

A record names its processes by identity (pid, host, start time), so a reused pid is never taken
for the runtime or a step. A step process dies with the runtime (Linux: PR_SET_PDEATHSIG), and
what survives a crash anyway (a step started elsewhere, an AutoML training process) is killed
when the dead execution is noticed (`reap`) or retried.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import logging
import signal
import subprocess
from pathlib import Path
from typing import Callable, Mapping, Optional

from pipelines.local import records

# what "alive" means is the kernel's, shared with the AutoML worker and the local endpoint
from processing.kernel.processes import hostname, kill_group, process_alive, process_identity, process_start, stop_group

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent_hook() -> Optional[Callable[[], None]]:
    """A preexec_fn that makes the child get SIGKILL when the thread that started it dies (Linux only).

    The thread that spawns a step waits for it, so the step outlives it only when the whole
    runtime dies: then the step dies too instead of running on unobserved.
    """
    name = ctypes.util.find_library("c")
    if not name or not Path("/proc/self").exists():
        return None
    try:
        prctl = ctypes.CDLL(name, use_errno=True).prctl  # resolved before fork: the hook only calls it
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    return hook


_DIE_WITH_PARENT = _die_with_parent_hook()


def spawn(command: list, *, cwd: Path, env: Mapping[str, str]) -> subprocess.Popen:
    """Start a step process in its own process group (stopped as a whole), dying with the runtime."""
    return subprocess.Popen(
        command,
        cwd=str(cwd),
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
        errors="replace",
        bufsize=1,
        preexec_fn=_DIE_WITH_PARENT,
    )


def stop(process: Optional[subprocess.Popen], grace_seconds: float = 10) -> None:
    """Terminate a running step process (its whole process group), then kill it."""
    if process is None or process.poll() is not None:
        return
    stop_group(process, grace_seconds)


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
    reason = (
        f"the local runtime process (pid {pid}) is gone: it was killed or crashed{where}; "
        f"retry it from there with python -m pipelines.run --retry {typed.execution_id}"
    )
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


__all__ = [
    "process_identity",
    "process_alive",
    "process_start",
    "hostname",
    "kill_group",
    "mark_if_dead",
    "spawn",
    "stop",
]
