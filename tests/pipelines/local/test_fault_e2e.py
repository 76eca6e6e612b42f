"""Fault test: the training pipeline killed with SIGKILL during each working step in turn, retried each time.

One execution, killed (a crash: SIGKILL to the runtime's whole process group) while PrepareData,
AutoML (training, then again after its job completed), BacktestForecast, ChampionForecast,
Evaluate and RegisterModel (after its package was created) are Executing, and retried with
`python -m pipelines.run --retry` after each kill, ends Succeeded with exactly one registered
model version, no second AutoML job beyond the one the crash killed, and no process left behind.

Every wait is on an event (the record says the step is Executing, a job or package appears, a
process is gone), never a sleep; the runtime is frozen (SIGSTOP) before the kill so the record
read just before the kill is the state the crash hits.
"""

from __future__ import annotations

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


def kill_during(
    run: Runtime,
    settings,
    step: str,
    also: Callable[[dict], bool] = lambda record: True,
    execution_id: Optional[str] = None,
    every: float = 0.02,
) -> dict:
    """SIGKILL the runtime's process group while `step` is Executing and `also(record)` holds."""

    def ready():
        record = read_record(settings, execution_id)
        return record if step_of(record, step).get("status") == "Executing" and also(record) else None

    wait_until(ready, f"{step} to be Executing", run, every=every)
    os.killpg(run.process.pid, signal.SIGSTOP)  # freeze it: the record cannot move on
    record = read_record(settings, execution_id)
    os.killpg(run.process.pid, signal.SIGKILL)
    run.finish(timeout=60)
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
    first = Runtime(["--param", f"InputDataUrl={sales_csv}", *FAST])

    # 1. PrepareData, while its process runs
    record = kill_during(
        first, settings, contracts.STEP_PREPARE, lambda r: supervision.process_alive(r.get("step_process")) is True
    )
    execution_id = record["execution_id"]
    job = automl_request.job_name_for_execution(execution_id)
    kills = [contracts.STEP_PREPARE]

    def retry() -> Runtime:
        return Runtime(["--retry", execution_id])

    # 2. AutoML, while its job trains: the crash takes the training process with it (job Failed)
    kill_during(
        retry(),
        settings,
        contracts.STEP_AUTOML,
        lambda r: automl_job(settings, job).get("AutoMLJobSecondaryStatus") == "TrainingModels",
        execution_id,
    )
    kills.append("AutoML (training)")
    # 3. AutoML again, after the retry's job completed but before the step read it: re-attached to, not rerun
    retried_job = f"{job}-r2"
    kill_during(
        retry(),
        settings,
        contracts.STEP_AUTOML,
        lambda r: automl_job(settings, retried_job).get("AutoMLJobStatus") == "Completed",
        execution_id,
    )
    kills.append("AutoML (job completed)")
    # 4-6. the transform (in the runtime's own process), then two processing steps
    for step in (contracts.STEP_BACKTEST, contracts.STEP_CHAMPION, contracts.STEP_EVALUATE):
        kill_during(retry(), settings, step, execution_id=execution_id)
        kills.append(step)
    # 7. RegisterModel, after it created the model package (the crash comes before it could say so)
    kill_during(
        retry(), settings, contracts.STEP_REGISTER, lambda r: package_count(settings) == 1, execution_id, every=0.005
    )  # the window between the package and the step's end is short: look often
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
