"""The approval CLI functions, run unchanged against the local SQLite registry and a moto server."""

from __future__ import annotations

import json
import logging

import pytest

from deploy import approve as cli
from deploy import clients
from deploy.approve import ApprovalError
from deploy.handler import PACKAGE_TAG
from processing.kernel.aws_validation import request_problems
from processing.kernel.settings import resolve
from tests.deploy.aws_support import aws_requests, ensure_group, local_sagemaker, register_version, sagemaker_target  # noqa: F401 - fixtures

GROUP = "demand-forecasting"


class RecordingDeployer:
    """Stands in for EventBridge -> Lambda when only the registry is under test."""

    def __init__(self):
        self.events: list[dict] = []

    def __call__(self, event: dict) -> dict:
        self.events.append(event)
        return {"status": "deployed", "message": "recorded"}


@pytest.fixture(params=["local", "moto"])
def backend(request, monkeypatch):
    """(settings, sagemaker client) for the local registry or the moto server."""
    if request.param == "local":
        monkeypatch.setenv("FORECAST_TARGET", "local")
        settings = resolve()
        sm = local_sagemaker(settings)
    else:
        settings = request.getfixturevalue("sagemaker_target")
        request.getfixturevalue("aws_requests")
        sm = clients.client("sagemaker", settings)
    ensure_group(sm, GROUP)
    return settings, sm


def test_given_three_versions_when_listed_then_newest_first_with_metrics_and_lineage(backend):
    settings, sm = backend
    arns = [register_version(sm, GROUP, wape=w, execution=f"exec-{i}") for i, w in enumerate(["0.3", "0.2", "0.1"])]

    rows = cli.list_versions(sm, GROUP)

    assert [row["arn"] for row in rows] == arns[::-1]
    assert [row["version"] for row in rows] == [3, 2, 1]
    assert rows[0]["status"] == "PendingManualApproval"
    assert rows[0]["metrics"] == {"metric_wape": "0.1", "quality_gate_passed": "true"}
    assert rows[0]["pipeline_execution"].endswith("/execution/exec-2")
    assert rows[0]["created"].endswith("Z")
    assert "metric_wape" not in cli.format_table([])
    assert "WAPE 10.00%" in cli.format_table(rows)


def test_the_list_shows_metrics_as_a_planner_reads_them_shares_in_percent_with_two_decimals():
    """RegisterModel stores six significant digits: 'wape=0.00987475' was what the table showed."""
    metrics = {
        "metric_mae": "15.6355",
        "metric_mape": "0.0122494",
        "metric_mase": "0.726241",
        "metric_wape": "0.00987475",
        "metric_wql": "0.00689474",
        "metric_coverage": "0.746857",
        "metric_rmse": "23.8972",
        "quality_gate_passed": "true",
    }
    assert cli.metrics_text(metrics) == "WAPE 0.99%, wQL 0.69%, MAPE 1.22%, coverage 74.69%, MASE 0.73, MAE 15.64"
    assert cli.metrics_text({"metric_wape": "n/a"}) == "WAPE n/a"
    row = {
        "version": 1,
        "status": "Approved",
        "created": "2026-01-01T00:00:00Z",
        "metrics": metrics,
        "pipeline_execution": "exec-1",
        "deployed": False,
    }
    table = cli.format_table([row], "demand-forecast")
    assert table.endswith("(none of these is serving on endpoint demand-forecast: `approve VERSION` deploys one)")
    assert cli.format_table([{**row, "deployed": True}], "demand-forecast").endswith(
        "(* = serving on endpoint demand-forecast)"
    )


def test_given_pending_versions_when_the_latest_is_approved_then_only_it_changes(backend):
    settings, sm = backend
    first = register_version(sm, GROUP)
    latest = register_version(sm, GROUP)
    deployer = RecordingDeployer()

    arn = cli.resolve_arn(sm, GROUP, None, latest=True)
    cli.approve(sm, settings, arn, reason="better WAPE than v1", deployer=deployer)

    assert arn == latest
    package = sm.describe_model_package(ModelPackageName=latest)
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ApprovalDescription"] == "better WAPE than v1"
    assert sm.describe_model_package(ModelPackageName=first)["ModelApprovalStatus"] == "PendingManualApproval"
    [event] = deployer.events
    assert event["detail-type"] == "SageMaker Model Package State Change"
    assert event["detail"] == {
        "ModelPackageGroupName": GROUP,
        "ModelPackageVersion": 2,
        "ModelPackageArn": latest,
        "ModelApprovalStatus": "Approved",
        "CreationTime": event["detail"]["CreationTime"],
    }


