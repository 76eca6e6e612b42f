"""The local executor on hand-written definitions: DAG checks, processing, conditions, fail, Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from pipelines.local import executors, runtime
from pipelines.local.runtime import DefinitionError, list_executions, load_definition, run_local
from processing.kernel.settings import resolve
from tests.pipelines.local.handwritten import (
    definition,
    gated_pipeline,
    install_scripts,
    output_ref,
    processing,
    read_text,
)


@pytest.fixture
def settings():
    settings = resolve()
    install_scripts(settings)
    return settings


def run(definition_, settings, parameters=None):
    lines: list = []
    code = run_local(definition_, parameters or {}, settings, out=lines.append)
    return code, "\n".join(lines), runtime.load_executions(settings)[0]


def statuses(record):
    return [(s["name"], s["status"]) for s in record["steps"]]


# --- DAG checks at load time ------------------------------------------------------------------
def test_unknown_depends_on_is_named():
    bad = definition([processing("A", "produce.py", outputs=["result"], depends_on=["Prepare"])], [])
    with pytest.raises(DefinitionError, match="step A: DependsOn names unknown step 'Prepare'; steps are A$"):
        load_definition(bad)


def test_unknown_step_in_a_get_is_named_with_a_suggestion():
    a = processing("Prepare", "produce.py", outputs=["result"])
    b = processing("B", "consume.py", inputs={"x": output_ref("Prepar", "result")})
    with pytest.raises(
        DefinitionError,
        match=r"step B: references unknown step 'Prepar' in a Get; steps are "
        r"Prepare, B \(did you mean 'Prepare'\?\)",
    ):
        load_definition(definition([a, b], []))


def test_cycles_are_reported_with_the_loop():
    a = processing("A", "produce.py", outputs=["result"], inputs={"x": output_ref("B", "result")})
    b = processing("B", "produce.py", outputs=["result"], inputs={"x": output_ref("A", "result")})
    with pytest.raises(DefinitionError, match="cycle: A -> B -> A"):
        load_definition(definition([a, b], []))


def test_wrong_output_name_in_a_property_path_fails_before_anything_runs(settings):
    a = processing("A", "produce.py", outputs=["result"])
    b = processing("B", "consume.py", inputs={"x": output_ref("A", "reslt")})
    lines: list = []
    assert run_local(definition([a, b], []), {}, settings, out=lines.append) == 2
    assert (
        "step B: Steps.A.ProcessingOutputConfig.Outputs['reslt'].S3Output.S3Uri: "
        "ProcessingOutputConfig.Outputs has no entry named 'reslt'; it has 'result'"
    ) in "\n".join(lines)
    assert runtime.load_executions(settings) == []


def test_wrong_member_in_a_property_path_lists_the_members():
    a = processing("A", "produce.py", outputs=["result"])
    b = processing("B", "consume.py", inputs={"x": {"Get": "Steps.A.ProcessingOutputConfig.Outputs['result'].S3Uri"}})
    with pytest.raises(
        DefinitionError,
        match=r"Outputs\['result'\] has no member 'S3Uri'; members are "
        r"OutputName, S3Output",
    ):
        load_definition(definition([a, b], []))


def test_unknown_property_file_is_named():
    a = processing("A", "produce.py", outputs=["result"], property_files=[("Metrics", "result", "m.json")])
    fail = {
        "Name": "F",
        "Type": "Fail",
        "Arguments": {
            "ErrorMessage": {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.A.PropertyFiles.Metric"}, "Path": "x"}}
        },
    }
    with pytest.raises(DefinitionError, match="step A declares property files 'Metrics'"):
        load_definition(definition([a, fail], []))


def test_execution_order_follows_dependencies_then_definition_order():
    a = processing("A", "produce.py", outputs=["result"])
    b = processing("B", "consume.py", inputs={"x": output_ref("C", "result")}, outputs=["result"])
    c = processing("C", "produce.py", outputs=["result"])
    assert load_definition(definition([a, b, c], [])).order == ["A", "C", "B"]


# --- running -------------------------------------------------------------------------------------
def test_gate_passes_runs_the_if_branch_and_records_everything(settings):
    code, output, record = run(gated_pipeline(threshold=0.5), settings, {"Label": "nightly"})

    assert code == 0, output
    assert statuses(record) == [
        ("Produce", "Succeeded"),
        ("Consume", "Succeeded"),
        ("Gate", "Succeeded"),
        ("AfterGate", "Succeeded"),
        ("TooLow", "NotExecuted"),
    ]
    assert record["status"] == "Succeeded" and record["parameters"]["Label"] == "nightly"
    produce_log = Path(record["steps"][0]["log"]).read_text()
    # the definition's own environment (no FORECAST_TARGET=local trick), no pip installs, no spinning
    assert "target sagemaker install 0 omp PASSIVE" in produce_log
    assert f"label nightly-{record['execution_id']}" in produce_log  # Std:Join with an execution variable
    consume_uri = record["steps"][1]["outputs"]["count"]
    assert consume_uri.endswith(f"/{record['execution_id']}/Consume/count")
    assert read_text(settings, consume_uri + "/count.txt") == "2"  # read the Produce output through its input
    assert record["properties"]["Gate"] == {"Outcome": True}
    home = settings.home_path / "executions" / record["execution_id"]
    assert json.loads((home / "execution.json").read_text())["status"] == "Succeeded"
    report = (home / "report.html").read_text()
    assert "<svg" in report and "AfterGate" in report
    assert "Produce" in output and "Succeeded" in output
    lines = output.splitlines()
    assert "    Gate: quality_gate.value 0.2 <= Threshold 0.5 -> AfterGate" in lines  # the outcome in words
    assert "[5/5] TooLow: not executed (Gate passed; this step runs when it does not)" in lines
    gate_log = Path(next(s for s in record["steps"] if s["name"] == "Gate")["log"]).read_text()
    assert "[runtime] conditions LessThanOrEqualTo(0.2, 0.5) -> True; running IfSteps" in gate_log  # for debugging


def test_the_record_is_written_compactly_and_only_when_it_changed(settings, monkeypatch):
    """execution.json: each write differs from the one before (no rewrite of an unchanged record), the
    file is compact JSON, and the last write is the final record."""
    writes: list = []
    real = runtime.atomic_write_bytes

    def counting(path, data):
        if path.name == "execution.json":
            writes.append(data)
        real(path, data)

    monkeypatch.setattr(runtime, "atomic_write_bytes", counting)
    code, output, record = run(gated_pipeline(threshold=0.5), settings, {"Label": "nightly"})
    assert code == 0, output
    assert len(writes) >= 5 and all(a != b for a, b in zip(writes, writes[1:]))
    path = settings.home_path / "executions" / record["execution_id"] / "execution.json"
    assert path.read_bytes() == writes[-1] and b"\n" not in writes[-1]
    assert json.loads(writes[-1]) == record


def test_gate_fails_runs_the_fail_step_with_its_message_and_exits_non_zero(settings):
    code, output, record = run(gated_pipeline(threshold=0.5), settings, {"Score": "0.9"})

    assert code == 1
    assert statuses(record)[-2:] == [("AfterGate", "NotExecuted"), ("TooLow", "Failed")]
    assert record["status"] == "Failed"
    assert record["failure_reason"] == "Quality too low: score 0.9 above threshold 0.5"
    assert "    Gate: quality_gate.value 0.9 > Threshold 0.5 -> TooLow" in output.splitlines()
    assert "AfterGate: not executed (Gate did not pass; this step runs when it does)" in output
    assert "Failure: Quality too low: score 0.9 above threshold 0.5" in output
    assert "To run again after fixing it (a new execution): python -m pipelines.run --param Score=0.9" in output
    assert "--retry" not in output  # a Fail step fails again on a retry: same data, same parameters


def test_each_run_is_a_new_execution_and_list_shows_them(settings):
    run(gated_pipeline(), settings)
    run(gated_pipeline(), settings, {"Score": "0.9"})
    records = runtime.load_executions(settings)
    assert len({r["execution_id"] for r in records}) == 2
    lines: list = []
    list_executions(settings, out=lines.append)
    table = "\n".join(lines)
    assert table.splitlines()[0].split() == [
        "EXECUTION",
        "PIPELINE",
        "STATUS",
        "ATTEMPT",
        "STARTED",
        "(UTC)",
        "DURATION",
        "DETAIL",
    ]
    assert all(r["execution_id"] in table for r in records)
    assert "Quality too low" in table


def test_failing_step_stops_its_dependents_and_prints_the_log_tail(settings):
    crash = processing("Crash", "crash.py", outputs=["result"])
    after = processing("After", "consume.py", inputs={"x": output_ref("Crash", "result")})
    code, output, record = run(definition([crash, after], []), settings)

    assert code == 1
    assert statuses(record) == [("Crash", "Failed"), ("After", "NotExecuted")]
    assert "column 'target_value' is missing from sales.csv" in record["steps"][0]["failure_reason"]
    assert "--- last lines of" in output and "about to fail" in output
    assert "Step Crash failed:" in output


def test_unknown_lambda_function_fails_clearly(settings):
    lam = {
        "Name": "Notify",
        "Type": "Lambda",
        "FunctionArn": "arn:aws:lambda:us-east-1:1:function:send-mail",
        "Arguments": {"x": 1},
        "OutputParameters": [],
    }
    code, output, record = run(definition([lam], []), settings)
    assert code == 1
    assert record["steps"][0]["failure_reason"] == (
        "Lambda function arn:aws:lambda:us-east-1:1:function:send-mail has no local stand-in: the local runtime "
        f"runs function:{settings.deploy_function_name} (deploy.handler.lambda_handler) only"
    )


def test_bad_parameter_override_exits_2_listing_the_parameters(settings):
    lines: list = []
    assert run_local(gated_pipeline(), {"Treshold": "1"}, settings, out=lines.append) == 2
    assert (
        "unknown parameter(s) Treshold (did you mean 'Threshold'?); this pipeline's parameters are: Label, Score, "
        "Threshold" in lines[0]
    )


class Driver:
    """A local run of one 60-second step in a child process, and the event "the step is executing".

    The event comes from the child's own output (the step's "sleeping" line, streamed by the
    runtime), read by a thread: the test signals only once the step runs, however slow the machine.
    """

    def __init__(self, tmp_path):
        script = tmp_path / "drive.py"
        # SIGINT as a terminal's Ctrl-C delivers it: a shell starting pytest in the background leaves
        # SIGINT ignored, and children inherit that, so the driver restores Python's handler itself
        script.write_text(
            textwrap.dedent(f"""
            import json, signal, sys
            signal.signal(signal.SIGINT, signal.default_int_handler)
            from pipelines.local.runtime import run_local
            from processing.kernel.settings import resolve
            sys.exit(run_local(json.load(open({str(tmp_path / "def.json")!r})), {{}}, resolve()))
        """)
        )
        (tmp_path / "def.json").write_text(json.dumps(definition([processing("Sleep", "sleep.py")], [])))
        env = dict(os.environ, PYTHONPATH=str(runtime.PROJECT_ROOT))
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list = []
        self.step_running = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line)
            if "| sleeping" in line:
                self.step_running.set()

    def wait_for_the_step(self, timeout=300):
        if not self.step_running.wait(timeout):
            self.process.kill()
            self.process.wait()
            pytest.fail("the step never started:\n" + "".join(self.lines))

    def finish(self, timeout=120):
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=30)
        return code, "".join(self.lines)


def test_ctrl_c_kills_the_step_and_records_a_stopped_execution(settings, tmp_path):
    """Given a long step, when the runner gets SIGINT, then it exits 130 and the record says Stopped."""
    driver = Driver(tmp_path)
    driver.wait_for_the_step()
    driver.process.send_signal(signal.SIGINT)
    code, output = driver.finish()

    assert code == 130, output
    record = runtime.load_executions(settings)[0]
    assert record["status"] == "Stopped" and record["failure_reason"] == "stopped by the user (Ctrl-C)"
    assert statuses(record) == [("Sleep", "Stopped")]
    assert record["steps"][0]["duration_seconds"] is not None
    assert "stopped (Ctrl-C)" in output
    leftover = subprocess.run(["pgrep", "-f", f"{record['execution_id']}/steps/Sleep"], capture_output=True, text=True)
    assert leftover.stdout.strip() == ""


def test_sigterm_stops_the_step_and_is_recorded_as_sigterm(settings, tmp_path):
    driver = Driver(tmp_path)
    driver.wait_for_the_step()
    driver.process.send_signal(signal.SIGTERM)
    code, output = driver.finish()

    assert code == 143, output
    record = runtime.load_executions(settings)[0]
    assert record["status"] == "Stopped" and record["failure_reason"] == "stopped by SIGTERM"
    assert record["steps"][0]["failure_reason"] == "stopped by SIGTERM" and "Ctrl-C" not in output
    assert "stopped (SIGTERM)" in output


def test_a_killed_runtime_is_listed_as_failed_with_the_reason_not_executing_forever(settings, tmp_path):
    """Given a run killed with SIGKILL mid-step, --list shows it Failed, naming the pid and the step."""
    driver = Driver(tmp_path)
    driver.wait_for_the_step()
    before = runtime.load_executions(settings)[0]
    assert before["status"] == "Executing"  # alive: not touched
    pid, step_pid = before["runtime_process"]["pid"], before["step_pid"]
    assert pid == driver.process.pid and step_pid
    driver.process.kill()
    driver.finish()
    try:
        lines: list = []
        list_executions(settings, out=lines.append)
        record = runtime.load_executions(settings)[0]
        assert record["status"] == "Failed"
        assert record["failure_reason"].startswith(
            f"the local runtime process (pid {pid}) is gone: it was killed or crashed while step Sleep was Executing"
        )
        assert statuses(record) == [("Sleep", "Failed")] and record["end_time"]
        assert "Failed" in lines[1] and "Executing" not in lines[1]
        on_disk = json.loads((runtime.executions_dir(settings) / record["execution_id"] / "execution.json").read_text())
        assert on_disk["status"] == "Failed"  # recorded, not only displayed
    finally:
        with contextlib.suppress(ProcessLookupError):  # the orphaned step (its own process group)
            os.killpg(step_pid, signal.SIGKILL)


def test_a_record_of_a_live_process_is_not_marked_and_a_reused_pid_is_not_taken_for_the_runtime(tmp_path):
    me = runtime.process_identity(os.getpid())
    assert runtime.process_alive(me) is True
    assert runtime.process_alive(dict(me, started="1")) is False  # same pid, another process
    assert runtime.process_alive(dict(me, host="elsewhere")) is None  # cannot tell: left as it is
    record = {"status": "Executing", "runtime_process": me, "steps": []}
    path = tmp_path / "execution.json"
    path.write_text(json.dumps(record))
    assert runtime.mark_if_dead(dict(record), path)["status"] == "Executing"


def test_without_input_data_url_the_seed_dataset_is_generated_at_the_default_and_reused(settings):
    """Given a pipeline whose InputDataUrl is not overridden, the seed's data is put at its default."""
    count = processing("Count", "consume.py", inputs={"data": {"Get": "Parameters.InputDataUrl"}})
    count["Arguments"]["AppSpecification"]["ContainerEntrypoint"] = [
        "python3",
        "-c",
        "import sys, pathlib; rows = pathlib.Path('/opt/ml/processing/input/data/sales.csv')"
        ".read_text().splitlines(); print('rows', len(rows) - 1)",
    ]
    parameters = [
        {"Name": "InputDataUrl", "Type": "String", "DefaultValue": "s3://test-bucket/data/sales/"},
        {"Name": "ForecastHorizon", "Type": "Integer", "DefaultValue": 14},
    ]
    code, output, record = run(definition([count], parameters), settings)

    assert code == 0, output
    assert (
        "No InputDataUrl given: generated the seed dataset (136875 rows, 125 items) at "
        "s3://test-bucket/data/sales/" in output
    )
    assert record["notes"] and "seed dataset" in record["notes"][0]
    assert "rows 136875" in Path(record["steps"][0]["log"]).read_text()

    code, output, _ = run(definition([count], parameters), settings)
    assert code == 0
    assert "using the seed dataset already in the local store at s3://test-bucket/data/sales/" in output


