"""MonitorForecasts on a moto server: stored forecasts read from S3, accuracy published to CloudWatch."""

from __future__ import annotations

import datetime
import json
import re

import boto3
import pandas as pd
import pytest

from evaluation import monitor

BUCKET = "forecast-test-bucket"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/demand/4"


@pytest.fixture
def aws(moto_endpoint):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    return s3, boto3.client("sagemaker", region_name="us-east-1"), boto3.client("cloudwatch", region_name="us-east-1")


def _files(tmp_path):
    days = pd.date_range("2024-01-01", periods=10, freq="D")
    history = pd.DataFrame(
        [
            {
                "item_id": i,
                "timestamp": d.strftime("%Y-%m-%d"),
                "target_value": (10.0 if i == "a" else 20.0) if k < 8 else None,
                "category": c,
            }
            for i, c in (("a", "X"), ("b", "Y"))
            for k, d in enumerate(days)
        ]
    )
    (tmp_path / "input").mkdir()
    history.to_csv(tmp_path / "input" / "part-0.csv", index=False)
    (tmp_path / "forecasts").mkdir()
    pd.DataFrame(
        [
            {"item_id": i, "timestamp": d.strftime("%Y-%m-%d"), "p10": 8.0, "p50": 11.0, "p90": 14.0, "mean": 11.0}
            for i in "ab"
            for d in days[8:]
        ]
    ).to_csv(tmp_path / "forecasts" / "part-0.csv.out", index=False)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "resolved_model.json").write_text(
        json.dumps(
            {
                "model_package_arn": ARN,
                "model_package_group": "demand",
                "model_package_version": 4,
                "forecast_quantiles": "p10,p50,p90",
                "metrics": {"wql": 0.1},
            }
        )
    )
    return history


def _args(tmp_path):
    return monitor.parse_args(
        [
            f"--forecasts={tmp_path / 'forecasts'}",
            f"--history={tmp_path / 'input'}",
            f"--model-dir={tmp_path / 'model'}",
            f"--forecast-history-uri=s3://{BUCKET}/p/forecast-history",
            f"--accuracy-history-uri=s3://{BUCKET}/p/accuracy-history",
            "--execution-id=e2",
            f"--out={tmp_path / 'out'}",
            f"--keep-dir={tmp_path / 'kept'}",
            f"--record-dir={tmp_path / 'record'}",
        ]
    )


