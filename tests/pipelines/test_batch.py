"""The batch definition: steps and wiring, parameters, botocore shapes, the scripts' CLI contracts."""
from __future__ import annotations

import pytest

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

SCRIPTS = {contracts.STEP_RESOLVE_MODEL: resolve_model, contracts.STEP_PREPARE_BATCH: batch_input,
           contracts.STEP_CREATE_MODEL: create_model, contracts.STEP_REPORT: report}


@pytest.fixture(scope="module")
def definition():
    return batch_definition()


def test_given_the_batch_definition_then_steps_are_the_issues_in_dependency_order(definition):
    assert [(s["Name"], s["Type"]) for s in definition["Steps"]] == [
        ("ResolveModel", "Processing"), ("PrepareBatchInput", "Processing"), ("CreateModel", "Processing"),
        ("BatchForecast", "Transform"), ("Report", "Processing")]


@pytest.mark.parametrize("name", ["ResolveModel", "PrepareBatchInput", "CreateModel", "BatchForecast", "Report"])
def test_given_a_batch_step_when_validated_against_botocore_then_it_has_no_problem(definition, name):
    operation, request = job_request(step(definition, name))
    assert request_problems("sagemaker", operation, request) == []


def test_given_the_parameters_then_the_issues_names_and_defaults_are_there(definition):
    parameters = {p["Name"]: (p["Type"], p.get("DefaultValue")) for p in definition["Parameters"]}
    assert parameters["ServiceLevel"] == ("Float", 0.9)
    for name in ("InputDataUrl", "ModelPackageGroupName", "OutputUrl", "TransformInstanceType",
                 "ItemIdColumn", "TimestampColumn", "TargetColumn", "GroupingColumns"):
        assert name in parameters


def test_given_the_transform_then_it_uses_the_created_model_and_the_sharded_input(definition):
    transform = step(definition, contracts.STEP_BATCH_FORECAST)["Arguments"]
    assert transform["ModelName"] == {"Std:JsonGet": {
        "PropertyFile": {"Get": f"Steps.{contracts.STEP_CREATE_MODEL}.PropertyFiles.{contracts.BATCH_MODEL_NAME}"},
        "Path": "model_name"}}
    assert transform["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == {
        "Get": f"Steps.{contracts.STEP_PREPARE_BATCH}.ProcessingOutputConfig.Outputs['shards'].S3Output.S3Uri"}
    assert transform["TransformInput"]["SplitType"] == "None"  # a whole file (whole series) per request
    files = step(definition, contracts.STEP_CREATE_MODEL)["PropertyFiles"]
    assert files == [{"PropertyFileName": contracts.BATCH_MODEL_NAME, "OutputName": "result",
                      "FilePath": contracts.BATCH_MODEL_FILE}]


def test_given_the_report_then_its_output_goes_to_the_output_url_parameter(definition):
    [output] = step(definition, contracts.STEP_REPORT)["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["S3Uri"] == {"Get": "Parameters.OutputUrl"}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_given_default_parameters_when_a_script_parses_its_step_arguments_then_every_flag_is_known(
        definition, name):
    arguments = step(definition, name)["Arguments"]["AppSpecification"]["ContainerArguments"]
    values = [resolve_expression(a, default_parameters(definition)) for a in arguments]
    parsed = SCRIPTS[name].parse_args(values)
    assert parsed is not None
