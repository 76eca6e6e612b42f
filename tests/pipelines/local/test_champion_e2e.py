"""End to end (issue 15): champion versus challenger on the same holdout, on the local runtime.

v1 is trained and Approved; a weaker challenger (npts only) ends in ChallengerLost with both
values and registers nothing; a run identical to the first passes (equal within tolerance)
and registers v2. Tiny data: 6 items x 120 days.
"""

from __future__ import annotations

import json
import pathlib
import socket

import pytest

from deploy import endpoint, endpoint_server
from pipelines.local import runtime
from pipelines.local.sagemaker import LocalSageMakerClient
from pipelines.local.store import local_path
from pipelines.run import main as run_main
from processing.generate import generate_sales, write_frame
from processing.kernel import contracts
from processing.kernel.settings import resolve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
STRONG = ["--param", "AutoMLAlgorithms=ets,arima", "--param", "QualityThreshold=10"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def sales(tmp_path, monkeypatch):
    monkeypatch.setenv("FORECAST_ENDPOINT_PORT", str(_free_port()))
    frame = generate_sales(products=3, regions=2, start="2023-01-01", end="2023-04-30")
    yield write_frame(frame, tmp_path / "sales.csv")
    endpoint.stop(resolve().home_path, resolve().endpoint_name)  # the Deploy step of v1 started one


def run(args, capsys):
    code = run_main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err, runtime.load_executions(resolve())[0]


def evaluation_of(record, settings):
    evaluate = next(s for s in record["steps"] if s["name"] == contracts.STEP_EVALUATE)
    return json.loads((local_path(evaluate["outputs"]["evaluation"], settings) / contracts.EVALUATION_FILE).read_text())


def packages(settings):
    sm = LocalSageMakerClient(settings)
    listed = sm.list_model_packages(
        ModelPackageGroupName=settings.model_package_group, SortBy="CreationTime", SortOrder="Ascending"
    )["ModelPackageSummaryList"]
    return [sm.describe_model_package(ModelPackageName=p["ModelPackageArn"]) for p in listed]


def test_given_an_approved_champion_then_a_weaker_challenger_fails_and_an_equal_one_registers(sales, capsys):
    settings = resolve()
    data = ["--param", f"InputDataUrl={sales}"]
    code, output, first = run([*data, *STRONG, "--param", "ModelApprovalStatus=Approved"], capsys)
    assert code == 0, output[-3000:]
    assert evaluation_of(first, settings)["champion"]["status"] == "none"
    [v1] = packages(settings)
    assert v1["ModelApprovalStatus"] == "Approved"
    # the endpoint's server is the process the runtime started ahead, at RegisterModel (its imports overlapped it)
    server = endpoint.running_state(settings.home_path, settings.endpoint_name)
    assert "--standby" in pathlib.Path(f"/proc/{server['pid']}/cmdline").read_bytes().decode().split("\0")

    code, output, second = run([*data, "--param", "AutoMLAlgorithms=npts", "--param", "QualityThreshold=10"], capsys)
    assert code != 0
    statuses = {s["name"]: s["status"] for s in second["steps"]}
    assert statuses[contracts.STEP_CHAMPION_GATE] == "Succeeded"
    assert statuses[contracts.STEP_CHALLENGER_LOST] == "Failed"
    assert statuses[contracts.STEP_REGISTER] == statuses[contracts.STEP_DEPLOY] == "NotExecuted"
    champion = evaluation_of(second, settings)["champion"]
    assert champion["status"] == "compared" and champion["version"] == 1 and not champion["passed"]
    assert champion["challenger_value"] > champion["limit"] == pytest.approx(champion["champion_value"])
    reason = second["failure_reason"]
    assert reason.startswith(f"Challenger lost to the champion: WAPE {champion['challenger_shown']} is above ")
    assert f"the champion's {champion['champion_shown']} " in reason and f"{champion['challenger_value']}" not in reason
    assert "--param ChallengerTolerance=<x>" in reason and "pipelines.run --retry" not in output
    assert "(model package version 1) x (1 + ChallengerTolerance " in reason and " )" not in reason
    assert len(packages(settings)) == 1
    # ChampionForecast's calls, plain boto3, all served by the loopback API (S3 included)
    [step] = [s for s in second["steps"] if s["name"] == contracts.STEP_CHAMPION]
    served = {(c["service"], c["operation"], c["status"]) for c in step["aws_calls"]}
    assert {
        ("sagemaker", "ListModelPackages", 200),
        ("sagemaker", "CreateTransformJob", 200),
        ("s3", "ListObjectsV2", 200),
        ("s3", "GetObject", 200),
    } <= served
    assert not [c for c in step["aws_calls"] if c["error"] == "NotServedLocally"]
    assert "champion (version 1) vs challenger on the same holdout: WAPE" in output

    code, output, third = run([*data, *STRONG], capsys)
    assert code == 0, output[-3000:]
    # v2 is not Approved: its Deploy deploys nothing; none was started ahead (an endpoint runs), none is left
    assert endpoint_server._STANDBY == {}
    assert endpoint.running_state(settings.home_path, settings.endpoint_name)["pid"] == server["pid"]
    champion = evaluation_of(third, settings)["champion"]
    assert champion["status"] == "compared" and champion["passed"]
    assert champion["challenger_value"] == pytest.approx(champion["champion_value"], rel=1e-9)
    v1, v2 = packages(settings)
    assert v2["ModelPackageArn"].endswith("/2")
    metadata = v2["CustomerMetadataProperties"]
    assert metadata["champion_status"] == "compared" and metadata["champion_version"] == "1"
    assert float(metadata["champion_value"]) == pytest.approx(champion["champion_value"], rel=1e-5)
