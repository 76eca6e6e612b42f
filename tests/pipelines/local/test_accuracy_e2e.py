"""End to end (issue 15): forecast-accuracy monitoring and input drift on the local runtime.

Train on data up to 2023-04-30 (Approved), batch-forecast the next 14 days, then run the
batch pipeline on input that carries those 14 days of actuals: the report's
accuracy_of_previous_forecasts equals a wQL computed here from the first run's
forecasts.parquet and the actuals. The second input also drops one item, adds a new one and
moves one item's level, and the report states all three. Tiny data: 6 items.
"""

from __future__ import annotations

import json
import socket

import numpy as np
import pandas as pd
import pytest

from deploy import endpoint
from pipelines.local import runtime
from pipelines.local.store import local_path
from pipelines.run import main as run_main
from processing.generate import generate_sales, write_frame
from processing.kernel.settings import resolve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
TRAIN_END = pd.Timestamp("2023-04-30")
QUANTILES = {"p10": 0.1, "p50": 0.5, "p90": 0.9}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def frames(monkeypatch):
    monkeypatch.setenv("FORECAST_ENDPOINT_PORT", str(_free_port()))
    frame = generate_sales(products=3, regions=2, start="2023-01-01", end="2023-05-14", future_days=14)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    yield frame
    endpoint.stop(resolve().home_path, resolve().endpoint_name)


def run(args, capsys):
    code = run_main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err, runtime.load_executions(resolve())[0]


def test_given_stored_forecasts_when_actuals_arrive_then_the_report_scores_them_and_states_drift(
    frames, tmp_path, capsys
):
    frame = frames
    items = sorted(frame["item_id"].unique())
    train = frame[frame["timestamp"] <= TRAIN_END]
    first_input = frame[frame["timestamp"] <= TRAIN_END + pd.Timedelta(days=14)].copy()
    first_input.loc[first_input["timestamp"] > TRAIN_END, "target_value"] = np.nan
    code, output, _ = run(
        [
            "--param",
            f"InputDataUrl={write_frame(train, tmp_path / 'train.csv')}",
            "--param",
            "AutoMLAlgorithms=ets,npts",
            "--param",
            "QualityThreshold=10",
            "--param",
            "ModelApprovalStatus=Approved",
        ],
        capsys,
    )
    assert code == 0, output[-3000:]

    first_report = tmp_path / "report-1"
    code, output, _ = run(
        [
            "--pipeline",
            "batch",
            "--param",
            f"InputDataUrl={write_frame(first_input, tmp_path / 'b1.csv')}",
            "--param",
            f"OutputUrl={first_report}",
        ],
        capsys,
    )
    assert code == 0, output[-3000:]
    first_summary = json.loads((first_report / "summary.json").read_text())
    assert first_summary["accuracy_of_previous_forecasts"] is None
    assert first_summary["input_drift"]["new_items_count"] == 0
    settings = resolve()
    kept = list(local_path(settings.s3_uri("forecast-history"), settings).glob("*/forecasts.csv"))
    assert len(kept) == 1

    # the second input: actuals for the 14 forecast days, one item gone, one new, one moved x5
    gone, moved = items[0], items[1]
    second = frame[frame["item_id"] != gone].copy()
    recent = (second["item_id"] == moved) & (second["timestamp"] > TRAIN_END) & second["target_value"].notna()
    second.loc[recent, "target_value"] *= 5
    newcomer = frame[frame["item_id"] == items[2]].assign(item_id="NEW_ITEM")
    second = pd.concat([second, newcomer], ignore_index=True)
    second_report = tmp_path / "report-2"
    code, output, record = run(
        [
            "--pipeline",
            "batch",
            "--param",
            f"InputDataUrl={write_frame(second, tmp_path / 'b2.csv')}",
            "--param",
            f"OutputUrl={second_report}",
        ],
        capsys,
    )
    assert code == 0, output[-3000:]
    summary = json.loads((second_report / "summary.json").read_text())
    accuracy = summary["accuracy_of_previous_forecasts"]

    # forecasts.parquet: full precision (forecasts.csv is rounded for planners)
    forecasts = pd.read_parquet(first_report / "forecasts.parquet")
    forecasts["timestamp"] = pd.to_datetime(forecasts["timestamp"])
    actuals = second.dropna(subset=["target_value"])[["item_id", "timestamp", "target_value"]]
    joined = forecasts.merge(actuals, on=["item_id", "timestamp"])
    assert len(joined) == 14 * (len(items) - 1)
    a = joined["target_value"].to_numpy()
    expected_wql = (
        np.mean([2 * np.maximum(q * (a - joined[n]), (q - 1) * (a - joined[n])).sum() for n, q in QUANTILES.items()])
        / np.abs(a).sum()
    )
    assert accuracy["wql"] == pytest.approx(expected_wql, rel=1e-6)
    assert accuracy["wape"] == pytest.approx(np.abs(a - joined["mean"]).sum() / np.abs(a).sum(), rel=1e-6)
    assert accuracy["periods"] == 14 and accuracy["items"] == len(items) - 1
    assert accuracy["coverage"] == pytest.approx(((a >= joined["p10"]) & (a <= joined["p90"])).mean())
    assert accuracy["model_package_arn"] == first_summary["model_package_arn"]
    assert set(accuracy["by_attribute"]) >= {"category", "region"}
    assert list(accuracy["by_model_version"]) == ["1"]

    history = list(local_path(settings.s3_uri("accuracy-history"), settings).glob("*/accuracy.json"))
    assert len(history) == 1
    assert json.loads(history[0].read_text())["wql"] == pytest.approx(expected_wql, rel=1e-6)
    assert (second_report / "charts" / "accuracy_over_time.png").is_file()
    # MonitorForecasts made its S3 and CloudWatch calls with plain boto3; the loopback API served them
    [monitor] = [s for s in record["steps"] if s["name"] == "MonitorForecasts"]
    served = {(c["service"], c["operation"], c["status"]) for c in monitor["aws_calls"]}
    assert {("s3", "ListObjectsV2", 200), ("s3", "GetObject", 200), ("cloudwatch", "PutMetricData", 200)} <= served
    assert not [c for c in monitor["aws_calls"] if c["error"] == "NotServedLocally"]
    metrics = [
        json.loads(line) for line in (settings.home_path / "cloudwatch" / "metrics.jsonl").read_text().splitlines()
    ]
    [wql] = [m for m in metrics if m["MetricName"] == "WQL"]
    assert wql["Namespace"] == "DemandForecasting/Accuracy" and wql["Value"] == pytest.approx(expected_wql, rel=1e-6)
    assert {"Name": "ModelPackageVersion", "Value": "1"} in wql["Dimensions"]

    drift = summary["input_drift"]
    assert drift["disappeared_items"] == [gone]
    assert [n["item_id"] for n in drift["new_items"]] == ["NEW_ITEM"]
    assert moved in [s["item_id"] for s in drift["level_shifts"]]
    page = (second_report / "report.html").read_text()
    assert "Accuracy of previous forecasts" in page and "What changed since training" in page
    assert "NEW_ITEM" in page and "accuracy_over_time.png" in page
