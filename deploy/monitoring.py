"""Endpoint monitoring: a CloudWatch dashboard and alarms that notify an SNS topic.

    python -m deploy.monitoring [--email ops@example.com] [--latency-ms 2000] [--errors 5]

SageMaker publishes endpoint invocation metrics in the `AWS/SageMaker` namespace with the
dimensions EndpointName AND VariantName (the recipe's `AWS/SageMaker/Endpoints` namespace
and EndpointName-only dimensions match no metric, so its alarm never fires). Instance
metrics (CPU, memory) live in `/aws/sagemaker/Endpoints`. ModelLatency is in MICROseconds.

Creates or updates, idempotently (CloudWatch's put calls and SNS CreateTopic are upserts):
  - SNS topic `<endpoint>-alarms` (+ an email subscription with --email);
  - dashboard `<endpoint>`: invocations, 4XX/5XX errors, model and overhead latency, CPU/memory;
  - alarms `<endpoint>-5xx-errors`, `<endpoint>-4xx-errors`, `<endpoint>-model-latency-p90`,
    `<endpoint>-no-invocations` (missing data counts as breaching: no traffic means no data).

With an Approved model package whose registration recorded a wQL (metric_wql), also the alarm
`<endpoint>-forecast-wql`: the batch pipeline's MonitorForecasts step publishes the wQL of
earlier forecasts against their actuals (namespace DemandForecasting/Accuracy, metric WQL,
per ModelPackageGroup and ModelPackageVersion); the alarm fires when that live wQL exceeds
the registered wQL x --accuracy-factor (default 1.5). Missing data is not breaching (batch
runs are days apart).

Locally there is no CloudWatch: the command prints the local endpoint's /metrics and, under
`forecast_accuracy_alarm`, the forecast-accuracy alarm evaluated on the wQL values the batch
pipeline published to the local CloudWatch file (<home>/cloudwatch/metrics.jsonl).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, Callable, Optional

from deploy import clients
from processing.kernel import console
from processing.kernel.metric_format import format_share
from processing.kernel.settings import Settings, SettingsError, resolve, sources

logger = logging.getLogger(__name__)

NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
VARIANT_NAME = "AllTraffic"  # deploy.handler's single variant
ACCURACY_NAMESPACE = "DemandForecasting/Accuracy"  # evaluation.monitor publishes here
DEFAULT_ACCURACY_FACTOR = 1.5
Log = Callable[[str], None]


def topic_name(settings: Settings) -> str:
    return f"{settings.endpoint_name}-alarms"


def dashboard_name(settings: Settings) -> str:
    return settings.endpoint_name


def alarm_names(settings: Settings) -> list[str]:
    return [
        f"{settings.endpoint_name}-{suffix}"
        for suffix in ("5xx-errors", "4xx-errors", "model-latency-p90", "no-invocations")
    ]


def _dimensions(settings: Settings) -> list[dict]:
    return [{"Name": "EndpointName", "Value": settings.endpoint_name}, {"Name": "VariantName", "Value": VARIANT_NAME}]


def dashboard_body(settings: Settings) -> dict:
    endpoint, region = settings.endpoint_name, settings.region

    def metric(namespace: str, name: str, **options: Any) -> list:
        return [namespace, name, "EndpointName", endpoint, "VariantName", VARIANT_NAME, options]

    def widget(title: str, metrics: list, x: int, y: int, stat: str, **properties: Any) -> dict:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "metrics": metrics,
                "view": "timeSeries",
                "region": region,
                "period": 60,
                "stat": stat,
                **properties,
            },
        }

    return {
        "widgets": [
            widget("Invocations", [metric(NAMESPACE, "Invocations", label="Invocations")], 0, 0, "Sum"),
            widget(
                "Errors",
                [
                    metric(NAMESPACE, "Invocation4XXErrors", label="4XX"),
                    metric(NAMESPACE, "Invocation5XXErrors", label="5XX"),
                ],
                12,
                0,
                "Sum",
            ),
            widget(
                "Latency (microseconds)",
                [
                    metric(NAMESPACE, "ModelLatency", stat="p50", label="model p50"),
                    metric(NAMESPACE, "ModelLatency", stat="p90", label="model p90"),
                    metric(NAMESPACE, "OverheadLatency", stat="Average", label="overhead avg"),
                ],
                0,
                6,
                "Average",
            ),
            widget(
                "Instances (%)",
                [
                    metric(INSTANCE_NAMESPACE, "CPUUtilization", label="CPU"),
                    metric(INSTANCE_NAMESPACE, "MemoryUtilization", label="memory"),
                ],
                12,
                6,
                "Average",
            ),
        ]
    }


def alarm_requests(
    settings: Settings,
    topic_arn: str,
    *,
    errors: int = 5,
    client_errors: int = 50,
    latency_ms: float = 2000.0,
    quiet_hours: int = 24,
) -> list[dict]:
    """PutMetricAlarm requests; thresholds are per 5 minutes (errors) or per hour (traffic)."""
    endpoint = settings.endpoint_name
    five_xx, four_xx, latency, silent = alarm_names(settings)
    common = {
        "Namespace": NAMESPACE,
        "Dimensions": _dimensions(settings),
        "AlarmActions": [topic_arn],
        "OKActions": [topic_arn],
        "ActionsEnabled": True,
    }
    return [
        {
            **common,
            "AlarmName": five_xx,
            "MetricName": "Invocation5XXErrors",
            "Statistic": "Sum",
            "AlarmDescription": f"{endpoint}: model errors (5XX) over {errors} in 5 minutes",
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": float(errors),
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        },
        {
            **common,
            "AlarmName": four_xx,
            "MetricName": "Invocation4XXErrors",
            "Statistic": "Sum",
            "AlarmDescription": f"{endpoint}: rejected requests (4XX) over {client_errors} in 5 minutes, twice",
            "Period": 300,
            "EvaluationPeriods": 2,
            "Threshold": float(client_errors),
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        },
        {
            **common,
            "AlarmName": latency,
            "MetricName": "ModelLatency",
            "ExtendedStatistic": "p90",
            "AlarmDescription": f"{endpoint}: p90 model latency above {latency_ms:g} ms for 15 minutes",
            "Period": 300,
            "EvaluationPeriods": 3,
            "DatapointsToAlarm": 3,
            "Threshold": latency_ms * 1000.0,
            "Unit": "Microseconds",
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        },
        {
            **common,
            "AlarmName": silent,
            "MetricName": "Invocations",
            "Statistic": "Sum",
            "AlarmDescription": f"{endpoint}: no invocations for {quiet_hours} hours",
            "Period": 3600,
            "EvaluationPeriods": quiet_hours,
            "Threshold": 1.0,
            "ComparisonOperator": "LessThanThreshold",
            "TreatMissingData": "breaching",
        },
    ]


def ensure_monitoring(
    settings: Settings, *, email: Optional[str] = None, log: Log = logger.info, **thresholds: Any
) -> dict:
    """Create or update the topic, dashboard and alarms for settings.endpoint_name."""
    if settings.is_local:
        raise ValueError(
            "CloudWatch exists on the SageMaker target only; locally read the endpoint's "
            "/metrics (python -m deploy.monitoring prints them)"
        )
    check_thresholds(
        thresholds.get("errors", 5),
        thresholds.get("latency_ms", 2000.0),
        thresholds.get("quiet_hours", 24),
        thresholds.get("accuracy_factor", DEFAULT_ACCURACY_FACTOR),
    )  # before the topic and the dashboard: a bad factor used to fail after creating them
    settings.require_region()
    sns = clients.client("sns", settings)
    cloudwatch = clients.client("cloudwatch", settings)
    topic_arn = sns.create_topic(
        Name=topic_name(settings), Tags=[{"Key": k, "Value": v} for k, v in settings.tags.items()]
    )["TopicArn"]
    if email:
        subscribed = _subscribed(sns, topic_arn)
        if email not in subscribed:
            sns.subscribe(TopicArn=topic_arn, Protocol="email", Endpoint=email)
            log(f"subscribed {email} to {topic_arn} (confirm from the email AWS sends)")
    cloudwatch.put_dashboard(DashboardName=dashboard_name(settings), DashboardBody=json.dumps(dashboard_body(settings)))
    accuracy_factor = thresholds.pop("accuracy_factor", DEFAULT_ACCURACY_FACTOR)
    requests = alarm_requests(settings, topic_arn, **thresholds)
    package = live_package(clients.client("sagemaker", settings), settings.model_package_group)
    accuracy = accuracy_alarm_request(settings, topic_arn, package, accuracy_factor) if package else None
    if accuracy:
        requests.append(accuracy)
    else:
        log(
            f"no forecast-accuracy alarm: {settings.model_package_group} has no Approved package with a "
            "registered wQL (metric_wql)"
        )
    for request in requests:
        cloudwatch.put_metric_alarm(**request)
    names = [r["AlarmName"] for r in requests]
    log(f"dashboard {dashboard_name(settings)} and {len(names)} alarms notify {topic_arn}")
    return {"topic_arn": topic_arn, "dashboard": dashboard_name(settings), "alarms": names}


def accuracy_alarm_name(settings: Settings) -> str:
    return f"{settings.endpoint_name}-forecast-wql"


def accuracy_alarm_request(
    settings: Settings, topic_arn: str, package: dict, factor: float = DEFAULT_ACCURACY_FACTOR
) -> Optional[dict]:
    """PutMetricAlarm on the live wQL of `package`'s forecasts, or None without a registered wQL."""
    check_accuracy_factor(factor)
    try:
        registered = float((package.get("CustomerMetadataProperties") or {})["metric_wql"])
    except (KeyError, ValueError):
        return None
    version = str(package.get("ModelPackageVersion") or package["ModelPackageArn"].rsplit("/", 1)[-1])
    group = package.get("ModelPackageGroupName") or settings.model_package_group
    return {
        "AlarmName": accuracy_alarm_name(settings),
        "Namespace": ACCURACY_NAMESPACE,
        "MetricName": "WQL",
        "Dimensions": [
            {"Name": "ModelPackageGroup", "Value": group},
            {"Name": "ModelPackageVersion", "Value": version},
        ],
        "Statistic": "Maximum",
        "Period": 86400,
        "EvaluationPeriods": 1,
        "Threshold": registered * factor,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
        "AlarmActions": [topic_arn],
        "OKActions": [topic_arn],
        "ActionsEnabled": True,
        "AlarmDescription": (
            f"{group} version {version}: wQL of batch forecasts against actuals above "
            f"{factor:g} x the registered wQL {registered:.4g}"
        ),
    }


