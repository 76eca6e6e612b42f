"""Is this pid still the process that was started: real processes, a reused pid (wrong start time), zombies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from processing.kernel import processes

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="start times come from Linux /proc")


def _sleeper(*extra: str) -> subprocess.Popen:
    code = "import signal, time\n" + "".join(extra) + "time.sleep(60)\n"
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def test_given_this_process_then_it_is_alive_with_its_start_time_and_not_with_another():
    started = processes.process_start(os.getpid())
    assert started is not None and started.isdigit()
    assert processes.pid_alive(os.getpid()) and processes.pid_alive(os.getpid(), started)
    assert not processes.pid_alive(os.getpid(), str(int(started) + 1))  # a reused pid is not the process


@pytest.mark.parametrize("pid", [0, -1, None, True, "123"])
def test_given_no_usable_pid_then_not_alive_and_no_group_is_signalled(pid):
    assert processes.pid_alive(pid) is False


def test_given_an_exited_child_then_it_is_dead_as_a_zombie_and_once_reaped():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while processes._stat_fields(child.pid)[0] != "Z" and time.monotonic() < deadline:  # exited, not reaped
        time.sleep(0.02)
    assert processes.pid_alive(child.pid) is False
    child.wait()
    assert processes.pid_alive(child.pid) is False


def test_given_an_identity_then_alive_on_this_host_unknown_on_another_and_dead_when_the_start_differs():
    identity = processes.process_identity(os.getpid())
    assert identity["host"] == processes.hostname()
    assert processes.process_alive(identity) is True
    assert processes.process_alive({**identity, "host": "elsewhere"}) is None
    assert processes.process_alive(None) is None
    assert processes.process_alive({**identity, "started": "1"}) is False


def test_given_a_group_leader_then_kill_group_kills_that_process_only_when_it_is_the_one_recorded():
    child = _sleeper()
    try:
        identity = processes.process_identity(child.pid)
        assert processes.kill_group({**identity, "started": "1"}, "test") is False  # a reused pid: left alone
        assert child.poll() is None
        assert processes.kill_group(identity, "test") is True
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_given_a_group_that_ignores_sigterm_then_stop_group_kills_it_after_the_grace():
    polite, stubborn = _sleeper(), _sleeper("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n")
    try:
        time.sleep(0.5)  # let the stubborn one install its handler
        processes.stop_group(polite, grace_seconds=30)
        processes.stop_group(stubborn, grace_seconds=0.5)
        assert polite.returncode == -signal.SIGTERM and stubborn.returncode == -signal.SIGKILL
    finally:
        for child in (polite, stubborn):
            if child.poll() is None:
                child.kill()
                child.wait()


def test_given_an_owner_that_is_gone_before_the_watch_starts_then_the_process_still_exits():
    """A pool worker's initializer that runs after its owner died sees the reaper as its parent;
    the owner's pid, passed from before the fork, is what tells it the owner is gone."""
    code = (
        "import os, time\n"
        "from processing.kernel.processes import exit_when_orphaned\n"
        "exit_when_orphaned(0.05, 7, owner=os.getppid() + 10**6)\n"  # not this process's parent: gone
        "time.sleep(60)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=50)
    assert done.returncode == 7


def test_given_a_living_owner_then_the_watch_lets_the_process_run():
    code = (
        "import os, time\n"
        "from processing.kernel.processes import exit_when_orphaned\n"
        "exit_when_orphaned(0.05, 7, owner=os.getppid())\n"
        "time.sleep(0.5)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=50).returncode == 0


def test_given_children_one_ignoring_sigterm_then_terminate_ends_and_reaps_both():
    polite, stubborn = _sleeper(), _sleeper("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n")
    try:
        time.sleep(0.5)  # let the stubborn one install its handler
        processes.terminate([polite.pid, stubborn.pid], timeout=0.5)
        for child in (polite, stubborn):  # reaped by terminate: no zombie left, no exit status to collect
            assert not processes.pid_alive(child.pid)
            with pytest.raises(ChildProcessError):
                os.waitpid(child.pid, os.WNOHANG)
    finally:
        for child in (polite, stubborn):
            if processes.pid_alive(child.pid):
                child.kill()
                child.wait()


def test_given_a_process_that_is_not_a_child_then_terminate_stops_it():
    """A server started by another command: terminate cannot reap it, so it waits until it no longer runs."""
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],\n"
        "                         start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(child.pid, flush=True)\n"
    )
    starter = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=50)
    orphan = int(starter.stdout.split()[0])  # its parent has exited: not a child of this process
    try:
        assert processes.pid_alive(orphan)
        processes.terminate([orphan], timeout=30)
        assert not processes.pid_alive(orphan)
    finally:
        if processes.pid_alive(orphan):
            os.kill(orphan, signal.SIGKILL)


def test_given_a_pid_that_is_gone_then_terminate_does_nothing():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    processes.terminate([child.pid], timeout=0.1)  # no error for a process that already ended
