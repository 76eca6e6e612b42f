"""Fault test: the training pipeline killed with SIGKILL during each working step in turn, retried each time.

One execution, killed (a crash: SIGKILL to the runtime's whole process group) while PrepareData,
AutoML (training, then again after its job completed), BacktestForecast, ChampionForecast,
Evaluate and RegisterModel (after its package was created) are Executing, and retried with
`python -m pipelines.run --retry` after each kill, ends Succeeded with exactly one registered
model version, no second AutoML job beyond the one the crash killed, and no process left behind.

Every wait is on an event (the record says the step is Executing, a job or package appears, a
process is gone), never a sleep (write_while_frozen's only share time; what happens does not depend
on them); the runtime is frozen (SIGSTOP) before the kill so the record read just before the kill
is the state the crash hits.

A kill point that would last under a second or so is held open by what the step waits for, not
caught by looking at the right moment (the test looks every 20 ms; under load 12 on 2 cores it once
missed (3) and the retry ran on to Succeeded). Measured on a plain run: (3) job
Completed -> AutoML step Succeeded 0.3-0.5 s (until the step's next poll, possibly ~0 + its exit),
(7) package -> RegisterModel Succeeded 0.06-0.2 s, a forked ChampionForecast 0.45 s, a forked
PrepareData process 0.2 s. So:
  (1) the first run spawns its steps: PrepareData's process lives 1.2 s; it is frozen once seen;
  (2) the job trains for seconds (1.5-2.5 s quiet, longer under load), its record TrainingModels
      throughout (once, in CI, AnalyzingData throughout: the runtime adding the worker's pid wrote
      back the status it had read before the worker's; both now write through job_records.update);
  (3) the AutoML step is frozen while its job trains, so it cannot poll the job's end, which its
      worker (the runtime's child, not the step's) reaches on its own;
  (4), (6) BacktestForecast and Evaluate take 2.5-7 s;
  (5) ChampionForecast's lookup waits for the registry, closed by the test until the step is frozen;
  (7) the test holds the registry's write lock and lets RegisterModel run only while it does, and
      the runtime write only while the step is frozen: the package is created while the step cannot
      read the answer.
A frozen step dies with its runtime, as a running one does (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from pipelines.local import runtime, supervision
from pipelines.local.sagemaker import LocalSageMakerClient
from processing import automl_request
from processing.generate import generate_sales, write_frame
from processing.kernel import contracts
from processing.kernel.settings import resolve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FAST = ["--param", "AutoMLAlgorithms=npts,ets"]


@pytest.fixture
def sales_csv(tmp_path) -> Path:
    """10 items x 300 days, as the other local end-to-end tests use."""
    return write_frame(
        generate_sales(products=5, regions=2, start="2023-01-01", end="2023-10-27"), tmp_path / "input" / "sales.csv"
    )


STARTED: list = []  # every Runtime, so a failed test leaves none running (nor a step it froze)


@pytest.fixture(autouse=True)
def no_runtime_left():
    yield
    while STARTED:
        run = STARTED.pop()
        if run.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.process.pid, signal.SIGKILL)
            run.process.wait(timeout=60)
    while FROZEN:  # a failed test's frozen steps: its own processes
        identity = FROZEN.pop()
        if supervision.process_alive(identity) is True:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(identity["pid"]), signal.SIGKILL)


class Runtime:
    """`python -m pipelines.run ...` in its own process group, its output collected by a thread."""

    def __init__(self, args: list):
        env = dict(os.environ, PYTHONPATH=str(runtime.PROJECT_ROOT))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipelines.run", *args],
            env=env,
            cwd=str(runtime.PROJECT_ROOT),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self.reader.start()
        STARTED.append(self)

    def output(self) -> str:
        return "".join(self.lines)[-4000:]

    def finish(self, timeout: float = 300) -> int:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=30)
        return code


def wait_until(
    condition: Callable[[], object], what: str, run: Optional[Runtime] = None, timeout: float = 240, every: float = 0.02
):
    """Poll an observable state (a record, a job, the process table) until `condition` holds; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if run is not None and run.process.poll() is not None:
            pytest.fail(f"the run ended (exit {run.process.returncode}) before {what}:\n{run.output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}" + (f":\n{run.output()}" if run else ""))
        time.sleep(every)


def read_record(settings, execution_id: Optional[str] = None) -> Optional[dict]:
    root = runtime.executions_dir(settings)
    paths = [root / execution_id / "execution.json"] if execution_id else list(root.glob("*/execution.json"))
    for path in paths:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None
    return None


