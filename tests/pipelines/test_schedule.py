"""EventBridge Scheduler schedules for the pipelines: validation, moto, the local crontab line."""

from __future__ import annotations

import pytest

from deploy import clients
from pipelines import schedule
from pipelines.run import RunError
from tests.deploy.aws_support import aws_requests, sagemaker_target  # noqa: F401 - fixtures
from tests.pipelines.definition_support import sagemaker_settings

ACCOUNT = "123456789012"


def quiet(_: str) -> None:
    return None


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 day)",
        "rate(6 hours)",
        "rate(30 minutes)",
        "cron(0 6 ? * MON *)",
        "cron(15 2 1 * ? *)",
        "cron(0 6 ? * MON-FRI *)",
        "at(2030-01-31T06:00:00)",
    ],
)
def test_valid_expressions_pass(expression):
    assert schedule.check_expression(expression) == expression


@pytest.mark.parametrize(
    "expression, message",
    [
        ("rate(1 days)", "did you mean 'rate(1 day)'"),
        ("rate(2 hour)", "did you mean 'rate(2 hours)'"),
        ("rate(0 days)", "at least 1"),
        ("cron(0 6 * * MON *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 6 * *)", "cron() takes 6 fields"),
        ("cron(0 25x ? * MON *)", "hours field '25x' is not valid"),
        ("every monday", "not a schedule expression"),
    ],
)
def test_invalid_expressions_fail_with_a_message_naming_the_flag(expression, message):
    with pytest.raises(schedule.ScheduleError, match="--expression") as error:
        schedule.check_expression(expression)
    assert message in str(error.value)


def test_an_unknown_time_zone_is_refused():
    with pytest.raises(schedule.ScheduleError, match="--timezone 'Mars/Olympus'"):
        schedule.check_timezone("Mars/Olympus")


