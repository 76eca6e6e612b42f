"""Expressions as SageMaker resolves them: parameters, Get, Std:Join, Std:JsonGet, conditions."""

from __future__ import annotations

import pytest

from pipelines.local import expressions as ex

DEFINITION = {
    "Parameters": [
        {"Name": "InputDataUrl", "Type": "String", "DefaultValue": "s3://b/data/"},
        {"Name": "ForecastHorizon", "Type": "Integer", "DefaultValue": 14},
        {"Name": "QualityThreshold", "Type": "Float", "DefaultValue": 0.3},
        {"Name": "Retrain", "Type": "Boolean", "DefaultValue": False},
    ]
}

PREPARE_PROPERTIES = {
    "ProcessingJobName": "pipelines-abc-PrepareData",
    "ProcessingOutputConfig": {
        "Outputs": [
            {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/exec/abc/PrepareData/train"}},
            {"OutputName": "holdout", "S3Output": {"S3Uri": "s3://b/exec/abc/PrepareData/holdout"}},
        ]
    },
}
EVALUATION = {
    "quality_gate": {"metric": "WAPE", "value": 0.21, "passed": True},
    "per_quantile": [{"name": "p10", "wql": 0.05}, {"name": "p90", "wql": 0.07}],
}


def context(**changes):
    files = {("Evaluate", "EvaluationReport"): (EVALUATION, "/store/evaluation.json")}

    def property_file(step, name):
        if (step, name) not in files:
            raise ex.ExpressionError(f"no property file {name} in {step}")
        return files[(step, name)]

    values = dict(
        parameters=ex.resolve_parameters(DEFINITION, {}),
        execution={"PipelineExecutionId": "abc123def456", "PipelineName": "Training"},
        steps={"PrepareData": PREPARE_PROPERTIES, "Deploy": {"OutputParameters": {"status": "ok"}}},
        property_file=property_file,
        step_names=("PrepareData", "Evaluate", "Deploy", "Backtest"),
        current_step="Backtest",
    )
    values.update(changes)
    return ex.Context(**values)


# --- parameters -----------------------------------------------------------------------------
def test_overrides_are_coerced_to_the_declared_types():
    values = ex.resolve_parameters(DEFINITION, {"ForecastHorizon": "28", "QualityThreshold": "0.25", "Retrain": "true"})
    assert values == {"InputDataUrl": "s3://b/data/", "ForecastHorizon": 28, "QualityThreshold": 0.25, "Retrain": True}


def test_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(
        ex.ParameterError,
        match=r"unknown parameter\(s\) Horizon \(did you mean 'ForecastHorizon'\?\); this pipeline's parameters "
        r"are: ForecastHorizon, InputDataUrl, QualityThreshold, Retrain",
    ):
        ex.resolve_parameters(DEFINITION, {"Horizon": "3"})


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("ForecastHorizon", "two weeks", "ForecastHorizon is of type Integer: expected a whole number"),
        ("ForecastHorizon", "1.5", "ForecastHorizon is of type Integer"),
        ("QualityThreshold", "low", "QualityThreshold is of type Float: expected a number"),
        ("Retrain", "maybe", "Retrain is of type Boolean: expected true or false"),
    ],
)
def test_badly_typed_overrides_fail_naming_the_parameter(name, value, expected):
    with pytest.raises(ex.ParameterError, match=expected):
        ex.resolve_parameters(DEFINITION, {name: value})


def test_parameter_without_default_must_be_passed():
    definition = {"Parameters": [{"Name": "InputDataUrl", "Type": "String"}]}
    with pytest.raises(ex.ParameterError, match="InputDataUrl has no default value; pass --param InputDataUrl="):
        ex.resolve_parameters(definition, {})


