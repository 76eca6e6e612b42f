"""The training definition: step order and wiring, parameters, botocore shapes, CLI contracts."""

from __future__ import annotations

import json
import re

import pytest

from processing.kernel import contracts
from processing.kernel.aws_validation import request_problems
from tests.pipelines.definition_support import (
    BUCKET,
    REGION,
    all_steps,
    default_parameters,
    job_request,
    resolve_expression,
    step,
    training_definition,
    training_text,
)

ISSUE_PARAMETERS = {  # issue 2: name -> (type, default); None = no default fixed by the issue
    # (issue 18: ModelPackageGroupName and EndpointName are settings, not parameters; see
    # test_given_the_deploy_scope_then_the_definition_uses_the_same_group_and_endpoint)
    "InputDataUrl": ("String", None),
    "ItemIdColumn": ("String", "item_id"),
    "TimestampColumn": ("String", "timestamp"),
    "TargetColumn": ("String", "target_value"),
    "GroupingColumns": ("String", ""),
    "ForecastFrequency": ("String", "D"),
    "ForecastHorizon": ("Integer", 14),
    "ForecastQuantiles": ("String", "p10,p50,p90"),
    "HolidayCountry": ("String", "US"),
    "AutoMLAlgorithms": ("String", "cnn-qr,deepar,prophet,npts,arima,ets"),
    "ObjectiveMetric": ("String", "AverageWeightedQuantileLoss"),
    "MaxAutoMLRuntimeSeconds": ("Integer", None),
    "QualityMetric": ("String", "WAPE"),
    "QualityThreshold": ("Float", 0.3),
    "ChallengerTolerance": ("Float", 0.0),  # issue 15
    "ModelApprovalStatus": ("String", "PendingManualApproval"),
    "ProcessingInstanceType": ("String", None),
    "TransformInstanceType": ("String", None),
}


@pytest.fixture(scope="module")
def definition():
    return training_definition()


def test_given_the_definition_when_listing_steps_then_order_types_and_branches_match_the_issue(definition):
    top = [(s["Name"], s["Type"]) for s in definition["Steps"]]
    assert top == [
        ("PrepareData", "Processing"),
        ("AutoML", "Processing"),
        ("BacktestForecast", "Transform"),
        ("ChampionForecast", "Processing"),
        ("Evaluate", "Processing"),
        ("QualityGate", "Condition"),
    ]
    gate = step(definition, "QualityGate")["Arguments"]
    assert [(s["Name"], s["Type"]) for s in gate["IfSteps"]] == [("ChampionGate", "Condition")]
    assert [(s["Name"], s["Type"]) for s in gate["ElseSteps"]] == [("QualityTooLow", "Fail")]
    champion_gate = step(definition, "ChampionGate")["Arguments"]
    assert [(s["Name"], s["Type"]) for s in champion_gate["IfSteps"]] == [
        ("RegisterModel", "Processing"),
        ("Deploy", "Lambda"),
    ]
    assert [(s["Name"], s["Type"]) for s in champion_gate["ElseSteps"]] == [("ChallengerLost", "Fail")]
    for s in all_steps(definition["Steps"]):
        assert s["Type"] in {"Processing", "Transform", "Condition", "Fail", "Lambda"}
        assert s.get("DisplayName") and s.get("Description"), f"{s['Name']} lacks a display name or description"
    assert definition["PipelineExperimentConfig"] == {
        "ExperimentName": {"Get": "Execution.PipelineName"},
        "TrialName": {"Get": "Execution.PipelineExecutionId"},
    }


def test_given_the_training_definition_then_no_step_is_cached_so_refreshed_data_is_prepared_again(definition):
    """SageMaker keys a cached processing step on its request only (AppSpecification, Environment,
    ProcessingInputs), not on the objects under its S3 URIs: a cached PrepareData would hand a retrain
    on data refreshed in place at the default InputDataUrl the previous run's outputs, while the local
    runtime (which hashes the contents) prepares the new data. Nothing the pipeline does may be cached."""
    assert [s["Name"] for s in all_steps(definition["Steps"]) if s.get("CacheConfig")] == []
    prepare = step(definition, "PrepareData")["Arguments"]
    assert {"Get": "Parameters.InputDataUrl"} in [i["S3Input"]["S3Uri"] for i in prepare["ProcessingInputs"]]
    assert "PipelineExecutionId" not in str([prepare["AppSpecification"], prepare["Environment"]])  # same request