def test_model_step_creates_the_model_and_its_properties_feed_later_steps(settings):
    model = {
        "Name": "MakeModel",
        "Type": "Model",
        "Arguments": {
            "ExecutionRoleArn": "arn:aws:iam::000000000000:role/r",
            "PrimaryContainer": {
                "Image": "forecast-local-engine:latest",
                "ModelDataUrl": "s3://test-bucket/model/",
                "Environment": {"A": "1"},
            },
        },
    }
    report = {
        "Name": "Report",
        "Type": "Fail",
        "Arguments": {
            "ErrorMessage": {
                "Std:Join": {
                    "On": " ",
                    "Values": [
                        "created",
                        {"Get": "Steps.MakeModel.ModelName"},
                        {"Get": "Steps.MakeModel.PrimaryContainer.Environment['A']"},
                    ],
                }
            }
        },
    }
    code, output, record = run(definition([model, report], []), settings)

    name = record["properties"]["MakeModel"]["ModelName"]
    assert name == f"pipelines-{record['execution_id']}-MakeModel"
    assert record["failure_reason"] == f"created {name} 1"
    from pipelines.local.sagemaker import LocalSageMakerClient

    described = LocalSageMakerClient(settings).describe_model(ModelName=name)
    assert described["PrimaryContainer"]["Environment"] == {"A": "1"}