def live_package(sm: Any, group: str) -> Optional[dict]:
    """The newest Approved package of the group (what the endpoint and the batch pipeline use)."""
    from botocore.exceptions import ClientError

    try:
        listed = sm.list_model_packages(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )
    except ClientError:
        return None
    summaries = listed.get("ModelPackageSummaryList") or []
    return sm.describe_model_package(ModelPackageName=summaries[0]["ModelPackageArn"]) if summaries else None


def _subscribed(sns: Any, topic_arn: str) -> set[str]:
    endpoints, params = set(), {"TopicArn": topic_arn}
    while True:
        page = sns.list_subscriptions_by_topic(**params)
        endpoints |= {s.get("Endpoint") for s in page.get("Subscriptions", [])}
        if not page.get("NextToken"):
            return endpoints
        params["NextToken"] = page["NextToken"]


def local_metrics(settings: Settings) -> Optional[dict]:
    """The running local endpoint's /metrics document, or None when it is not running."""
    from deploy import endpoint

    state = endpoint.running_state(settings.home_path, settings.endpoint_name)
    if not state:
        return None
    status, _, body = endpoint.http_request(state["url"] + "/metrics", timeout=5)
    if status != 200:
        raise RuntimeError(f"{state['url']}/metrics answered HTTP {status}: {body[:200]!r}")
    return json.loads(body)


