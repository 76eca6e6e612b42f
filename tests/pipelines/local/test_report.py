"""The console summary and the per-execution HTML report (champion and challenger side by side: issue 15)."""

from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from pipelines.local import report  # noqa: E402
from pipelines.local.report import champion_lines, evaluation_lines  # noqa: E402
from processing.kernel import contracts  # noqa: E402
from processing.kernel.settings import resolve  # noqa: E402

EVALUATION = {
    "quality_gate": {"metric": "WAPE", "value": 0.0123, "threshold": 0.3, "passed": True},
    "forecast_metrics": {"wape": {"value": 0.0123}, "mase": {"value": 1.47}, "wql": {"value": 0.006}},
    "baseline": {"method": "seasonal_naive", "forecast_metrics": {"wape": 0.045, "mase": 3.27, "wql": 0.031}},
    "skill": {"wape": 0.727, "mase": 0.55, "wql": 0.8},
}
TRAINING_STEPS = [
    ("PrepareData", "Processing", []),
    ("AutoML", "Processing", ["PrepareData"]),
    ("Evaluate", "Processing", ["AutoML"]),
    ("QualityGate", "Condition", ["Evaluate"]),
    ("RegisterModel", "Processing", ["QualityGate"]),
    ("Deploy", "Lambda", ["RegisterModel"]),
    ("QualityTooLow", "Fail", ["QualityGate"]),
]


@pytest.fixture
def settings():
    return resolve()


def store_file(settings, key, data: bytes) -> str:
    path = settings.home_path / "s3" / "forecast-local" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"s3://forecast-local/{key}"


def plot(path, width_px=1600):
    figure = plt.figure(figsize=(width_px / 100, 4), dpi=100)
    figure.gca().plot([1, 3, 2])
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def training_record(settings, plots=14):
    evaluation_uri = store_file(settings, "x/Evaluate/evaluation/evaluation.json", json.dumps(EVALUATION).encode())
    automl_uri = store_file(
        settings, "x/AutoML/result/automl_result.json", json.dumps({"candidate_metrics": {"MASE": 0.61}}).encode()
    )
    folder = settings.home_path / "s3" / "forecast-local" / "x" / "Evaluate" / "evaluation" / "plots"
    for i in range(plots):
        plot(folder / f"plot_{i:02d}.png")
    steps = []
    for name, kind, deps in TRAINING_STEPS:
        step = {
            "name": name,
            "type": kind,
            "depends_on": deps,
            "status": "Succeeded",
            "duration_seconds": 3.0,
            "outputs": {},
            "log": None,
        }
        if name == "Evaluate":
            step["property_files"] = {contracts.EVALUATION_RESULT_NAME: evaluation_uri}
        if name == "AutoML":
            step["property_files"] = {contracts.AUTOML_RESULT_NAME: automl_uri}
        if name == "QualityGate":
            step["outputs"] = {"Outcome": True}
        if name == "QualityTooLow":
            step.update(status="NotExecuted", duration_seconds=None, note="branch not taken (ElseSteps of QualityGate)")
        steps.append(step)
    definition = settings.home_path / "definition.json"
    definition.write_text(
        json.dumps(
            {
                "Steps": [
                    {
                        "Name": "QualityGate",
                        "Type": "Condition",
                        "Arguments": {
                            "IfSteps": [
                                {"Name": "RegisterModel", "Type": "Processing"},
                                {"Name": "Deploy", "Type": "Lambda"},
                            ],
                            "ElseSteps": [{"Name": "QualityTooLow", "Type": "Fail"}],
                        },
                    }
                ]
            }
        )
    )
    return {
        "execution_id": "abc123def456",
        "pipeline_name": settings.training_pipeline_name,
        "status": "Succeeded",
        "start_time": "2026-01-01T00:00:00+00:00",
        "duration_seconds": 90.0,
        "parameters": {},
        "steps": steps,
        "definition": str(definition),
    }


@pytest.mark.integration
def test_given_an_execution_when_the_report_is_written_then_the_graph_fits_and_every_plot_opens_full_size(
    settings, tmp_path
):
    record = training_record(settings, plots=14)
    path = report.write_report(record, None, settings, tmp_path / "report.html")
    page = path.read_text()
    svg = re.search(r"<svg[^>]*>", page).group(0)
    width = int(re.search(r'width="(\d+)"', svg).group(1))
    assert width <= 1200 and "max-width:100%" in svg and "viewBox" in svg
    assert "max-width:560px" not in page
    assert page.count("data:image/png;base64,") == 14  # every plot, no cap at 12
    assert "id='lightbox'" in page and "cursor:zoom-in" in page and "classList.add('open')" in page
    assert "if true (taken)" in page and "else (not taken)" in page


