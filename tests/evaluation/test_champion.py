"""Champion versus challenger in the Evaluate step: same holdout, same scoring code, the gate's section."""

from __future__ import annotations

import json

import pytest

from evaluation import champion, evaluate
from processing.kernel import contracts

from .test_evaluate import _args


def _champion_folder(folder, dataset, scale):
    """champion.json plus the champion's forecasts: the dataset's forecast, errors scaled."""
    (folder / contracts.CHAMPION_FORECASTS_DIR).mkdir(parents=True)
    frame = dataset.forecast_frame.copy()
    actual = dataset.holdout_frame["target_value"].to_numpy()
    for column in ("p10", "p50", "p90", "mean"):
        frame[column] = actual + (frame[column].to_numpy() - actual) * scale
    frame.to_csv(folder / contracts.CHAMPION_FORECASTS_DIR / "part-00000.csv.out", index=False)
    (folder / contracts.CHAMPION_FILE).write_text(
        json.dumps(
            {
                "status": "available",
                "model_package_arn": "arn:aws:sagemaker:eu-west-1:1:model-package/g/3",
                "model_package_version": 3,
                "registered_metrics": {"wape": 0.1},
            }
        )
    )
    return folder


def _run(dataset, tmp_path, *extra):
    out = tmp_path / "out"
    assert evaluate.main(_args(dataset, out, *extra)) == 0
    return json.loads((out / contracts.EVALUATION_FILE).read_text())


@pytest.mark.integration
def test_given_no_champion_then_the_section_says_none_with_numeric_gate_values(dataset, tmp_path):
    report = _run(dataset, tmp_path)
    section = report["champion"]
    assert section["status"] == "none" and section["passed"] is True
    assert section["limit"] == 0.0 and section["champion_value"] == 0.0 and section["version"] == 0
    assert section["challenger_value"] == pytest.approx(report["forecast_metrics"]["wape"]["value"])


@pytest.mark.integration
@pytest.mark.parametrize("scale, tolerance, passed", [(2.0, 0.0, True), (0.5, 0.0, False), (0.5, 1.5, True)])
def test_given_a_champion_then_both_are_scored_alike_and_the_limit_applies_the_tolerance(
    dataset, tmp_path, scale, tolerance, passed
):
    folder = _champion_folder(tmp_path / "champion", dataset, scale)
    report = _run(dataset, tmp_path, "--champion", str(folder), "--challenger-tolerance", str(tolerance))
    section = report["champion"]
    assert section["status"] == "compared" and section["version"] == 3
    # the same scoring code: the champion's WAPE is the challenger's scaled (errors scaled by `scale`)
    assert section["champion_value"] == pytest.approx(section["challenger_value"] * scale, rel=1e-9)
    assert section["limit"] == pytest.approx(section["champion_value"] * (1 + tolerance))
    assert section["passed"] is passed
    assert section["champion_metrics"]["wql"] is not None and section["challenger_metrics"]["wape"] is not None


@pytest.mark.integration
def test_given_champion_forecasts_missing_holdout_points_then_it_is_unavailable_with_a_warning(dataset, tmp_path):
    folder = _champion_folder(tmp_path / "champion", dataset, 1.0)
    out_file = folder / contracts.CHAMPION_FORECASTS_DIR / "part-00000.csv.out"
    lines = out_file.read_text().splitlines()
    out_file.write_text("\n".join(lines[:-3]) + "\n")
    report = _run(dataset, tmp_path, "--champion", str(folder))
    assert report["champion"]["status"] == "unavailable"
    assert "could not be scored on this holdout" in report["champion"]["reason"]
    assert any(w.startswith("champion version 3 was not compared") for w in report["warnings"])


def test_given_a_negative_tolerance_then_the_error_names_the_parameter(dataset, tmp_path, capsys):
    assert evaluate.main(_args(dataset, tmp_path / "out", "--challenger-tolerance", "-0.1")) == 2
    assert "--param ChallengerTolerance=-0.1 must be a number >= 0" in capsys.readouterr().err


def test_given_an_undefined_champion_metric_then_nothing_is_compared():
    section = champion.comparison(
        {"forecast_metrics": {"wape": {"value": 0.2}}},
        {"forecast_metrics": {"wape": {"value": None}}},
        {"status": "available", "model_package_version": 2},
        "WAPE",
        0.0,
    )
    assert section["status"] == "unavailable" and "champion's WAPE is undefined" in section["reason"]


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "--champion: {path} does not exist; the ChampionForecast step writes it"),
        ("{not json", "--champion: {path} is not valid JSON (Expecting property name"),
    ],
)
def test_given_a_missing_or_broken_champion_file_then_one_line_names_it(tmp_path, content, expected):
    path = tmp_path / contracts.CHAMPION_FILE
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError) as raised:
        champion.read_champion(tmp_path)
    assert str(raised.value).startswith(expected.format(path=path)) and "\n" not in str(raised.value)


def _report(**values):
    return {"forecast_metrics": {k: {"value": v} for k, v in values.items()}}


def test_given_a_compared_champion_then_the_shown_values_are_in_the_cli_format():

    section = champion.comparison(
        _report(wape=0.006184627637112354),
        _report(wape=0.005386023951442859),
        {"status": "available", "model_package_version": 1},
        "WAPE",
        0.0,
    )
    assert section["status"] == "compared" and section["passed"] is False
    assert (section["challenger_shown"], section["champion_shown"], section["limit_shown"]) == (
        "0.62%",
        "0.54%",
        "0.54%",
    )


def test_given_no_champion_then_the_shown_values_are_still_text_for_the_message():

    section = champion.comparison(_report(mase=1.23456), None, {"status": "none"}, "MASE", 0.0)
    assert (section["challenger_shown"], section["champion_shown"], section["limit_shown"]) == ("1.23", "0.00", "0.00")


def test_given_a_challenger_just_above_the_limit_then_the_shown_values_get_the_decimals_that_tell_them_apart():
    """At two decimals ChallengerLost read "WAPE 11.80% is above the champion's 11.80% ... = 11.80%"."""
    section = champion.comparison(
        _report(wape=0.118004), _report(wape=0.118), {"status": "available", "model_package_version": 3}, "WAPE", 0.0
    )
    assert section["passed"] is False
    assert (section["challenger_shown"], section["champion_shown"], section["limit_shown"]) == (
        "11.8004%",
        "11.8000%",
        "11.8000%",
    )
    units = champion.comparison(
        _report(mae=15.6301), _report(mae=15.63), {"status": "available", "model_package_version": 3}, "MAE", 0.0
    )
    assert units["passed"] is False and (units["challenger_shown"], units["limit_shown"]) == ("15.6301", "15.6300")