def test_the_role_may_only_start_the_two_project_pipelines_and_only_scheduler_of_this_account_assumes_it():
    settings = sagemaker_settings()
    [statement] = schedule.scheduler_role_policy(settings)["Statement"]
    assert statement["Action"] == "sagemaker:StartPipelineExecution"
    assert statement["Resource"] == [
        f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:pipeline/demandforecasttraining",
        f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:pipeline/demandforecastbatch",
    ]
    [trust] = schedule.scheduler_trust_policy(settings)["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_given_moto_when_created_updated_listed_and_deleted_then_the_schedule_follows(sagemaker_target, aws_requests):
    arn = schedule.create(
        sagemaker_target,
        "weekly-retrain",
        "training",
        "cron(0 6 ? * MON *)",
        ["ForecastHorizon=28", "QualityThreshold=0.25"],
        timezone="Europe/Berlin",
        log=quiet,
    )

    scheduler = clients.client("scheduler", sagemaker_target)
    got = scheduler.get_schedule(Name="weekly-retrain", GroupName="demand-forecasting")
    assert got["Arn"] == arn and got["State"] == "ENABLED"
    assert got["ScheduleExpression"] == "cron(0 6 ? * MON *)" and got["ScheduleExpressionTimezone"] == "Europe/Berlin"
    target = got["Target"]
    assert target["Arn"] == f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:pipeline/demandforecasttraining"
    assert target["SageMakerPipelineParameters"]["PipelineParameterList"] == [
        {"Name": "ForecastHorizon", "Value": "28"},
        {"Name": "QualityThreshold", "Value": "0.25"},
    ]
    iam = clients.client("iam", sagemaker_target)
    role = iam.get_role(RoleName="demand-forecasting-scheduler")["Role"]
    assert target["RoleArn"] == role["Arn"]
    assert iam.get_role_policy(RoleName="demand-forecasting-scheduler", PolicyName="start-pipelines")[
        "PolicyDocument"
    ] == schedule.scheduler_role_policy(sagemaker_target)

    schedule.create(sagemaker_target, "weekly-retrain", "training", "rate(7 days)", log=quiet)
    assert aws_requests.operations().count("CreateSchedule") == 1
    [update] = aws_requests.params("UpdateSchedule")
    assert update["ScheduleExpression"] == "rate(7 days)" and "SageMakerPipelineParameters" not in update["Target"]
    schedule.create(sagemaker_target, "nightly-batch", "batch", "rate(1 day)", log=quiet)

    listed = schedule.list_schedules(sagemaker_target)
    assert sorted(s["Name"] for s in listed) == ["nightly-batch", "weekly-retrain"]

    assert schedule.delete(sagemaker_target, "weekly-retrain", log=quiet) is True
    assert [s["Name"] for s in schedule.list_schedules(sagemaker_target)] == ["nightly-batch"]
    assert schedule.delete(sagemaker_target, "weekly-retrain", log=quiet) is False


def test_an_unknown_parameter_fails_before_any_aws_call(sagemaker_target, aws_requests):
    with pytest.raises(RunError, match="--param Horizon: not a parameter of this pipeline"):
        schedule.create(sagemaker_target, "s", "training", "rate(1 day)", ["Horizon=28"], log=quiet)
    assert aws_requests.calls == []


def test_a_bad_name_is_refused_in_one_line_naming_it_before_any_aws_call(sagemaker_target, aws_requests):
    with pytest.raises(schedule.ScheduleError, match="schedule name 'weekly retrain!': use letters") as error:
        schedule.create(sagemaker_target, "weekly retrain!", "training", "rate(1 day)", log=quiet)
    assert "for example 'weekly-retrain'" in str(error.value)
    assert aws_requests.calls == []


def test_on_the_local_target_a_bad_name_is_refused_too_so_the_schedule_can_move_to_sagemaker(capsys):
    """Locally the name was never checked: 'weekly retrain' printed a crontab line."""
    assert schedule.main(["--target", "local", "create", "weekly retrain", "--expression", "rate(1 day)"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: schedule name 'weekly retrain':")


@pytest.mark.parametrize(
    "expression, when, runs",
    [
        ("rate(7 days)", "0 0 */7 * *", "on days 1, 8, 15, 22 and 29 of each month"),
        ("rate(5 hours)", "0 */5 * * *", "at 00:00, 05:00, 10:00, 15:00 and 20:00 every day"),
        ("rate(45 minutes)", "*/45 * * * *", "at minutes 0 and 45 of every hour"),
        ("rate(48 hours)", "0 0 */2 * *", "on days 1, 3, 5,"),
    ],
)
def test_a_rate_crontab_cannot_repeat_evenly_gets_a_note_saying_when_the_line_runs(expression, when, runs):
    """*/7 in the day field runs on the 1st, 8th, ... 29th and again on the 1st: not every 7 days."""
    assert schedule.crontab_line(expression, "training", {}).startswith(when + " cd ")
    note = schedule.crontab_note(expression)
    assert note is not None and note.startswith(f"note: crontab cannot repeat {expression} exactly") and runs in note


@pytest.mark.parametrize("expression", ["rate(1 day)", "rate(6 hours)", "rate(15 minutes)", "cron(0 6 ? * MON *)"])
def test_a_rate_crontab_repeats_evenly_gets_no_note(expression):
    assert schedule.crontab_note(expression) is None


@pytest.mark.parametrize(
    "expression, when",
    [("rate(120 minutes)", "0 */2 * * *"), ("rate(1440 minutes)", "0 0 */1 * *"), ("rate(48 hours)", "0 0 */2 * *")],
)
def test_whole_hours_and_days_are_spelled_in_their_own_crontab_field(expression, when):
    """*/120 in the minutes field is no step crontab can take: it ran hourly, at minute 0."""
    assert schedule.crontab_line(expression, "training", {}).startswith(when + " cd ")


@pytest.mark.parametrize(
    "expression, when",
    [
        ("cron(0 6 ? * MON *)", "0 6 * * MON"),
        ("cron(30 5 ? * 2-6 *)", "30 5 * * 1-5"),  # AWS counts SUN=1, crontab SUN=0
        ("cron(0 3 1 * ? *)", "0 3 1 * *"),
        ("rate(6 hours)", "0 */6 * * *"),
        ("rate(1 day)", "0 0 */1 * *"),
    ],
)
def test_the_local_equivalent_is_a_crontab_line_running_pipelines_run(expression, when):
    line = schedule.crontab_line(expression, "batch", {"ForecastHorizon": 28})
    assert line.startswith(when + " cd ")
    assert "python -m pipelines.run --target local --pipeline batch --param ForecastHorizon=28" in line


@pytest.mark.integration
def test_on_the_local_target_create_prints_the_crontab_line_and_calls_nothing(aws_requests):
    lines: list[str] = []
    assert (
        schedule.main(
            [
                "--target",
                "local",
                "create",
                "weekly",
                "--expression",
                "cron(0 6 ? * MON *)",
                "--param",
                "ForecastHorizon=28",
            ],
            log=lines.append,
        )
        == 0
    )
    assert lines[-1].startswith("0 6 * * MON cd ") and "--param ForecastHorizon=28" in lines[-1]
    assert aws_requests.calls == []


def test_the_cli_reports_a_bad_expression_in_one_line(capsys):
    assert schedule.main(["--target", "local", "create", "x", "--expression", "rate(1 days)"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: --expression 'rate(1 days)'")


def test_the_cli_lists_schedules(sagemaker_target, aws_requests):
    schedule.create(sagemaker_target, "nightly-batch", "batch", "rate(1 day)", ["ItemsPerFile=50"], log=quiet)
    lines: list[str] = []
    assert schedule.main(["list"], log=lines.append) == 0
    assert lines == ["nightly-batch            ENABLED   rate(1 day) (UTC) -> demandforecastbatch ItemsPerFile=50"]


def test_the_help_says_the_local_target_accepts_only_create(capsys):
    with pytest.raises(SystemExit):
        schedule.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "only `create` works" in text
    assert "`list` and `delete` are SageMaker-only and exit 2 locally" in text
    assert "list the project's schedules (SageMaker only; exit 2 locally)" in text


@pytest.mark.parametrize("command", [["list"], ["delete", "weekly-retrain"]])
def test_list_and_delete_on_the_local_target_exit_2_in_one_line_naming_the_command(command, capsys, aws_requests):
    assert schedule.main(["--target", "local", *command]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"`{command[0]}` is SageMaker-only (--target sagemaker)" in err
    assert aws_requests.calls == []


def test_the_crontab_line_carries_this_shells_forecast_settings_so_cron_uses_the_same_home(
    tmp_path, monkeypatch, aws_requests
):
    """cron starts jobs with almost no environment: without FORECAST_HOME in the line the job
    looked in ./.forecast, found no approved model and the scheduled batch run failed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FORECAST_HOME", "state")
    monkeypatch.setenv("FORECAST_MODEL_PACKAGE_GROUP", "my group")
    monkeypatch.setenv("FORECAST_TARGET", "local")
    lines: list[str] = []
    assert (
        schedule.main(["create", "nightly", "--pipeline", "batch", "--expression", "rate(1 day)"], log=lines.append)
        == 0
    )
    line = lines[1]
    assert f"&& FORECAST_HOME={tmp_path / 'state'} FORECAST_MODEL_PACKAGE_GROUP='my group' " in line
    assert "FORECAST_TARGET" not in line and " -m pipelines.run --target local --pipeline batch" in line
    assert aws_requests.calls == []


def test_a_disabled_local_schedule_is_the_line_commented_out_and_percent_signs_are_escaped(capsys):
    lines: list[str] = []
    argv = ["--target", "local", "create", "x", "--expression", "rate(1 day)", "--disabled"]
    assert schedule.main([*argv, "--param", "InputDataUrl=sales_%d.csv"], log=lines.append) == 0
    assert lines[1].startswith("# 0 0 */1 * * cd ")
    assert "InputDataUrl=sales_\\%d.csv" in lines[1]
    assert lines[2].startswith("note: --disabled: the line is commented out")


def test_a_percent_sign_in_the_checkouts_folder_is_escaped_too():
    """crontab(5) turns an unescaped % anywhere in the command into a newline: `cd /srv/100%` would
    have cut the line before the pipeline command."""
    line = schedule.crontab_line("rate(1 day)", "batch", {}, home="/srv/100%/forecasting", python="/usr/bin/python3")
    assert line.startswith("0 0 */1 * * cd /srv/100\\%/forecasting && /usr/bin/python3 -m pipelines.run ")
    assert line.replace("\\%", "").count("%") == 0


def test_create_help_says_what_disabled_prints_on_the_local_target(capsys):
    with pytest.raises(SystemExit):
        schedule.main(["create", "--help"])
    assert "crontab line is printed commented out" in " ".join(capsys.readouterr().out.split())
