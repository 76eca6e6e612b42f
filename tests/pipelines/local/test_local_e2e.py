"""End to end: the real training definition on the local runtime, offline.

Small on purpose (10 items x 300 days, two fast candidate algorithms): these tests check the
runtime executes the exact definition correctly, not the engine's accuracy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipelines.local import executors, launcher, runtime
from pipelines.local.sagemaker import LocalSageMakerClient
from pipelines.local.store import local_path
from pipelines.run import main as run_main
from processing.generate import generate_sales, write_frame
from processing.kernel import contracts
from processing.kernel.settings import resolve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # local pipeline runs end to end

DEFINITION_ORDER = [
    contracts.STEP_PREPARE,
    contracts.STEP_AUTOML,
    contracts.STEP_BACKTEST,
    contracts.STEP_CHAMPION,
    contracts.STEP_EVALUATE,
    contracts.STEP_GATE,
    contracts.STEP_CHAMPION_GATE,
    contracts.STEP_REGISTER,
    contracts.STEP_DEPLOY,
    contracts.STEP_CHALLENGER_LOST,
    contracts.STEP_FAIL,
]
FAST = ["--param", "AutoMLAlgorithms=npts,ets"]

GUARD = '''
"""Refuse every connection that is not to loopback (and name lookups of other hosts); log attempts."""
import ipaddress, os, socket

_LOG = os.environ.get("NONET_LOG")
_real_connect, _real_connect_ex, _real_getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _loopback(host):
    if host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what):
    if _LOG:
        with open(_LOG, "a") as handle:
            handle.write(f"{os.getpid()} {what}\\n")
    raise ConnectionRefusedError(f"network disabled by the test: {what}")


def _connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        _refuse(f"connect {address}")
    return _real_connect(self, address)


def _connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
        _refuse(f"connect_ex {address}")
    return _real_connect_ex(self, address)


def _getaddrinfo(host, *args, **kwargs):
    if not _loopback(host if not isinstance(host, bytes) else host.decode()):
        _refuse(f"getaddrinfo {host}")
    return _real_getaddrinfo(host, *args, **kwargs)


def install():
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = _connect, _connect_ex, _getaddrinfo


install()
'''


@pytest.fixture
def sales_csv(tmp_path) -> Path:
    """10 items (5 products x 2 regions) x 300 days of the seed generator's data."""
    frame = generate_sales(products=5, regions=2, start="2023-01-01", end="2023-10-27")
    assert frame["item_id"].nunique() == 10 and frame.groupby("item_id").size().eq(300).all()
    return write_frame(frame, tmp_path / "input" / "sales.csv")


@pytest.fixture
def no_network(tmp_path, monkeypatch):
    """Refuse non-loopback connections in this process (the runtime) and, through a sitecustomize on
    PYTHONPATH, in the processes it starts with its own environment (the AutoML training process);
    yields the attempt log. Steps reach AWS only through the runtime's loopback API (asserted from
    what that API served)."""
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir()
    (guard_dir / "nonet_guard.py").write_text(textwrap.dedent(GUARD))
    (guard_dir / "sitecustomize.py").write_text("import nonet_guard\n")
    attempts = tmp_path / "network-attempts.log"
    monkeypatch.setenv("NONET_LOG", str(attempts))
    monkeypatch.setenv("PYTHONPATH", str(guard_dir) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.syspath_prepend(str(guard_dir))
    import socket

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, getattr(socket.socket, name))
    monkeypatch.setattr(socket, "getaddrinfo", socket.getaddrinfo)
    import importlib

    importlib.import_module("nonet_guard").install()
    return attempts


def expected_step_environment() -> str:
    """The image's environment wherever a Python of its version exists (CI: pyenv's, and strict)."""
    from pipelines import processing_image
    from pipelines.local import step_env

    return "image" if step_env.find_python(processing_image.load().python) else "host fallback"


