"""End to end: train an Approved model locally, then the batch pipeline forecasts every item.

Small on purpose (10 items x 300 days, two fast candidate algorithms).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from deploy import endpoint
from pipelines.local import runtime
from pipelines.run import main as run_main
from processing.generate import generate_sales, write_frame
from processing.kernel.settings import resolve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # local pipeline runs end to end
FUTURE_DAYS = 14


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def data(tmp_path, monkeypatch):
    """History for training, and the same history plus 14 future rows per item for the batch."""
    monkeypatch.setenv("FORECAST_ENDPOINT_PORT", str(_free_port()))
    frame = generate_sales(products=5, regions=2, start="2023-01-01", end="2023-10-27", future_days=FUTURE_DAYS)
    history = frame[frame["target_value"].notna()]
    yield write_frame(history, tmp_path / "history.csv"), write_frame(frame, tmp_path / "batch.csv"), frame
    endpoint.stop(resolve().home_path, resolve().endpoint_name)  # the Deploy step started one


def run(args, capsys):
    code = run_main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err, runtime.load_executions(resolve())[0]


def test_given_an_approved_model_when_the_batch_pipeline_runs_then_every_item_is_forecast_and_reported(
    data, tmp_path, capsys
):
    history, batch, frame = data
    code, output, _ = run(
        [
            "--param",
            f"InputDataUrl={history}",
            "--param",
            "AutoMLAlgorithms=npts,ets",
            "--param",
            "ModelApprovalStatus=Approved",
        ],
        capsys,
    )
    assert code == 0, output[-3000:]

    report_dir = tmp_path / "report"
    code, output, record = run(
        ["--pipeline", "batch", "--param", f"InputDataUrl={batch}", "--param", f"OutputUrl={report_dir}"], capsys
    )
    assert code == 0, output[-3000:]
    assert [(s["name"], s["status"]) for s in record["steps"]] == [
        ("ResolveModel", "Succeeded"),
        ("PrepareBatchInput", "Succeeded"),
        ("CreateModel", "Succeeded"),
        ("BatchForecast", "Succeeded"),
        ("MonitorForecasts", "Succeeded"),
        ("Report", "Succeeded"),
    ]
    from tests.pipelines.local.test_local_e2e import expected_step_environment

    kinds = {s["name"]: (s.get("environment") or {}).get("kind") for s in record["steps"]}
    assert kinds["PrepareBatchInput"] == kinds["Report"] == expected_step_environment()
    report_step = record["steps"][-1]
    if (report_step.get("environment") or {}).get("overlay") and "[runtime] forked" in Path(
        report_step["log"]
    ).read_text():  # the charts' matplotlib imported ahead, in a server of the launcher's for that overlay
        assert (
            "forked from the step launcher's server for the step's requirements overlay"
            in Path(report_step["log"]).read_text()
        )

    table = pd.read_csv(report_dir / "forecasts.csv")
    future = frame[frame["target_value"].isna()]
    expected = set(zip(future["item_id"], future["timestamp"]))
    assert set(zip(table["item_id"], table["timestamp"])) == expected and len(table) == len(expected)
    assert (table["p10"] <= table["p50"]).all() and (table["p50"] <= table["p90"]).all()

    summary = json.loads((report_dir / "summary.json").read_text())
    assert summary["items_forecast"] == 10 and summary["horizon"] == FUTURE_DAYS
    assert summary["model_package_arn"].endswith("model-package/demand-forecasting/1")
    exact = pd.read_parquet(report_dir / "forecasts.parquet")  # forecasts.csv is rounded to 0.01
    assert ((table["mean"] - exact["mean"]).abs() <= 0.005 + 1e-9).all()
    assert summary["total_expected_demand"] == pytest.approx(exact["mean"].sum(), rel=1e-9, abs=1e-3)
    for attribute in ("category", "region"):
        for value, totals in summary["totals_by"][attribute].items():
            assert totals["mean"] == pytest.approx(exact.loc[exact[attribute] == value, "mean"].sum(), abs=1e-3)
    inventory = pd.read_csv(report_dir / "inventory.csv")
    assert len(inventory) == 10 and (inventory["order_up_to_level"] >= 0).all()
    for chart in ("forecast_by_group.png", "top_movers.png"):
        image = matplotlib.image.imread(report_dir / "charts" / chart)
        assert image.shape[0] > 100 and image.std() > 0.01
    assert "charts/forecast_by_group.png" in (report_dir / "report.html").read_text()


def test_given_no_approved_model_when_the_batch_pipeline_runs_then_it_fails_saying_how_to_approve(
    data, tmp_path, capsys
):
    _, batch, _ = data
    code, output, record = run(
        ["--pipeline", "batch", "--param", f"InputDataUrl={batch}", "--param", f"OutputUrl={tmp_path / 'report'}"],
        capsys,
    )
    assert code != 0
    statuses = {s["name"]: s["status"] for s in record["steps"]}
    assert statuses["ResolveModel"] == "Failed" and statuses["Report"] == "NotExecuted"
    assert "has no Approved model package" in output and "deploy.approve approve --latest" in output
    assert not (tmp_path / "report").exists()


@pytest.mark.slow
def test_given_item_ids_with_leading_zeros_when_trained_and_batch_forecast_then_every_id_survives(
    tmp_path, capsys, monkeypatch
):
    """'007', '7', '0042' and '42' are four items through prep, engine, transform, evaluation and report."""
    monkeypatch.setenv("FORECAST_ENDPOINT_PORT", str(_free_port()))
    frame = generate_sales(products=2, regions=2, start="2023-01-01", end="2023-08-31", future_days=FUTURE_DAYS)
    ids = dict(zip(sorted(frame["item_id"].unique()), ["007", "7", "0042", "42"]))
    frame["item_id"] = frame["item_id"].map(ids)
    history = write_frame(frame[frame["target_value"].notna()], tmp_path / "history.csv")
    batch = write_frame(frame, tmp_path / "batch.csv")
    try:
        code, output, record = run(
            [
                "--param",
                f"InputDataUrl={history}",
                "--param",
                "AutoMLAlgorithms=npts,ets",
                "--param",
                "ModelApprovalStatus=Approved",
            ],
            capsys,
        )
        assert code == 0, output[-3000:]
        report_dir = tmp_path / "report"
        code, output, _ = run(
            ["--pipeline", "batch", "--param", f"InputDataUrl={batch}", "--param", f"OutputUrl={report_dir}"], capsys
        )
        assert code == 0, output[-3000:]
    finally:
        endpoint.stop(resolve().home_path, resolve().endpoint_name)
    table = pd.read_csv(report_dir / "forecasts.csv", dtype={"item_id": str})
    assert sorted(table["item_id"].unique()) == ["0042", "007", "42", "7"]
    assert len(table) == 4 * FUTURE_DAYS
    assert json.loads((report_dir / "summary.json").read_text())["items_forecast"] == 4
