"""Step helpers shared by the training and batch pipelines."""

from __future__ import annotations

import json

import pytest

from pipelines import steps
from pipelines.sdk import import_sdk
from processing.kernel import contracts
from tests.pipelines.definition_support import BUCKET, REGION, resolve_expression, sagemaker_settings


@pytest.fixture(scope="module")
def factory():
    return steps.StepFactory.create(sagemaker_settings(), code_uri=f"s3://{BUCKET}/p/code/abc/")


def test_given_a_constant_or_a_parameter_then_flag_is_one_token_that_keeps_empty_values():
    import_sdk(REGION)
    from sagemaker.core.workflow.parameters import ParameterString

    assert steps.flag("horizon", 14) == "--horizon=14"
    grouping = steps.flag("grouping-columns", ParameterString("GroupingColumns", default_value=""))
    assert grouping.expr == {
        "Std:Join": {"On": "", "Values": ["--grouping-columns=", {"Get": "Parameters.GroupingColumns"}]}
    }
    assert resolve_expression(grouping.expr, {"GroupingColumns": ""}) == "--grouping-columns="


def test_given_a_module_when_building_a_processing_step_then_bundle_inputs_outputs_and_env_follow_the_contract(factory):
    step = factory.processing_step(
        "Report",
        "processing.report",
        arguments=["--x=1"],
        inputs={"forecasts": "s3://b/f/"},
        outputs=["report"],
        environment={"EXTRA": "1"},
        display_name="Report",
        description="d",
    )
    args = step.arguments
    assert args["AppSpecification"]["ContainerEntrypoint"] == ["python3", "-m", "processing.entry", "processing.report"]
    assert args["AppSpecification"]["ContainerArguments"] == ["--x=1"]
    assert [(i["InputName"], i["S3Input"]["S3Uri"], i["S3Input"]["LocalPath"]) for i in args["ProcessingInputs"]] == [
        ("code", f"s3://{BUCKET}/p/code/abc/", contracts.CODE_DIR),
        ("forecasts", "s3://b/f/", contracts.INPUT_DIR + "/forecasts"),
    ]
    (output,) = args["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["LocalPath"] == contracts.OUTPUT_DIR + "/report"
    assert (
        resolve_expression(json.loads(json.dumps(output["S3Output"]["S3Uri"], default=lambda v: v.expr)), {}, "e1")
        == f"s3://{BUCKET}/demand-forecasting/executions/e1/Report/report"
    )
    assert args["Environment"]["PYTHONPATH"] == contracts.CODE_DIR and args["Environment"]["EXTRA"] == "1"
    assert args["Environment"]["FORECAST_TARGET"] == "sagemaker"


def test_given_the_reserved_code_input_then_the_step_is_refused(factory):
    with pytest.raises(ValueError, match="step Bad: input name 'code' is reserved for the code bundle"):
        factory.processing_step("Bad", "processing.report", inputs={"code": "s3://b/x/"})


@pytest.mark.integration
def test_given_a_region_then_the_image_is_that_regions_scikit_learn_image():
    assert (
        steps.sklearn_image_uri("eu-central-1")
        == "492215442770.dkr.ecr.eu-central-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
    )


def test_given_the_environment_file_then_the_definition_uses_its_image_version(tmp_path, monkeypatch):
    """The image in the definition is the one processing_image.toml names (the file the local
    runtime builds its step environment from), not a constant of its own."""
    from pipelines import processing_image

    assert steps.SKLEARN_VERSION == processing_image.load().version == "1.9-0"
    older = tmp_path / "processing_image.toml"
    older.write_text(processing_image.ENV_FILE.read_text().replace('version = "1.9-0"', 'version = "1.2-1"'))
    read = processing_image.load.__wrapped__
    monkeypatch.setattr(processing_image, "load", lambda path=older: read(path))
    assert steps.sklearn_image_uri("eu-west-1").endswith("/sagemaker-scikit-learn:1.2-1-cpu-py3")