@pytest.mark.parametrize(
    "name", ["PrepareData", "AutoML", "BacktestForecast", "ChampionForecast", "Evaluate", "RegisterModel"]
)
def test_given_a_job_step_when_validated_against_botocore_then_it_has_no_problem(definition, name):
    s = step(definition, name)
    operation, request = job_request(s)
    assert request_problems("sagemaker", operation, request) == []


def test_given_a_broken_step_when_validated_then_the_validator_reports_it(definition):
    _, broken = job_request(step(definition, "PrepareData"))
    broken["ProcessingResources"]["ClusterConfig"]["VolumeSizeInGB"] = "30"
    broken["AppSpecification"]["Entrypoint"] = ["python3"]
    problems = request_problems("sagemaker", "CreateProcessingJob", broken)
    assert any("VolumeSizeInGB: expected an integer" in p for p in problems)
    assert any("unknown member Entrypoint" in p for p in problems)


def test_given_the_deploy_step_then_it_invokes_the_deploy_function_of_the_role_account(definition):
    deploy = step(definition, "Deploy")
    assert deploy["FunctionArn"] == f"arn:aws:lambda:{REGION}:123456789012:function:demand-forecast-deploy"
    assert request_problems("lambda", "Invoke", {"FunctionName": deploy["FunctionArn"]}) == []
    assert deploy["Arguments"] == {
        "model_package_arn": {
            "Std:JsonGet": {
                "PropertyFile": {"Get": "Steps.RegisterModel.PropertyFiles.Registration"},
                "Path": contracts.MODEL_PACKAGE_ARN_PATH,
            }
        },
        "endpoint_name": "demand-forecast",
    }
    assert deploy["OutputParameters"] == [
        {"OutputName": "status", "OutputType": "String"},
        {"OutputName": "endpoint_status", "OutputType": "String"},
    ]