def run_cli(args, capsys):
    code = run_main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err, runtime.load_executions(resolve())[0]


def test_the_guard_bites_in_processes_the_runtime_starts_and_steps_reach_only_loopback(no_network):
    """The no-network proof is only worth something if the guard really bites where it is claimed."""
    from pipelines.local.aws_api import LocalAWSServer

    probes = {
        "import socket; socket.socket().connect(('192.0.2.1', 443))": "network disabled by the test: connect ('192.0.2.1', 443)",
        "import socket; socket.getaddrinfo('api.sagemaker.us-east-1.amazonaws.com', 443)": (
            "network disabled by the test: getaddrinfo api.sagemaker.us-east-1.amazonaws.com"
        ),
    }
    for probe, refusal in probes.items():  # a child with the runtime's environment, like the AutoML worker
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
        assert result.returncode != 0 and refusal in result.stderr
    assert "192.0.2.1" in no_network.read_text()
    no_network.unlink()

    settings = resolve()
    execution = runtime.Execution({"Version": "2020-12-01", "Steps": []}, {}, settings)
    with LocalAWSServer(settings) as execution.api:
        env = executors.ProcessingExecutor(execution).environment({}, lambda value: value, None)
        env["PYTHONPATH"] = ""  # no guard in the step: any AWS call must still end on loopback
        probe = (
            "import boto3, botocore.exceptions\n"
            "for service in ('sts', 's3', 'sagemaker-runtime'):\n"
            "    client = boto3.client(service)\n"
            "    call = {'sts': lambda: client.get_caller_identity(), 's3': lambda: client.list_buckets(),\n"
            "            'sagemaker-runtime': lambda: client.invoke_endpoint(EndpointName='e', Body=b'x')}[service]\n"
            "    try:\n"
            "        call()\n"
            "    except botocore.exceptions.ClientError as error:\n"
            "        print(service, error.response['Error']['Code'])\n"
        )
        result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
        calls = execution.api.take_calls()
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "sts",
        "NotServedLocally",
        "s3",
        "NotServedLocally",
        "sagemaker-runtime",
        "NotServedLocally",
    ]
    assert [c["service"] for c in calls] == ["sts", "s3", "sagemaker"]
    assert not no_network.exists(), no_network.read_text()


