"""The batch definition: steps and wiring, parameters, botocore shapes, the scripts' CLI contracts."""

from __future__ import annotations

import pytest

from evaluation import monitor
from processing import batch_input, create_model, report, resolve_model
from processing.kernel import contracts
from processing.kernel.aws_validation import request_problems
from tests.pipelines.definition_support import (
    batch_definition,
    default_parameters,
    job_request,
    resolve_expression,
    step,
)

SCRIPTS = {
    contracts.STEP_RESOLVE_MODEL: resolve_model,
    contracts.STEP_PREPARE_BATCH: batch_input,
    contracts.STEP_CREATE_MODEL: create_model,
    contracts.STEP_REPORT: report,
    contracts.STEP_MONITOR: monitor,
}


@pytest.fixture(scope="module")
def definition():
    return batch_definition()


def test_given_the_batch_definition_then_steps_are_the_issues_in_dependency_order(definition):
    assert [(s["Name"], s["Type"]) for s in definition["Steps"]] == [
        ("ResolveModel", "Processing"),
        ("PrepareBatchInput", "Processing"),
        ("CreateModel", "Processing"),
        ("BatchForecast", "Transform"),
        ("MonitorForecasts", "Processing"),
        ("Report", "Processing"),
    ]


@pytest.mark.parametrize(
    "name", ["ResolveModel", "PrepareBatchInput", "CreateModel", "BatchForecast", "MonitorForecasts", "Report"]
)
def test_given_a_batch_step_when_validated_against_botocore_then_it_has_no_problem(definition, name):
    operation, request = job_request(step(definition, name))
    assert request_problems("sagemaker", operation, request) == []


def test_given_the_parameters_then_the_issues_names_and_defaults_are_there(definition):
    parameters = {p["Name"]: (p["Type"], p.get("DefaultValue")) for p in definition["Parameters"]}
    assert parameters["ServiceLevel"] == ("Float", 0.9)
    for name in (
        "InputDataUrl",
        "ModelPackageGroupName",
        "OutputUrl",
        "TransformInstanceType",
        "ItemIdColumn",
        "TimestampColumn",
        "TargetColumn",
        "GroupingColumns",
    ):
        assert name in parameters


def test_given_the_transform_then_it_uses_the_created_model_and_the_sharded_input(definition):
    transform = step(definition, contracts.STEP_BATCH_FORECAST)["Arguments"]
    assert transform["ModelName"] == {
        "Std:JsonGet": {
            "PropertyFile": {"Get": f"Steps.{contracts.STEP_CREATE_MODEL}.PropertyFiles.{contracts.BATCH_MODEL_NAME}"},
            "Path": "model_name",
        }
    }
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == {
        "Get": f"Steps.{contracts.STEP_PREPARE_BATCH}.ProcessingOutputConfig.Outputs['shards'].S3Output.S3Uri"
    }
    assert transform["TransformInput"]["SplitType"] == "None"  # a whole file (whole series) per request
    files = step(definition, contracts.STEP_CREATE_MODEL)["PropertyFiles"]
    assert files == [
        {"PropertyFileName": contracts.BATCH_MODEL_NAME, "OutputName": "result", "FilePath": contracts.BATCH_MODEL_FILE}
    ]


def test_given_the_report_then_its_output_goes_to_the_output_url_parameter(definition):
    [output] = step(definition, contracts.STEP_REPORT)["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == {"Get": "Parameters.OutputUrl"}


def test_given_the_monitor_step_then_it_keeps_forecasts_and_records_accuracy_under_the_prefix(definition):
    s = step(definition, contracts.STEP_MONITOR)["Arguments"]
    outputs = {
        o["OutputName"]: resolve_expression(o["S3Output"]["S3Uri"], {}, execution_id="e-7")
        for o in s["ProcessingOutputConfig"]["Outputs"]
    }
    assert outputs == {
        "monitor": "s3://forecast-test-bucket/demand-forecasting/executions/e-7/MonitorForecasts/monitor",
        "kept": "s3://forecast-test-bucket/demand-forecasting/forecast-history/e-7",
        "record": "s3://forecast-test-bucket/demand-forecasting/accuracy-history/e-7",
    }
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in s["ProcessingInputs"]}
    assert inputs["forecasts"] == {"Get": f"Steps.{contracts.STEP_BATCH_FORECAST}.TransformOutput.S3OutputPath"}
    # the stored history is read with boto3, never as a ProcessingInput (an empty prefix fails the job)
    assert not any("history" in str(uri) and "forecast-history" in str(uri) for uri in inputs.values())
    arguments = [
        resolve_expression(a, default_parameters(definition), "e-7")
        for a in s["AppSpecification"]["ContainerArguments"]
    ]
    parsed = monitor.parse_args(arguments)
    assert parsed.forecast_history_uri == "s3://forecast-test-bucket/demand-forecasting/forecast-history"
    assert parsed.accuracy_history_uri == "s3://forecast-test-bucket/demand-forecasting/accuracy-history"
    report_inputs = {
        i["InputName"]: i["S3Input"]["S3Uri"]
        for i in step(definition, contracts.STEP_REPORT)["Arguments"]["ProcessingInputs"]
    }
    assert report_inputs["monitor"] == {
        "Get": f"Steps.{contracts.STEP_MONITOR}.ProcessingOutputConfig.Outputs['monitor'].S3Output.S3Uri"
    }


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_given_default_parameters_when_a_script_parses_its_step_arguments_then_every_flag_is_known(definition, name):
    arguments = step(definition, name)["Arguments"]["AppSpecification"]["ContainerArguments"]
    values = [resolve_expression(a, default_parameters(definition)) for a in arguments]
    parsed = SCRIPTS[name].parse_args(values)
    assert parsed is not None


def test_given_monitor_and_report_then_they_read_the_history_parquet_output_not_the_shards(definition):
    prepare = step(definition, contracts.STEP_PREPARE_BATCH)["Arguments"]
    names = [o["OutputName"] for o in prepare["ProcessingOutputConfig"]["Outputs"]]
    assert names == ["shards", "history"]
    history = {"Get": f"Steps.{contracts.STEP_PREPARE_BATCH}.ProcessingOutputConfig.Outputs['history'].S3Output.S3Uri"}
    for name in (contracts.STEP_MONITOR, contracts.STEP_REPORT):
        inputs = {
            i["InputName"]: i["S3Input"]["S3Uri"] for i in step(definition, name)["Arguments"]["ProcessingInputs"]
        }
        assert inputs["history"] == history, name


def test_given_the_default_input_url_then_it_is_a_folder_prefix_with_a_trailing_slash(definition):
    # on S3 a prefix without "/" also matches data/batch.csv or data/batch_old/...; the local store reads the folder
    url = default_parameters(definition)["InputDataUrl"]
    assert url.startswith("s3://forecast-test-bucket/") and url.endswith("/data/batch/")
