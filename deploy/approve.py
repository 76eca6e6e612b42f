"""Model governance from the command line: list, approve, reject and roll back model versions.

    python -m deploy.approve list [--group G] [--json]
    python -m deploy.approve approve ARN|VERSION [--reason TEXT]
    python -m deploy.approve approve --latest [--reason TEXT]
    python -m deploy.approve approve VERSION --rollback [--reason TEXT]
    python -m deploy.approve reject ARN|VERSION [--reason TEXT]
    python -m deploy.approve rollback [--reason TEXT]

The same functions run against SageMaker's Model Registry and the local SQLite registry: the
client comes from deploy.clients. Approving IS deploying: on SageMaker, the EventBridge rule
("SageMaker Model Package State Change" to Approved) invokes the deploy Lambda; locally, its
counterpart is this command calling deploy.handler.lambda_handler in-process with the same
EventBridge-shaped event.

Rollback rejects the version the endpoint serves and deploys the previous approved one (an
already-approved version emits no state-change event, so rollback runs the deploy handler
itself, on both targets). The deploy handler never replaces a newer version with an older one
otherwise: `approve N --rollback` puts version N on the endpoint even when it serves a newer one
(and leaves the newer versions' status alone).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import re
import sys
from typing import Any, Callable, Optional

from botocore.exceptions import ClientError

from deploy import clients
from deploy.handler import PACKAGE_TAG, DeployError
from processing.kernel import aws_errors, console
from processing.kernel.metric_format import metrics_text
from processing.kernel.settings import Settings, SettingsError, resolve, sources

logger = logging.getLogger(__name__)

EVENT_SOURCE = "aws.sagemaker"
METRIC_PREFIXES = ("metric_", "quality_gate_")
EXECUTION_KEYS = ("pipeline_execution_arn", "pipeline_execution_id")

Deployer = Callable[[dict], dict]


class ApprovalError(RuntimeError):
    """A governance action cannot be done; the message says why and what to do instead."""


# --- reading the registry ----------------------------------------------------------------------
def _summaries(sm: Any, group: str, status: Optional[str] = None) -> list[dict]:
    """Every version summary of the group, newest first (follows NextToken)."""
    params: dict = {
        "ModelPackageGroupName": group,
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": 100,
    }
    if status:
        params["ModelApprovalStatus"] = status
    summaries: list[dict] = []
    while True:
        try:
            page = sm.list_model_packages(**params)
        except ClientError as error:
            raise ApprovalError(f"cannot list model group {group}: {error}") from None
        summaries.extend(page.get("ModelPackageSummaryList", []))
        if not page.get("NextToken"):
            break
        params["NextToken"] = page["NextToken"]
    return sorted(summaries, key=lambda s: s.get("ModelPackageVersion", 0), reverse=True)


def key_metrics(properties: dict) -> dict:
    """The metrics RegisterModel puts in CustomerMetadataProperties (metric_*, quality_gate_*)."""
    return {key: value for key, value in (properties or {}).items() if key.startswith(METRIC_PREFIXES)}


def pipeline_execution(package: dict) -> Optional[str]:
    """The pipeline execution that produced the version (lineage), if recorded."""
    generated_by = (package.get("MetadataProperties") or {}).get("GeneratedBy")
    if generated_by:
        return generated_by
    properties = package.get("CustomerMetadataProperties") or {}
    return next((properties[key] for key in EXECUTION_KEYS if properties.get(key)), None)


def describe(sm: Any, arn: str) -> dict:
    try:
        return sm.describe_model_package(ModelPackageName=arn)
    except ClientError as error:
        message = aws_errors.error_message(error)
        detail = "" if arn in message else f" ({message})"  # the service's message often repeats the ARN
        raise ApprovalError(
            f"model package {arn} not found in the registry{detail}; `python -m deploy.approve list` shows the versions"
        ) from None


def list_versions(sm: Any, group: str, deployed_arn: Optional[str] = None, limit: Optional[int] = None) -> list[dict]:
    """Versions of `group`, newest first, with status, key metrics, creation time and lineage."""
    rows = []
    for summary in _summaries(sm, group)[:limit]:
        package = describe(sm, summary["ModelPackageArn"])
        rows.append(
            {
                "version": package.get("ModelPackageVersion"),
                "arn": package["ModelPackageArn"],
                "status": package.get("ModelApprovalStatus"),
                "created": _iso(package.get("CreationTime")),
                "approval_description": package.get("ApprovalDescription"),
                "metrics": key_metrics(package.get("CustomerMetadataProperties") or {}),
                "pipeline_execution": pipeline_execution(package),
                "deployed": bool(deployed_arn) and package["ModelPackageArn"] == deployed_arn,
            }
        )
    return rows


def _iso(value: Any) -> Optional[str]:
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None if value is None else str(value)


def resolve_arn(sm: Any, group: str, reference: Optional[str], latest: bool = False) -> str:
    """An ARN, a version number or <group>/<version> -> the version's ARN (checked to exist)."""
    if latest:
        summaries = _summaries(sm, group)
        if not summaries:
            raise ApprovalError(f"model group {group} has no versions{_groups_hint(sm, group)}")
        return summaries[0]["ModelPackageArn"]
    if not reference:
        raise ApprovalError("name the version to act on (its ARN or version number), or pass --latest")
    if reference.startswith("arn:"):
        return describe(sm, reference)["ModelPackageArn"]
    # "v3" as well: the endpoint's model and config names spell versions that way
    match = re.fullmatch(r"(?:(?P<group>[A-Za-z0-9-]+)/)?[vV]?(?P<version>[0-9]+)", reference.strip())
    if not match:
        raise ApprovalError(
            f"{reference!r} is neither a model package ARN nor a version number (for example 3 or {group}/3)"
        )
    wanted_group, version = match.group("group") or group, int(match.group("version"))
    summaries = _summaries(sm, wanted_group)
    for summary in summaries:
        if summary.get("ModelPackageVersion") == version:
            return summary["ModelPackageArn"]
    if not summaries:
        raise ApprovalError(f"model group {wanted_group} has no versions{_groups_hint(sm, wanted_group)}")
    raise ApprovalError(
        f"model group {wanted_group} has no version {version} ({_versions_text(summaries)}); "
        "`python -m deploy.approve list` shows them"
    )