# --- Get, Std:Join, Std:JsonGet ----------------------------------------------------------------
def test_get_resolves_parameters_execution_variables_and_step_properties():
    ctx = context()
    assert ex.resolve({"Get": "Parameters.ForecastHorizon"}, ctx) == 14
    assert ex.resolve({"Get": "Execution.PipelineExecutionId"}, ctx) == "abc123def456"
    assert (
        ex.resolve({"Get": "Steps.PrepareData.ProcessingOutputConfig.Outputs['holdout'].S3Output.S3Uri"}, ctx)
        == "s3://b/exec/abc/PrepareData/holdout"
    )
    assert (
        ex.resolve({"Get": "Steps.PrepareData.ProcessingOutputConfig.Outputs[0].S3Output.S3Uri"}, ctx)
        == "s3://b/exec/abc/PrepareData/train"
    )
    assert ex.resolve({"Get": "Steps.Deploy.OutputParameters['status']"}, ctx) == "ok"


def test_join_renders_values_like_sagemaker_and_nests():
    ctx = context()
    joined = ex.resolve(
        {
            "Std:Join": {
                "On": "/",
                "Values": [
                    "s3://b/out",
                    {"Get": "Execution.PipelineExecutionId"},
                    {"Get": "Parameters.ForecastHorizon"},
                    {"Get": "Parameters.QualityThreshold"},
                    {"Get": "Parameters.Retrain"},
                    {"Std:Join": {"On": "-", "Values": ["a", 1]}},
                ],
            }
        },
        ctx,
    )
    assert joined == "s3://b/out/abc123def456/14/0.3/false/a-1"


def test_expressions_inside_requests_are_resolved_everywhere():
    ctx = context()
    request = {
        "ModelName": "m",
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {
                    "S3Uri": {"Get": "Steps.PrepareData.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"}
                }
            }
        },
        "Arguments": ["--horizon", {"Get": "Parameters.ForecastHorizon"}],
    }
    assert ex.resolve(request, ctx) == {
        "ModelName": "m",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3Uri": "s3://b/exec/abc/PrepareData/train"}}},
        "Arguments": ["--horizon", 14],
    }


def test_json_get_reads_the_property_file_with_dotted_and_indexed_paths():
    ctx = context()

    def json_get(path):
        return ex.resolve(
            {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}, "Path": path}},
            ctx,
        )

    assert json_get("quality_gate.value") == 0.21
    assert json_get("per_quantile[1].wql") == 0.07
    assert json_get("$.quality_gate.metric") == "WAPE"


def test_json_get_on_a_missing_key_names_the_file_and_what_exists():
    with pytest.raises(
        ex.ExpressionError,
        match=r"step Backtest: Std:JsonGet 'quality_gate.valu' in property "
        r"file EvaluationReport of step Evaluate \(/store/evaluation.json\)"
        r": nothing at 'quality_gate.valu'; at quality_gate there is "
        r"metric, value, passed",
    ):
        ex.resolve(
            {
                "Std:JsonGet": {
                    "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"},
                    "Path": "quality_gate.valu",
                }
            },
            context(),
        )


def test_json_get_refuses_objects_because_sagemaker_returns_primitives_only():
    with pytest.raises(ex.ExpressionError, match="JsonGet returns primitive values only"):
        ex.resolve(
            {
                "Std:JsonGet": {
                    "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"},
                    "Path": "quality_gate",
                }
            },
            context(),
        )


def test_wrong_property_path_names_the_step_the_path_and_what_exists():
    path = "Steps.PrepareData.ProcessingOutputConfig.Outputs['trian'].S3Output.S3Uri"
    with pytest.raises(ex.ExpressionError) as error:
        ex.resolve({"Get": path}, context())
    message = str(error.value)
    assert message.startswith(f"step Backtest: Get {path!r} (properties of step PrepareData)")
    assert "nothing at \"ProcessingOutputConfig.Outputs['trian']\"" in message
    assert "names 'train', 'holdout'" in message