def test_given_an_evaluation_then_the_summary_explains_its_mase_next_to_the_leaderboards(settings):
    summary = report.execution_summary(training_record(settings, plots=0), settings)
    assert "MASE 1.47 = each item's holdout MAE / its in-sample seasonal-naive MAE" in summary
    assert "seasonal naive scores 3.27 on the same holdout: skill 0.55 = 55% less error" in summary
    assert "the AutoML leaderboard's MASE (0.61 for the chosen candidate)" in summary


def test_given_an_evaluation_then_the_summary_shows_metrics_as_deploy_approve_list_does():
    lines = evaluation_lines(EVALUATION)
    assert lines[:4] == [
        "  quality gate: WAPE = 1.23% (threshold 30.00%) -> passed",
        "  forecast metrics: WAPE 1.23%, MASE 1.47, wQL 0.60%",
        "  baseline (seasonal_naive): WAPE 4.50%, MASE 3.27, wQL 3.10%",
        "  skill vs baseline (1 - model/baseline): WAPE 0.73, MASE 0.55, wQL 0.80",
    ]
    assert "0.0123" not in "\n".join(lines)


def test_given_a_batch_run_then_the_summary_prints_the_planner_report_and_the_next_commands(settings, tmp_path):
    folder = tmp_path / "report"
    folder.mkdir()
    (folder / "report.html").write_text("<html></html>")
    record = {
        "execution_id": "b1",
        "pipeline_name": settings.batch_pipeline_name,
        "status": "Succeeded",
        "duration_seconds": 30.0,
        "report": str(tmp_path / "record.html"),
        "steps": [
            {
                "name": contracts.STEP_REPORT,
                "type": "Processing",
                "status": "Succeeded",
                "duration_seconds": 2.0,
                "outputs": {"report": str(folder)},
            }
        ],
    }
    summary = report.execution_summary(record, settings)
    assert f"Planner report: {folder / 'report.html'}" in summary
    assert f"open {folder / 'report.html'}" in summary
    assert "python -m deploy.api invoke" in summary and "python -m pipelines.studio" in summary
    page = report.render_report(record, None, settings)
    assert f"href='{(folder / 'report.html').as_uri()}'" in page


def test_given_a_batch_run_writing_to_the_store_then_the_planner_report_is_found_there(settings):
    uri = store_file(settings, "demand-forecasting/reports/latest/report.html", b"<html></html>")
    record = {
        "steps": [{"name": contracts.STEP_REPORT, "status": "Succeeded", "outputs": {"report": uri.rsplit("/", 1)[0]}}]
    }
    assert (
        report.planner_report_path(record, settings)
        == settings.home_path / "s3" / "forecast-local" / "demand-forecasting" / "reports" / "latest" / "report.html"
    )


CHAMPION_EVALUATION = {
    "quality_gate": {"metric": "WAPE", "value": 0.2, "threshold": 0.3, "passed": True},
    "champion": {
        "status": "compared",
        "metric": "WAPE",
        "version": 4,
        "challenger_value": 0.2,
        "champion_value": 0.15,
        "limit": 0.1575,
        "tolerance": 0.05,
        "passed": False,
        "challenger_metrics": {"wape": 0.2, "wql": 0.17, "mase": None},
        "champion_metrics": {"wape": 0.15, "wql": 0.12, "mase": 0.8},
    },
}


def test_given_a_compared_champion_then_the_summary_shows_both_metric_sets_and_the_verdict():
    lines = champion_lines(CHAMPION_EVALUATION)
    assert lines[0] == (
        "  champion (version 4) vs challenger on the same holdout: WAPE 15.00% vs 20.00%, limit 15.75% "
        "(tolerance 0.05) -> champion stays (challenger not registered)"
    )
    assert lines[2].split() == ["WAPE", "15.00%", "20.00%"] and lines[3].split() == ["wQL", "12.00%", "17.00%"]
    assert len(lines) == 4  # mase is undefined for the challenger: not shown
    assert lines[0] in evaluation_lines(CHAMPION_EVALUATION)


def test_given_a_worse_challenger_within_tolerance_then_the_verdict_says_so_with_both_numbers():
    champion = {
        **CHAMPION_EVALUATION["champion"],
        "challenger_value": 0.0062,
        "champion_value": 0.0054,
        "limit": 0.00648,
        "tolerance": 0.2,
        "passed": True,
    }
    line = champion_lines({"champion": champion})[0]
    assert "challenger wins" not in line
    assert line.endswith(
        "-> challenger passes within tolerance (0.62% is worse than the champion's 0.54%, within the limit 0.65%)"
    )


def test_given_a_better_challenger_then_it_wins():
    champion = {**CHAMPION_EVALUATION["champion"], "challenger_value": 0.1, "passed": True}
    assert champion_lines({"champion": champion})[0].endswith("-> challenger wins")


def test_given_no_champion_then_nothing_is_added():
    assert champion_lines({"champion": {"status": "none"}}) == []
    assert champion_lines({}) == []