def deploy_hint(sm: Any, group: str) -> str:
    """The command that (re)deploys the right version: the newest Approved one by number (`--latest`
    would pick the newest version, a Rejected one too), else `--latest` for a fresh group."""
    try:
        approved = _summaries(sm, group, status="Approved")
    except ApprovalError:  # the group cannot be listed (it does not exist yet)
        approved = []
    if approved:
        return f"python -m deploy.approve approve {approved[0]['ModelPackageVersion']}"
    return "python -m deploy.approve approve --latest"


def _versions_text(summaries: list[dict]) -> str:
    """'versions: 1, 2, 3' (the newest ten, oldest first) for an error message."""
    numbers = sorted(s.get("ModelPackageVersion", 0) for s in summaries)
    shown = ", ".join(str(n) for n in numbers[-10:])
    return f"versions: {'..., ' if len(numbers) > 10 else ''}{shown}"


def _groups_hint(sm: Any, group: str) -> str:
    """Why a group is empty: not trained yet, or a mistyped --group (then the groups that exist)."""
    try:
        names = [
            g["ModelPackageGroupName"]
            for g in sm.list_model_package_groups(MaxResults=100).get("ModelPackageGroupSummaryList", [])
        ]
    except (ClientError, AttributeError):
        names = []
    others = [name for name in names if name != group]
    if group not in names and others:
        return f"; the registry's groups: {', '.join(others)} (--group, or FORECAST_MODEL_PACKAGE_GROUP)"
    return " yet; run the training pipeline first (python -m pipelines.run)"


def deployed_package(sm: Any, endpoint_name: str) -> Optional[str]:
    """The model package ARN the endpoint is tagged with (set by the deploy handler), if any."""
    try:
        endpoint = sm.describe_endpoint(EndpointName=endpoint_name)
        tags = sm.list_tags(ResourceArn=endpoint["EndpointArn"]).get("Tags", [])
    except (ClientError, AttributeError, KeyError):
        return None
    values = [tag["Value"] for tag in tags if tag.get("Key") == PACKAGE_TAG]
    return values[-1] if values else None  # the last one: AddTags overwrites a key (moto appends)


