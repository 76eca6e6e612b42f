"""`python -m pipelines.schedule`: start the training or batch pipeline on a schedule.

    python -m pipelines.schedule create weekly-retrain --pipeline training --expression "cron(0 6 ? * MON *)"
    python -m pipelines.schedule create nightly-batch --pipeline batch --expression "rate(1 day)" \\
        --param InputDataUrl=s3://my-bucket/demand-forecasting/batch/ --timezone Europe/Berlin
    python -m pipelines.schedule list
    python -m pipelines.schedule delete weekly-retrain

On SageMaker: EventBridge Scheduler schedules in the project's schedule group (named after the
prefix), each with the templated SageMaker StartPipelineExecution target (the pipeline ARN plus
SageMakerPipelineParameters, so `--param` overrides are typed and checked against the
pipeline's definition), run by one least-privilege role (`<group>-scheduler`): trusted by
scheduler.amazonaws.com for this account only, allowed sagemaker:StartPipelineExecution on the
two pipelines and nothing else. `create` on an existing name updates it.

On the local target nothing is scheduled: `create` prints the crontab line that runs the same
pipeline with the same parameters (`python -m pipelines.run --target local ...`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import sys
import zoneinfo
from typing import Any, Callable, Mapping, Optional, Sequence

from botocore.exceptions import ClientError

from processing.kernel import aws_errors, console
from processing.kernel.settings import Settings, SettingsError, account_of, resolve, sources

logger = logging.getLogger(__name__)

PIPELINES = ("training", "batch")
TARGET_OPERATION = ("sagemaker", "StartPipelineExecution")  # what the templated target calls
ROLE_POLICY_NAME = "start-pipelines"
Log = Callable[[str], None]

RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
CRON = re.compile(r"^cron\((.*)\)$")
AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
# cron(minutes hours day-of-month month day-of-week year): characters each field may hold
CRON_FIELDS = (
    ("minutes", r"[0-9,\-*/]+"),
    ("hours", r"[0-9,\-*/]+"),
    ("day-of-month", r"[0-9,\-*/?LW]+"),
    ("month", r"[0-9A-Za-z,\-*/]+"),
    ("day-of-week", r"[0-9A-Za-z,\-*/?L#]+"),
    ("year", r"[0-9,\-*/]+"),
)
EXAMPLES = 'for example "rate(1 day)", "rate(6 hours)" or "cron(0 6 ? * MON *)" (06:00 every Monday)'


class ScheduleError(ValueError):
    """Bad schedule input: printed as one line, exit code 2."""


# --- names, ARNs, expressions ---------------------------------------------------------------------
def group_name(settings: Settings) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]", "-", settings.prefix.strip("/"))[:64] or "demand-forecasting"


def role_name(settings: Settings) -> str:
    return f"{group_name(settings)}-scheduler"[:64]


def pipeline_arn(settings: Settings, pipeline: str) -> str:
    """SageMaker lower-cases pipeline names in ARNs."""
    from pipelines.run import pipeline_name

    return f"arn:aws:sagemaker:{settings.region}:{account_of(settings.role_arn)}:pipeline/{pipeline_name(pipeline, settings).lower()}"


def check_expression(expression: str) -> str:
    """rate(), cron() or at() as EventBridge Scheduler accepts them; a clear error otherwise."""
    text = expression.strip()
    rate = RATE.match(text)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1:
            raise ScheduleError(f"--expression {expression!r}: the rate must be at least 1, {EXAMPLES}")
        if (value == 1) != (not unit.endswith("s")):
            fixed = f"rate({value} {unit.rstrip('s') if value == 1 else unit + 's'})"
            raise ScheduleError(
                f"--expression {expression!r}: a rate of 1 takes a singular unit and others a "
                f"plural one; did you mean {fixed!r}?"
            )
        return text
    cron = CRON.match(text)
    if cron:
        fields = cron.group(1).split()
        if len(fields) != 6:
            raise ScheduleError(
                f"--expression {expression!r}: cron() takes 6 fields (minutes hours day-of-month "
                f"month day-of-week year), got {len(fields)}; {EXAMPLES}"
            )
        for value, (name, allowed) in zip(fields, CRON_FIELDS):
            if not re.fullmatch(allowed, value):
                raise ScheduleError(f"--expression {expression!r}: {name} field {value!r} is not valid")
        if (fields[2] == "?") == (fields[4] == "?"):
            raise ScheduleError(
                f"--expression {expression!r}: exactly one of day-of-month and day-of-week must be "
                "'?' (the other names the days); for example cron(0 6 ? * MON *)"
            )
        return text
    if AT.match(text):
        return text
    raise ScheduleError(
        f"--expression {expression!r}: not a schedule expression; {EXAMPLES}, or at(2025-01-31T06:00:00) once"
    )


def check_timezone(timezone: str) -> str:
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            f"--timezone {timezone!r}: not an IANA time zone (for example UTC, Europe/Berlin, America/New_York)"
        ) from None
    return timezone


def typed_parameters(settings: Settings, pipeline: str, pairs: Sequence[str]) -> dict[str, Any]:
    """--param Name=Value overrides, checked against the pipeline's rendered definition (offline)."""
    from pipelines import run

    if pipeline not in PIPELINES:
        raise ScheduleError(f"--pipeline {pipeline!r}: choose one of {', '.join(PIPELINES)}")
    overrides = run.parse_overrides(pairs)
    if not overrides:
        return {}
    return run.check_overrides(json.loads(run.render(pipeline, settings)), overrides)


