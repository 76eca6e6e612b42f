"""Remove what the project created (the recipe's cleanup, as one command).

    python -m deploy.teardown [--yes] [--include-data] [--target local|sagemaker]

SageMaker target: the schedules (pipelines.schedule) and their role, the approval rule and
its target, the deploy Lambda and its role, the forecast API Lambda (its URL goes with it) and
its role, the alarms, dashboard and alarm topic, the endpoint, its endpoint configs and models
(`<endpoint>-v<version>-<hash>`, named by deploy.handler), the models the pipelines created
(`fc-...`, only those carrying the project's tags), and the training and batch pipelines.
With --include-data also: every model package version and the model package group,
the bucket (every object version, then the bucket) and the SageMaker execution role.

Local target: stops the local endpoint and removes the local state under FORECAST_HOME
(executions, endpoints, models...), keeping the object store (`s3/`) and the model registry
unless --include-data, which removes the whole folder, entry by entry, and only when it carries
the marker (`.forecast-home`) written when the home was created.

The list is shown first and nothing is deleted without confirmation (--yes skips it).
Resources that are already gone are skipped, so a second run finds nothing to do.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Optional

from botocore.exceptions import ClientError

from deploy import api_infrastructure, clients, infrastructure, monitoring
from processing.kernel import aws_errors, console, processes
from processing.kernel.settings import HOME_ENTRIES, HOME_MARKER, Settings, SettingsError, is_home, resolve, sources

logger = logging.getLogger(__name__)

PIPELINE_MODEL_PREFIX = "fc-"  # processing.automl_request.JOB_NAME_PREFIX: AutoML and batch models
KEPT_LOCALLY = ("s3", "registry.sqlite", "registry.sqlite-wal", "registry.sqlite-shm", HOME_MARKER)
Log = Callable[[str], None]


@dataclasses.dataclass
class Resource:
    kind: str
    name: str
    delete: Callable[[], None]

    def __str__(self) -> str:
        return f"{self.kind:<24} {self.name}"


_code = aws_errors.error_code


def _exists(call: Callable[[], Any]) -> Any:
    """The call's answer, or None when the resource does not exist (any service's not-found)."""
    try:
        return call()
    except ClientError as error:
        if aws_errors.is_not_found(error):
            return None
        raise


# --- SageMaker target ------------------------------------------------------------------------------
def _prefixed(items: list[str], prefix: str) -> list[str]:
    return sorted(name for name in items if name.startswith(prefix))


def _paginate(call: Callable[..., dict], key: str, token: str = "NextToken", **params: Any) -> list:
    items: list = []
    while True:
        page = call(**params)
        items.extend(page.get(key, []))
        if not page.get(token):
            return items
        params[token] = page[token]


def _delete_role(iam: Any, name: str) -> None:
    for policy in _paginate(iam.list_attached_role_policies, "AttachedPolicies", "Marker", RoleName=name):
        iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
    for policy_name in _paginate(iam.list_role_policies, "PolicyNames", "Marker", RoleName=name):
        iam.delete_role_policy(RoleName=name, PolicyName=policy_name)
    for profile in _paginate(iam.list_instance_profiles_for_role, "InstanceProfiles", "Marker", RoleName=name):
        iam.remove_role_from_instance_profile(InstanceProfileName=profile["InstanceProfileName"], RoleName=name)
    iam.delete_role(RoleName=name)


def _empty_and_delete_bucket(s3: Any, bucket: str) -> None:
    params: dict = {"Bucket": bucket}
    while True:
        page = s3.list_object_versions(**params)
        objects = [
            {"Key": o["Key"], "VersionId": o["VersionId"]}
            for o in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for start in range(0, len(objects), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects[start : start + 1000], "Quiet": True})
        if not page.get("IsTruncated"):
            break
        params = {"Bucket": bucket, "KeyMarker": page.get("NextKeyMarker", "")}
        if page.get("NextVersionIdMarker"):
            params["VersionIdMarker"] = page["NextVersionIdMarker"]
    s3.delete_bucket(Bucket=bucket)


def _pipeline_models(sm: Any, settings: Settings) -> list[str]:
    """Models the pipelines created (AutoML `fc-...-model`, batch `fc-batch-...`) carrying the project's tags.

    Only models tagged with every project tag are taken, so an unrelated `fc-` model stays.
    """
    wanted = dict(settings.tags)
    names = []
    for model in _paginate(sm.list_models, "Models", NameContains=PIPELINE_MODEL_PREFIX):
        if not model["ModelName"].startswith(PIPELINE_MODEL_PREFIX):
            continue
        tags = {t["Key"]: t["Value"] for t in _paginate(sm.list_tags, "Tags", ResourceArn=model["ModelArn"])}
        if wanted and all(tags.get(key) == value for key, value in wanted.items()):
            names.append(model["ModelName"])
    return sorted(names)


def _schedule_plan(settings: Settings, iam: Any) -> list[Resource]:
    """The project's EventBridge Scheduler schedules, their group and the scheduler's role."""
    from pipelines import schedule

    scheduler = clients.client("scheduler", settings)
    group = schedule.group_name(settings)
    plan = [
        Resource(
            "EventBridge schedule", s["Name"], lambda n=s["Name"]: scheduler.delete_schedule(Name=n, GroupName=group)
        )
        for s in schedule.list_schedules(settings, scheduler)
    ]
    if _exists(lambda: scheduler.get_schedule_group(Name=group)):
        plan.append(Resource("schedule group", group, lambda: scheduler.delete_schedule_group(Name=group)))
    role = schedule.role_name(settings)
    if _exists(lambda: iam.get_role(RoleName=role)):
        plan.append(Resource("IAM role (scheduler)", role, lambda: _delete_role(iam, role)))
    return plan


def sagemaker_plan(settings: Settings, include_data: bool = False) -> list[Resource]:
    """Every project resource that exists now, in a safe deletion order."""
    sm = clients.client("sagemaker", settings)
    lam = clients.client("lambda", settings)
    events = clients.client("events", settings)
    iam = clients.client("iam", settings)
    cloudwatch = clients.client("cloudwatch", settings)
    sns = clients.client("sns", settings)
    plan: list[Resource] = []
    endpoint = settings.endpoint_name

    plan += _schedule_plan(settings, iam)
    rule = infrastructure.rule_name(settings)
    if _exists(lambda: events.describe_rule(Name=rule)):

        def delete_rule() -> None:
            targets = [t["Id"] for t in events.list_targets_by_rule(Rule=rule).get("Targets", [])]
            if targets:
                events.remove_targets(Rule=rule, Ids=targets)
            events.delete_rule(Name=rule)

        plan.append(Resource("EventBridge rule", rule, delete_rule))
    function = settings.deploy_function_name
    if _exists(lambda: lam.get_function(FunctionName=function)):
        plan.append(Resource("Lambda function", function, lambda: lam.delete_function(FunctionName=function)))
    role = infrastructure.function_role_name(settings)
    if _exists(lambda: iam.get_role(RoleName=role)):
        plan.append(Resource("IAM role (deploy Lambda)", role, lambda: _delete_role(iam, role)))
    api_function = api_infrastructure.function_name(settings)
    if _exists(lambda: lam.get_function(FunctionName=api_function)):
        plan.append(
            Resource("Lambda function (API)", api_function, lambda: lam.delete_function(FunctionName=api_function))
        )  # its URL goes with it
    api_role = api_infrastructure.function_role_name(settings)
    if _exists(lambda: iam.get_role(RoleName=api_role)):
        plan.append(Resource("IAM role (forecast API)", api_role, lambda: _delete_role(iam, api_role)))

    alarms = [
        a["AlarmName"]
        for a in cloudwatch.describe_alarms(
            AlarmNames=monitoring.alarm_names(settings) + [monitoring.accuracy_alarm_name(settings)]
        ).get("MetricAlarms", [])
    ]
    for alarm in alarms:
        plan.append(Resource("CloudWatch alarm", alarm, lambda a=alarm: cloudwatch.delete_alarms(AlarmNames=[a])))
    dashboard = monitoring.dashboard_name(settings)
    if any(
        d["DashboardName"] == dashboard
        for d in cloudwatch.list_dashboards(DashboardNamePrefix=dashboard).get("DashboardEntries", [])
    ):
        plan.append(
            Resource(
                "CloudWatch dashboard", dashboard, lambda: cloudwatch.delete_dashboards(DashboardNames=[dashboard])
            )
        )
    topics = [
        t["TopicArn"]
        for t in _paginate(sns.list_topics, "Topics")
        if t["TopicArn"].split(":")[-1] == monitoring.topic_name(settings)
    ]
    for topic in topics:
        plan.append(Resource("SNS topic", topic, lambda t=topic: sns.delete_topic(TopicArn=t)))

    if _exists(lambda: sm.describe_endpoint(EndpointName=endpoint)):
        plan.append(Resource("SageMaker endpoint", endpoint, lambda: sm.delete_endpoint(EndpointName=endpoint)))
    configs = _prefixed(
        [
            c["EndpointConfigName"]
            for c in _paginate(sm.list_endpoint_configs, "EndpointConfigs", NameContains=endpoint[:63])
        ],
        f"{endpoint}-v",
    )
    for config in configs:
        plan.append(
            Resource("endpoint config", config, lambda c=config: sm.delete_endpoint_config(EndpointConfigName=c))
        )
    models = _prefixed(
        [m["ModelName"] for m in _paginate(sm.list_models, "Models", NameContains=endpoint[:63])], f"{endpoint}-v"
    )
    models += _pipeline_models(sm, settings)
    for model in models:
        plan.append(Resource("SageMaker model", model, lambda m=model: sm.delete_model(ModelName=m)))
    for pipeline in (settings.training_pipeline_name, settings.batch_pipeline_name):
        if _exists(lambda p=pipeline: sm.describe_pipeline(PipelineName=p)):
            plan.append(
                Resource(
                    "SageMaker pipeline",
                    pipeline,
                    lambda p=pipeline: sm.delete_pipeline(PipelineName=p, ClientRequestToken=str(uuid.uuid4())),
                )
            )

    if include_data:
        group = settings.model_package_group
        if _exists(lambda: sm.describe_model_package_group(ModelPackageGroupName=group)):
            packages = _paginate(sm.list_model_packages, "ModelPackageSummaryList", ModelPackageGroupName=group)
            for package in packages:
                arn = package["ModelPackageArn"]
                plan.append(Resource("model package", arn, lambda a=arn: sm.delete_model_package(ModelPackageName=a)))
            plan.append(
                Resource(
                    "model package group", group, lambda: sm.delete_model_package_group(ModelPackageGroupName=group)
                )
            )
        if settings.bucket:
            s3 = clients.client("s3", settings)
            if _exists(lambda: s3.head_bucket(Bucket=settings.bucket)):
                plan.append(
                    Resource(
                        "S3 bucket (all objects)",
                        settings.bucket,
                        lambda: _empty_and_delete_bucket(s3, settings.bucket),
                    )
                )
        if settings.role_arn:
            execution_role = settings.role_arn.rsplit("/", 1)[-1]
            if _exists(lambda: iam.get_role(RoleName=execution_role)):
                plan.append(Resource("IAM role (SageMaker)", execution_role, lambda: _delete_role(iam, execution_role)))
    return plan


# --- local target ----------------------------------------------------------------------------------
class TeardownError(RuntimeError):
    """Teardown would break something that runs: one line, exit 2, nothing deleted."""


def running_executions(home: Path) -> list[str]:
    """'<id> (<pipeline>, pid N)' of each local execution whose runtime process still runs.

    Removing `executions/` and `sagemaker/` under a running pipeline pulls its record, its step
    folders and its AutoML job away mid-step; those runs are named, and nothing is deleted.
    """
    import json

    found = []
    for path in sorted((home / "executions").glob("*/execution.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("status") == "Executing" and processes.process_alive(record.get("runtime_process")):
            pid = record["runtime_process"].get("pid")
            found.append(f"{record.get('execution_id', path.parent.name)} ({record.get('pipeline_name')}, pid {pid})")
    return found


def local_plan(settings: Settings, include_data: bool = False) -> list[Resource]:
    home = settings.home_path
    plan: list[Resource] = []
    running = running_executions(home)
    if running:
        raise TeardownError(
            f"{'an execution is' if len(running) == 1 else 'executions are'} running under {home}: "
            f"{', '.join(running)}; let it finish or stop it (Ctrl-C where it runs), then run teardown again"
        )
    try:
        from deploy import endpoint as local_endpoint
    except ImportError:  # no local endpoint support installed
        local_endpoint = None
    if local_endpoint is not None and local_endpoint.running_state(home, settings.endpoint_name):
        plan.append(
            Resource(
                "local endpoint process",
                settings.endpoint_name,
                lambda: local_endpoint.stop(home, settings.endpoint_name),
            )
        )
    if not home.exists():
        return plan
    if include_data:
        if not is_home(home):
            raise SettingsError(
                f"{home} is not a forecast home (it has no {HOME_MARKER} marker, which the project writes when "
                "it creates one), so --include-data will not remove it. Check FORECAST_HOME; to remove the "
                "project's state only, run without --include-data."
            )
        for entry in sorted(home.iterdir()):  # listed one by one, so the user sees what goes
            if entry.name == HOME_MARKER:
                continue
            plan.append(
                Resource(
                    "local data" if entry.name in KEPT_LOCALLY else "local state",
                    str(entry),
                    lambda e=entry: _remove(e),
                )
            )
        plan.append(Resource("local home (now empty)", str(home), lambda: _remove_home(home)))
        return plan
    for entry in sorted(home.iterdir()):  # only what the project puts there: a stranger's files stay
        if entry.name in KEPT_LOCALLY or entry.name not in HOME_ENTRIES:
            continue
        plan.append(Resource("local state", str(entry), lambda e=entry: _remove(e)))
    return plan


def _remove_home(home: Path) -> None:
    """The home itself, last: only the marker may be left (anything else appeared meanwhile and stays)."""
    (home / HOME_MARKER).unlink(missing_ok=True)
    home.rmdir()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


# --- running -------------------------------------------------------------------------------------
def plan_for(settings: Settings, include_data: bool = False) -> list[Resource]:
    if settings.is_local:
        return local_plan(settings, include_data)
    settings.require_region()
    return sagemaker_plan(settings, include_data)


def execute(plan: list[Resource], log: Log = logger.info) -> list[tuple[Resource, str]]:
    """Delete in order; a failure is reported and the rest still goes. Returns the failures."""
    failures = []
    for resource in plan:
        try:
            resource.delete()
            log(f"deleted  {resource}")
        except (ClientError, OSError) as error:
            failures.append((resource, str(error)))
            log(f"FAILED   {resource}: {error}")
    return failures


def teardown(
    settings: Settings,
    *,
    include_data: bool = False,
    yes: bool = False,
    ask: Callable[[str], str] = input,
    log: Log = logger.info,
) -> int:
    plan = plan_for(settings, include_data)
    where = f"the local target ({settings.home_path})" if settings.is_local else f"SageMaker ({settings.region})"
    if not plan:
        log(f"nothing to delete on {where}")
        return 0
    log(f"{len(plan)} resource(s) on {where} will be deleted:")
    for resource in plan:
        log(f"  {resource}")
    if settings.is_local and not include_data:
        log(f"kept: {', '.join(KEPT_LOCALLY[:2])} under {settings.home_path} (--include-data removes them)")
    if not yes:
        try:
            answer = ask("delete them? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            log("nothing deleted (pass --yes to skip this question)")
            return 1
    failures = execute(plan, log)
    if failures:
        log(f"{len(failures)} deletion(s) failed; fix the cause and run the command again")
        return 1
    log("done")
    if settings.is_local and not include_data and any(r.kind == "local endpoint process" for r in plan):
        redeploy = _redeploy_hint(settings)
        if redeploy:
            log(redeploy)
    return 0


def _redeploy_hint(settings: Settings) -> Optional[str]:
    """The kept registry still says Approved, which no longer means deployed: how to serve it again."""
    try:
        sm = clients.client("sagemaker", settings)
        approved = sm.list_model_packages(
            ModelPackageGroupName=settings.model_package_group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        ).get("ModelPackageSummaryList", [])
    except (ClientError, OSError):
        return None
    if not approved:
        return None
    version = approved[0].get("ModelPackageVersion")
    return (
        f"the registry keeps version {version} Approved, but nothing serves it now: "
        f"`python -m deploy.approve approve {version}` deploys it again"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.teardown", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target", choices=("local", "sagemaker"), default=None, help=f"where to run (or {sources('target')})"
    )
    parser.add_argument("--region", default=None, help=f"AWS region (or {sources('region')})")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--include-data",
        action="store_true",
        help="also the model registry, the bucket and the SageMaker role (local: the whole home)",
    )
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    console.setup()
    args = _parser().parse_args(argv)
    try:
        settings = resolve({"target": args.target, "region": args.region})
        return teardown(settings, include_data=args.include_data, yes=args.yes)
    except (SettingsError, TeardownError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    console.exit_with(main)