def step_of(record: Optional[dict], name: str) -> dict:
    return next((s for s in (record or {}).get("steps") or [] if s["name"] == name), {})


def automl_job(settings, name: str) -> dict:
    path = settings.home_path / "sagemaker" / "automl" / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def package_count(settings) -> int:
    path = settings.home_path / "registry.sqlite"
    if not path.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as connection:
            return connection.execute("SELECT count(*) FROM model_packages").fetchone()[0]
    except sqlite3.Error:
        return 0


def leftovers(home: Path) -> list:
    """Processes (other than this one) started under this FORECAST_HOME: steps, AutoML workers, servers."""
    marker = f"FORECAST_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (
                marker in (entry / "environ").read_bytes().split(b"\0")
                and (entry / "stat").read_text().split(") ")[1][0] not in "ZX"
            ):
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")[:200]
                found.append(f"{entry.name}: {command!r}")
        except OSError:
            continue
    return found


def freeze(identity: Optional[dict], what: str) -> int:
    """SIGSTOP a step's process: the step stays Executing, its runtime waiting for it, until the crash.

    The process, not its group: a step just forked from the launcher may not lead its group yet, and
    may be in vfork (ctypes.util.find_library), whose child must go on to exec or the two never stop
    (a group stop froze both once). After the crash, thaw_after_crash lets it go on."""
    assert supervision.process_alive(identity) is True, f"{what}: its process is not running ({identity})"
    pid = int(identity["pid"])
    os.kill(pid, signal.SIGSTOP)
    FROZEN.append(identity)
    wait_until(lambda: process_state(pid) in ("T", "Z", "gone"), f"{what} to be stopped", timeout=30, every=0.005)
    assert process_state(pid) == "T", f"{what} (pid {pid}) ended before it could be frozen"
    return pid


FROZEN: list = []  # the identities of the step processes the test froze


def thaw_after_crash() -> None:
    """SIGCONT the frozen steps once their runtime is dead. One that dies with its runtime (PR_SET_PDEATHSIG)
    is gone already (SIGKILL ends a stopped process); one frozen before it had set that up (just forked)
    goes on as it would have, finds its launcher gone and exits. Either way nothing is killed here."""
    while FROZEN:
        identity = FROZEN.pop()
        if supervision.process_alive(identity) is True:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(identity["pid"]), signal.SIGCONT)