# --- the role -------------------------------------------------------------------------------------
def scheduler_trust_policy(settings: Settings) -> dict:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "scheduler.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_of(settings.role_arn)}},
            }
        ],
    }


def scheduler_role_policy(settings: Settings) -> dict:
    """Only StartPipelineExecution, only on this project's two pipelines."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StartTheProjectPipelines",
                "Effect": "Allow",
                "Action": "sagemaker:StartPipelineExecution",
                "Resource": [pipeline_arn(settings, name) for name in PIPELINES],
            }
        ],
    }


_code = aws_errors.error_code


def ensure_role(settings: Settings, log: Log = logger.info) -> str:
    from deploy.clients import client
    from deploy.infrastructure import ensure_service_role

    return ensure_service_role(
        client("iam", settings),
        role_name(settings),
        scheduler_trust_policy(settings),
        ROLE_POLICY_NAME,
        scheduler_role_policy(settings),
        "EventBridge Scheduler starts the demand-forecasting pipelines",
        settings.tags,
        "EventBridge Scheduler",
        log,
    )


def ensure_group(settings: Settings, scheduler: Any, log: Log = logger.info) -> str:
    name = group_name(settings)
    try:
        scheduler.get_schedule_group(Name=name)
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise
        log(f"creating schedule group {name}")
        request = {"Name": name}
        if settings.tags:
            request["Tags"] = [{"Key": k, "Value": v} for k, v in settings.tags.items()]
        scheduler.create_schedule_group(**request)
    return name


# --- commands ------------------------------------------------------------------------------------
def schedule_request(
    settings: Settings,
    name: str,
    pipeline: str,
    expression: str,
    parameters: Mapping[str, Any],
    role_arn: str,
    timezone: str = "UTC",
    enabled: bool = True,
) -> dict:
    """The CreateSchedule / UpdateSchedule request (validated against botocore's model before sending)."""
    target: dict = {
        "Arn": pipeline_arn(settings, pipeline),
        "RoleArn": role_arn,
        "RetryPolicy": {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 5},
    }
    if parameters:
        target["SageMakerPipelineParameters"] = {
            "PipelineParameterList": [{"Name": k, "Value": str(v)} for k, v in parameters.items()]
        }
    return {
        "Name": name,
        "GroupName": group_name(settings),
        "ScheduleExpression": expression,
        "ScheduleExpressionTimezone": timezone,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED" if enabled else "DISABLED",
        "Target": target,
        "Description": f"Start {pipeline} pipeline; managed by python -m pipelines.schedule",
    }


def create(
    settings: Settings,
    name: str,
    pipeline: str,
    expression: str,
    params: Sequence[str] = (),
    timezone: str = "UTC",
    enabled: bool = True,
    log: Log = logger.info,
) -> str:
    """Create or update a schedule; returns its ARN (SageMaker) or the crontab line (local)."""
    from deploy.clients import client
    from processing.kernel.aws_validation import validate_request

    name, expression, timezone = check_name(name), check_expression(expression), check_timezone(timezone)
    parameters = typed_parameters(settings, pipeline, params)
    if settings.is_local:
        # this checkout, this interpreter and this shell's FORECAST_* settings: cron's environment
        # is minimal, and without FORECAST_HOME the job would train into, or look for an approved
        # model in, another home than the one this command sees
        line = crontab_line(
            expression,
            pipeline,
            parameters,
            home=os.getcwd(),
            python=sys.executable,
            environment=forecast_environment(os.environ, os.getcwd()),
            config=os.path.abspath(settings.config_file) if settings.config_file else None,
            enabled=enabled,
        )
        log("local target: nothing is scheduled; add this line to your crontab (crontab -e):")
        log(line)
        if not enabled:
            log("note: --disabled: the line is commented out (paused); remove its leading '# ' to start it")
        note = crontab_note(expression)
        if note:
            log(note)
        if timezone != "UTC":
            log(
                f"note: cron uses the machine's time zone; put CRON_TZ={timezone} above the line where your "
                "cron supports it"
            )
        return line
    settings.require_sagemaker()
    request = schedule_request(
        settings, name, pipeline, expression, parameters, "arn:aws:iam::000000000000:role/x", timezone, enabled
    )
    validate_request("scheduler", "CreateSchedule", request)  # before anything is created
    scheduler = client("scheduler", settings)
    request["Target"]["RoleArn"] = ensure_role(settings, log)
    ensure_group(settings, scheduler, log)
    try:
        scheduler.get_schedule(Name=name, GroupName=request["GroupName"])
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise
        arn = scheduler.create_schedule(**request)["ScheduleArn"]
        log(f"created schedule {name}: {expression} ({timezone}) starts the {pipeline} pipeline")
        return arn
    validate_request("scheduler", "UpdateSchedule", request)
    arn = scheduler.update_schedule(**request)["ScheduleArn"]
    log(f"updated schedule {name}: {expression} ({timezone}) starts the {pipeline} pipeline")
    return arn


def list_schedules(settings: Settings, scheduler: Optional[Any] = None) -> list[dict]:
    """The project group's schedules, each with its expression, target and parameters."""
    from deploy.clients import client

    scheduler = scheduler or client("scheduler", settings)
    group = group_name(settings)
    summaries, token = [], None
    while True:
        request: dict = {"GroupName": group}
        if token:
            request["NextToken"] = token
        try:
            page = scheduler.list_schedules(**request)
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                return []
            raise
        summaries += page.get("Schedules", [])
        token = page.get("NextToken")
        if not token:
            break
    return [scheduler.get_schedule(Name=s["Name"], GroupName=group) for s in summaries]


def delete(settings: Settings, name: str, log: Log = logger.info) -> bool:
    from deploy.clients import client

    try:
        client("scheduler", settings).delete_schedule(Name=name, GroupName=group_name(settings))
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise
        log(f"no schedule {name} in group {group_name(settings)}")
        return False
    log(f"deleted schedule {name}")
    return True


# --- the local equivalent ------------------------------------------------------------------------
_DAY_NUMBERS = {str(n): str(n - 1) for n in range(1, 8)}  # AWS: 1 = SUN ... 7 = SAT; crontab: 0 = SUN


def crontab_line(
    expression: str,
    pipeline: str,
    parameters: Mapping[str, Any],
    home: str = "$HOME/demand-forecasting",
    python: str = "python",
    environment: Optional[Mapping[str, str]] = None,
    config: Optional[str] = None,
    enabled: bool = True,
) -> str:
    """The crontab(5) line that runs the same pipeline locally on the same schedule.

    `environment` (NAME=value pairs) goes in front of the command, `config` becomes its
    `--config`; a paused (not `enabled`) schedule is the line commented out. `%` is escaped:
    crontab turns an unescaped one into a newline."""
    rate, cron = RATE.match(expression), CRON.match(expression)
    if rate:
        value, unit = _rate_in_cron_units(expression)
        when = {"minute": f"*/{value} * * * *", "hour": f"0 */{value} * * *", "day": f"0 0 */{value} * *"}[unit]
    elif cron:
        minutes, hours, dom, month, dow, year = cron.group(1).split()
        if year not in ("*", "?"):
            raise ScheduleError(f"--expression {expression!r}: crontab has no year field; use '*' for the year")
        dow = re.sub(r"\b[1-7]\b", lambda m: _DAY_NUMBERS[m.group(0)], dow)
        when = " ".join(f.replace("?", "*") for f in (minutes, hours, dom, month, dow))
    else:
        raise ScheduleError(
            f"--expression {expression!r}: a one-time at() schedule has no crontab form; "
            "run the command at that time instead (the Unix `at` command can)"
        )
    command = [python, "-m", "pipelines.run", "--target", "local", "--pipeline", pipeline]
    if config:
        command += ["--config", config]
    for key, value in parameters.items():
        command += ["--param", f"{key}={value}"]
    assignments = "".join(f"{name}={shlex.quote(value)} " for name, value in sorted((environment or {}).items()))
    folder = shlex.quote(home) if home[:1] != "$" else home
    # every % after the time fields, the checkout's folder too: cron would cut the command there
    run = f"cd {folder} && {assignments}{shlex.join(command)} >> schedule.log 2>&1".replace("%", "\\%")
    line = f"{when} {run}"
    return line if enabled else f"# {line}"


def forecast_environment(environ: Mapping[str, str], cwd: str) -> dict[str, str]:
    """The FORECAST_* settings of this shell for the crontab line (cron starts jobs with almost no
    environment), paths made absolute; FORECAST_TARGET is left out (the line says --target local)."""
    chosen = {k: v for k, v in environ.items() if k.startswith("FORECAST_") and k != "FORECAST_TARGET" and v}
    for name in ("FORECAST_HOME", "FORECAST_CONFIG", "FORECAST_CACHE_DIR", "FORECAST_SERVING_DATA"):
        value = chosen.get(name)
        if value and "://" not in value:
            chosen[name] = os.path.abspath(os.path.join(cwd, os.path.expanduser(value)))
    return chosen


def _rate_in_cron_units(expression: str) -> tuple[int, str]:
    """rate(N unit) with whole hours and days spelled as such: */90 minutes is no crontab step."""
    rate = RATE.match(expression)
    assert rate is not None
    value, unit = int(rate.group(1)), rate.group(2).rstrip("s")
    if unit == "minute" and value >= 60 and value % 60 == 0:
        value, unit = value // 60, "hour"
    if unit == "hour" and value >= 24 and value % 24 == 0:
        value, unit = value // 24, "day"
    return value, unit


def crontab_note(expression: str) -> Optional[str]:
    """Why the crontab line does not run every N units, when it does not: cron restarts its count.

    A step in crontab counts within the hour, the day or the month, so rate(7 days) becomes days
    1, 8, 15, 22 and 29 of each month, and rate(5 hours) 00:00 to 20:00 with a 4-hour gap.
    """
    if not RATE.match(expression):
        return None
    value, unit = _rate_in_cron_units(expression)
    cycle = {"minute": 60, "hour": 24}.get(unit)
    if (cycle and cycle % value == 0) or (unit == "day" and value == 1):
        return None
    if unit == "minute":
        runs = f"at {_listed(range(0, 60, value), 'minute')} of every hour (the count restarts every hour)"
        instead = "a rate that divides 60 minutes, or whole hours"
    elif unit == "hour":
        runs = (
            "at " + _listed(f"{h:02d}:00" for h in range(0, 24, value)) + " every day (the count restarts at midnight)"
        )
        instead = "a rate that divides 24 hours"
    else:
        runs = f"on {_listed(range(1, 32, value), 'day')} of each month (the count restarts on the 1st)"
        instead = "a cron() expression that names the days, e.g. cron(0 6 ? * MON *) (Mondays at 06:00)"
    return (
        f"note: crontab cannot repeat {expression} exactly: this line runs {runs}; for a regular interval use {instead}"
    )


def _listed(values, noun: str = "") -> str:
    """'minute 0', 'days 1, 8 and 15', '00:00 and 12:00'."""
    texts = [str(v) for v in values]
    prefix = f"{noun}{'s' if len(texts) > 1 else ''} " if noun else ""
    return prefix + (texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1])


