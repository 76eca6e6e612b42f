"""Teardown against moto (everything the project creates) and on the local target."""

from __future__ import annotations

import json

from deploy import api_infrastructure, clients, infrastructure, monitoring, teardown
from deploy.handler import lambda_handler
from pipelines import schedule
from pipelines.local.aws_services import METRICS_FILE
from processing.kernel.settings import ensure_home, resolve
from tests.deploy.aws_support import ROLE_ARN, aws_requests, ensure_group, register_version, sagemaker_target  # noqa: F401 - fixtures

GROUP = "demand-forecasting"
EMPTY_ZIP = b"PK\x05\x06" + b"\0" * 18


def quiet(_: str) -> None:
    return None


def build_project(settings) -> None:
    """What a full project run leaves on AWS: role, bucket, pipelines, registry, endpoint, Lambda, alarms."""
    iam = clients.client("iam", settings)
    iam.create_role(
        RoleName="forecast-pipeline",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "sagemaker.amazonaws.com"}}
                ],
            }
        ),
    )
    policy = iam.create_policy(
        PolicyName="forecast-pipeline-s3",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    iam.attach_role_policy(RoleName="forecast-pipeline", PolicyArn=policy["Policy"]["Arn"])
    s3 = clients.client("s3", settings)
    s3.create_bucket(Bucket=settings.bucket)
    s3.put_bucket_versioning(Bucket=settings.bucket, VersioningConfiguration={"Status": "Enabled"})
    for body in (b"a", b"b"):
        s3.put_object(Bucket=settings.bucket, Key="demand-forecasting/data/sales.csv", Body=body)
    sm = clients.client("sagemaker", settings)
    for name in (settings.training_pipeline_name, settings.batch_pipeline_name):
        sm.create_pipeline(
            PipelineName=name,
            RoleArn=ROLE_ARN,
            ClientRequestToken=f"create-{name}".ljust(40, "0"),
            PipelineDefinition=json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": []}),
        )
    for name, tags in (
        ("fc-batch-exec-1", [{"Key": "project", "Value": "demand-forecasting"}]),
        ("fc-someone-else", [{"Key": "project", "Value": "other"}]),
    ):
        sm.create_model(
            ModelName=name,
            ExecutionRoleArn=ROLE_ARN,
            Tags=tags,
            PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"},
        )
    ensure_group(sm, GROUP)
    for _ in range(2):
        lambda_handler({"model_package_arn": register_version(sm, GROUP, status="Approved")})
    infrastructure.ensure_deploy_function(settings, log=quiet, sleep=lambda _: None)
    layer = clients.client("lambda", settings).publish_layer_version(
        LayerName="AWSSDKPandas-Python312", Content={"ZipFile": EMPTY_ZIP}
    )["LayerVersionArn"]
    api_infrastructure.ensure_forecast_api(settings, layer_arn=layer, log=quiet, sleep=lambda _: None)
    monitoring.ensure_monitoring(settings, log=quiet)
    schedule.create(settings, "weekly-retrain", "training", "rate(7 days)", log=quiet)


def test_given_a_deployed_project_when_torn_down_with_data_then_nothing_is_left(sagemaker_target, aws_requests):
    build_project(sagemaker_target)
    plan = teardown.plan_for(sagemaker_target, include_data=True)
    kinds = [r.kind for r in plan]
    assert kinds.count("endpoint config") == 2 and kinds.count("SageMaker model") == 3
    assert "fc-batch-exec-1" in [r.name for r in plan] and "fc-someone-else" not in [r.name for r in plan]
    assert kinds.count("CloudWatch alarm") == 4 and kinds.count("SageMaker pipeline") == 2
    assert {
        "EventBridge rule",
        "Lambda function",
        "IAM role (deploy Lambda)",
        "Lambda function (API)",
        "IAM role (forecast API)",
        "EventBridge schedule",
        "schedule group",
        "IAM role (scheduler)",
        "CloudWatch dashboard",
        "SNS topic",
        "SageMaker endpoint",
        "model package group",
        "S3 bucket (all objects)",
        "IAM role (SageMaker)",
    } <= set(kinds)

    assert teardown.teardown(sagemaker_target, include_data=True, yes=True, log=quiet) == 0

    assert teardown.plan_for(sagemaker_target, include_data=True) == []
    sm = clients.client("sagemaker", sagemaker_target)
    assert sm.list_endpoints()["Endpoints"] == []
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == ["fc-someone-else"]
    assert clients.client("s3", sagemaker_target).list_buckets()["Buckets"] == []
    assert "DeleteRule" in aws_requests.operations() and "DeleteObjects" in aws_requests.operations()


def test_given_no_data_flag_then_registry_bucket_and_role_are_kept(sagemaker_target, aws_requests):
    build_project(sagemaker_target)

    assert teardown.teardown(sagemaker_target, yes=True, log=quiet) == 0

    sm = clients.client("sagemaker", sagemaker_target)
    assert len(sm.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]) == 2
    assert clients.client("s3", sagemaker_target).head_bucket(Bucket=sagemaker_target.bucket)
    assert clients.client("iam", sagemaker_target).get_role(RoleName="forecast-pipeline")
    assert sm.list_endpoints()["Endpoints"] == []


