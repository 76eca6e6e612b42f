"""Monitoring: dashboard, alarms and topic against moto; every request validated."""

from __future__ import annotations

import json

import pytest

from deploy import clients, monitoring
from tests.deploy.aws_support import aws_requests, sagemaker_target  # noqa: F401 - fixtures


def quiet(_: str) -> None:
    return None


def test_given_an_endpoint_when_monitoring_is_set_up_then_alarms_watch_the_real_metric_names(
    sagemaker_target, aws_requests
):
    result = monitoring.ensure_monitoring(sagemaker_target, email="ops@example.com", log=quiet)

    cloudwatch = clients.client("cloudwatch", sagemaker_target)
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNamePrefix="demand-forecast-")["MetricAlarms"]}
    assert sorted(alarms) == sorted(result["alarms"])
    for alarm in alarms.values():
        assert alarm["Namespace"] == "AWS/SageMaker"
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
            "EndpointName": "demand-forecast",
            "VariantName": "AllTraffic",
        }
        assert alarm["AlarmActions"] == [result["topic_arn"]]
    assert alarms["demand-forecast-5xx-errors"]["MetricName"] == "Invocation5XXErrors"
    assert alarms["demand-forecast-no-invocations"]["TreatMissingData"] == "breaching"
    assert alarms["demand-forecast-model-latency-p90"]["Threshold"] == 2_000_000.0  # microseconds
    body = json.loads(cloudwatch.get_dashboard(DashboardName="demand-forecast")["DashboardBody"])
    metric_names = {m[1] for w in body["widgets"] for m in w["properties"]["metrics"]}
    assert {"Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "ModelLatency"} <= metric_names
    assert all(
        m[2:6] == ["EndpointName", "demand-forecast", "VariantName", "AllTraffic"]
        for w in body["widgets"]
        for m in w["properties"]["metrics"]
    )
    subscriptions = clients.client("sns", sagemaker_target).list_subscriptions_by_topic(TopicArn=result["topic_arn"])
    assert [s["Endpoint"] for s in subscriptions["Subscriptions"]] == ["ops@example.com"]
    assert {"PutDashboard", "PutMetricAlarm", "CreateTopic", "Subscribe"} <= set(aws_requests.operations())


def test_given_monitoring_exists_when_run_again_then_it_converges_without_duplicates(sagemaker_target, aws_requests):
    first = monitoring.ensure_monitoring(sagemaker_target, email="ops@example.com", log=quiet)

    second = monitoring.ensure_monitoring(sagemaker_target, email="ops@example.com", log=quiet, latency_ms=500)

    assert second["topic_arn"] == first["topic_arn"]
    cloudwatch = clients.client("cloudwatch", sagemaker_target)
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix="demand-forecast-")["MetricAlarms"]
    assert len(alarms) == 4
    latency = next(a for a in alarms if a["AlarmName"].endswith("latency-p90"))
    assert latency["Threshold"] == 500_000.0
    assert aws_requests.operations().count("Subscribe") == 1


def test_on_the_local_target_without_a_running_endpoint_it_says_how_to_start_one(capsys, monkeypatch):
    monkeypatch.setenv("FORECAST_TARGET", "local")

    assert monitoring.main([]) == 1
    assert "approve --latest" in capsys.readouterr().out  # nothing approved yet: the newest version
    with pytest.raises(ValueError, match="SageMaker target only"):
        monitoring.ensure_monitoring(monitoring.resolve())


def test_given_an_approved_package_with_a_registered_wql_then_an_alarm_watches_its_live_wql(
    sagemaker_target, aws_requests
):
    from tests.deploy.aws_support import CONTAINERS, ensure_group

    sm = clients.client("sagemaker", sagemaker_target)
    group = sagemaker_target.model_package_group
    ensure_group(sm, group)
    arn = sm.create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": CONTAINERS,
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={"metric_wql": "0.2", "metric_wape": "0.25"},
    )["ModelPackageArn"]

    result = monitoring.ensure_monitoring(sagemaker_target, log=quiet, accuracy_factor=1.5)

    assert "demand-forecast-forecast-wql" in result["alarms"]
    [alarm] = clients.client("cloudwatch", sagemaker_target).describe_alarms(
        AlarmNames=["demand-forecast-forecast-wql"]
    )["MetricAlarms"]
    assert alarm["Namespace"] == "DemandForecasting/Accuracy" and alarm["MetricName"] == "WQL"
    assert alarm["Threshold"] == pytest.approx(0.3)
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
        "ModelPackageGroup": group,
        "ModelPackageVersion": arn.rsplit("/", 1)[-1],
    }
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_given_no_approved_package_then_no_accuracy_alarm_is_made_and_the_factor_is_checked(
    sagemaker_target, aws_requests
):
    result = monitoring.ensure_monitoring(sagemaker_target, log=quiet)
    assert "demand-forecast-forecast-wql" not in result["alarms"]
    with pytest.raises(ValueError, match="^--accuracy-factor 1: must be above 1 "):
        monitoring.accuracy_alarm_request(sagemaker_target, "arn:topic", {"ModelPackageArn": "a/1"}, factor=1)


