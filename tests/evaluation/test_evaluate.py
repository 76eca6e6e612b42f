"""The Evaluate step script end to end on small files, and its container boundary."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from evaluation import evaluate, scoring
from processing.kernel import contracts

from .conftest import build_dataset

ROOT = Path(__file__).resolve().parents[2]


def _args(ds, out, *extra):
    return [
        "--forecasts",
        str(ds.forecasts),
        "--actuals",
        str(ds.actuals),
        "--history",
        str(ds.history),
        "--out",
        str(out),
        "--frequency",
        "D",
        "--quantiles",
        "p10,p50,p90",
        *extra,
    ]


@pytest.mark.integration
def test_given_small_files_when_script_runs_then_json_csv_and_plots_are_written(dataset, tmp_path):
    out = tmp_path / "evaluation"
    assert evaluate.main(_args(dataset, out, "--quality-metric", "WAPE", "--quality-threshold", "0.3")) == 0

    report = json.loads((out / contracts.EVALUATION_FILE).read_text())
    for section in ("forecast_metrics", "regression_metrics", "baseline", "skill", "quality_gate"):
        assert section in report, section
    assert set(report["forecast_metrics"]) >= {"mae", "rmse", "mape", "mase", "wape", "wql", "bias", "r2", "coverage"}
    assert all(set(v) == {"value"} for v in report["forecast_metrics"].values())
    assert all(set(v) == {"value", "standard_deviation"} for v in report["regression_metrics"].values())
    # forecast = 1.1 x actual + noise: about 10% over-forecast, so WAPE ~ 0.1 and positive bias
    wape = report["forecast_metrics"]["wape"]["value"]
    assert 0.05 < wape < 0.2 and report["forecast_metrics"]["bias"]["value"] > 0
    assert report["quality_gate"] == {
        "metric": "WAPE",
        "key": "wape",
        "value": wape,
        "defined": True,
        "threshold": 0.3,
        "passed": True,
        "message": f"WAPE = {wape:.6g} is within QualityThreshold 0.3",
    }
    assert report["baseline"]["season_length"] == 7
    assert set(report["by_attribute"]) == {"category", "region"}
    assert set(report["by_attribute"]["category"]) == {"Books", "Toys"}
    assert report["details"]["mape_skipped_points"] == 7  # item_00 never sells
    assert report["details"]["mase_zero_scale_items"] == ["item_00"]

    per_item = pd.read_csv(out / evaluate.PER_ITEM_FILE)
    assert len(per_item) == len(dataset.items) and per_item["item_id"].tolist() == dataset.items
    assert {"mae", "wape", "wql", "mase", "baseline_wape", "category", "region"} <= set(per_item.columns)
    assert scoring.SERIES not in per_item.columns

    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == [
        "error_by_category.png",
        "error_by_region.png",
        "error_distribution.png",
        "forecast_best.png",
        "forecast_sample.png",
        "forecast_worst.png",
    ]
    for name in pngs:
        image = imread(out / "plots" / name)
        assert image.shape[0] >= 300 and image.shape[1] >= 500, name
        assert float(np.std(image[..., :3])) > 0.02, f"{name} looks blank"


@pytest.mark.integration
def test_given_evaluation_json_when_read_by_the_gate_path_then_value_is_the_chosen_metric(dataset, tmp_path):
    # ties the pipeline's JsonGet path (contracts.QUALITY_GATE_VALUE_PATH) to what the script writes
    out = tmp_path / "evaluation"
    evaluate.main(_args(dataset, out, "--quality-metric", "MASE", "--quality-threshold", "0.01"))
    report = json.loads((out / contracts.EVALUATION_FILE).read_text())
    gate_value = scoring.get_path(report, contracts.QUALITY_GATE_VALUE_PATH)
    assert isinstance(gate_value, float)
    assert gate_value == report["forecast_metrics"][contracts.QUALITY_METRICS["MASE"]]["value"]
    assert report["quality_gate"]["passed"] is False  # MASE well above 0.01


@pytest.mark.integration
def test_given_forecasts_with_known_errors_when_scored_then_report_matches_independent_computation(tmp_path):
    """Review: the JSON agrees with sklearn / plain numpy computed here, independently."""
    ds = build_dataset(tmp_path / "data", n_items=5, seed=11, zero_item=False)
    out = tmp_path / "out"
    evaluate.main(_args(ds, out))
    report = json.loads((out / contracts.EVALUATION_FILE).read_text())["forecast_metrics"]
    merged = ds.holdout_frame.merge(ds.forecast_frame, on=["item_id", "timestamp"])
    a, f = merged["target_value"].to_numpy(), merged["mean"].to_numpy()
    assert report["mae"]["value"] == pytest.approx(mean_absolute_error(a, f))
    assert report["rmse"]["value"] == pytest.approx(math.sqrt(mean_squared_error(a, f)))
    assert report["r2"]["value"] == pytest.approx(r2_score(a, f))
    assert report["wape"]["value"] == pytest.approx(np.abs(a - f).sum() / np.abs(a).sum())
    inside = (a >= merged["p10"]) & (a <= merged["p90"])
    assert report["coverage"]["value"] == pytest.approx(inside.mean())
    # MASE by hand: per item MAE / mean |y_t - y_{t-7}| over its training history, averaged
    per_item = []
    for item, rows in merged.groupby("item_id"):
        y = ds.history_frame.loc[ds.history_frame["item_id"] == item, "target_value"].to_numpy()
        per_item.append(np.abs(rows["target_value"] - rows["mean"]).mean() / np.abs(y[7:] - y[:-7]).mean())
    assert report["mase"]["value"] == pytest.approx(np.mean(per_item))


def test_given_unknown_quality_metric_when_script_runs_then_exit_2_and_nothing_written(dataset, tmp_path, capsys):
    out = tmp_path / "evaluation"
    assert evaluate.main(_args(dataset, out, "--quality-metric", "SMAPE")) == 2
    assert "valid QualityMetric values are ['MAE', 'MAPE', 'MASE', 'RMSE', 'WAPE', 'WQL']" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".evaluation*"))


@pytest.mark.integration
def test_given_a_previous_report_when_rerun_then_outputs_are_replaced_without_leftovers(dataset, tmp_path):
    out = tmp_path / "evaluation"
    out.mkdir()
    (out / "plots").mkdir()
    (out / "plots" / "stale.png").write_bytes(b"old")
    assert evaluate.main(_args(dataset, out)) == 0
    assert not (out / "plots" / "stale.png").exists()
    assert sorted(p.name for p in out.iterdir()) == ["evaluation.json", "per_item.csv", "plots"]


@pytest.mark.integration
def test_given_the_module_when_run_as_a_script_then_it_works_without_sdk_or_engine(dataset, tmp_path):
    """Container boundary: runs as `python -m evaluation.evaluate` and never imports sagemaker/forecasting."""
    out = tmp_path / "evaluation"
    probe = (
        "import runpy, sys; sys.argv = ['evaluate'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('evaluation.evaluate', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('sagemaker', 'forecasting'))\n"
        "print('FORBIDDEN', bad); sys.exit(code)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *_args(dataset, out)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "FORBIDDEN []" in result.stdout
    assert "[evaluate] quality gate: WAPE" in result.stdout
    assert (out / contracts.EVALUATION_FILE).exists()


@pytest.mark.parametrize("module", sorted((ROOT / "evaluation").glob("*.py")), ids=lambda p: p.name)
def test_given_evaluation_sources_when_parsed_as_python39_then_valid(module):
    ast.parse(module.read_text(), filename=str(module), feature_version=(3, 9))


def test_given_no_matplotlib_when_script_runs_then_report_is_written_with_a_warning(
    dataset, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)  # import now fails
    out = tmp_path / "evaluation"
    assert evaluate.main(_args(dataset, out)) == 0
    report = json.loads((out / contracts.EVALUATION_FILE).read_text())
    assert any(
        w.startswith("plots skipped:") and "processing/requirements/evaluate.txt" in w for w in report["warnings"]
    )
    assert report["quality_gate"]["value"] is not None and list((out / "plots").iterdir()) == []
    assert "[evaluate] warning: plots skipped: " in capsys.readouterr().out  # the step's log says so


def test_given_the_training_definition_when_evaluate_parses_its_arguments_then_flags_and_paths_agree():
    """The rendered Evaluate step's arguments parse with this script's parser; its --out is the
    output that holds the EvaluationReport property file the QualityGate reads at our path."""
    pytest.importorskip("sagemaker")
    from tests.pipelines.definition_support import default_parameters, resolve_expression, step, training_definition

    definition = training_definition()
    evaluate_step = step(definition, contracts.STEP_EVALUATE)
    parameters = default_parameters(definition)
    argv = [
        resolve_expression(a, parameters) for a in evaluate_step["Arguments"]["AppSpecification"]["ContainerArguments"]
    ]
    args = evaluate.build_parser().parse_args(argv)
    assert (args.quality_metric, args.quality_threshold, args.frequency) == ("WAPE", 0.3, "D")
    assert args.quantiles == "p10,p50,p90" and args.grouping_columns == ""

    (prop_file,) = evaluate_step["PropertyFiles"]
    assert prop_file["FilePath"] == contracts.EVALUATION_FILE
    outputs = {
        o["OutputName"]: o["S3Output"]["LocalPath"]
        for o in evaluate_step["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    }
    assert outputs[prop_file["OutputName"]] == args.out

    gate = step(definition, contracts.STEP_GATE)
    left = gate["Arguments"]["Conditions"][0]["LeftValue"]["Std:JsonGet"]
    assert left["Path"] == contracts.QUALITY_GATE_VALUE_PATH
    assert left["PropertyFile"] == {
        "Get": f"Steps.{contracts.STEP_EVALUATE}.PropertyFiles.{prop_file['PropertyFileName']}"
    }
