"""The warm step launcher: a forked step is what a spawned one is (env, cwd, argv, sys.path, exit
status, process group, output), sees nothing of the steps before it, and dies with the runtime."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pipelines.local import launcher, supervision
from processing.kernel.processes import pid_alive
from processing.kernel.settings import SettingsError, resolve

pytestmark = pytest.mark.skipif(not launcher._fork_supported(), reason="the fork launcher needs Linux")

STEP = textwrap.dedent(
    """
    import json, os, sys, threading
    import numpy
    seen = {
        "cwd": os.getcwd(),
        "argv": sys.argv,
        "path": sys.path,
        "env": dict(os.environ),
        "marker_env": os.environ.get("LEFT_BY_A_STEP"),
        "marker_numpy": getattr(numpy, "left_by_a_step", None),
        "main": __name__,
        "file": __file__,
        "pgid_is_pid": os.getpgid(0) == os.getpid(),
        "stdin": sys.stdin.read(),
        "random": numpy.random.random(),
    }
    os.environ["LEFT_BY_A_STEP"] = "1"
    numpy.left_by_a_step = 1
    print(json.dumps(seen), flush=True)
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "exit":
        sys.exit(int(sys.argv[2]))
    if mode == "raise":
        raise ValueError("a step's own error")
    if mode == "kill-self":
        os.kill(os.getpid(), 9)
    if mode == "thread":  # the interpreter waits for non-daemon threads before it exits
        threading.Thread(target=lambda: (__import__("time").sleep(0.3), print("thread done", flush=True))).start()
    if mode == "sleep":
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("grandchild", child.pid, flush=True)
        __import__("time").sleep(60)
    """
)


@pytest.fixture
def code(tmp_path) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "stepmod.py").write_text(STEP)
    return folder


def step_env(code: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update({"PYTHONPATH": str(code), "PYTHONUNBUFFERED": "1", "OMP_WAIT_POLICY": "PASSIVE"})
    env.update(extra)
    return env


@pytest.fixture
def server(code, tmp_path):
    started = launcher.StepLauncher(sys.executable, step_env(code), tmp_path)
    yield started
    started.close()


def run(process) -> tuple:
    """(exit code, output lines) of a launched or spawned step."""
    lines = [line.rstrip("\n") for line in process.stdout]
    return process.wait(timeout=60), lines


def fork(server, code, cwd, *args, **env):
    command = [sys.executable, "-m", "stepmod", *args]
    environment = step_env(code, **env)
    assert server.why_not(command, environment) is None
    return server.launch(command, cwd, environment)


def test_a_forked_step_sees_what_a_spawned_one_sees(server, code, tmp_path):
    cwd = tmp_path / "step"
    cwd.mkdir()
    env = step_env(code, FORECAST_STEP="one")
    code_spawned, [spawned] = run(supervision.spawn([sys.executable, "-m", "stepmod"], cwd=cwd, env=env))
    code_forked, [forked] = run(server.launch([sys.executable, "-m", "stepmod"], cwd, env))
    spawned, forked = json.loads(spawned), json.loads(forked)
    assert code_spawned == code_forked == 0
    for key in ("cwd", "argv", "path", "env", "main", "file", "pgid_is_pid", "stdin"):
        assert forked[key] == spawned[key], key
    assert forked["argv"] == [str(code / "stepmod.py")] and forked["cwd"] == str(cwd)


def test_a_step_sees_nothing_another_step_left_and_numpy_is_reseeded(server, code, tmp_path):
    first = json.loads(run(fork(server, code, tmp_path))[1][0])
    second = json.loads(run(fork(server, code, tmp_path))[1][0])
    assert first["marker_env"] is None and second["marker_env"] is None
    assert first["marker_numpy"] is None and second["marker_numpy"] is None
    assert first["random"] != second["random"]
    assert server.ready and "numpy" in server.ready["ready"]  # it was preloaded, and still each step is clean


def test_exit_codes_an_exception_and_a_crash_leave_the_server_serving(server, code, tmp_path):
    assert run(fork(server, code, tmp_path, "exit", "3"))[0] == 3
    assert run(fork(server, code, tmp_path, "exit", "256"))[0] == 0  # as the interpreter does
    status, lines = run(fork(server, code, tmp_path, "raise"))
    assert status == 1 and any("ValueError: a step's own error" in line for line in lines)
    assert run(fork(server, code, tmp_path, "kill-self"))[0] == -signal.SIGKILL
    status, lines = run(fork(server, code, tmp_path, "thread"))
    assert status == 0 and lines[-1] == "thread done"
    assert run(fork(server, code, tmp_path))[0] == 0 and server.server.poll() is None


def test_killing_the_steps_group_kills_it_and_its_children(server, code, tmp_path):
    process = fork(server, code, tmp_path, "sleep")
    assert process.stdout.readline()  # the step's JSON line
    grandchild = int(process.stdout.readline().split()[1])
    assert process.poll() is None and supervision.process_alive(supervision.process_identity(process.pid))
    supervision.stop(process, grace_seconds=0.2)  # what the runtime does on Ctrl-C, SIGTERM or max runtime
    assert process.returncode in (-signal.SIGTERM, -signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(grandchild)
    assert run(fork(server, code, tmp_path))[0] == 0  # the server is unharmed


def test_the_server_and_its_step_die_with_the_runtime(code, tmp_path):
    """A 'runtime' process starts a launcher and a step, then is SIGKILLed: nothing survives it."""
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from pipelines.local import launcher
        env = {step_env(code)!r}
        server = launcher.StepLauncher(sys.executable, env, Path({str(tmp_path)!r}))
        step = server.launch([sys.executable, "-m", "stepmod", "sleep"], Path({str(tmp_path)!r}), env)
        step.stdout.readline()
        grandchild = int(step.stdout.readline().split()[1])
        print(json.dumps([server.server.pid, step.pid, grandchild]), flush=True)
        import time; time.sleep(120)
        """
    )
    runtime = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=str(Path(__file__).parents[3])
    )
    pids = json.loads(runtime.stdout.readline())
    assert all(pid_alive(pid) for pid in pids)
    runtime.kill()
    runtime.wait()
    deadline = time.monotonic() + 15
    while any(pid_alive(pid) for pid in pids[:2]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(pid_alive(pid) for pid in pids[:2])  # server, then the step (PDEATHSIG)
    if pid_alive(pids[2]):  # the step's own child is in its group, orphaned: the runtime's reap kills it
        os.kill(pids[2], signal.SIGKILL)


def test_a_step_the_fork_could_change_is_spawned_and_says_why(server, code, tmp_path):
    python = sys.executable
    assert "OMP_NUM_THREADS" in server.why_not([python, "-m", "stepmod"], step_env(code, OMP_NUM_THREADS="1"))
    assert "PYTHONHASHSEED" in server.why_not([python, "-m", "stepmod"], step_env(code, PYTHONHASHSEED="1"))
    assert server.why_not([python, "stepmod.py"], step_env(code)) == "not a `python -m` command"
    assert "another interpreter" in server.why_not(["/usr/bin/python3", "-m", "stepmod"], step_env(code))
    overlay = tmp_path / "overlay"
    (overlay / "numpy").mkdir(parents=True)  # an overlay with its own numpy must not get the server's
    reason = server.why_not([python, "-m", "stepmod"], step_env(code, PYTHONPATH=f"{code}:{overlay}"))
    assert reason == f"{overlay} has its own numpy"
    # what steps may differ in without a fresh interpreter
    assert server.why_not([python, "-m", "stepmod"], step_env(code, FORECAST_X="1", AWS_REGION="eu-west-1")) is None


def test_output_streams_while_the_step_runs(server, code, tmp_path):
    (code / "talker.py").write_text(
        "import os, time\nprint('first', flush=True)\n"
        f"while not os.path.exists({str(tmp_path / 'go')!r}):\n    time.sleep(0.02)\nprint('second')\n"
    )
    process = server.launch([sys.executable, "-m", "talker"], tmp_path, step_env(code))
    assert process.stdout.readline() == "first\n" and process.poll() is None
    (tmp_path / "go").write_text("")
    assert run(process) == (0, ["second"])


def test_the_setting_resolves_and_refuses_a_bad_value(monkeypatch):
    monkeypatch.delenv("FORECAST_STEP_LAUNCHER", raising=False)
    assert resolve(environ={}).step_launcher == "fork"
    assert resolve(environ={"FORECAST_STEP_LAUNCHER": "spawn"}).step_launcher == "spawn"
    assert resolve({"step_launcher": "fork"}, environ={"FORECAST_STEP_LAUNCHER": "spawn"}).step_launcher == "fork"
    with pytest.raises(SettingsError, match="FORECAST_STEP_LAUNCHER: step_launcher must be one of fork, spawn"):
        resolve(environ={"FORECAST_STEP_LAUNCHER": "threads"})
    from pipelines import run

    args = run.parser().parse_args(["--step-launcher", "spawn"])
    assert run.settings_from_args(args, environ={"FORECAST_STEP_LAUNCHER": "fork"}).step_launcher == "spawn"


def test_steps_fork_from_the_executions_launcher_and_spawn_once_it_is_gone(code, tmp_path):
    from types import SimpleNamespace

    execution = SimpleNamespace(settings=SimpleNamespace(step_launcher="fork"), launcher=None)
    lines: list = []
    command, env = [sys.executable, "-m", "stepmod"], step_env(code)
    try:
        first = launcher.spawn_or_fork(execution, command, tmp_path, env, lines.append)
        assert isinstance(first, launcher.LaunchedProcess) and run(first)[0] == 0  # the first step forks too
        execution.launcher.server.kill()
        execution.launcher.server.wait()
        second = launcher.spawn_or_fork(execution, command, tmp_path, env, lines.append)
        assert isinstance(second, subprocess.Popen) and run(second)[0] == 0
        assert lines[0].startswith("[runtime] step launcher started") and lines[1].startswith("[runtime] forked")
        assert lines[-1].startswith("[runtime] spawned, not forked: ")
        spawned = launcher.spawn_or_fork(
            SimpleNamespace(settings=SimpleNamespace(step_launcher="spawn"), launcher=None),
            command,
            tmp_path,
            env,
            lines.append,
        )
        assert isinstance(spawned, subprocess.Popen) and run(spawned)[0] == 0
    finally:
        launcher.close(execution)
    assert execution.launcher is None


def test_a_warm_start_makes_the_launcher_a_step_forks_from_and_lives_until_closed(code, tmp_path):
    """WarmStart: the interpreter resolved and the launcher started in a thread before the first step;
    the launcher survives that thread's work (PR_SET_PDEATHSIG is per thread) and is what a step uses."""
    from types import SimpleNamespace

    env = step_env(code)
    warm = launcher.WarmStart(lambda: SimpleNamespace(python=sys.executable))
    warm.plan(lambda: env, tmp_path / "steps")
    resolved, started, error = warm.take()
    assert error is None and resolved.python == sys.executable and started is not None
    execution = SimpleNamespace(settings=SimpleNamespace(step_launcher="fork"), launcher=started)
    lines: list = []
    try:
        time.sleep(0.5)  # the thread has long finished its work: the server must still be alive
        assert started.server.poll() is None
        process = launcher.spawn_or_fork(execution, [sys.executable, "-m", "stepmod"], tmp_path, env, lines.append)
        assert isinstance(process, launcher.LaunchedProcess) and run(process)[0] == 0
        assert lines[0].startswith("[runtime] step launcher started with the execution")
        assert lines[1].startswith("[runtime] forked")
    finally:
        launcher.close(execution)
        warm.close()
    assert started.server.poll() is not None


def test_a_warm_start_that_fails_hands_the_error_to_the_first_step_and_an_untaken_launcher_is_closed(tmp_path):
    def broken():
        raise RuntimeError("no interpreter")

    warm = launcher.WarmStart(broken)
    warm.plan(None, tmp_path)
    resolved, started, error = warm.take()
    assert resolved is None and started is None and str(error) == "no interpreter"
    warm.close()

    from types import SimpleNamespace

    unused = launcher.WarmStart(lambda: SimpleNamespace(python=sys.executable))
    unused.plan(lambda: {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}, tmp_path / "s")
    while not unused._prepared.wait(0.1):
        pass
    server = unused.launcher.server
    unused.close()  # no step took it: closing the warm start stops it
    assert server.poll() is not None


def _wait_for_launcher(warm) -> launcher.StepLauncher:
    deadline = time.monotonic() + 60
    while warm.launcher is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert warm.launcher is not None
    return warm.launcher


def test_a_launcher_started_early_is_kept_when_the_plan_agrees_and_replaced_when_it_does_not(code, tmp_path):
    """WarmStart(early=...): the launcher starts before the execution exists, with the environment the
    steps are expected to get; the plan keeps it when only per-step variables differ, else replaces it."""
    from types import SimpleNamespace

    env = step_env(code)
    interpreter = SimpleNamespace(python=sys.executable)
    warm = launcher.WarmStart(lambda: interpreter, early=lambda: (env, tmp_path / "early"))
    early = _wait_for_launcher(warm)  # before any plan
    warm.plan(lambda: dict(env, FORECAST_STEP="one", AWS_REGION="eu-west-1", PYTHONPATH="/x"), tmp_path / "steps")
    _, started, error = warm.take()
    assert error is None and started is early and started.server.poll() is None
    started.close()
    warm.close()

    warm = launcher.WarmStart(lambda: interpreter, early=lambda: (env, tmp_path / "early"))
    early = _wait_for_launcher(warm)
    warm.plan(lambda: dict(env, OMP_NUM_THREADS="1"), tmp_path / "steps")  # read at start: another launcher
    _, started, error = warm.take()
    try:
        assert error is None and started is not early and started.base_env["OMP_NUM_THREADS"] == "1"
        assert early.server.poll() is not None  # the early one is gone
    finally:
        started.close()
        warm.close()


def test_an_unused_launcher_with_another_environment_than_the_first_steps_is_replaced(code, tmp_path):
    """A launcher started ahead whose environment turns out not to be the first step's (known only when
    that step runs) would make every step spawn: the step starts one with its own environment instead."""
    from types import SimpleNamespace

    ahead = launcher.StepLauncher(sys.executable, step_env(code), tmp_path)
    execution = SimpleNamespace(settings=SimpleNamespace(step_launcher="fork"), launcher=ahead)
    lines: list = []
    env = step_env(code, OMP_NUM_THREADS="1")
    try:
        process = launcher.spawn_or_fork(execution, [sys.executable, "-m", "stepmod"], tmp_path, env, lines.append)
        assert isinstance(process, launcher.LaunchedProcess) and run(process)[0] == 0
        assert lines[0] == "[runtime] the step launcher started ahead has another environment than the step's: replaced"
        assert execution.launcher is not ahead and ahead.server.poll() is not None
        assert lines[-1].startswith("[runtime] forked")
        # once a step forked from it, a launcher is kept: a step with another environment is spawned
        other = launcher.spawn_or_fork(
            execution, [sys.executable, "-m", "stepmod"], tmp_path, step_env(code), lines.append
        )
        assert isinstance(other, subprocess.Popen) and run(other)[0] == 0
        assert "environment differs from the launcher's in OMP_NUM_THREADS" in lines[-1]
    finally:
        launcher.close(execution)


HEAVY = "import os\nLOADED_IN = os.getpid()\n"
USES_HEAVY = (
    "import heavymod, json, os, sys\n"
    "print(json.dumps({'preloaded': heavymod.LOADED_IN != os.getpid(), 'file': heavymod.__file__, 'path': sys.path,\n"
    "                  'env': dict(os.environ), 'cwd': os.getcwd()}))\n"
)


def test_a_server_for_an_overlay_has_its_modules_imported_and_its_steps_see_what_a_spawned_one_sees(
    server, code, tmp_path, monkeypatch
):
    """with_overlay: a server forked from the launcher's imports the overlay's heavy modules ahead
    (matplotlib for the plotting steps); a step with that overlay forks from it and sees what a spawned
    step sees; a step without it forks from the launcher, which has none of the overlay's modules."""
    from types import SimpleNamespace

    overlay = tmp_path / "overlay"
    (overlay / "heavymod").mkdir(parents=True)
    (overlay / "heavymod" / "__init__.py").write_text(HEAVY)
    (code / "usesheavy.py").write_text(USES_HEAVY)
    monkeypatch.setitem(launcher.OVERLAY_PRELOAD, "heavymod", ("heavymod",))
    forked = server.with_overlay(overlay)
    assert forked is not None and server.with_overlay(overlay) is forked
    env = step_env(code, PYTHONPATH=f"{code}{os.pathsep}{overlay}")
    assert server.for_step(env) is forked and server.for_step(step_env(code)) is server
    command = [sys.executable, "-m", "usesheavy"]

    execution = SimpleNamespace(settings=SimpleNamespace(step_launcher="fork"), launcher=server)
    lines: list = []
    status, output = run(launcher.spawn_or_fork(execution, command, tmp_path, env, lines.append))
    assert status == 0 and lines[-1].startswith(
        "[runtime] forked from the step launcher's server for the step's requirements overlay (pid "
    )
    assert lines[-1].endswith("; heavymod imported from it ahead)")
    forked_seen = json.loads(output[0])
    spawned_seen = json.loads(run(supervision.spawn(command, cwd=tmp_path, env=env))[1][0])
    assert forked_seen["preloaded"] is True and spawned_seen["preloaded"] is False
    for key in ("file", "path", "env", "cwd"):
        assert forked_seen[key] == spawned_seen[key], key
    assert forked_seen["file"] == str(overlay / "heavymod" / "__init__.py")

    # a step without the overlay forks from the launcher, where the overlay's module is not importable
    status, output = run(launcher.spawn_or_fork(execution, command, tmp_path, step_env(code), lines.append))
    assert status == 1 and "No module named 'heavymod'" in "\n".join(output)
    assert lines[-1].startswith("[runtime] forked from the step launcher (pid")

    # a code bundle with its own copy of a module the overlay's server preloaded: from the launcher
    (code / "heavymod.py").write_text(HEAVY)
    status, output = run(launcher.spawn_or_fork(execution, command, tmp_path, env, lines.append))
    assert status == 0 and json.loads(output[0])["file"] == str(code / "heavymod.py")
    assert json.loads(output[0])["preloaded"] is False and lines[-1].startswith(
        "[runtime] forked from the step launcher (pid"
    )

    server.close()  # the overlay's server ends with it
    assert forked.server.poll() is not None


def test_an_overlay_with_its_own_copy_of_a_preloaded_module_gets_no_server(server, tmp_path, monkeypatch):
    overlay = tmp_path / "overlay"
    for name in ("heavymod", "numpy"):  # its steps would import its numpy, not the launcher's
        (overlay / name).mkdir(parents=True)
        (overlay / name / "__init__.py").write_text(HEAVY)
    monkeypatch.setitem(launcher.OVERLAY_PRELOAD, "heavymod", ("heavymod",))
    assert server.with_overlay(overlay) is None
    assert server.with_overlay(tmp_path) is None  # nothing of OVERLAY_PRELOAD in it: nothing to gain
