"""Retrying a local execution from its failed step (SageMaker's RetryPipelineExecution), on hand-written definitions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pipelines.local import runtime, supervision
from pipelines.local.runtime import retry_local, run_local
from pipelines.run import main as run_main
from processing.kernel.settings import resolve
from tests.pipelines.local.handwritten import definition, install_scripts, output_ref, processing


@pytest.fixture
def settings():
    settings = resolve()
    install_scripts(settings)
    return settings


def flaky_pipeline(marker: Path) -> dict:
    """Produce -> Flaky (fails until `marker` exists) -> Gate(score <= 0.5) -> if: After; else: TooLow."""
    score = {
        "Std:JsonGet": {"PropertyFile": {"Get": "Steps.Produce.PropertyFiles.Metrics"}, "Path": "quality_gate.value"}
    }
    produce = processing(
        "Produce",
        "produce.py",
        arguments=["--out=/opt/ml/processing/output/result", "--score=0.2"],
        outputs=["result"],
        property_files=[("Metrics", "result", "metrics.json")],
    )
    flaky = processing(
        "Flaky",
        "flaky.py",
        arguments=[f"--unless={marker}", "--out=/opt/ml/processing/output/done"],
        inputs={"produced": output_ref("Produce", "result")},
        outputs=["done"],
    )
    after = processing(
        "After",
        "consume.py",
        arguments=["--in=/opt/ml/processing/input/produced", "--out=/opt/ml/processing/output/count"],
        inputs={"produced": output_ref("Produce", "result")},
        outputs=["count"],
    )
    fail = {"Name": "TooLow", "Type": "Fail", "Arguments": {"ErrorMessage": "too low"}}
    gate = {
        "Name": "Gate",
        "Type": "Condition",
        "DependsOn": ["Flaky"],
        "Arguments": {
            "Conditions": [
                {"Type": "LessThanOrEqualTo", "LeftValue": score, "RightValue": {"Get": "Parameters.Threshold"}}
            ],
            "IfSteps": [after],
            "ElseSteps": [fail],
        },
    }
    return definition([produce, flaky, gate], [{"Name": "Threshold", "Type": "Float", "DefaultValue": 0.1}])


def statuses(record):
    return [(s["name"], s["status"]) for s in record["steps"]]


def load(settings, execution_id):
    return json.loads((runtime.executions_dir(settings) / execution_id / "execution.json").read_text())


def test_given_a_failed_step_when_retried_then_it_reruns_from_there_on_the_same_execution_reusing_the_rest(
    settings, tmp_path
):
    marker = tmp_path / "fixed"
    lines: list = []
    assert run_local(flaky_pipeline(marker), {"Threshold": "0.5"}, settings, out=lines.append) == 1
    first = runtime.load_executions(settings)[0]
    assert statuses(first) == [
        ("Produce", "Succeeded"),
        ("Flaky", "Failed"),
        ("Gate", "NotExecuted"),
        ("After", "NotExecuted"),
        ("TooLow", "NotExecuted"),
    ]
    assert f"Retry it from the failed step: python -m pipelines.run --retry {first['execution_id']}" in lines
    produced = runtime.executions_dir(settings) / first["execution_id"] / "steps" / "Produce" / "log.txt"
    produced_log = produced.read_text()

    marker.write_text("fixed")
    lines.clear()
    assert retry_local(first["execution_id"], settings, out=lines.append) == 0
    output = "\n".join(lines)
    record = load(settings, first["execution_id"])

    assert record["execution_id"] == first["execution_id"] and record["status"] == "Succeeded"
    assert record["parameters"]["Threshold"] == 0.5  # the execution's own parameters
    assert record["start_time"] == first["start_time"]
    assert statuses(record) == [
        ("Produce", "Succeeded"),
        ("Flaky", "Succeeded"),
        ("Gate", "Succeeded"),
        ("After", "Succeeded"),
        ("TooLow", "NotExecuted"),
    ]
    steps = {s["name"]: s for s in record["steps"]}
    assert steps["Produce"]["reused"] is True and steps["Produce"]["attempt"] == 1
    assert steps["Produce"]["start_time"] == first["steps"][0]["start_time"]  # not run again
    assert produced.read_text() == produced_log
    assert steps["Flaky"]["attempt"] == 2 and steps["Flaky"]["attempt_count"] == 2
    [earlier] = steps["Flaky"]["attempts"]
    assert earlier["status"] == "Failed" and "the fault is still there" in earlier["failure_reason"]
    assert "the fault is still there" in Path(earlier["log"]).read_text()  # the failed attempt's log is kept
    assert [(a["attempt"], a["status"]) for a in record["attempts"]] == [(1, "Failed"), (2, "Succeeded")]
    assert record["attempts"][1]["retried_from"] == "Flaky" and record["attempt"] == 2
    assert "Produce: Succeeded (reused from attempt 1)" in output
    assert "attempt 2: from step Flaky, reusing 1 succeeded step(s)" in output
    assert f"Execution {first['execution_id']} of {first['pipeline_name']}: Succeeded in" in output
    assert "(attempt 2)" in output and "reused from attempt 1" in output  # the summary table

    listing: list = []
    runtime.list_executions(settings, out=listing.append)
    row = listing[1].split()
    assert row[:4] == [first["execution_id"], first["pipeline_name"], "Succeeded", "2"]

    # ListPipelineExecutionSteps' shape, as botocore's model has it
    from processing.kernel.aws_validation import _check

    steps_page = runtime.pipeline_execution_steps(record)
    problems: list = []
    _check(runtime._output_shape("ListPipelineExecutionSteps"), steps_page, "", problems)
    assert problems == []
    attempt_counts = {s["StepName"]: s["AttemptCount"] for s in steps_page["PipelineExecutionSteps"]}
    assert attempt_counts == {"Produce": 1, "Flaky": 2, "Gate": 1, "After": 1}


def test_given_an_unknown_a_succeeded_or_a_live_execution_then_retry_refuses_in_one_line(settings, tmp_path):
    marker = tmp_path / "fixed"
    marker.write_text("fixed")
    run_local(flaky_pipeline(marker), {}, settings, out=lambda _: None)
    done = runtime.load_executions(settings)[0]
    assert done["status"] == "Failed"  # the gate's Fail step (score 0.2 > 0.1)

    lines: list = []
    assert retry_local("nosuchexecution", settings, out=lines.append) == 2
    assert lines == [
        f"error: --retry nosuchexecution: there is no local execution with that id under "
        f"{runtime.executions_dir(settings)}; the latest are {done['execution_id']} "
        "(python -m pipelines.run --list shows them)"
    ]

    path = runtime.executions_dir(settings) / done["execution_id"] / "execution.json"
    succeeded = dict(done, status="Succeeded")
    path.write_text(json.dumps(succeeded))
    lines.clear()
    assert retry_local(done["execution_id"], settings, out=lines.append) == 2
    assert lines == [
        f"error: --retry {done['execution_id']}: the execution Succeeded, there is nothing to retry; "
        "start a new execution with python -m pipelines.run"
    ]

    alive = dict(done, status="Executing", runtime_process=supervision.process_identity(os.getpid()))
    path.write_text(json.dumps(alive))
    lines.clear()
    assert retry_local(done["execution_id"], settings, out=lines.append) == 2
    assert len(lines) == 1 and "the execution is still Executing (runtime process" in lines[0]
    assert f"kill -TERM {os.getpid()}" in lines[0]
    assert load(settings, done["execution_id"])["status"] == "Executing"  # untouched


def test_given_retry_with_param_then_the_cli_refuses_before_anything_runs(capsys):
    assert run_main(["--retry", "abc", "--param", "ForecastHorizon=3"]) == 2
    assert (
        "--retry reruns an execution with its own parameters and definition; it does not take --param"
        in capsys.readouterr().err
    )


def test_given_the_cli_then_retry_of_an_unknown_id_exits_2(capsys):
    assert run_main(["--retry", "nosuchexecution"]) == 2
    assert "there is no local execution with that id" in capsys.readouterr().out


class KilledRun:
    """A local run in a child process whose step sleeps until a marker exists; killed with SIGKILL mid-step."""

    def __init__(self, tmp_path, marker: Path):
        script = tmp_path / "drive.py"
        script.write_text(
            textwrap.dedent(f"""
            import json, sys
            from pipelines.local.runtime import run_local
            from processing.kernel.settings import resolve
            sys.exit(run_local(json.load(open({str(tmp_path / "def.json")!r})), {{}}, resolve()))
        """)
        )
        produce = processing(
            "Produce",
            "produce.py",
            arguments=["--out=/opt/ml/processing/output/result", "--score=0.2"],
            outputs=["result"],
        )
        sleep = processing(
            "Sleep",
            "sleep_unless.py",
            arguments=[f"--unless={marker}"],
            inputs={"produced": output_ref("Produce", "result")},
        )
        (tmp_path / "def.json").write_text(json.dumps(definition([produce, sleep], [])))
        env = dict(os.environ, PYTHONPATH=str(runtime.PROJECT_ROOT))
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.sleeping = threading.Event()
        self.lines: list = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)
            if "| sleeping" in line:
                self.sleeping.set()


def wait_until(condition, timeout=60.0, what="the condition"):
    """Poll `condition` (an event source: a file, a process table) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_given_a_runtime_killed_mid_step_when_retried_then_the_step_died_with_it_and_the_retry_succeeds(
    settings, tmp_path
):
    marker = tmp_path / "awake"
    run = KilledRun(tmp_path, marker)
    if not run.sleeping.wait(300):
        run.process.kill()
        pytest.fail("the step never started:\n" + "".join(run.lines))
    record = runtime.load_executions(settings)[0]
    step = record["step_process"]
    assert record["status"] == "Executing" and supervision.process_alive(step) is True
    os.killpg(run.process.pid, signal.SIGKILL)  # a crash: the runtime's whole process group
    run.process.wait(timeout=30)
    wait_until(lambda: supervision.process_alive(step) is False, what="the step to die with its runtime")

    marker.write_text("awake")
    lines: list = []
    assert retry_local(record["execution_id"], settings, out=lines.append) == 0, "\n".join(lines)
    after = load(settings, record["execution_id"])
    assert statuses(after) == [("Produce", "Succeeded"), ("Sleep", "Succeeded")]
    assert [(a["attempt"], a["status"]) for a in after["attempts"]] == [(1, "Failed"), (2, "Succeeded")]
    assert after["attempts"][0]["failure_reason"].startswith(
        f"the local runtime process (pid {run.process.pid}) is gone: it was killed or crashed while step Sleep"
    )
    assert after["steps"][0]["reused"] is True and after.get("step_process") is None


def test_given_a_stopped_execution_when_retried_then_the_stopped_step_runs_again_and_its_stop_is_in_its_history(
    settings, tmp_path
):
    marker = tmp_path / "awake"
    run = KilledRun(tmp_path, marker)
    if not run.sleeping.wait(300):
        run.process.kill()
        pytest.fail("the step never started:\n" + "".join(run.lines))
    run.process.send_signal(signal.SIGTERM)
    assert run.process.wait(timeout=120) == 143
    stopped = runtime.load_executions(settings)[0]
    assert stopped["status"] == "Stopped"

    marker.write_text("awake")
    assert retry_local(stopped["execution_id"], settings, out=lambda _: None) == 0
    after = load(settings, stopped["execution_id"])
    sleep = after["steps"][1]
    assert sleep["status"] == "Succeeded" and sleep["attempt_count"] == 2
    assert [(a["status"], a["failure_reason"]) for a in sleep["attempts"]] == [("Stopped", "stopped by SIGTERM")]
    assert [a["status"] for a in after["attempts"]] == ["Stopped", "Succeeded"]