def test_get_of_unknown_or_not_yet_run_steps_and_parameters():
    ctx = context()
    with pytest.raises(ex.ExpressionError, match=r"there is no step 'Prepare'; steps are PrepareData, Evaluate"):
        ex.resolve({"Get": "Steps.Prepare.ProcessingJobName"}, ctx)
    with pytest.raises(ex.ExpressionError, match=r"step 'Evaluate' has not run \(yet\)"):
        ex.resolve({"Get": "Steps.Evaluate.ProcessingJobName"}, ctx)
    with pytest.raises(ex.ExpressionError, match="no such parameter; parameters are ForecastHorizon, InputDataUrl"):
        ex.resolve({"Get": "Parameters.Horizon"}, ctx)


# --- conditions -----------------------------------------------------------------------------------
GATE = {
    "Std:JsonGet": {
        "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"},
        "Path": "quality_gate.value",
    }
}


@pytest.mark.parametrize(
    "kind, right, expected",
    [
        ("LessThanOrEqualTo", 0.21, True),
        ("LessThan", 0.21, False),
        ("GreaterThan", 0.2, True),
        ("GreaterThanOrEqualTo", 0.3, False),
        ("Equals", 0.21, True),
        ("Equals", "0.21", True),
        ("LessThanOrEqualTo", {"Get": "Parameters.QualityThreshold"}, True),
    ],
)
def test_comparisons(kind, right, expected):
    assert ex.evaluate_condition({"Type": kind, "LeftValue": GATE, "RightValue": right}, context()) is expected


def test_in_not_or_and_the_implicit_and_of_a_condition_list():
    ctx = context()
    report = {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}
    is_wape = {
        "Type": "In",
        "QueryValue": {"Std:JsonGet": {"PropertyFile": report, "Path": "quality_gate.metric"}},
        "Values": ["MAPE", "WAPE"],
    }
    short = {"Type": "LessThan", "LeftValue": {"Get": "Parameters.ForecastHorizon"}, "RightValue": 7}
    assert ex.evaluate_condition(is_wape, ctx) is True
    assert ex.evaluate_condition({"Type": "Not", "Condition": short}, ctx) is True
    assert ex.evaluate_condition({"Type": "Or", "Conditions": [short, is_wape]}, ctx) is True
    assert ex.evaluate_conditions([is_wape, short], ctx) is False


def test_unknown_condition_type_is_named():
    with pytest.raises(ex.ExpressionError, match="unknown condition type 'Between'"):
        ex.evaluate_condition({"Type": "Between"}, context())


def test_referenced_steps_finds_data_dependencies_in_nested_expressions():
    value = {
        "a": [{"Std:Join": {"On": "", "Values": [{"Get": "Steps.A.ProcessingJobName"}]}}],
        "b": GATE,
        "c": {"Get": "Parameters.X"},
    }
    assert ex.referenced_steps(value) == ["A", "Evaluate"]


def test_json_get_on_an_s3_uri_reads_that_object():
    documents = {"s3://b/exec/abc/result.json": {"model_name": "m-1"}}
    ctx = context(json_reader=documents.__getitem__)
    value = ex.resolve(
        {
            "Std:JsonGet": {
                "S3Uri": {"Std:Join": {"On": "/", "Values": ["s3://b/exec", "abc", "result.json"]}},
                "Path": "model_name",
            }
        },
        ctx,
    )
    assert value == "m-1"


def test_a_nested_condition_is_described_with_its_values_not_as_or_none_none():
    # the run output printed "ChampionGate: Or(None, None) is True" for the champion gate
    from pipelines.local.executors import describe_condition

    report = {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}
    metric = {"Std:JsonGet": {"PropertyFile": report, "Path": "quality_gate.metric"}}
    short = {"Type": "LessThan", "LeftValue": {"Get": "Parameters.ForecastHorizon"}, "RightValue": 7}
    gate = {
        "Type": "Or",
        "Conditions": [{"Type": "Not", "Condition": short}, {"Type": "In", "QueryValue": metric, "Values": ["WAPE"]}],
    }
    assert describe_condition(gate, context()) == "Or(Not(LessThan(14, 7)), In('WAPE', ['WAPE']))"
