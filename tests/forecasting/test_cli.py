"""The two CLIs, called in-process with real files."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from .conftest import make_frame, split_context

predict_cli = importlib.import_module("forecasting.predict")
train_cli = importlib.import_module("forecasting.train")


def test_given_a_request_and_a_training_csv_when_the_clis_run_then_a_forecast_file_is_written(tmp_path, capsys):
    frame = make_frame(n_items=2, n_days=60, kind="covariate")
    history, context, _ = split_context(frame, 7)
    history.to_csv(tmp_path / "train.csv", index=False)
    context.to_csv(tmp_path / "context.csv", index=False)
    request = {
        "AutoMLJobName": "local",
        "AutoMLProblemTypeConfig": {
            "TimeSeriesForecastingJobConfig": {
                "ForecastFrequency": "D",
                "ForecastHorizon": 7,
                "ForecastQuantiles": ["p10", "p50", "p90"],
                "TimeSeriesConfig": {
                    "TargetAttributeName": "target_value",
                    "TimestampAttributeName": "timestamp",
                    "ItemIdentifierAttributeName": "item_id",
                },
                "CandidateGenerationConfig": {"AlgorithmsConfig": [{"AutoMLAlgorithms": ["npts"]}]},
            }
        },
    }
    (tmp_path / "request.json").write_text(json.dumps(request))

    assert (
        train_cli.main(
            [
                "--request",
                str(tmp_path / "request.json"),
                "--train",
                str(tmp_path / "train.csv"),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["objective_metric"]["name"] == "AverageWeightedQuantileLoss"
    assert (
        predict_cli.main(
            [
                "--model",
                summary["model_dir"],
                "--input",
                str(tmp_path / "context.csv"),
                "--output",
                str(tmp_path / "pred" / "forecast.csv"),
            ]
        )
        == 0
    )
    out = pd.read_csv(tmp_path / "pred" / "forecast.csv")
    assert list(out.columns) == ["item_id", "timestamp", "p10", "p50", "p90", "mean"]
    assert out.groupby("item_id").size().tolist() == [7, 7]
    assert not list((tmp_path / "pred").glob(".*"))  # no temp files left behind


def test_given_the_cli_module_imported_when_the_package_api_is_used_then_train_still_trains(tmp_path):
    import forecasting
    from forecasting import EngineConfig

    frame = make_frame(n_items=2, n_days=40).drop(columns=["promotion"])
    result = forecasting.train(
        frame, EngineConfig(horizon=7), tmp_path, candidates=["SeasonalNaive"], log=lambda *_: None
    )
    assert result.model_dir.exists()


def test_given_a_fresh_process_when_the_engine_is_imported_then_its_environment_is_untouched():
    script = (
        "import os; os.environ.pop('OMP_WAIT_POLICY', None); import forecasting, forecasting.models; "
        "print(os.environ.get('OMP_WAIT_POLICY'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "None"


def test_given_the_predict_cli_when_it_starts_then_it_sets_openmp_threads_to_sleep(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert predict_cli.main(["--model", str(tmp_path / "missing"), "--input", "x.csv", "--output", "y.csv"]) == 2
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


def _npts_request(tmp_path) -> list:
    """A 40-day, 2-series train.csv and a request.json for a daily 7-step npts job on it in
    tmp_path: the train CLI's --request and --train arguments."""
    frame = make_frame(n_items=2, n_days=40, kind="covariate")
    history, _, _ = split_context(frame, 7)
    history.to_csv(tmp_path / "train.csv", index=False)
    job = {
        "ForecastFrequency": "D",
        "ForecastHorizon": 7,
        "TimeSeriesConfig": {
            "TargetAttributeName": "target_value",
            "TimestampAttributeName": "timestamp",
            "ItemIdentifierAttributeName": "item_id",
        },
        "CandidateGenerationConfig": {"AlgorithmsConfig": [{"AutoMLAlgorithms": ["npts"]}]},
    }
    (tmp_path / "request.json").write_text(
        json.dumps({"AutoMLProblemTypeConfig": {"TimeSeriesForecastingJobConfig": job}})
    )
    return ["--request", str(tmp_path / "request.json"), "--train", str(tmp_path / "train.csv")]


def test_given_a_folder_without_a_model_or_an_unreadable_input_when_predict_runs_then_one_line_names_the_flag(
    tmp_path, capsys
):
    args = _npts_request(tmp_path)
    assert train_cli.main([*args, "--out", str(tmp_path / "out")]) == 0
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    capsys.readouterr()

    cases = [
        (tmp_path / "nope", tmp_path / "bad.csv", f"--model {tmp_path / 'nope'}: no model.joblib"),
        (tmp_path / "out" / "model", tmp_path / "missing.csv", "--input: data "),
        (tmp_path / "out" / "model", tmp_path / "bad.csv", "--input: "),
    ]
    for model, data, expected in cases:
        code = predict_cli.main(["--model", str(model), "--input", str(data), "--output", str(tmp_path / "f.csv")])
        err = capsys.readouterr().err.strip()
        assert code == 2
        assert err.startswith(f"python -m forecasting.predict: error: {expected}"), err
        assert str(data.name) in err or "model.joblib" in err
        assert "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "f.csv").exists()


def test_given_an_unknown_preset_or_a_request_listing_algorithms_when_train_runs_then_it_says_so(tmp_path, capsys):
    args = _npts_request(tmp_path)

    with pytest.raises(SystemExit) as exit_info:
        train_cli.main([*args, "--out", str(tmp_path / "a"), "--preset", "fast"])
    assert exit_info.value.code == 2
    assert "--preset fast: not a preset; the presets are best_quality, default, statistical" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()

    assert train_cli.main([*args, "--out", str(tmp_path / "b"), "--preset", "statistical"]) == 0
    out = capsys.readouterr().out
    assert "note: --preset statistical is not used: the request lists its algorithms (npts)" in out
    assert json.loads(out.strip().splitlines()[-1])["model_dir"]