def process_state(pid: int) -> str:
    """The /proc state letter: R, S, D running or waiting, T stopped, Z ended; "gone" once reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except (OSError, IndexError):
        return "gone"


class RegistryWriteLock:
    """The local registry's write lock, held by the test: SQLite `BEGIN IMMEDIATE` on registry.sqlite.

    Every registry write of the runtime is a BEGIN IMMEDIATE transaction waiting up to 60 s for it
    (pipelines/local/registry.py); reads go on (WAL)."""

    def __init__(self, settings):
        path = settings.home_path / "registry.sqlite"
        assert path.is_file(), f"{path} does not exist: ChampionForecast's lookup of the group creates it"
        self.connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=60, isolation_level=None)
        self.held = False

    def take(self) -> None:
        self.connection.execute("BEGIN IMMEDIATE")
        self.held = True

    def release(self) -> None:
        if self.held:
            self.connection.execute("COMMIT")
            self.held = False

    def packages(self) -> int:
        return self.connection.execute("SELECT count(*) FROM model_packages").fetchone()[0]

    def close(self) -> None:
        self.release()
        self.connection.close()


@contextlib.contextmanager
def registry_closed(settings):
    """The local registry closed to the runtime: an EXCLUSIVE lock on registry.sqlite (locking_mode
    EXCLUSIVE, so WAL readers wait too), which every connection of the runtime waits for, up to 60 s.
    A missing registry is created empty, as SQLite creates it; the runtime sets it up once let in."""
    connection = sqlite3.connect(str(settings.home_path / "registry.sqlite"), timeout=60, isolation_level=None)
    try:
        connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        connection.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        connection.close()  # the lock goes with the connection


def write_while_frozen(lock: RegistryWriteLock, pid: int, done: Callable[[], bool], what: str) -> None:
    """Run the step (process `pid`, frozen, the lock held) until `done()` holds; the step is left frozen.

    The step runs only while the test holds the lock, so any registry write it asks for waits in the
    runtime; the lock is released only while the step is frozen, so such a write is made while the step
    cannot read its answer. `done()` is read under the lock, so nothing the step asked for is missed.
    The sleeps only share the time between the two (the runtime's SQLite retries every <= 0.1 s);
    what happens does not depend on them.
    """
    deadline = time.monotonic() + 240
    while True:
        lock.release()  # the step is frozen: the runtime makes the write it was waiting for, if any
        time.sleep(0.25)
        lock.take()  # waits for that write's commit when the runtime holds the lock
        if done():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        os.kill(pid, signal.SIGCONT)  # on, up to its next registry write (which waits for the lock)
        time.sleep(0.1)
        os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: process_state(pid) in ("T", "Z", "gone"), "the step to stop", timeout=30, every=0.005)
        assert process_state(pid) == "T", f"the step (pid {pid}) ended before {what}"


def executing(
    settings, step: str, also: Callable[[dict], bool] = lambda record: True, execution_id: Optional[str] = None
) -> Callable[[], Optional[dict]]:
    """A condition for wait_until: the record, when `step` is Executing and `also(record)` holds."""

    def ready() -> Optional[dict]:
        record = read_record(settings, execution_id)
        return record if step_of(record, step).get("status") == "Executing" and also(record) else None

    return ready


def step_process_running(settings, step: str, run: Runtime, execution_id: Optional[str] = None) -> dict:
    """Wait until `step` is Executing with its process alive; returns the record."""
    return wait_until(
        executing(settings, step, lambda r: supervision.process_alive(r.get("step_process")) is True, execution_id),
        f"{step} to be Executing, its process running",
        run,
    )


def kill_during(
    run: Runtime,
    settings,
    step: str,
    also: Callable[[dict], bool] = lambda record: True,
    execution_id: Optional[str] = None,
) -> dict:
    """SIGKILL the runtime's process group while `step` is Executing and `also(record)` holds; then the
    steps the test froze may go on (they are dead, or find their launcher gone)."""
    wait_until(executing(settings, step, also, execution_id), f"{step} to be Executing", run)
    os.killpg(run.process.pid, signal.SIGSTOP)  # freeze it: the record cannot move on
    record = read_record(settings, execution_id)
    os.killpg(run.process.pid, signal.SIGKILL)
    run.finish(timeout=60)
    thaw_after_crash()
    assert step_of(record, step).get("status") == "Executing", f"{step} ended before the kill:\n{run.output()}"
    home = settings.home_path.resolve()
    wait_until(
        lambda: not leftovers(home), f"no process left after killing the run during {step}", timeout=60, every=0.1
    )
    return record


def test_killed_during_each_step_in_turn_then_retried_ends_succeeded_with_one_version_and_nothing_left(
    sales_csv, monkeypatch
):
    monkeypatch.setenv("FORECAST_HOME", str(Path(os.environ["FORECAST_HOME"]).resolve()))
    settings = resolve()
    home = settings.home_path.resolve()
    # the first run spawns its steps (a fresh interpreter each, `--step-launcher spawn`), the retries fork
    # them from the warm launcher (the default): a forked PrepareData lives 0.2 s, a spawned one over a
    # second (its interpreter imports numpy and pandas), as long as the other steps the test kills
    first = Runtime(["--step-launcher", "spawn", "--param", f"InputDataUrl={sales_csv}", *FAST])

    # 1. PrepareData, while its process runs (frozen once seen, so it still runs when the crash comes)
    starting = step_process_running(settings, contracts.STEP_PREPARE, first)
    freeze(starting["step_process"], "the PrepareData step")
    record = kill_during(first, settings, contracts.STEP_PREPARE, execution_id=starting["execution_id"])
    execution_id = record["execution_id"]
    job = automl_request.job_name_for_execution(execution_id)
    kills = [contracts.STEP_PREPARE]

    def retry() -> Runtime:
        return Runtime(["--retry", execution_id])

    # 2. AutoML, while its job trains: the crash takes the training process with it (job Failed). The
    # job trains for seconds after TrainingModels is written (1.5-2.5 s quiet), and its worker (its own
    # session) notices its runtime gone within 2 s (automl_worker.ORPHAN_CHECK_SECONDS), before the end
    kill_during(
        retry(),
        settings,
        contracts.STEP_AUTOML,
        lambda r: automl_job(settings, job).get("AutoMLJobSecondaryStatus") == "TrainingModels",
        execution_id,
    )
    kills.append("AutoML (training)")
    # 3. AutoML again, after the retry's job completed but before the step read it: re-attached to, not rerun.
    # The step polls every 0.1 s or 10% of the time waited, so that state lasts only until its next
    # poll (0.3-0.5 s measured): the step is frozen while its job still trains, and the job completes
    # on its own.
    retried_job = f"{job}-r2"
    third = retry()
    training = wait_until(
        executing(
            settings,
            contracts.STEP_AUTOML,
            lambda r: automl_job(settings, retried_job).get("AutoMLJobStatus") == "InProgress",
            execution_id,
        ),
        f"AutoML to be Executing, its job {retried_job} training",
        third,
    )
    freeze(training.get("step_process"), "the AutoML step")
    still = automl_job(settings, retried_job)  # read after the freeze: what the step can have seen, at most
    assert still["AutoMLJobStatus"] == "InProgress", f"{retried_job} ended before its step was frozen: {still}"
    kill_during(
        third,
        settings,
        contracts.STEP_AUTOML,
        lambda r: automl_job(settings, retried_job).get("AutoMLJobStatus") == "Completed",
        execution_id,
    )
    kills.append("AutoML (job completed)")
    # 4. the transform (in the runtime's own process)
    kill_during(retry(), settings, contracts.STEP_BACKTEST, execution_id=execution_id)
    kills.append(contracts.STEP_BACKTEST)
    # 5. ChampionForecast, while its process runs: half a second on its own, so held open: its lookup
    # of the group's champion waits for the registry, which the test keeps closed until the step is frozen
    with registry_closed(settings):
        fifth = retry()
        looking = step_process_running(settings, contracts.STEP_CHAMPION, fifth, execution_id)
        freeze(looking["step_process"], "the ChampionForecast step")
    kill_during(fifth, settings, contracts.STEP_CHAMPION, execution_id=execution_id)
    kills.append(contracts.STEP_CHAMPION)
    # 6. Evaluate, a processing step of a few seconds
    kill_during(retry(), settings, contracts.STEP_EVALUATE, execution_id=execution_id)
    kills.append(contracts.STEP_EVALUATE)
    # 7. RegisterModel, after it created the model package (the crash comes before it could say so).
    # Between the package's commit and the step's end there is only the step's exit: the package is
    # created while the step is frozen (write_while_frozen), the lock held from before the retry starts.
    lock = RegistryWriteLock(settings)
    try:
        lock.take()
        seventh = retry()
        registering = step_process_running(settings, contracts.STEP_REGISTER, seventh, execution_id)
        assert lock.packages() == 0  # its writes wait for the lock
        step_pid = freeze(registering["step_process"], "the RegisterModel step")
        write_while_frozen(lock, step_pid, lambda: lock.packages() == 1, "the model package")
    finally:
        lock.close()
    kill_during(seventh, settings, contracts.STEP_REGISTER, lambda r: package_count(settings) == 1, execution_id)
    kills.append(contracts.STEP_REGISTER)

    last = retry()
    code = last.finish()
    output = last.output()
    assert code == 0, output
    final = read_record(settings, execution_id)
    assert final["status"] == "Succeeded" and final["attempt"] == len(kills) + 1
    assert [a["status"] for a in final["attempts"]] == ["Failed"] * len(kills) + ["Succeeded"]
    assert [a.get("retried_from") for a in final["attempts"][1:]] == [
        contracts.STEP_PREPARE,
        contracts.STEP_AUTOML,
        contracts.STEP_AUTOML,
        contracts.STEP_BACKTEST,
        contracts.STEP_CHAMPION,
        contracts.STEP_EVALUATE,
        contracts.STEP_REGISTER,
    ]
    statuses = {s["name"]: s["status"] for s in final["steps"]}
    assert [name for name, status in statuses.items() if status != "Succeeded"] == [
        contracts.STEP_CHALLENGER_LOST,
        contracts.STEP_FAIL,
    ]

    # one model version, registered once although the crash hit after the package was created
    sm = LocalSageMakerClient(settings)
    [version] = sm.list_model_packages(ModelPackageGroupName=settings.model_package_group)["ModelPackageSummaryList"]
    register_log = Path(step_of(final, contracts.STEP_REGISTER)["log"]).read_text()
    assert f"execution {execution_id} already registered {version['ModelPackageArn']}: reusing it" in register_log
    # AutoML: the killed job, then one retry job that was re-attached to once it had completed
    jobs = sorted(p.stem for p in (home / "sagemaker" / "automl").glob("*.json"))
    assert jobs == [job, retried_job]
    assert automl_job(settings, job)["AutoMLJobStatus"] == "Failed"
    assert automl_job(settings, retried_job)["AutoMLJobStatus"] == "Completed"
    automl_log = Path(step_of(final, contracts.STEP_AUTOML)["log"]).read_text()
    assert f"AutoML job {retried_job} already exists (Completed): re-attaching" in automl_log
    assert "CreateAutoMLJobV2" not in automl_log
    assert step_of(final, contracts.STEP_AUTOML)["attempt_count"] == 3
    assert not leftovers(home)