# --- acting --------------------------------------------------------------------------------------
def state_change_event(package: dict, settings: Settings, rollback: bool = False) -> dict:
    """The EventBridge event SageMaker emits for a model package state change.

    rollback=True adds the project's own top-level "rollback" key (SageMaker never sends it): the
    handler then may put this version over a newer one."""
    event = {
        "version": "0",
        "id": "local",
        "detail-type": "SageMaker Model Package State Change",
        "source": EVENT_SOURCE,
        "account": package["ModelPackageArn"].split(":")[4],
        "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": settings.effective_region,
        "resources": [package["ModelPackageArn"]],
        "detail": {
            "ModelPackageGroupName": package.get("ModelPackageGroupName"),
            "ModelPackageVersion": package.get("ModelPackageVersion"),
            "ModelPackageArn": package["ModelPackageArn"],
            "ModelApprovalStatus": package.get("ModelApprovalStatus"),
            "CreationTime": _iso(package.get("CreationTime")),
        },
    }
    if rollback:
        event["rollback"] = True
    return event


def in_process_deployer(settings: Settings) -> Deployer:
    """Run the deploy handler here (locally it stands in for EventBridge -> Lambda)."""
    from deploy.handler import lambda_handler

    return lambda event: lambda_handler(event, settings=settings)


def set_status(sm: Any, arn: str, status: str, reason: Optional[str]) -> dict:
    params = {"ModelPackageArn": arn, "ModelApprovalStatus": status}
    if reason:
        params["ApprovalDescription"] = reason[:1024]
    sm.update_model_package(**params)
    return describe(sm, arn)


def approve(
    sm: Any,
    settings: Settings,
    arn: str,
    reason: Optional[str] = None,
    deployer: Optional[Deployer] = None,
    log: Callable[[str], None] = logger.info,
    rollback: bool = False,
) -> dict:
    """Approve `arn`; locally deploy it through the handler, on SageMaker EventBridge does.

    Re-approving an Approved version changes nothing, so SageMaker emits no event: the handler
    then runs here (on both targets) so that `approve` always ends with the version deployed (or
    restarted, when its endpoint is OutOfService). The handler never puts an older version over
    a newer one; rollback=True asks for exactly that, and runs the handler here on both targets
    (the EventBridge event carries no such request).
    """
    before = describe(sm, arn)
    already = before.get("ModelApprovalStatus") == "Approved"
    package = set_status(sm, arn, "Approved", reason or "approved with deploy.approve")
    log(f"approved version {package.get('ModelPackageVersion')}: {arn}")
    if before.get("ModelApprovalStatus") == "Rejected":  # `approve --latest` picks a rejected newest one too
        why = before.get("ApprovalDescription")
        log(
            f"note: version {package.get('ModelPackageVersion')} was Rejected{f' ({why})' if why else ''}; "
            "it is Approved again and goes back in service"
        )
    result: dict = {"model_package_arn": arn, "status": "Approved"}
    if deployer is None and (settings.is_local or already or rollback):
        if already and not settings.is_local:
            log("it was already Approved, so no state-change event fires: deploying it from here")
        elif rollback and not settings.is_local:
            log("rolling back: deploying it from here")
        deployer = in_process_deployer(settings)
    if deployer is not None:
        result["deployment"] = deployer(state_change_event(package, settings, rollback=rollback))
        name = (result["deployment"] or {}).get("endpoint_name") or settings.endpoint_name
        url = endpoint_url(settings, name)
        if url:
            result["endpoint_url"] = url
            log(f"endpoint {name} listens on {url} (POST {url}/invocations)")
        if rollback:
            _note_newer_approved(sm, settings, package, log)
    else:
        log(
            f"the EventBridge rule invokes {settings.deploy_function_name} to deploy it to "
            f"{settings.endpoint_name}; follow with: aws logs tail /aws/lambda/{settings.deploy_function_name}"
        )
        if not approval_rule_exists(settings):
            log(
                "warning: the approval rule does not exist, so nothing will deploy this version: run "
                "`python -m pipelines.run --target sagemaker` (it creates the deploy function and rule)"
            )
    return result


def _note_newer_approved(sm: Any, settings: Settings, package: dict, log: Callable[[str], None]) -> None:
    """After `approve N --rollback`: say that what reads the newest Approved version (not the
    endpoint) stays on a newer one: the batch pipeline's ResolveModel, the training pipeline's
    champion and the forecast-accuracy alarm."""
    version = package.get("ModelPackageVersion", 0)
    newer = [
        s["ModelPackageVersion"]
        for s in _summaries(sm, settings.model_package_group, status="Approved")
        if s.get("ModelPackageVersion", 0) > version
    ]
    if newer:
        log(
            f"note: version {max(newer)} is still Approved and newer: the batch pipeline (ResolveModel), the "
            f"training pipeline's champion and the forecast-accuracy alarm use the newest Approved version, so "
            f"they stay on version {max(newer)} while the endpoint serves version {version}; "
            f"`python -m deploy.approve reject {max(newer)}` moves them too (`rollback` rejects the version it "
            "leaves)"
        )