def test_training_pipeline_runs_end_to_end_offline(sales_csv, no_network, capsys):
    code, output, record = run_cli(["--param", f"InputDataUrl={sales_csv}", *FAST], capsys)

    assert code == 0, output[-3000:]
    assert [s["name"] for s in record["steps"]] == DEFINITION_ORDER
    assert [s["status"] for s in record["steps"]] == ["Succeeded"] * 9 + ["NotExecuted"] * 2
    executed = [s for s in record["steps"] if s["status"] == "Succeeded"]
    assert all(a["end_time"] <= b["start_time"] for a, b in zip(executed, executed[1:]))  # one after another
    assert not no_network.exists(), no_network.read_text()
    # the steps' AWS calls: all SageMaker, all answered by the loopback API, none to anything else
    calls = {s["name"]: s.get("aws_calls", []) for s in record["steps"]}
    assert {c["service"] for step_calls in calls.values() for c in step_calls} == {"sagemaker"}
    assert not [c for step_calls in calls.values() for c in step_calls if c["error"] == "NotServedLocally"]
    automl = [(c["operation"], c["status"]) for c in calls[contracts.STEP_AUTOML]]
    assert automl[:2] == [("DescribeAutoMLJobV2", 400), ("CreateAutoMLJobV2", 200)]  # not found, so created
    assert ("CreateModel", 200) in automl and ("DescribeAutoMLJobV2", 200) in automl
    assert ("CreateModelPackage", 200) in [(c["operation"], c["status"]) for c in calls[contracts.STEP_REGISTER]]
    automl_log = Path(record["steps"][1]["log"]).read_text()
    assert "[aws api] sagemaker CreateAutoMLJobV2 -> 200" in automl_log
    assert "[automl job fc-" in automl_log and "[engine]" in automl_log  # the job's output, in the step's log
    assert "[runtime] AWS API calls: sagemaker DescribeAutoMLJobV2 400 ResourceNotFound" in automl_log
    # the job's worker was started ahead, while PrepareData ran (automl_worker.prestart)
    assert "in the worker started ahead (the engine imported meanwhile)" in automl_log
    if launcher._fork_supported() and resolve().step_launcher == "fork":  # started with the run (WarmStart)
        prepare_log = Path(record["steps"][0]["log"]).read_text()
        assert "[runtime] step launcher started with the execution" in prepare_log
        assert "[runtime] forked from the step launcher" in prepare_log and "spawned, not forked" not in prepare_log
    kinds = {s["name"]: (s.get("environment") or {}).get("kind") for s in record["steps"]}
    assert kinds[contracts.STEP_PREPARE] == kinds[contracts.STEP_EVALUATE] == expected_step_environment()
    assert kinds[contracts.STEP_AUTOML] == kinds[contracts.STEP_REGISTER] == expected_step_environment()  # plain boto3

    settings = resolve()
    sm = LocalSageMakerClient(settings)
    [summary] = sm.list_model_packages(ModelPackageGroupName=settings.model_package_group)["ModelPackageSummaryList"]
    assert summary["ModelApprovalStatus"] == "PendingManualApproval"
    package = sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
    statistics_uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    evaluation = json.loads(local_path(statistics_uri, settings).read_text())
    assert evaluation["quality_gate"]["passed"] is True
    assert list(local_path(statistics_uri, settings).parent.glob("plots/*.png"))

    report = Path(record["report"]).read_text()
    assert "<svg" in report and "data:image/png;base64," in report
    assert "Registered model package: " + summary["ModelPackageArn"] in output
    assert "approval status: PendingManualApproval" in output
    assert "python -m deploy.approve approve --latest" in output


def test_tight_quality_threshold_ends_in_the_fail_step(sales_csv, capsys):
    code, output, record = run_cli(
        ["--param", f"InputDataUrl={sales_csv}", *FAST, "--param", "QualityThreshold=0.0001"], capsys
    )

    assert code != 0
    statuses = {s["name"]: s["status"] for s in record["steps"]}
    assert statuses[contracts.STEP_FAIL] == "Failed"
    assert statuses[contracts.STEP_REGISTER] == statuses[contracts.STEP_DEPLOY] == "NotExecuted"
    assert record["status"] == "Failed"
    assert record["failure_reason"].startswith("Forecast quality too low: WAPE = ")
    assert "is above QualityThreshold 0.0001" in record["failure_reason"]
    assert "Failure: Forecast quality too low: WAPE = " in output
    settings = resolve()
    packages = LocalSageMakerClient(settings).list_model_packages(ModelPackageGroupName=settings.model_package_group)
    assert packages["ModelPackageSummaryList"] == []


def test_given_a_truncated_gzip_input_then_the_run_says_so_in_one_line_naming_the_file_and_exits_2(tmp_path, capsys):
    import gzip

    body = gzip.compress(generate_sales(products=2, regions=2).to_csv(index=False).encode())
    source = tmp_path / "sales.csv.gz"
    source.write_bytes(body[: len(body) // 2])
    code, output, record = run_cli(["--param", f"InputDataUrl={source}", *FAST], capsys)

    assert code == 2, output[-2000:]
    assert "Traceback" not in output and "EOFError" not in output
    prepare = record["steps"][0]
    assert prepare["status"] == "Failed" and prepare["exit_code"] == 2
    assert prepare["failure_reason"] == (
        "the input was refused (exit code 2): sales.csv.gz: cannot be read as CSV: Compressed "
        "file ended before the end-of-stream marker was reached. Fix: the "
        "compressed file is cut short; copy or export it again."
    )