def test_given_a_no_answer_then_nothing_is_deleted(sagemaker_target, aws_requests):
    build_project(sagemaker_target)
    before = len(teardown.plan_for(sagemaker_target))
    lines: list[str] = []

    assert teardown.teardown(sagemaker_target, ask=lambda _: "n", log=lines.append) == 1

    assert "nothing deleted (pass --yes to skip this question)" in lines
    assert any("demand-forecast-deploy-on-approval" in line for line in lines)
    assert len(teardown.plan_for(sagemaker_target)) == before
    assert not [op for op in aws_requests.operations() if op.startswith("Delete")]


def test_on_the_local_target_state_goes_but_data_and_registry_stay_unless_asked(monkeypatch):
    monkeypatch.setenv("FORECAST_TARGET", "local")
    settings = resolve()
    home = ensure_home(settings.home_path)  # what every local command does first
    metrics = "/".join(METRICS_FILE)  # where the loopback CloudWatch appends MonitorForecasts' metrics
    for relative in (
        "s3/forecast-local/data.csv",
        "executions/x/log.txt",
        "registry.sqlite",
        "sagemaker/m.json",
        metrics,
    ):
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        (home / relative).write_text("x")

    assert teardown.teardown(settings, yes=True, log=quiet) == 0
    assert sorted(p.name for p in home.iterdir()) == [".forecast-home", "registry.sqlite", "s3"]

    assert teardown.teardown(settings, include_data=True, yes=True, log=quiet) == 0
    assert not home.exists()
    assert teardown.plan_for(settings) == []


def test_given_a_folder_that_is_not_a_forecast_home_then_include_data_removes_nothing(monkeypatch, tmp_path, capsys):
    """FORECAST_HOME pointed at a folder of your own: --include-data --yes refuses and deletes nothing."""
    mine = tmp_path / "my-documents"
    (mine / "thesis").mkdir(parents=True)
    (mine / "thesis" / "chapter1.tex").write_text("precious")
    monkeypatch.setenv("FORECAST_TARGET", "local")
    monkeypatch.setenv("FORECAST_HOME", str(mine))
    ensure_home(mine)  # a project command run there does not adopt it
    assert not (mine / ".forecast-home").exists()

    assert teardown.main(["--include-data", "--yes"]) == 2
    err = capsys.readouterr().err
    assert f"{mine} is not a forecast home" in err and ".forecast-home" in err
    assert (mine / "thesis" / "chapter1.tex").read_text() == "precious"
    assert teardown.main(["--yes"]) == 0  # without --include-data: only the project's entries
    assert (mine / "thesis" / "chapter1.tex").read_text() == "precious"