def endpoint_url(settings: Settings, name: str) -> Optional[str]:
    """Where the endpoint answers: the local server's URL (it may have taken a free port when the
    configured one was busy), or SageMaker Runtime's invocation URL."""
    if not settings.is_local:
        region = settings.effective_region
        return f"https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{name}"
    from deploy import endpoint

    state = endpoint.running_state(settings.home_path, name)
    return state.get("url") if state else None


def approval_rule_exists(settings: Settings) -> bool:
    """Whether the EventBridge rule that turns approvals into deployments is there."""
    from deploy.infrastructure import rule_name

    try:
        clients.client("events", settings).describe_rule(Name=rule_name(settings))
    except ClientError as error:
        if aws_errors.is_not_found(error):
            return False
        raise
    return True


def _older(summaries: list[dict], version: int) -> list[dict]:
    """The summaries of versions older than `version`, in their order: of the approved ones, newest
    first, the first is what rollback deploys (and what reject's note names)."""
    return [s for s in summaries if s.get("ModelPackageVersion", 0) < version]


def reject(
    sm: Any, settings: Settings, arn: str, reason: Optional[str] = None, log: Callable[[str], None] = logger.info
) -> dict:
    package = set_status(sm, arn, "Rejected", reason or "rejected with deploy.approve")
    log(f"rejected version {package.get('ModelPackageVersion')}: {arn}")
    if deployed_package(sm, settings.endpoint_name) == arn:
        version = package.get("ModelPackageVersion", 0)
        older = _older(_summaries(sm, settings.model_package_group, status="Approved"), version)
        if older:
            log(
                f"note: endpoint {settings.endpoint_name} still serves this version; "
                f"`python -m deploy.approve rollback` deploys version {older[0]['ModelPackageVersion']}, "
                "the newest approved one before it"
            )
        else:
            log(
                f"note: endpoint {settings.endpoint_name} still serves this version and no older version is "
                "approved, so there is nothing to roll back to: approve another version, or stop the endpoint "
                "with `python -m deploy.teardown`"
            )
    return {"model_package_arn": arn, "status": "Rejected"}


def rollback(
    sm: Any,
    settings: Settings,
    reason: Optional[str] = None,
    deployer: Optional[Deployer] = None,
    log: Callable[[str], None] = logger.info,
) -> dict:
    """Reject the version in service and deploy the previous approved one."""
    group = settings.model_package_group
    approved = _summaries(sm, group, status="Approved")
    if not approved:
        raise ApprovalError(f"nothing to roll back to: model group {group} has no approved version")
    current = deployed_package(sm, settings.endpoint_name) or approved[0]["ModelPackageArn"]
    current_version = describe(sm, current).get("ModelPackageVersion", 0)
    previous = _older(approved, current_version)
    if not previous:
        raise ApprovalError(
            f"nothing to roll back to: no approved version older than version {current_version} in model group {group}"
        )
    target = previous[0]
    note = reason or f"rolled back to version {target['ModelPackageVersion']}"
    set_status(sm, current, "Rejected", note)
    log(f"rejected version {current_version} ({note})")
    package = set_status(
        sm, target["ModelPackageArn"], "Approved", f"restored by rollback from version {current_version}"
    )
    deployer = deployer or in_process_deployer(settings)
    deployment = deployer(state_change_event(package, settings, rollback=True))
    log(f"deployed version {target['ModelPackageVersion']}: {deployment.get('message', deployment)}")
    return {"rolled_back_from": current, "model_package_arn": target["ModelPackageArn"], "deployment": deployment}


# --- CLI -----------------------------------------------------------------------------------------
# The list's metrics and their formats (shares in percent, the others with two decimals) are the
# kernel's, shared with Studio's registry page; `list --json` has every metric as stored.