def test_what_the_runtime_sets_in_its_own_environment_during_a_run_never_reaches_a_later_step(settings, monkeypatch):
    """Steps start from the runtime's environment as the execution began: a library an in-process step
    imports there (joblib sets KMP_INIT_AT_FORK, with the transform's engine) changes the runtime's
    os.environ, not what a later step sees, as no container would have it."""
    from pipelines.local.sagemaker import LocalSageMakerClient

    create_model = LocalSageMakerClient.create_model

    def create_model_importing_a_library(self, **request):
        monkeypatch.setenv("KMP_INIT_AT_FORK", "FALSE")  # what `import joblib` does in the runtime
        return create_model(self, **request)

    monkeypatch.delenv("KMP_INIT_AT_FORK", raising=False)
    monkeypatch.setattr(LocalSageMakerClient, "create_model", create_model_importing_a_library)
    model = {
        "Name": "MakeModel",
        "Type": "Model",
        "Arguments": {
            "ExecutionRoleArn": "arn:aws:iam::000000000000:role/r",
            "PrimaryContainer": {"Image": "forecast-local-engine:latest", "ModelDataUrl": "s3://test-bucket/model/"},
        },
    }
    show = processing(
        "Show", "show_env.py", arguments=["KMP_INIT_AT_FORK", "OMP_WAIT_POLICY"], depends_on=["MakeModel"]
    )
    code, output, record = run(definition([model, show], []), settings)

    assert code == 0, output
    assert os.environ["KMP_INIT_AT_FORK"] == "FALSE"  # the runtime's own environment did change
    log = Path(record["steps"][1]["log"]).read_text()
    assert "KMP_INIT_AT_FORK=None" in log and "OMP_WAIT_POLICY=PASSIVE" in log