def test_given_a_challenger_lost_then_the_advice_is_newer_data_or_a_tolerance_not_a_retry(tmp_path):

    settings = resolve(environ={"FORECAST_HOME": str(tmp_path)})
    record = {
        "pipeline_name": settings.training_pipeline_name,
        "overrides": {"InputDataUrl": "train2.csv"},
        "steps": [{"name": contracts.STEP_CHALLENGER_LOST, "type": "Fail", "status": "Failed"}],
    }
    advice = "\n".join(report.rerun_advice(record, settings))
    assert "--retry would fail the same way" in advice
    assert "python -m pipelines.run --param 'InputDataUrl=<newer data>'" in advice
    assert "python -m pipelines.run --param InputDataUrl=train2.csv --param 'ChallengerTolerance=<x>'" in advice
    assert report.failed_by_fail_step(record) == contracts.STEP_CHALLENGER_LOST


def _failed_record(settings, evaluation: dict, fail_step: str, overrides: dict) -> dict:
    """An execution record whose Evaluate wrote `evaluation` and whose `fail_step` stopped it."""
    uri = settings.s3_uri("executions", "e1", "Evaluate", "evaluation", "evaluation.json")
    from pipelines.local.store import local_path

    path = local_path(uri, settings)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(evaluation))
    return {
        "pipeline_name": settings.training_pipeline_name,
        "overrides": overrides,
        "steps": [
            {
                "name": "Evaluate",
                "type": "Processing",
                "status": "Succeeded",
                "property_files": {contracts.EVALUATION_RESULT_NAME: uri},
            },
            {"name": fail_step, "type": "Fail", "status": "Failed"},
        ],
    }


def test_given_a_challenger_lost_with_its_evaluation_then_the_advice_names_the_tolerance_that_registers_it(tmp_path):
    settings = resolve(environ={"FORECAST_HOME": str(tmp_path)})
    champion = {"status": "compared", "challenger_value": 0.0073, "champion_value": 0.0056}
    record = _failed_record(settings, {"champion": champion}, contracts.STEP_CHALLENGER_LOST, {})
    advice = report.rerun_advice(record, settings)[-1]
    # 0.0073 / 0.0056 - 1 = 0.3036: 0.31 lets it register, 0.30 would not
    assert "python -m pipelines.run --param ChallengerTolerance=0.31   # the least that registers it" in advice


def test_given_a_challenger_just_above_the_limit_then_the_summary_tells_the_values_apart_as_challengerlost_does():
    from evaluation import champion

    report_of = {"forecast_metrics": {"wape": {"value": 0.118004}}}
    section = champion.comparison(
        report_of, {"forecast_metrics": {"wape": {"value": 0.118}}}, {"model_package_version": 3}, "WAPE", 0.0
    )
    line = champion_lines({"champion": section})[0]
    assert "WAPE 11.8000% vs 11.8004%, limit 11.8000%" in line and "champion stays" in line


def test_given_quality_too_low_then_the_advice_names_the_threshold_and_the_wql_gate_that_register_it(tmp_path):
    settings = resolve(environ={"FORECAST_HOME": str(tmp_path)})
    evaluation = {
        "quality_gate": {"metric": "WAPE", "value": 0.48067, "threshold": 0.3, "passed": False, "defined": True},
        "forecast_metrics": {"wape": {"value": 0.48067}, "wql": {"value": 0.267429}},
    }
    advice = "\n".join(
        report.rerun_advice(
            _failed_record(settings, evaluation, contracts.STEP_FAIL, {"InputDataUrl": "slow.csv"}), settings
        )
    )
    assert "--retry would fail the same way" in advice
    # 0.48067 -> 0.49 (0.48 would not pass), wQL 0.267429 -> 0.27
    assert (
        "--param InputDataUrl=slow.csv --param QualityThreshold=0.49   # the least that registers it (WAPE 48.07%)"
        in advice
    )
    assert "--param InputDataUrl=slow.csv --param QualityMetric=WQL --param QualityThreshold=0.27" in advice


def test_given_quality_too_low_on_an_undefined_metric_then_no_threshold_is_offered(tmp_path):
    settings = resolve(environ={"FORECAST_HOME": str(tmp_path)})
    evaluation = {
        "quality_gate": {
            "metric": "WQL",
            "value": contracts.QUALITY_GATE_UNDEFINED_VALUE,
            "threshold": 0.3,
            "passed": False,
            "defined": False,
        },
        "forecast_metrics": {"wql": {"value": None}},
    }
    advice = report.rerun_advice(
        _failed_record(settings, evaluation, contracts.STEP_FAIL, {"InputDataUrl": "slow.csv"}), settings
    )
    assert "--param 'QualityThreshold=<x>'" in advice[-1] and "registers it" not in advice[-1]
    assert not any("gate on wQL" in line for line in advice)  # already the gate metric