def test_given_the_deploy_scope_then_the_definition_uses_the_same_group_and_endpoint(definition):
    """Overriding the group or the endpoint per execution broke deployment (issue 18): the deploy role and
    the approval rule are scoped to the configured names, so the definition offers no such override and
    uses exactly the names they are scoped to."""
    from deploy.infrastructure import approval_event_pattern, deploy_role_policy
    from tests.pipelines.definition_support import sagemaker_settings

    settings = sagemaker_settings()
    declared = {p["Name"] for p in definition["Parameters"]}
    assert not {"EndpointName", "ModelPackageGroupName"} & declared
    register_args = step(definition, "RegisterModel")["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert f"--model-package-group={settings.model_package_group}" in register_args
    assert approval_event_pattern(settings)["detail"]["ModelPackageGroupName"] == [settings.model_package_group]
    endpoint = step(definition, "Deploy")["Arguments"]["endpoint_name"]
    resources = json.dumps(deploy_role_policy(settings))
    assert f':endpoint/{endpoint}"' in resources
    assert f":model-package/{settings.model_package_group}/*" in resources


def test_given_the_parameters_then_names_types_and_defaults_are_the_issues(definition):
    declared = {p["Name"]: (p["Type"], p.get("DefaultValue")) for p in definition["Parameters"]}
    assert set(declared) == set(ISSUE_PARAMETERS)
    for name, (kind, default) in ISSUE_PARAMETERS.items():
        assert declared[name][0] == kind, name
        if default is not None:
            assert declared[name][1] == default, name
    assert declared["InputDataUrl"][1].startswith(f"s3://{BUCKET}/")


def test_given_each_parameter_then_some_step_reads_it_so_overrides_take_effect(definition):
    steps_text = json.dumps(definition["Steps"])
    unused = [p["Name"] for p in definition["Parameters"] if f'"Parameters.{p["Name"]}"' not in steps_text]
    assert unused == []


def test_given_the_quality_gate_then_it_reads_the_evaluate_property_file_at_the_contract_path(definition):
    evaluate = step(definition, "Evaluate")
    assert evaluate["PropertyFiles"] == [
        {
            "PropertyFileName": contracts.EVALUATION_RESULT_NAME,
            "OutputName": "evaluation",
            "FilePath": contracts.EVALUATION_FILE,
        }
    ]
    (condition,) = step(definition, "QualityGate")["Arguments"]["Conditions"]
    assert condition["Type"] == "LessThanOrEqualTo"
    assert condition["LeftValue"] == {
        "Std:JsonGet": {
            "PropertyFile": {"Get": f"Steps.Evaluate.PropertyFiles.{contracts.EVALUATION_RESULT_NAME}"},
            "Path": contracts.QUALITY_GATE_VALUE_PATH,
        }
    }
    assert condition["RightValue"] == {"Get": "Parameters.QualityThreshold"}


def test_given_the_fail_step_then_its_message_names_metric_value_and_threshold(definition):
    message = step(definition, "QualityTooLow")["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    text = json.dumps(message)
    # Evaluate writes the message from the QualityMetric and QualityThreshold it was given (its flags)
    assert contracts.QUALITY_GATE_MESSAGE_PATH in text
    evaluate_args = json.dumps(step(definition, "Evaluate")["Arguments"]["AppSpecification"]["ContainerArguments"])
    assert '"Parameters.QualityMetric"' in evaluate_args and '"Parameters.QualityThreshold"' in evaluate_args


def _json_get(path):
    return {
        "Std:JsonGet": {
            "PropertyFile": {"Get": f"Steps.Evaluate.PropertyFiles.{contracts.EVALUATION_RESULT_NAME}"},
            "Path": path,
        }
    }


def test_given_the_champion_gate_then_it_compares_only_a_compared_champion_at_the_contract_paths(definition):
    (condition,) = step(definition, "ChampionGate")["Arguments"]["Conditions"]
    assert condition["Type"] == "Or"
    skip, compare = condition["Conditions"]
    assert skip == {
        "Type": "Not",
        "Condition": {
            "Type": "Equals",
            "LeftValue": _json_get(contracts.CHAMPION_STATUS_PATH),
            "RightValue": "compared",
        },
    }
    assert compare == {
        "Type": "LessThanOrEqualTo",
        "LeftValue": _json_get(contracts.CHAMPION_CHALLENGER_VALUE_PATH),
        "RightValue": _json_get(contracts.CHAMPION_LIMIT_PATH),
    }


def test_given_the_challenger_lost_step_then_its_message_names_both_values_the_metric_and_the_version(definition):
    text = json.dumps(step(definition, "ChallengerLost")["Arguments"]["ErrorMessage"])
    for needle in (
        '"Parameters.QualityMetric"',
        '"Parameters.ChallengerTolerance"',
        contracts.CHAMPION_SHOWN_PATH,
        contracts.CHAMPION_CHALLENGER_SHOWN_PATH,
        contracts.CHAMPION_LIMIT_SHOWN_PATH,
        contracts.CHAMPION_VERSION_PATH,
    ):
        assert needle in text, needle


def test_given_the_challenger_lost_step_then_the_local_runtime_renders_its_message_with_clean_spacing(definition):
    from pipelines.local import expressions as ex

    message = step(definition, "ChallengerLost")["Arguments"]["ErrorMessage"]
    assert message["Std:Join"]["On"] == ""  # as SageMaker joins it: the literals carry the spaces
    champion = {
        "challenger_value": 0.006184627637112354,
        "champion_value": 0.005386023951442859,
        "version": 4,
        "limit": 0.005655325149015002,
        "challenger_shown": "0.62%",
        "champion_shown": "0.54%",
        "limit_shown": "0.57%",
    }
    ctx = ex.Context(
        parameters={"QualityMetric": "WAPE", "ChallengerTolerance": 0.05},
        execution={"PipelineExecutionId": "abc"},
        property_file=lambda step, name: ({"champion": champion}, "/store/evaluation.json"),
        step_names=tuple(s["Name"] for s in all_steps(definition["Steps"])),
        current_step="ChallengerLost",
    )
    assert ex.resolve(message, ctx) == (
        "Challenger lost to the champion: WAPE 0.62% is above the champion's 0.54% (model package version 4) "
        "x (1 + ChallengerTolerance 0.05) = 0.57% on the same holdout - the model was not registered. A retry "
        "fails the same way: start a new execution on newer data, or with --param ChallengerTolerance=<x> to "
        "register a challenger up to x (0.05: 5%) worse."
    )


def test_given_the_champion_step_then_it_forecasts_the_backtest_files_and_feeds_evaluate(definition):
    from processing import champion

    args = champion.parse_args(
        _container_args(
            definition,
            "ChampionForecast",
            default_parameters(definition),
            {"Steps.PrepareData.ProcessingOutputConfig.Outputs['backtest'].S3Output.S3Uri": "s3://b/p/backtest"},
        )
    )
    assert args.backtest_uri == "s3://b/p/backtest" and args.horizon == 14 and args.quantiles == "p10,p50,p90"
    assert args.output_uri == f"s3://{BUCKET}/demand-forecasting/executions/exec-1/ChampionForecast/transform"
    from tests.pipelines.definition_support import sagemaker_settings

    assert args.model_package_group == sagemaker_settings().model_package_group
    inputs = {
        i["InputName"]: i["S3Input"]["S3Uri"] for i in step(definition, "Evaluate")["Arguments"]["ProcessingInputs"]
    }
    assert inputs["champion"] == {
        "Get": "Steps.ChampionForecast.ProcessingOutputConfig.Outputs['champion'].S3Output.S3Uri"
    }
    from evaluation import evaluate

    parsed = evaluate.build_parser().parse_args(
        _container_args(definition, "Evaluate", default_parameters(definition), {})
    )
    assert parsed.champion == "/opt/ml/processing/input/champion" and parsed.challenger_tolerance == 0.0


def test_given_the_backtest_then_it_transforms_prepare_output_with_the_automl_model(definition):
    automl = step(definition, "AutoML")
    assert automl["PropertyFiles"] == [
        {
            "PropertyFileName": contracts.AUTOML_RESULT_NAME,
            "OutputName": "result",
            "FilePath": contracts.AUTOML_RESULT_FILE,
        }
    ]
    args = step(definition, "BacktestForecast")["Arguments"]
    assert args["ModelName"] == {
        "Std:JsonGet": {
            "PropertyFile": {"Get": f"Steps.AutoML.PropertyFiles.{contracts.AUTOML_RESULT_NAME}"},
            "Path": "model_name",
        }
    }
    assert args["TransformInput"]["ContentType"] == "text/csv"
    assert args["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == {
        "Get": "Steps.PrepareData.ProcessingOutputConfig.Outputs['backtest'].S3Output.S3Uri"
    }


def test_given_every_output_then_it_goes_under_the_execution_folder_of_its_step(definition):
    for s in all_steps(definition["Steps"]):
        if s["Type"] == "Processing":
            destinations = [
                (o["OutputName"], o["S3Output"]["S3Uri"]) for o in s["Arguments"]["ProcessingOutputConfig"]["Outputs"]
            ]
        elif s["Type"] == "Transform":
            destinations = [("forecasts", s["Arguments"]["TransformOutput"]["S3OutputPath"])]
        else:
            continue
        for output, uri in destinations:
            resolved = resolve_expression(uri, {}, execution_id="abc123")
            assert resolved == f"s3://{BUCKET}/demand-forecasting/executions/abc123/{s['Name']}/{output}"


def test_given_processing_steps_then_code_bundle_entrypoint_and_pythonpath_are_set(definition):
    for s in all_steps(definition["Steps"]):
        if s["Type"] != "Processing":
            continue
        args = s["Arguments"]
        code = [i for i in args["ProcessingInputs"] if i["InputName"] == "code"]
        assert code and code[0]["S3Input"]["LocalPath"] == contracts.CODE_DIR
        assert re.fullmatch(rf"s3://{BUCKET}/demand-forecasting/code/[0-9a-f]{{16}}/", code[0]["S3Input"]["S3Uri"])
        assert args["AppSpecification"]["ContainerEntrypoint"][:3] == ["python3", "-m", "processing.entry"]
        assert args["Environment"]["PYTHONPATH"] == contracts.CODE_DIR
        assert args["AppSpecification"]["ImageUri"].endswith(
            f".dkr.ecr.{REGION}.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
        )


@pytest.mark.integration
def test_given_two_renders_with_the_same_code_then_the_definitions_are_identical():
    from pipelines.steps import StepFactory
    from pipelines.training import get_pipeline
    from tests.pipelines.definition_support import sagemaker_settings

    settings = sagemaker_settings()
    code = f"s3://{BUCKET}/demand-forecasting/code/0123456789abcdef/"
    first = get_pipeline(settings, StepFactory.create(settings, code_uri=code)).definition()
    second = get_pipeline(settings, StepFactory.create(settings, code_uri=code)).definition()
    assert first == second
    assert first.replace(code, "") == re.sub(r"s3://[^\"]*/code/[0-9a-f]{16}/", "", training_text())


def _container_args(definition, name, parameters, properties=None):
    s = step(definition, name)
    return [
        resolve_expression(a, parameters, "exec-1", properties)
        for a in s["Arguments"]["AppSpecification"]["ContainerArguments"]
    ]


PREP_PROPERTIES = {
    f"Steps.PrepareData.ProcessingOutputConfig.Outputs['{o}'].S3Output.S3Uri": f"s3://{BUCKET}/demand-forecasting/executions/exec-1/PrepareData/{o}"
    for o in ("train", "holdout", "backtest", "profile")
}


def test_given_default_parameters_when_the_automl_step_parses_its_arguments_then_it_builds_the_definition_only_request(
    definition,
):
    from pipelines.run import default_automl_request
    from processing import automl_job
    from tests.pipelines.definition_support import sagemaker_settings

    args = automl_job.parser().parse_args(
        _container_args(definition, "AutoML", default_parameters(definition), PREP_PROPERTIES)
    )
    args.profile_dir = None  # no profile in this test: same as the definition-only request
    from_step = automl_job.request_from_args(args)
    expected = default_automl_request(sagemaker_settings(), execution_id="exec-1")
    assert from_step["AutoMLProblemTypeConfig"] == expected["AutoMLProblemTypeConfig"]
    assert from_step["AutoMLJobInputDataConfig"] == expected["AutoMLJobInputDataConfig"]
    assert from_step["OutputDataConfig"] == expected["OutputDataConfig"]
    assert from_step["AutoMLJobName"] == expected["AutoMLJobName"]


def test_given_grouping_columns_overridden_when_parsed_then_empty_and_set_values_both_arrive(definition):
    from processing import automl_job

    for grouping in ("", "category,region"):
        parameters = {**default_parameters(definition), "GroupingColumns": grouping}
        args = automl_job.parser().parse_args(_container_args(definition, "AutoML", parameters, PREP_PROPERTIES))
        assert args.grouping_columns == grouping


def test_given_default_parameters_when_register_parses_its_arguments_then_every_flag_is_known(definition):
    from processing import register

    properties = {
        "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri": f"s3://{BUCKET}/demand-forecasting/executions/exec-1/Evaluate/evaluation"
    }
    args = register.parser().parse_args(
        _container_args(definition, "RegisterModel", default_parameters(definition), properties)
    )
    assert (
        args.evaluation_uri == f"s3://{BUCKET}/demand-forecasting/executions/exec-1/Evaluate/evaluation/evaluation.json"
    )
    assert args.approval_status == "PendingManualApproval" and args.execution_id == "exec-1"


def test_given_the_docs_then_the_parameter_table_lists_every_parameter_with_its_type():
    from pathlib import Path

    from pipelines.training import parameter_specs
    from tests.pipelines.definition_support import sagemaker_settings

    docs = (Path(__file__).resolve().parents[2] / "docs" / "sagemaker.md").read_text()
    for spec in parameter_specs(sagemaker_settings()):
        assert re.search(rf"^\| {spec.name} \| {spec.kind} \|", docs, re.M), (
            f"{spec.name} missing from docs/sagemaker.md"
        )


@pytest.mark.parametrize(
    "wape, outcome, message",
    [
        (None, False, "Forecast quality too low: WAPE is undefined on this holdout"),
        (
            0.5,
            False,
            "Forecast quality too low: WAPE = 0.5 is above QualityThreshold 0.3 - the model was not registered.",
        ),
        (0.2, True, None),
    ],
)
def test_given_the_evaluation_then_the_gate_outcome_is_defined_and_the_fail_message_says_why(
    definition, wape, outcome, message
):
    """An all-zero holdout used to give `condition LessThanOrEqualTo cannot compare None with 0.3` (issue 18)."""
    from evaluation import scoring
    from pipelines.local import expressions as ex

    gate = scoring.quality_gate({"wape": float("nan") if wape is None else wape}, "WAPE", 0.3)
    document = json.loads(json.dumps({"quality_gate": gate}))  # as the property file holds it
    ctx = ex.Context(
        parameters=ex.resolve_parameters(definition, {}),
        execution={"PipelineExecutionId": "e"},
        property_file=lambda step_name, name: (document, "/evaluation.json"),
        step_names=tuple(s["Name"] for s in all_steps(definition["Steps"])),
        current_step="QualityGate",
    )
    conditions = step(definition, "QualityGate")["Arguments"]["Conditions"]
    assert ex.evaluate_conditions(conditions, ctx) is outcome
    if message:
        text = ex.resolve(step(definition, "QualityTooLow")["Arguments"]["ErrorMessage"], ctx)
        assert text.startswith(message)