def format_table(rows: list[dict], endpoint_name: Optional[str] = None) -> str:
    if not rows:
        return "no versions"
    header = ("", "VERSION", "STATUS", "CREATED", "KEY METRICS", "PIPELINE EXECUTION")
    lines = [header]
    for row in rows:
        metrics = metrics_text(row["metrics"])
        lines.append(
            (
                "*" if row["deployed"] else "",
                str(row["version"]),
                row["status"] or "",
                row["created"] or "",
                metrics or "-",
                (row["pipeline_execution"] or "-").split("/")[-1],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)
    endpoint = f"endpoint {endpoint_name}" if endpoint_name else "the endpoint"
    if any(row["deployed"] for row in rows):
        return text + f"\n(* = serving on {endpoint})"
    return text + f"\n(none of these is serving on {endpoint}: `approve VERSION` deploys one)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.approve", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target", choices=("local", "sagemaker"), default=None, help=f"where to run (or {sources('target')})"
    )
    parser.add_argument("--region", default=None, help=f"AWS region (or {sources('region')})")
    parser.add_argument(
        "--group",
        dest="model_package_group",
        default=None,
        help=f"model package group (or {sources('model_package_group')})",
    )
    parser.add_argument("--endpoint-name", default=None, help=f"the endpoint (or {sources('endpoint_name')})")
    commands = parser.add_subparsers(dest="command", required=True)
    described = "versions with status, key metrics, creation time, lineage (* = serving on the endpoint)"
    listing = commands.add_parser("list", help=described, description=f"List the model group's {described}.")
    listing.add_argument(
        "--group",
        dest="model_package_group",
        default=argparse.SUPPRESS,
        help=f"model package group (or {sources('model_package_group')})",
    )
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--limit", type=int, default=20, help="newest N versions (default 20; 0 = all)")
    descriptions = {
        "approve": "Approve a version: set it Approved and deploy it to the endpoint (locally the deploy handler "
        "runs here and prints the endpoint's URL; on SageMaker the EventBridge rule invokes the deploy "
        "Lambda).",
        "reject": "Reject a version (it is never deployed; an endpoint already serving it keeps serving until "
        "`rollback` or a new approval).",
    }
    for name in ("approve", "reject"):
        short = {"approve": "approve a version: deploys it", "reject": "reject a version"}[name]
        command = commands.add_parser(name, help=short, description=descriptions[name])
        command.add_argument("package", nargs="?", help="model package ARN or version number")
        if name == "approve":
            command.add_argument("--latest", action="store_true", help="the newest version of the group")
            command.add_argument(
                "--version",
                dest="version",
                default=None,
                help="the version to approve (the same as the positional argument)",
            )
            command.add_argument(
                "--rollback",
                action="store_true",
                help="deploy it even when the endpoint serves a newer version (without it, "
                "an older version never replaces a newer one)",
            )
        command.add_argument("--reason", default=None, help="stored as the ApprovalDescription")
    command = commands.add_parser(
        "rollback",
        help="deploy the previous approved version",
        description="Reject the version the endpoint serves and deploy the previous approved one.",
    )
    command.add_argument("--reason", default=None)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    console.setup()
    args = _parser().parse_args(argv)
    try:
        settings = resolve(
            {
                "target": args.target,
                "region": args.region,
                "model_package_group": args.model_package_group,
                "endpoint_name": args.endpoint_name,
            }
        )
        if not settings.is_local:
            settings.require_region()
        sm = clients.client("sagemaker", settings)
        group = settings.model_package_group
        if args.command == "list":
            if args.limit < 0:
                raise ApprovalError(f"--limit {args.limit}: pass 0 for all versions or a positive number")
            rows = list_versions(sm, group, deployed_package(sm, settings.endpoint_name), args.limit or None)
            if args.json:
                print(json.dumps(rows, indent=2))
            elif not rows:
                print(f"model group {group} has no versions{_groups_hint(sm, group)}")
            else:
                print(format_table(rows, settings.endpoint_name))
        elif args.command == "approve":
            if args.package and args.version and args.package != args.version:
                raise ApprovalError(f"two versions given ({args.package} and --version {args.version}): pass one")
            reference = args.package or args.version
            if reference and args.latest:
                raise ApprovalError("pass either a version or --latest, not both")
            arn = resolve_arn(sm, group, reference, latest=args.latest)
            print(json.dumps(approve(sm, settings, arn, args.reason, rollback=args.rollback), indent=2, default=str))
        elif args.command == "reject":
            print(json.dumps(reject(sm, settings, resolve_arn(sm, group, args.package), args.reason), indent=2))
        elif args.command == "rollback":
            print(json.dumps(rollback(sm, settings, args.reason), indent=2, default=str))
    except (ApprovalError, SettingsError, DeployError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    console.exit_with(main)