def test_given_a_forecast_home_then_include_data_lists_every_entry_before_removing_it(monkeypatch):
    monkeypatch.setenv("FORECAST_TARGET", "local")
    settings = resolve()
    home = ensure_home(settings.home_path)
    for relative in ("s3/b/k.csv", "registry.sqlite", "executions/e/execution.json"):
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        (home / relative).write_text("x")
    lines: list = []
    answers: list = []

    def ask(question):
        answers.append(question)
        assert home.exists() and (home / "s3" / "b" / "k.csv").exists()  # nothing removed before the answer
        return "y"

    assert teardown.teardown(settings, include_data=True, ask=ask, log=lines.append) == 0
    listed = [line for line in lines if line.startswith("  ")]
    assert [line.split()[-1] for line in listed] == [
        str(home / "executions"),
        str(home / "registry.sqlite"),
        str(home / "s3"),
        str(home),
    ]
    assert answers and not home.exists()


def test_given_an_older_home_without_marker_then_the_next_command_marks_it(tmp_path):
    home = tmp_path / "old-home"
    (home / "s3").mkdir(parents=True)
    (home / METRICS_FILE[0]).mkdir()  # a batch run's local CloudWatch metrics
    (home / "registry.sqlite").write_text("")
    ensure_home(home)
    assert (home / ".forecast-home").is_file()


def test_given_the_forecast_accuracy_alarm_then_teardown_removes_it(sagemaker_target, aws_requests):
    from tests.deploy.aws_support import CONTAINERS

    sm = clients.client("sagemaker", sagemaker_target)
    ensure_group(sm, GROUP)
    sm.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": CONTAINERS,
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={"metric_wql": "0.2"},
    )
    monitoring.ensure_monitoring(sagemaker_target, log=quiet)
    alarm = monitoring.accuracy_alarm_name(sagemaker_target)
    assert alarm in [r.name for r in teardown.plan_for(sagemaker_target) if r.kind == "CloudWatch alarm"]

    assert teardown.teardown(sagemaker_target, yes=True, log=quiet) == 0

    assert clients.client("cloudwatch", sagemaker_target).describe_alarms(AlarmNames=[alarm])["MetricAlarms"] == []


def test_on_the_local_target_the_plan_names_the_home_and_the_end_says_how_to_serve_the_kept_approved_version(
    monkeypatch, tmp_path
):
    """After teardown the kept registry still says Approved; the output said only "done"."""
    from deploy import endpoint as local_endpoint

    monkeypatch.setenv("FORECAST_TARGET", "local")
    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / "home"))
    settings = resolve()
    ensure_home(settings.home_path)
    sm = clients.client("sagemaker", settings)
    ensure_group(sm, settings.model_package_group)
    register_version(sm, settings.model_package_group, status="Approved")
    register_version(sm, settings.model_package_group, status="Approved")
    # the endpoint process as the plan sees it, without starting a server for this
    monkeypatch.setattr(local_endpoint, "running_state", lambda home, name: {"pid": 1})
    monkeypatch.setattr(local_endpoint, "stop", lambda home, name: None)
    lines: list[str] = []

    assert teardown.teardown(settings, yes=True, log=lines.append) == 0

    assert lines[0] == f"1 resource(s) on the local target ({settings.home_path}) will be deleted:"
    assert lines[-1] == (
        "the registry keeps version 2 Approved, but nothing serves it now: "
        "`python -m deploy.approve approve 2` deploys it again"
    )


def test_given_a_running_local_execution_then_teardown_deletes_nothing_and_names_it(monkeypatch, tmp_path, capsys):
    """It removed executions/ and sagemaker/ from under a running pipeline."""
    import os

    from processing.kernel.processes import process_identity

    monkeypatch.setenv("FORECAST_TARGET", "local")
    monkeypatch.setenv("FORECAST_HOME", str(tmp_path / "home"))
    settings = resolve()
    home = ensure_home(settings.home_path)
    record = home / "executions" / "abc123def456" / "execution.json"
    record.parent.mkdir(parents=True)
    running = {
        "execution_id": "abc123def456",
        "pipeline_name": "DemandForecastTraining",
        "status": "Executing",
        "runtime_process": process_identity(os.getpid()),  # this very process: alive
    }
    record.write_text(json.dumps(running))

    assert teardown.main(["--yes"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"an execution is running under {home}: abc123def456 (DemandForecastTraining, pid {os.getpid()})" in err
    assert record.exists()

    record.write_text(json.dumps({**running, "status": "Succeeded"}))  # finished: it goes
    assert teardown.main(["--yes"]) == 0
    assert not record.exists()