def test_given_a_version_number_when_rejected_then_the_reason_is_recorded(backend):
    settings, sm = backend
    register_version(sm, GROUP)
    arn = cli.resolve_arn(sm, GROUP, "1")

    cli.reject(sm, settings, arn, reason="bias on new stores")

    package = sm.describe_model_package(ModelPackageName=arn)
    assert (package["ModelApprovalStatus"], package["ApprovalDescription"]) == ("Rejected", "bias on new stores")


def test_given_an_unknown_arn_or_version_then_the_error_says_how_to_find_one(backend):
    settings, sm = backend
    register_version(sm, GROUP)
    account = "000000000000" if settings.is_local else "123456789012"

    with pytest.raises(ApprovalError, match="model-package/demand-forecasting/9 not found in the registry"):
        cli.resolve_arn(sm, GROUP, f"arn:aws:sagemaker:us-east-1:{account}:model-package/demand-forecasting/9")
    with pytest.raises(ApprovalError, match=r"has no version 7 \(versions: 1\)"):
        cli.resolve_arn(sm, GROUP, "7")
    with pytest.raises(ApprovalError, match="neither a model package ARN nor a version number"):
        cli.resolve_arn(sm, GROUP, "latest-one")
    with pytest.raises(ApprovalError, match="not found in the registry;") as error:
        cli.resolve_arn(sm, GROUP, f"arn:aws:sagemaker:us-east-1:{account}:model-package/demand-forecasting/9")
    assert str(error.value).count("demand-forecasting/9") == 1  # not repeated in the service's words


def test_a_version_typed_as_v1_resolves_like_1(backend):
    settings, sm = backend
    arn = register_version(sm, GROUP)
    assert cli.resolve_arn(sm, GROUP, "v1") == cli.resolve_arn(sm, GROUP, f"{GROUP}/v1") == arn


def test_given_a_mistyped_group_then_the_error_names_the_groups_that_exist(backend):
    settings, sm = backend
    register_version(sm, GROUP)
    with pytest.raises(
        ApprovalError, match="model group demand-forcasting has no versions; the registry's groups: demand-forecasting"
    ):
        cli.resolve_arn(sm, "demand-forcasting", None, latest=True)
    with pytest.raises(ApprovalError, match="model group other has no versions; the registry's groups"):
        cli.resolve_arn(sm, GROUP, "other/1")


def test_given_an_empty_group_when_approving_the_latest_then_the_error_says_so(backend):
    settings, sm = backend

    with pytest.raises(ApprovalError, match="has no versions yet"):
        cli.resolve_arn(sm, GROUP, None, latest=True)


def test_given_two_approved_versions_when_rolling_back_then_the_older_is_deployed_and_the_newer_rejected(backend):
    settings, sm = backend
    older = register_version(sm, GROUP, status="Approved")
    newer = register_version(sm, GROUP, status="Approved")
    deployer = RecordingDeployer()

    result = cli.rollback(sm, settings, reason="forecasts drifted", deployer=deployer)

    assert result["model_package_arn"] == older and result["rolled_back_from"] == newer
    assert sm.describe_model_package(ModelPackageName=newer)["ModelApprovalStatus"] == "Rejected"
    assert sm.describe_model_package(ModelPackageName=newer)["ApprovalDescription"] == "forecasts drifted"
    assert [e["detail"]["ModelPackageArn"] for e in deployer.events] == [older]


def test_approving_an_older_version_with_rollback_says_the_batch_pipeline_stays_on_the_newer_approved_one(backend):
    """`approve 1 --rollback` put version 1 on the endpoint, yet the next batch run resolved version
    2 (the newest Approved) and nothing said so: the docs said batch forecasts follow."""
    settings, sm = backend
    v1 = register_version(sm, GROUP, status="Approved")
    register_version(sm, GROUP, status="Approved")
    notes: list[str] = []

    cli.approve(sm, settings, v1, deployer=RecordingDeployer(), log=notes.append, rollback=True)

    assert notes[-1].startswith("note: version 2 is still Approved and newer: the batch pipeline (ResolveModel)")
    assert "`python -m deploy.approve reject 2` moves them too" in notes[-1]
    notes.clear()
    cli.approve(sm, settings, v1, deployer=RecordingDeployer(), log=notes.append)  # no rollback: no note
    assert not any(n.startswith("note:") for n in notes)


