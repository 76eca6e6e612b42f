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

from pipelines import contracts
from pipelines.local import runtime
from pipelines.local.sagemaker import LocalSageMakerClient
from pipelines.local.store import local_path
from pipelines.run import main as run_main
from pipelines.settings import resolve
from processing.generate import generate_sales, write_frame

pytestmark = pytest.mark.timeout(600)

DEFINITION_ORDER = [contracts.STEP_PREPARE, contracts.STEP_AUTOML, contracts.STEP_BACKTEST, contracts.STEP_CHAMPION,
                    contracts.STEP_EVALUATE, contracts.STEP_GATE, contracts.STEP_CHAMPION_GATE, contracts.STEP_REGISTER,
                    contracts.STEP_DEPLOY, contracts.STEP_CHALLENGER_LOST, contracts.STEP_FAIL]
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
    """Refuse non-loopback connections here and in every step subprocess; yields the attempt log."""
    guard_dir = tmp_path / "guard"
    guard_dir.mkdir()
    (guard_dir / "nonet_guard.py").write_text(textwrap.dedent(GUARD))
    attempts = tmp_path / "network-attempts.log"
    monkeypatch.setenv("NONET_LOG", str(attempts))
    monkeypatch.setenv(runtime.PRELOAD_ENV, "nonet_guard")
    monkeypatch.setenv("PYTHONPATH", str(guard_dir) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.syspath_prepend(str(guard_dir))
    import socket

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, getattr(socket.socket, name))
    monkeypatch.setattr(socket, "getaddrinfo", socket.getaddrinfo)
    import importlib

    importlib.import_module("nonet_guard").install()
    return attempts


def run_cli(args, capsys):
    code = run_main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err, runtime.load_executions(resolve())[0]


def test_the_guard_refuses_other_hosts_inside_step_subprocesses(no_network):
    """The no-network proof is only worth something if the guard really bites in subprocesses."""
    settings = resolve()
    execution = object.__new__(runtime.Execution)
    execution.settings = settings
    env = runtime.Execution._environment(execution, {}, lambda value: value, None)
    probes = {"import socket; socket.socket().connect(('192.0.2.1', 443))":
              "network disabled by the test: connect ('192.0.2.1', 443)",
              "import socket; socket.getaddrinfo('api.sagemaker.us-east-1.amazonaws.com', 443)":
              "network disabled by the test: getaddrinfo api.sagemaker.us-east-1.amazonaws.com"}
    for probe, refusal in probes.items():
        result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode != 0 and refusal in result.stderr
    assert "192.0.2.1" in no_network.read_text()
    loopback = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); " \
               "c = socket.socket(); c.connect(s.getsockname()); print('ok')"
    result = subprocess.run([sys.executable, "-c", loopback], env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


def test_training_pipeline_runs_end_to_end_offline(sales_csv, no_network, capsys):
    code, output, record = run_cli(["--param", f"InputDataUrl={sales_csv}", *FAST], capsys)

    assert code == 0, output[-3000:]
    assert [s["name"] for s in record["steps"]] == DEFINITION_ORDER
    assert [s["status"] for s in record["steps"]] == ["Succeeded"] * 9 + ["NotExecuted"] * 2
    executed = [s for s in record["steps"] if s["status"] == "Succeeded"]
    assert all(a["end_time"] <= b["start_time"] for a, b in zip(executed, executed[1:]))  # one after another
    assert not no_network.exists(), no_network.read_text()

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
    code, output, record = run_cli(["--param", f"InputDataUrl={sales_csv}", *FAST,
                                    "--param", "QualityThreshold=0.0001"], capsys)

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