def check_name(name: str) -> str:
    """EventBridge Scheduler's schedule names, checked on both targets (a local name moves to SageMaker)."""
    if not re.fullmatch(r"[0-9A-Za-z_.-]{1,64}", name):
        suggestion = re.sub(r"[^0-9A-Za-z_.-]+", "-", name).strip("-")[:64] or "weekly-retrain"
        raise ScheduleError(
            f"schedule name {name!r}: use letters, digits, '-', '_' and '.' only, at most 64; "
            f"for example {suggestion!r}"
        )
    return name


# --- CLI -----------------------------------------------------------------------------------------
LOCAL_NOTE = (
    "On the local target (the default without a SageMaker role) only `create` works: it schedules "
    "nothing and prints the equivalent crontab line. `list` and `delete` are SageMaker-only and exit 2 "
    "locally; your crontab is the list (docs/schedules.md)."
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pipelines.schedule", description=__doc__.split("\n\n")[0], epilog=LOCAL_NOTE
    )
    p.add_argument(
        "--target",
        choices=("local", "sagemaker"),
        default=None,
        help=f"where schedules live (or {sources('target')}; sagemaker when a role is configured, else local)",
    )
    p.add_argument("--region", default=None, help=f"AWS region (or {sources('region')})")
    p.add_argument("--config", default=None, help="config file (default ./forecast.toml, or FORECAST_CONFIG)")
    commands = p.add_subparsers(dest="command", required=True)
    make = commands.add_parser(
        "create",
        help="create or update a schedule (local target: print the crontab line)",
        description="Create or update a schedule; on the local target, print the equivalent crontab line.",
    )
    make.add_argument("name", help="schedule name (letters, digits, - _ .; at most 64)")
    make.add_argument("--pipeline", choices=PIPELINES, default="training")
    make.add_argument("--expression", required=True, help=EXAMPLES)
    make.add_argument("--timezone", default="UTC", help="IANA time zone of a cron expression (default UTC)")
    make.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="Name=Value",
        help="pipeline parameter for every execution (repeatable)",
    )
    make.add_argument(
        "--disabled", action="store_true", help="create it paused (locally: the crontab line is printed commented out)"
    )
    commands.add_parser("list", help="the project's schedules (SageMaker only; exit 2 locally)", epilog=LOCAL_NOTE)
    remove = commands.add_parser("delete", help="delete a schedule (SageMaker only; exit 2 locally)", epilog=LOCAL_NOTE)
    remove.add_argument("name")
    return p