def test_given_a_single_approved_version_when_rolling_back_then_nothing_to_roll_back_to(backend):
    settings, sm = backend
    register_version(sm, GROUP, status="Rejected")
    register_version(sm, GROUP, status="Approved")

    with pytest.raises(ApprovalError, match="nothing to roll back to: no approved version older than version 2"):
        cli.rollback(sm, settings, deployer=RecordingDeployer())


def test_given_no_approved_version_when_rolling_back_then_nothing_to_roll_back_to(backend):
    settings, sm = backend
    register_version(sm, GROUP)

    with pytest.raises(ApprovalError, match="has no approved version"):
        cli.rollback(sm, settings, deployer=RecordingDeployer())


# --- SageMaker target end to end through the real deploy handler (moto) ----------------------------
def logged(caplog) -> str:
    """What the library logged (a CLI's console shows these lines)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("deploy."))


def test_on_sagemaker_approve_leaves_deployment_to_eventbridge(sagemaker_target, aws_requests, caplog):
    caplog.set_level(logging.INFO, logger="deploy")
    sm = clients.client("sagemaker", sagemaker_target)
    ensure_group(sm, GROUP)
    arn = register_version(sm, GROUP)

    cli.approve(sm, sagemaker_target, arn)

    out = logged(caplog)
    assert "EventBridge rule invokes demand-forecast-deploy" in out
    assert "warning: the approval rule does not exist" in out
    assert "CreateModel" not in aws_requests.operations()


def test_on_sagemaker_with_the_rule_in_place_approve_does_not_warn(sagemaker_target, aws_requests, caplog):
    from deploy.infrastructure import ensure_deploy_function

    caplog.set_level(logging.INFO, logger="deploy")
    ensure_deploy_function(sagemaker_target, log=lambda _: None, sleep=lambda _: None)
    sm = clients.client("sagemaker", sagemaker_target)
    ensure_group(sm, GROUP)

    cli.approve(sm, sagemaker_target, register_version(sm, GROUP))

    out = logged(caplog)
    assert "EventBridge rule invokes" in out and "warning" not in out


def test_on_sagemaker_rollback_redeploys_the_previous_version_through_the_handler(sagemaker_target, aws_requests):
    from deploy.handler import lambda_handler

    sm = clients.client("sagemaker", sagemaker_target)
    ensure_group(sm, GROUP)
    v1 = register_version(sm, GROUP, status="Approved")
    lambda_handler({"model_package_arn": v1})
    v2 = register_version(sm, GROUP, status="Approved")
    lambda_handler({"model_package_arn": v2})
    assert cli.deployed_package(sm, "demand-forecast") == v2

    cli.rollback(sm, sagemaker_target)

    assert cli.deployed_package(sm, "demand-forecast") == v1
    rows = cli.list_versions(sm, GROUP, cli.deployed_package(sm, "demand-forecast"))
    assert [(r["version"], r["status"], r["deployed"]) for r in rows] == [(2, "Rejected", False), (1, "Approved", True)]
    assert all(request_problems(service, op, params) == [] for service, op, params in aws_requests.calls)
    assert PACKAGE_TAG == "model-package-arn"


def test_on_sagemaker_rejecting_the_served_version_says_whether_rollback_has_a_version_to_go_back_to(
    sagemaker_target, aws_requests
):
    """The note suggested `rollback` even when it could only answer "nothing to roll back to"."""
    from deploy.handler import lambda_handler

    sm = clients.client("sagemaker", sagemaker_target)
    ensure_group(sm, GROUP)
    v1 = register_version(sm, GROUP, status="Approved")
    lambda_handler({"model_package_arn": v1})
    notes: list[str] = []
    cli.reject(sm, sagemaker_target, v1, log=notes.append)
    assert "no older version is approved, so there is nothing to roll back to" in notes[-1]
    assert "rollback`" not in notes[-1]

    v2 = register_version(sm, GROUP, status="Approved")
    v3 = register_version(sm, GROUP, status="Approved")
    lambda_handler({"model_package_arn": v3})
    cli.reject(sm, sagemaker_target, v3, log=notes.append)
    assert notes[-1].endswith(
        "`python -m deploy.approve rollback` deploys version 2, the newest approved one before it"
    )
    cli.rollback(sm, sagemaker_target, log=notes.append)
    assert cli.deployed_package(sm, "demand-forecast") == v2


def test_cli_lists_as_json_and_fails_clearly_on_a_bad_reference(sagemaker_target, aws_requests, capsys):
    sm = clients.client("sagemaker", sagemaker_target)
    ensure_group(sm, GROUP)
    register_version(sm, GROUP)

    assert cli.main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["version"] for r in rows] == [1]
    register_version(sm, GROUP)
    assert cli.main(["list", "--json", "--limit", "1"]) == 0
    assert [r["version"] for r in json.loads(capsys.readouterr().out)] == [2]

    assert cli.main(["approve", "12"]) == 2
    assert "has no version 12" in capsys.readouterr().err
    assert cli.main(["approve", "1", "--latest"]) == 2
    assert "not both" in capsys.readouterr().err
    assert cli.main(["list", "--limit", "-1"]) == 2  # it listed "no versions": [:-1] dropped the last
    assert capsys.readouterr().err == "error: --limit -1: pass 0 for all versions or a positive number\n"
    assert cli.main(["--group", "nope", "list"]) == 0
    assert capsys.readouterr().out.startswith("model group nope has no versions; the registry's groups: ")


def test_on_sagemaker_reapproving_an_approved_version_deploys_it_directly(sagemaker_target, aws_requests, caplog):
    caplog.set_level(logging.INFO, logger="deploy")
    sm = clients.client("sagemaker", sagemaker_target)
    ensure_group(sm, GROUP)
    arn = register_version(sm, GROUP, status="Approved")  # e.g. its first deployment failed

    result = cli.approve(sm, sagemaker_target, arn)

    assert "no state-change event fires" in logged(caplog)
    assert result["deployment"]["status"] == "deployed"
    assert cli.deployed_package(sm, "demand-forecast") == arn


def test_every_subcommand_has_a_description_and_a_help_line():
    import argparse

    from deploy import approve as approve_cli
    from deploy import endpoint as endpoint_cli

    for parser in (approve_cli._parser(), endpoint_cli._parser()):
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        helps = {choice.dest: choice.help for choice in commands._choices_actions}
        for name, sub in commands.choices.items():
            assert sub.description and len(sub.description) > 20, (parser.prog, name)
            assert helps.get(name), (parser.prog, name)


def test_on_sagemaker_approving_an_older_version_keeps_the_newer_unless_rollback_is_asked(
    sagemaker_target, aws_requests, capsys
):
    from deploy.handler import lambda_handler

    sm = clients.client("sagemaker", sagemaker_target)
    ensure_group(sm, GROUP)
    v1 = register_version(sm, GROUP, status="Approved")
    v2 = register_version(sm, GROUP, status="Approved")
    lambda_handler({"model_package_arn": v2})

    kept = cli.approve(sm, sagemaker_target, v1, log=lambda _: None)  # already Approved: runs the handler here

    assert kept["deployment"]["status"] == "skipped" and cli.deployed_package(sm, "demand-forecast") == v2
    assert cli.main(["--target", "sagemaker", "--region", "us-east-1", "approve", "--version", "1", "--rollback"]) == 0
    assert cli.deployed_package(sm, "demand-forecast") == v1
    assert sm.describe_model_package(ModelPackageName=v2)["ModelApprovalStatus"] == "Approved"  # left alone
    assert cli.main(["--target", "sagemaker", "--region", "us-east-1", "approve", "1", "--version", "2"]) == 2
    assert "two versions given" in capsys.readouterr().err


def test_approving_a_rejected_version_says_so_and_the_redeploy_hint_names_the_newest_approved_one(backend):
    """After `rollback` rejected v2, the hints said `approve --latest`, which re-approves the
    rejected v2 (the newest version), silently."""
    settings, sm = backend
    register_version(sm, GROUP, status="Approved")
    v2 = register_version(sm, GROUP, status="Approved")
    cli.set_status(sm, v2, "Rejected", "forecasts drifted")  # as `rollback` leaves it
    assert cli.deploy_hint(sm, GROUP) == "python -m deploy.approve approve 1"
    assert cli.deploy_hint(sm, "no-such-group") == "python -m deploy.approve approve --latest"
    notes: list[str] = []

    cli.approve(
        sm, settings, cli.resolve_arn(sm, GROUP, None, latest=True), deployer=RecordingDeployer(), log=notes.append
    )

    assert "note: version 2 was Rejected (forecasts drifted); it is Approved again and goes back in service" in notes