def test_a_step_environment_reaches_aws_only_through_the_loopback_api_and_cannot_import_the_runtime(
    settings, tmp_path, monkeypatch
):
    """Steps get the bundle and boto3 pointed at 127.0.0.1; nothing puts pipelines.local within reach."""
    from pipelines import code_bundle
    from pipelines.local.aws_api import LocalAWSServer

    code = tmp_path / "code"
    for relative, path in code_bundle.bundle_files():
        (code / relative).parent.mkdir(parents=True, exist_ok=True)
        (code / relative).write_bytes(path.read_bytes())
    execution = runtime.Execution(definition([processing("Produce", "produce.py")], []), {}, settings)
    with LocalAWSServer(settings) as execution.api:
        monkeypatch.setenv("AWS_PROFILE", "someones-real-profile")  # the user's: never a step's
        env = executors.ProcessingExecutor(execution).environment({"FORECAST_TARGET": "sagemaker"}, lambda v: v, code)

        url = execution.api.url
        assert env["AWS_ENDPOINT_URL_SAGEMAKER"] == env["AWS_ENDPOINT_URL"] == url
        assert env["FORECAST_TARGET"] == "sagemaker" and "AWS_PROFILE" not in env
        assert not any(name.startswith("FORECAST_LOCAL") for name in env)
        assert str(runtime.PROJECT_ROOT) not in env["PYTHONPATH"].split(os.pathsep)
        # the host interpreter's editable install of the project maps pipelines.* to its checkout: that is
        # the interpreter's doing (steps in the image's own environment do not have it), so the probe
        # drops that finder and asks what the step's environment alone makes importable
        probe = (
            "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
            "import importlib.util, processing.kernel.contracts, boto3\n"
            "print('kernel from', processing.kernel.contracts.__file__)\n"
            "print('pipelines', importlib.util.find_spec('pipelines'))\n"
            "print('clients', importlib.util.find_spec('deploy'))\n"
            "print('endpoint', boto3.client('sagemaker').meta.endpoint_url)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", probe], env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=120
        )
    assert result.returncode == 0, result.stderr
    assert f"kernel from {code / 'processing' / 'kernel' / 'contracts.py'}" in result.stdout
    assert "pipelines None" in result.stdout and "clients None" in result.stdout  # no pipelines/ in the bundle
    assert f"endpoint {url}" in result.stdout