LOCAL_METRICS_FILE = ("cloudwatch", "metrics.jsonl")  # pipelines.local.aws_services.METRICS_FILE


def check_thresholds(errors: int, latency_ms: float, quiet_hours: int, accuracy_factor: float) -> None:
    """Refuse a threshold no alarm can use, naming the flag, before anything is created."""
    if errors < 1:
        raise ValueError(f"--errors {errors}: must be at least 1 (5XX errors in 5 minutes that raise the alarm)")
    if not latency_ms > 0:
        raise ValueError(f"--latency-ms {latency_ms:g}: must be above 0 (p90 model latency in milliseconds)")
    if quiet_hours < 1:
        raise ValueError(f"--quiet-hours {quiet_hours}: must be at least 1 (hours without invocations)")
    check_accuracy_factor(accuracy_factor)


def check_accuracy_factor(factor: float) -> None:
    """The one check (and wording) of the accuracy alarm's factor, for the CLI and the alarm request."""
    if not factor > 1:
        raise ValueError(f"--accuracy-factor {factor:g}: must be above 1 (1.5: alarm at 50% worse than registered)")


def local_accuracy_alarm(settings: Settings, factor: float = DEFAULT_ACCURACY_FACTOR) -> dict:
    """The `<endpoint>-forecast-wql` alarm evaluated on the local CloudWatch file: the newest
    Approved version's registered wQL x `factor` against the WQL values the batch pipeline's
    MonitorForecasts published for that version (the latest batch run's). Locally there is no
    alarm to notify anyone; this says what it would be."""
    name = accuracy_alarm_name(settings)
    package = live_package(clients.client("sagemaker", settings), settings.model_package_group)
    if package is None:
        return {"alarm": name, "state": "NONE", "reason": f"{settings.model_package_group} has no Approved version"}
    version = str(package.get("ModelPackageVersion") or package["ModelPackageArn"].rsplit("/", 1)[-1])
    try:
        registered = float((package.get("CustomerMetadataProperties") or {})["metric_wql"])
    except (KeyError, ValueError):
        return {"alarm": name, "state": "NONE", "version": version, "reason": "no registered wQL (metric_wql)"}
    threshold = registered * factor
    values = []
    path = settings.home_path.joinpath(*LOCAL_METRICS_FILE)
    lines = path.read_text().splitlines() if path.is_file() else []
    for line in lines:
        try:
            datum = json.loads(line)
        except ValueError:
            continue
        dimensions = {d.get("Name"): d.get("Value") for d in datum.get("Dimensions") or []}
        if (
            datum.get("Namespace") == ACCURACY_NAMESPACE
            and datum.get("MetricName") == "WQL"
            and dimensions.get("ModelPackageGroup") == settings.model_package_group
            and dimensions.get("ModelPackageVersion") == version
        ):
            values.append((str(datum.get("Timestamp") or ""), float(datum["Value"])))
    result: dict = {
        "alarm": name,
        "version": version,
        "registered_wql": registered,
        "factor": factor,
        "threshold": threshold,
    }
    if not values:
        return {
            **result,
            "state": "INSUFFICIENT_DATA",
            "reason": (
                f"no wQL published for version {version} yet: a batch run scores earlier forecasts once "
                "their actuals arrive in its input"
            ),
        }
    when, latest = max(values)
    state = "ALARM" if latest > threshold else "OK"
    return {
        **result,
        "state": state,
        "latest_wql": latest,
        "latest_at": when,
        "reason": (
            f"latest wQL {format_share(latest)} of version {version}'s forecasts is "
            f"{'above' if state == 'ALARM' else 'within'} {factor:g} x its registered wQL {format_share(registered)} "
            f"= {format_share(threshold)}"
        ),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.monitoring", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target", choices=("local", "sagemaker"), default=None, help=f"where to run (or {sources('target')})"
    )
    parser.add_argument("--region", default=None, help=f"AWS region (or {sources('region')})")
    parser.add_argument("--endpoint-name", default=None, help=f"the endpoint (or {sources('endpoint_name')})")
    parser.add_argument("--email", default=None, help="subscribe this address to the alarm topic")
    parser.add_argument(
        "--errors", type=int, default=5, help="5XX errors in 5 minutes that raise the alarm (default: 5)"
    )
    parser.add_argument(
        "--latency-ms", type=float, default=2000.0, help="p90 model latency alarm threshold, ms (default: 2000)"
    )
    parser.add_argument(
        "--quiet-hours", type=int, default=24, help="hours without invocations before alarming (default: 24)"
    )
    parser.add_argument(
        "--accuracy-factor",
        type=float,
        default=DEFAULT_ACCURACY_FACTOR,
        help="alarm when the live wQL of batch forecasts exceeds the registered wQL x this (default: %(default)s)",
    )
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    console.setup()
    args = _parser().parse_args(argv)
    try:
        settings = resolve({"target": args.target, "region": args.region, "endpoint_name": args.endpoint_name})
        check_thresholds(args.errors, args.latency_ms, args.quiet_hours, args.accuracy_factor)
        if settings.is_local:
            if args.email:
                raise ValueError(
                    f"--email {args.email}: the local target has no alarm topic to subscribe to; "
                    "alarms notify on the SageMaker target (--target sagemaker)"
                )
            metrics = local_metrics(settings)
            accuracy = local_accuracy_alarm(settings, args.accuracy_factor)
            if metrics is None:
                from deploy import approve

                hint = approve.deploy_hint(clients.client("sagemaker", settings), settings.model_package_group)
                print(
                    f"the local endpoint {settings.endpoint_name} is not running: approve a model "
                    f"({hint}) to start it; "
                    "CloudWatch dashboards and alarms exist on the SageMaker target (--target sagemaker)"
                )
                print(f"{accuracy['alarm']} (evaluated locally): {accuracy['state']}: {accuracy['reason']}")
                return 1
            print(json.dumps({**metrics, "forecast_accuracy_alarm": accuracy}, indent=2))
            return 0
        result = ensure_monitoring(
            settings,
            email=args.email,
            errors=args.errors,
            latency_ms=args.latency_ms,
            quiet_hours=args.quiet_hours,
            accuracy_factor=args.accuracy_factor,
        )
        print(json.dumps(result, indent=2))
    except (SettingsError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    console.exit_with(main)