def main(argv: Optional[Sequence[str]] = None, log: Log = print) -> int:
    console.setup()
    from pipelines.run import RunError
    from processing.kernel.aws_validation import RequestValidationError

    args = parser().parse_args(argv)
    try:
        settings = resolve({"target": args.target, "region": args.region, "config_file": args.config})
        if args.command == "create":
            create(
                settings, args.name, args.pipeline, args.expression, args.param, args.timezone, not args.disabled, log
            )
            return 0
        if settings.is_local:
            raise ScheduleError(
                "the local target keeps no schedules: use the crontab line "
                "`python -m pipelines.schedule --target local create ...` prints; "
                f"`{args.command}` is SageMaker-only (--target sagemaker)"
            )
        settings.require_sagemaker()
        if args.command == "list":
            schedules = list_schedules(settings)
            if not schedules:
                log(f"no schedules in group {group_name(settings)}")
            for s in schedules:
                pipeline = s["Target"]["Arn"].rsplit("/", 1)[-1]
                params = ", ".join(
                    f"{p['Name']}={p['Value']}"
                    for p in s["Target"].get("SageMakerPipelineParameters", {}).get("PipelineParameterList", [])
                )
                log(
                    f"{s['Name']:<24} {s['State']:<9} {s['ScheduleExpression']} "
                    f"({s.get('ScheduleExpressionTimezone', 'UTC')}) -> {pipeline} {params}".rstrip()
                )
            return 0
        return 0 if delete(settings, args.name, log) else 1
    except (ScheduleError, SettingsError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return getattr(error, "code", 2)
    except (ClientError, RequestValidationError) as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    console.exit_with(main)