def test_given_a_stored_run_when_actuals_arrive_then_scores_are_published_per_model_version(aws, tmp_path):
    s3, sm, cloudwatch = aws
    _files(tmp_path)
    stored = "item_id,timestamp,p10,p50,p90,mean\n" + "".join(
        f"{i},2024-01-0{d},9,12,15,12\n" for i in "ab" for d in (7, 8)
    )
    s3.put_object(Bucket=BUCKET, Key="p/forecast-history/e1/forecasts.csv", Body=stored.encode())
    s3.put_object(
        Bucket=BUCKET,
        Key="p/forecast-history/e1/forecast_meta.json",
        Body=json.dumps(
            {
                "execution_id": "e1",
                "created": "2024-01-06T00:00:00",
                "model_package_arn": ARN,
                "model_package_version": 4,
                "registered_metrics": {"wql": 0.1},
            }
        ).encode(),
    )

    lines: list = []
    result = monitor.run(_args(tmp_path), s3, sm, cloudwatch, log=lines.append)

    scored = result["accuracy"]
    assert scored["points"] == 4 and scored["periods"] == 2 and scored["items"] == 2
    # the log line rounds like the rest of the CLI output (4 significant digits)
    line = next(text for text in lines if text.startswith("[monitor] scored"))
    assert f"wQL {scored['wql']:.4g}, WAPE 0.3333, bias {scored['bias']:.4g}, coverage" in line
    assert all(len(number) <= 7 for number in re.findall(r"\d+\.\d+", line)), line
    assert scored["wape"] == pytest.approx((2 * 2 + 8 * 2) / (10 * 2 + 20 * 2))  # |12-10|, |12-20| on 2 days
    assert scored["registered_wql"] == 0.1
    listed = cloudwatch.list_metrics(Namespace=monitor.NAMESPACE)["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == ["Bias", "Coverage", "WAPE", "WQL"]
    assert {d["Name"]: d["Value"] for d in listed[0]["Dimensions"]} == {
        "ModelPackageGroup": "demand",
        "ModelPackageVersion": "4",
    }
    now = datetime.datetime.now(datetime.timezone.utc)
    stats = cloudwatch.get_metric_statistics(
        Namespace=monitor.NAMESPACE,
        MetricName="WAPE",
        StartTime=now - datetime.timedelta(hours=1),
        EndTime=now + datetime.timedelta(hours=1),
        Period=3600,
        Statistics=["Maximum"],
        Dimensions=[{"Name": "ModelPackageGroup", "Value": "demand"}, {"Name": "ModelPackageVersion", "Value": "4"}],
    )
    assert stats["Datapoints"][0]["Maximum"] == pytest.approx(scored["wape"])
    kept = pd.read_csv(tmp_path / "kept" / "forecasts.csv")
    assert len(kept) == 4 and list(kept.columns) == ["item_id", "timestamp", "p10", "p50", "p90", "mean"]
    assert json.loads((tmp_path / "kept" / "forecast_meta.json").read_text())["model_package_arn"] == ARN
    assert json.loads((tmp_path / "record" / "accuracy.json").read_text())["execution_id"] == "e2"
    document = json.loads((tmp_path / "out" / "accuracy.json").read_text())
    assert [r["execution_id"] for r in document["history"]] == ["e2"]
    # the package is unknown to this SageMaker: drift says it cannot compare instead of failing the run
    assert json.loads((tmp_path / "out" / "drift.json").read_text())["available"] is False


def test_given_an_empty_history_then_nothing_is_scored_and_nothing_published(aws, tmp_path):
    s3, sm, cloudwatch = aws
    _files(tmp_path)
    result = monitor.run(_args(tmp_path), s3, sm, cloudwatch, log=lambda _: None)
    assert result["accuracy"] is None
    assert cloudwatch.list_metrics(Namespace=monitor.NAMESPACE)["Metrics"] == []
    assert json.loads((tmp_path / "out" / "accuracy.json").read_text())["accuracy_of_previous_forecasts"] is None


def test_given_periods_an_earlier_run_scored_then_they_are_not_scored_again(aws, tmp_path):
    s3, sm, cloudwatch = aws
    _files(tmp_path)
    s3.put_object(
        Bucket=BUCKET,
        Key="p/forecast-history/e1/forecasts.csv",
        Body=b"item_id,timestamp,p10,p50,p90,mean\na,2024-01-07,9,12,15,12\na,2024-01-08,9,12,15,12\n",
    )
    s3.put_object(
        Bucket=BUCKET,
        Key="p/forecast-history/e1/forecast_meta.json",
        Body=json.dumps({"execution_id": "e1", "created": "2024-01-06", "model_package_arn": ARN}).encode(),
    )
    s3.put_object(Bucket=BUCKET, Key="p/forecast-history/broken/forecast_meta.json", Body=b"{not json")
    s3.put_object(
        Bucket=BUCKET,
        Key="p/accuracy-history/e0/accuracy.json",
        Body=json.dumps(
            {"execution_id": "e0", "created": "2024-01-08T12:00:00", "end": "2024-01-07", "wql": 0.3}
        ).encode(),
    )

    result = monitor.run(_args(tmp_path), s3, sm, cloudwatch, log=lambda _: None)

    assert result["accuracy"]["periods"] == 1 and result["accuracy"]["start"] == "2024-01-08"
    document = json.loads((tmp_path / "out" / "accuracy.json").read_text())
    assert [r["execution_id"] for r in document["history"]] == ["e0", "e2"]