def test_the_engine_of_a_transform_to_come_is_imported_while_waiting_unless_an_automl_job_is_to_come():
    """Execution.import_ahead (called while the first step waits for the step launcher's imports): the
    batch pipeline's in-process transform gets its engine imported then; the training pipeline does not
    (its AutoML worker, started ahead, must keep matching this process's environment), and neither
    changes the environment the steps start from."""
    script = textwrap.dedent(
        """
        import json, os, sys
        from pipelines.local import runtime
        from pipelines.run import render_local
        from processing.kernel.settings import resolve
        settings = resolve()
        seen = {}
        for name in ("training", "batch"):
            execution = runtime.Execution(json.loads(render_local(name, settings)), {}, settings)
            execution.environ = dict(os.environ)  # as run() takes it
            execution.import_ahead()
            seen[name] = ["forecasting" in sys.modules, "KMP_INIT_AT_FORK" in execution.environ]
        print(json.dumps(seen))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "KMP_INIT_AT_FORK"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=str(runtime.PROJECT_ROOT),
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"training": [False, False], "batch": [True, False]}


# --- input errors: the user's file and --param, not the step's folders ------------------------------
REFUSE_SCRIPT = """
import sys
from pathlib import Path
data = Path(sys.argv[1].split("=", 1)[1])
first = sorted(data.iterdir())[0]
print(f"Refuse failed: {first}: column 'target_value' (TargetColumn): 1 values are not numbers", file=sys.stderr)
raise SystemExit(2)
"""


def refusing_pipeline(settings) -> dict:
    """One step reading InputDataUrl that refuses it (exit 2), naming the file as its folder holds it."""
    from pipelines.local.store import local_path
    from tests.pipelines.local.handwritten import CODE_URI

    (local_path(CODE_URI, settings) / "refuse.py").write_text(REFUSE_SCRIPT)
    step = processing(
        "Refuse",
        "refuse.py",
        arguments=["--data=/opt/ml/processing/input/data"],
        inputs={"data": {"Get": "Parameters.InputDataUrl"}},
    )
    return definition([step], [{"Name": "InputDataUrl", "Type": "String", "DefaultValue": "s3://b/none/"}])


def test_given_a_refused_input_file_then_the_failure_names_the_users_file_and_advises_a_new_run(settings, tmp_path):
    source = tmp_path / "sales.csv"
    source.write_text("x\n1\n")
    code, text, record = run(refusing_pipeline(settings), settings, {"InputDataUrl": str(source)})
    assert code == 2
    reason = record["steps"][0]["failure_reason"]
    assert reason == (
        f"the input was refused (exit code 2): {source}: column 'target_value' (TargetColumn): 1 values are not numbers"
    )
    assert "processing/input" not in reason and "/opt/ml" not in reason
    assert "Retry it from the failed step" not in text
    assert (
        "The input was refused: fix what the failure names (the file, or a --param such as "
        f"InputDataUrl=<corrected file>) and start a new execution (the command above, corrected); --retry "
        f"would reuse InputDataUrl={source}." in text
    )


def test_given_a_missing_input_file_then_the_failure_names_the_param_and_the_file_beside_it(settings, tmp_path):
    (tmp_path / "sales.csv").write_text("x\n1\n")
    missing = tmp_path / "sale.csv"
    code, text, record = run(refusing_pipeline(settings), settings, {"InputDataUrl": str(missing)})
    assert code == 2
    assert record["steps"][0]["failure_reason"] == (
        f"--param InputDataUrl={missing}: there is no such file or folder (did you mean "
        f"--param InputDataUrl={tmp_path / 'sales.csv'}?); pass an existing CSV/Parquet file or a folder of them"
    )
    assert "Retry it from the failed step" not in text and "InputDataUrl=<corrected file>" in text


def test_given_an_empty_folder_or_prefix_as_input_then_the_failure_names_the_path_once(settings, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, record = run(refusing_pipeline(settings), settings, {"InputDataUrl": str(empty)})
    assert code == 2
    assert record["steps"][0]["failure_reason"] == (
        f"--param InputDataUrl={empty}: the folder has no files; pass an existing CSV/Parquet file or a folder of them"
    )
    code, _, record = run(refusing_pipeline(settings), settings, {"InputDataUrl": "s3://b/none/"})
    assert code == 2
    assert record["steps"][0]["failure_reason"] == (
        f"--param InputDataUrl=s3://b/none/: nothing in the local object store at {settings.home_path / 's3' / 'b' / 'none'}"
        "; check the URI or pass an existing CSV/Parquet file or a folder of them"
    )


def test_user_paths_replace_the_steps_copies_of_an_input_by_the_users_file_or_folder(tmp_path):
    step_dir = tmp_path / "steps" / "P" / "processing" / "input" / "data"
    one = executors._source_names(
        "/home/me/sales.csv", [step_dir / "sales.csv"], step_dir, "/opt/ml/processing/input/data"
    )
    assert executors.user_paths(f"{step_dir}: bad; {step_dir}/sales.csv line 3", one) == (
        "/home/me/sales.csv: bad; /home/me/sales.csv line 3"
    )
    assert executors.user_paths("/opt/ml/processing/input/data/sales.csv: bad", one) == "/home/me/sales.csv: bad"
    folder = executors._source_names(
        "s3://b/sales/", [step_dir / "a.csv", step_dir / "b.csv"], step_dir, "/opt/ml/processing/input/data"
    )
    assert executors.user_paths(f"{step_dir}/b.csv line 9; {step_dir}2 untouched", folder) == (
        f"s3://b/sales/b.csv line 9; {step_dir}2 untouched"
    )