def test_a_bad_threshold_is_refused_naming_the_flag_before_any_topic_or_dashboard_exists(
    sagemaker_target, aws_requests, capsys
):
    """--accuracy-factor 0.5 used to fail only after the SNS topic and the dashboard were made;
    locally it was accepted and ignored."""
    argv = ["--target", "sagemaker", "--region", "us-east-1", "--accuracy-factor", "0.5"]
    assert monitoring.main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --accuracy-factor 0.5: must be above 1 (1.5: alarm at 50% worse than registered)"
    )
    assert clients.client("sns", sagemaker_target).list_topics()["Topics"] == []
    assert clients.client("cloudwatch", sagemaker_target).list_dashboards()["DashboardEntries"] == []
    assert monitoring.main(["--target", "local", "--errors", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: --errors 0: must be at least 1")


def _published(settings, version: str, value: float, when: str) -> None:
    """One WQL datum as MonitorForecasts' PutMetricData leaves it in the local CloudWatch file."""
    from pipelines.local import aws_services

    path = settings.home_path.joinpath(*aws_services.METRICS_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    datum = {
        "MetricName": "WQL",
        "Dimensions": [
            {"Name": "ModelPackageGroup", "Value": settings.model_package_group},
            {"Name": "ModelPackageVersion", "Value": version},
        ],
        "Timestamp": when,
        "Value": value,
        "Unit": "None",
        "Namespace": "DemandForecasting/Accuracy",
    }
    with path.open("a") as out:
        out.write(json.dumps(datum) + "\n")


def test_locally_the_forecast_accuracy_alarm_is_evaluated_on_the_published_wql_of_the_newest_approved_version(
    monkeypatch, capsys
):
    """Locally nothing said whether the accuracy alarm would fire: --accuracy-factor was ignored."""
    from deploy.approve import set_status
    from tests.deploy.aws_support import ensure_group, local_sagemaker, register_version

    monkeypatch.setenv("FORECAST_TARGET", "local")
    settings = monitoring.resolve()
    sm = local_sagemaker(settings)
    ensure_group(sm, settings.model_package_group)
    arn = register_version(sm, settings.model_package_group, status="Approved")
    sm.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"metric_wql": "0.02"})
    assert monitoring.local_accuracy_alarm(settings)["state"] == "INSUFFICIENT_DATA"

    _published(settings, "1", 0.05, "2026-01-01T00:00:00+00:00")
    _published(settings, "1", 0.025, "2026-01-15T00:00:00+00:00")  # the latest run's: within 1.5 x 0.02
    _published(settings, "2", 0.9, "2026-01-16T00:00:00+00:00")  # another version's
    alarm = monitoring.local_accuracy_alarm(settings)
    assert (alarm["state"], alarm["latest_wql"], alarm["threshold"]) == ("OK", 0.025, pytest.approx(0.03))
    assert (
        alarm["reason"] == "latest wQL 2.50% of version 1's forecasts is within 1.5 x its registered wQL 2.00% = 3.00%"
    )
    assert monitoring.local_accuracy_alarm(settings, 1.2)["state"] == "ALARM"

    assert monitoring.main(["--accuracy-factor", "1.2"]) == 1  # no endpoint running: said, with the alarm
    out = capsys.readouterr().out
    assert "demand-forecast-forecast-wql (evaluated locally): ALARM: latest wQL 2.50%" in out
    _published(settings, "1", 0.00002, "2026-01-22T00:00:00+00:00")  # a tiny wQL is not "0.00%"
    assert monitoring.local_accuracy_alarm(settings)["reason"].startswith("latest wQL <0.01% of version 1's")
    set_status(sm, arn, "Rejected", "test")
    assert monitoring.local_accuracy_alarm(settings)["state"] == "NONE"


def test_locally_without_an_endpoint_the_hint_names_the_newest_approved_version_not_a_rejected_newer_one(
    monkeypatch, capsys
):
    from tests.deploy.aws_support import ensure_group, local_sagemaker, register_version

    monkeypatch.setenv("FORECAST_TARGET", "local")
    settings = monitoring.resolve()
    sm = local_sagemaker(settings)
    ensure_group(sm, settings.model_package_group)
    register_version(sm, settings.model_package_group, status="Approved")
    register_version(sm, settings.model_package_group, status="Rejected")
    assert monitoring.main([]) == 1
    assert "approve a model (python -m deploy.approve approve 1) to start it" in capsys.readouterr().out
