"""The input helpers pipelines.run's pre-run check and the processing executor share."""

from __future__ import annotations

from pipelines.local import executors


def _processing(name: str, uri) -> dict:
    return {
        "Name": name,
        "Type": "Processing",
        "Arguments": {"ProcessingInputs": [{"InputName": "data", "S3Input": {"S3Uri": uri}}]},
    }


def test_input_parameters_are_found_in_condition_branches_once_each_in_definition_order():
    definition = {
        "Steps": [
            _processing("A", {"Get": "Parameters.InputDataUrl"}),
            _processing("Literal", "s3://b/k/"),
            _processing("Step", {"Get": "Steps.A.ProcessingOutputConfig.Outputs['x'].S3Output.S3Uri"}),
            {
                "Name": "Check",
                "Type": "Condition",
                "Arguments": {
                    "IfSteps": [_processing("B", {"Get": "Parameters.HistoryUrl"})],
                    "ElseSteps": [_processing("C", {"Get": "Parameters.InputDataUrl"})],
                },
            },
        ]
    }
    assert executors.input_parameters(definition) == ["InputDataUrl", "HistoryUrl"]
    assert executors.parameter_inputs(definition["Steps"][0]) == {"data": "InputDataUrl"}
    assert executors.parameter_inputs(definition["Steps"][1]) == {}


def test_a_missing_local_input_suggests_the_name_beside_it_as_typed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sales.csv").write_text("x\n1\n")
    advice = "pass an existing CSV/Parquet file or a folder of them"
    assert executors.missing_local_input("./sales.csv", "InputDataUrl") is None
    assert executors.missing_local_input(str(tmp_path), "InputDataUrl") is None
    assert executors.missing_local_input("./sale.csv", "InputDataUrl") == (
        f"there is no file or folder at {tmp_path / 'sale.csv'} (did you mean --param InputDataUrl=./sales.csv?); "
        + advice
    )
    assert executors.missing_local_input(f"file://{tmp_path}/sale.csv", "InputDataUrl") == (
        f"there is no such file or folder (did you mean --param InputDataUrl=file://{tmp_path}/sales.csv?); " + advice
    )
    # an input the definition gives (no parameter to fix): the nearest name quoted as the path was given
    assert executors.missing_local_input(f"{tmp_path}/sale.csv") == (
        f"there is no such file or folder (did you mean '{tmp_path}/sales.csv'?); " + advice
    )
    assert executors.missing_local_input(f"{tmp_path}/other") == f"there is no such file or folder; {advice}"


def test_the_runs_check_and_the_steps_failure_word_a_missing_input_the_same(tmp_path):
    from pipelines import run

    (tmp_path / "sales.csv").write_text("x\n1\n")
    missing = str(tmp_path / "sale.csv")
    definition = {"Steps": [_processing("A", {"Get": "Parameters.InputDataUrl"})]}
    try:
        run.check_local_inputs(definition, {"InputDataUrl": missing})
    except run.RunError as error:
        before = str(error)
    else:
        raise AssertionError("the missing input was not refused")
    during = f"--param InputDataUrl={missing}: {executors._missing_input(missing, None, 'InputDataUrl')}"
    assert before == during + "; nothing was started"


def _label_step() -> dict:
    from tests.pipelines.local.handwritten import processing

    label = {"Std:Join": {"On": "", "Values": ["--label=", {"Get": "Parameters.Label"}]}}
    return processing(
        "Produce",
        "produce.py",
        arguments=[label, "--out=/opt/ml/processing/output/result", "--score=1"],
        outputs=["result"],
    )


def test_a_container_argument_sagemaker_would_refuse_fails_the_step_locally_naming_the_param():
    from processing.kernel.settings import resolve
    from tests.pipelines.local.handwritten import definition, install_scripts
    from tests.pipelines.local.test_runtime import run, statuses

    settings = resolve()
    install_scripts(settings)
    parameters = [{"Name": "Label", "Type": "String", "DefaultValue": "short"}]
    code, _, record = run(definition([_label_step()], parameters), settings, {"Label": "y" * 249})
    assert code != 0 and statuses(record) == [("Produce", "Failed")]
    reason = record["steps"][0]["failure_reason"]
    assert reason.startswith("SageMaker would refuse the step's CreateProcessingJob request: --param Label=yyy")
    assert "249 characters, at most 248 fit: step Produce passes it as --label=<value>" in reason
    code, output, _ = run(definition([_label_step()], parameters), settings, {"Label": "y" * 248})
    assert code == 0, output
