"""The training pipeline: prepare -> AutoML V2 -> backtest -> evaluate -> gate -> register -> deploy.

```
PrepareData ─┬─ train ──────────► AutoML (CreateAutoMLJobV2, waits; AutoMLResult.model_name)
             ├─ backtest ───────► BacktestForecast (transform with that model)
             ├─ backtest ───────► ChampionForecast (newest Approved package, same files; champion.json)
             ├─ holdout, train ─► Evaluate ◄── forecasts, champion (EvaluationReport)
             └─ profile ────────► AutoML
QualityGate: EvaluationReport quality_gate.value <= QualityThreshold (always a number; an undefined
             metric is a value no threshold admits, with quality_gate.defined false)
   true  -> ChampionGate: champion.status != "compared" or champion.challenger_value <= champion.limit
              true  -> RegisterModel (Registration.model_package_arn) -> Deploy (Lambda: deploys Approved only)
              false -> ChallengerLost (fails naming the metric, both values and the champion's version)
   false -> QualityTooLow (fails quoting quality_gate.message: the metric, its value and the threshold,
            or why the metric is undefined)
```

Only Processing, Transform, Condition, Fail and Lambda steps: the local runtime executes
exactly this definition. Rendering is offline and deterministic (pipelines.sdk).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pipelines.steps import StepFactory, flag, input_path, json_get, output_path, output_uri, property_file
from processing.kernel import contracts
from processing.kernel.settings import Settings, account_of

AUTOML_STEP_MAX_RUNTIME_SECONDS = 2 * 24 * 60 * 60  # the AutoML step waits for the whole job
CHAMPION_STEP_MAX_RUNTIME_SECONDS = 8 * 60 * 60  # processing.champion waits up to 6 h for its transform
# No step is cached (CacheConfig): SageMaker keys a processing step on its request (AppSpecification,
# Environment, ProcessingInputs), never on the data under an S3 URI, so a retrain on sales refreshed in
# place at the same InputDataUrl (a weekly schedule with the default) would reuse the old PrepareData
# outputs for the whole ExpireAfter and train and gate on stale data. A failed run is resumed with
# --retry (RetryPipelineExecution), which reuses the steps that succeeded without any cache.
AUTOML_RESULT_OUTPUT = "result"
EVALUATION_OUTPUT = "evaluation"
REGISTRATION_OUTPUT = "result"
BACKTEST_OUTPUT = "forecasts"
DEPLOY_OUTPUTS = ("status", "endpoint_status")  # deploy.handler's result: deployed/in_progress/skipped, InService...


@dataclasses.dataclass(frozen=True)
class ParameterSpec:
    """A pipeline parameter: its public name, type and default, and what it tunes."""

    name: str
    kind: str  # "String", "Integer" or "Float"
    default: Any
    help: str


def default_input_uri(settings: Settings) -> str:
    """Where InputDataUrl points by default (the local runtime generates the seed's data there)."""
    return settings.s3_uri("data", "sales") + "/"


def parameter_specs(settings: Settings) -> list[ParameterSpec]:
    """The training pipeline's parameters (public interface; defaults fit the seed's dataset).

    The model package group and the endpoint are settings (FORECAST_MODEL_PACKAGE_GROUP,
    FORECAST_ENDPOINT_NAME), not parameters: the deploy function's role, its environment and
    the approval rule are scoped to them when the pipeline is upserted, so an execution that
    named others could register where no rule listens and deploy where the role may not
    (docs/sagemaker.md).
    """
    return [
        ParameterSpec(
            "InputDataUrl",
            "String",
            default_input_uri(settings),
            "S3 URI (file or prefix) of the raw sales data: CSV or parquet, .gz ok",
        ),
        ParameterSpec("ItemIdColumn", "String", "item_id", "item identifier column"),
        ParameterSpec("TimestampColumn", "String", "timestamp", "timestamp column"),
        ParameterSpec("TargetColumn", "String", "target_value", "column to forecast"),
        ParameterSpec("GroupingColumns", "String", "", "comma-separated grouping columns (up to 5), empty for none"),
        ParameterSpec("ForecastFrequency", "String", "D", "Autopilot frequency: D, W, M, 1H, 15min..."),
        ParameterSpec("ForecastHorizon", "Integer", 14, "periods to forecast (held out for the backtest)"),
        ParameterSpec(
            "ForecastQuantiles",
            "String",
            ",".join(contracts.DEFAULT_QUANTILES),
            "1 to 5 quantiles named p1..p99, comma-separated",
        ),
        ParameterSpec("HolidayCountry", "String", "US", "two-letter holiday calendar, empty for none"),
        ParameterSpec(
            "AutoMLAlgorithms",
            "String",
            "cnn-qr,deepar,prophet,npts,arima,ets",
            "candidate algorithms, comma-separated",
        ),
        ParameterSpec(
            "ObjectiveMetric",
            "String",
            "AverageWeightedQuantileLoss",
            "AutoML objective: AverageWeightedQuantileLoss, MAPE, MASE, RMSE or WAPE",
        ),
        ParameterSpec("MaxAutoMLRuntimeSeconds", "Integer", 14400, "AutoML job time budget"),
        ParameterSpec("QualityMetric", "String", "WAPE", "gate metric: WAPE, MAPE, MASE, RMSE, MAE or WQL"),
        ParameterSpec("QualityThreshold", "Float", 0.3, "register only when the gate metric is <= this"),
        ParameterSpec(
            "ChallengerTolerance",
            "Float",
            0.0,
            "with an Approved champion: register only when the metric <= champion's x (1 + this)",
        ),
        ParameterSpec(
            "ModelApprovalStatus",
            "String",
            "PendingManualApproval",
            "status of the new model package: PendingManualApproval or Approved",
        ),
        ParameterSpec("ProcessingInstanceType", "String", "ml.m5.xlarge", "instance of the processing steps"),
        ParameterSpec("TransformInstanceType", "String", "ml.m5.xlarge", "instance of the backtest transform"),
    ]


def make_parameters(settings: Settings) -> dict[str, Any]:
    """name -> a real SDK Parameter object (overridable per execution)."""
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString

    classes = {"String": ParameterString, "Integer": ParameterInteger, "Float": ParameterFloat}
    return {
        spec.name: classes[spec.kind](name=spec.name, default_value=spec.default) for spec in parameter_specs(settings)
    }


def deploy_function_arn(settings: Settings) -> str:
    return (
        f"arn:aws:lambda:{settings.effective_region}:{account_of(settings.effective_role_arn)}"
        f":function:{settings.deploy_function_name}"
    )


def get_pipeline(settings: Settings, factory: StepFactory | None = None) -> Any:
    """The training Pipeline object (SDK v3). Offline: no upload, no AWS call."""
    from pipelines.sdk import defaults_validated_once

    with defaults_validated_once(settings.effective_region):  # steps are built and rendered in it
        return _training_pipeline(settings, factory)


def _training_pipeline(settings: Settings, factory: StepFactory | None) -> Any:
    from pipelines.sdk import import_sdk, pipeline

    import_sdk(settings.effective_region)
    from sagemaker.core.lambda_helper import Lambda
    from sagemaker.core.workflow.conditions import ConditionLessThanOrEqualTo
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.lambda_step import LambdaOutput, LambdaStep
    from sagemaker.mlops.workflow.pipeline_experiment_config import PipelineExperimentConfig

    factory = factory or StepFactory.create(settings)
    p = make_parameters(settings)
    columns = [
        flag("item-id-column", p["ItemIdColumn"]),
        flag("timestamp-column", p["TimestampColumn"]),
        flag("target-column", p["TargetColumn"]),
        flag("grouping-columns", p["GroupingColumns"]),
        flag("frequency", p["ForecastFrequency"]),
    ]

    prepare = factory.processing_step(
        contracts.STEP_PREPARE,
        "processing.prepare",
        arguments=[
            flag("input", input_path("data")),
            flag("input-url", p["InputDataUrl"]),  # what messages name instead of the container's folder
            flag("output-dir", contracts.OUTPUT_DIR),
            *columns,
            flag("horizon", p["ForecastHorizon"]),
        ],
        inputs={"data": p["InputDataUrl"]},
        outputs=[contracts.PREP_TRAIN, contracts.PREP_HOLDOUT, contracts.PREP_BACKTEST, contracts.PREP_PROFILE],
        instance_type=p["ProcessingInstanceType"],
        display_name="Prepare sales data",
        description="Validate and clean the raw sales data, then split it into the AutoML training set, "
        "the held-out horizon, whole-series backtest inputs and a data profile.",
    )

    automl_result = property_file(contracts.AUTOML_RESULT_NAME, AUTOML_RESULT_OUTPUT, contracts.AUTOML_RESULT_FILE)
    automl = factory.processing_step(
        contracts.STEP_AUTOML,
        "processing.automl_job",
        arguments=[
            flag("train-uri", output_uri(prepare, contracts.PREP_TRAIN)),
            flag("profile-dir", input_path(contracts.PREP_PROFILE)),
            flag("output-uri", factory.execution_uri(contracts.STEP_AUTOML, "job")),
            flag("execution-id", ExecutionVariables.PIPELINE_EXECUTION_ID),
            flag("role-arn", settings.effective_role_arn),
            *columns,
            flag("horizon", p["ForecastHorizon"]),
            flag("quantiles", p["ForecastQuantiles"]),
            flag("holiday-country", p["HolidayCountry"]),
            flag("algorithms", p["AutoMLAlgorithms"]),
            flag("objective-metric", p["ObjectiveMetric"]),
            flag("max-runtime-seconds", p["MaxAutoMLRuntimeSeconds"]),
            flag("result-dir", output_path(AUTOML_RESULT_OUTPUT)),
        ],
        inputs={contracts.PREP_PROFILE: output_uri(prepare, contracts.PREP_PROFILE)},
        outputs=[AUTOML_RESULT_OUTPUT],
        property_files=[automl_result],
        instance_type=p["ProcessingInstanceType"],
        max_runtime_seconds=AUTOML_STEP_MAX_RUNTIME_SECONDS,
        display_name="Train with Autopilot (AutoML V2)",
        description="Start (or re-attach to) a CreateAutoMLJobV2 time-series job named after the execution, "
        "wait for it, create the model with all of the best candidate's inference containers, "
        "and write automl_result.json.",
    )

    backtest = factory.transform_step(
        contracts.STEP_BACKTEST,
        model_name=json_get(automl, automl_result, "model_name"),
        data=output_uri(prepare, contracts.PREP_BACKTEST),
        output_path=factory.execution_uri(contracts.STEP_BACKTEST, BACKTEST_OUTPUT),
        instance_type=p["TransformInstanceType"],
        display_name="Forecast the held-out horizon",
        description="Batch transform of whole series (history + holdout rows with empty target) with the "
        "AutoML model; writes <file>.out forecasts with the quantile and mean columns.",
    )

    champion = factory.processing_step(
        contracts.STEP_CHAMPION,
        "processing.champion",
        arguments=[
            flag("model-package-group", settings.model_package_group),
            flag("backtest-uri", output_uri(prepare, contracts.PREP_BACKTEST)),
            flag("output-uri", factory.execution_uri(contracts.STEP_CHAMPION, "transform")),
            flag("execution-id", ExecutionVariables.PIPELINE_EXECUTION_ID),
            flag("role-arn", settings.effective_role_arn),
            flag("instance-type", p["TransformInstanceType"]),
            flag("horizon", p["ForecastHorizon"]),
            flag("quantiles", p["ForecastQuantiles"]),
            flag("frequency", p["ForecastFrequency"]),
            flag("result-dir", output_path(contracts.CHAMPION_OUTPUT)),
        ],
        outputs=[contracts.CHAMPION_OUTPUT],
        instance_type=p["ProcessingInstanceType"],
        max_runtime_seconds=CHAMPION_STEP_MAX_RUNTIME_SECONDS,
        display_name="Forecast the holdout with the champion",
        description="When the group has an Approved version (the champion), create a model from it and "
        "transform the same backtest files; writes champion.json (status none when there is "
        "no champion) and the champion's forecasts for Evaluate.",
    )

    evaluation_report = property_file(contracts.EVALUATION_RESULT_NAME, EVALUATION_OUTPUT, contracts.EVALUATION_FILE)
    evaluate = factory.processing_step(
        contracts.STEP_EVALUATE,
        "evaluation.evaluate",
        arguments=[
            flag("forecasts", input_path("forecasts")),
            flag("actuals", input_path(contracts.PREP_HOLDOUT)),
            flag("history", input_path(contracts.PREP_TRAIN)),
            flag("out", output_path(EVALUATION_OUTPUT)),
            *columns,
            flag("quantiles", p["ForecastQuantiles"]),
            flag("quality-metric", p["QualityMetric"]),
            flag("quality-threshold", p["QualityThreshold"]),
            flag("champion", input_path(contracts.CHAMPION_OUTPUT)),
            flag("challenger-tolerance", p["ChallengerTolerance"]),
        ],
        inputs={
            "forecasts": backtest.properties.TransformOutput.S3OutputPath,
            contracts.CHAMPION_OUTPUT: output_uri(champion, contracts.CHAMPION_OUTPUT),
            contracts.PREP_HOLDOUT: output_uri(prepare, contracts.PREP_HOLDOUT),
            contracts.PREP_TRAIN: output_uri(prepare, contracts.PREP_TRAIN),
        },
        outputs=[EVALUATION_OUTPUT],
        property_files=[evaluation_report],
        instance_type=p["ProcessingInstanceType"],
        display_name="Evaluate the backtest",
        description="Score the backtest against the holdout (WAPE, WQL, MAPE, MASE, RMSE, MAE, bias, coverage) "
        "against a seasonal-naive baseline; writes evaluation.json with the quality gate value.",
    )

    registration = property_file(contracts.REGISTRATION_RESULT_NAME, REGISTRATION_OUTPUT, contracts.REGISTRATION_FILE)
    register = factory.processing_step(
        contracts.STEP_REGISTER,
        "processing.register",
        arguments=[
            flag("automl-result-dir", input_path("automl")),
            flag("evaluation-dir", input_path(EVALUATION_OUTPUT)),
            flag(
                "evaluation-uri",
                Join(on="/", values=[output_uri(evaluate, EVALUATION_OUTPUT), contracts.EVALUATION_FILE]),
            ),
            flag("model-package-group", settings.model_package_group),
            flag("approval-status", p["ModelApprovalStatus"]),
            flag("execution-id", ExecutionVariables.PIPELINE_EXECUTION_ID),
            flag("result-dir", output_path(REGISTRATION_OUTPUT)),
            flag("profile-dir", input_path(contracts.PREP_PROFILE)),
        ],
        inputs={
            "automl": output_uri(automl, AUTOML_RESULT_OUTPUT),
            EVALUATION_OUTPUT: output_uri(evaluate, EVALUATION_OUTPUT),
            contracts.PREP_PROFILE: output_uri(prepare, contracts.PREP_PROFILE),
        },
        outputs=[REGISTRATION_OUTPUT],
        property_files=[registration],
        instance_type=p["ProcessingInstanceType"],
        display_name="Register the model",
        description="Create a model package (all inference containers, evaluation report as model quality, "
        "key metrics and the training schema as metadata) in the Model Registry with the "
        "requested approval status.",
    )

    deploy = LambdaStep(
        name=contracts.STEP_DEPLOY,
        lambda_func=Lambda(function_arn=deploy_function_arn(settings), session=factory.session),
        inputs={
            "model_package_arn": json_get(register, registration, contracts.MODEL_PACKAGE_ARN_PATH),
            "endpoint_name": settings.endpoint_name,
        },
        outputs=[LambdaOutput(output_name=name) for name in DEPLOY_OUTPUTS],
        display_name="Deploy if approved",
        description="Call the deploy function: it deploys the package to the endpoint only when it is "
        "Approved (otherwise it records that approval is pending), waits within the Lambda step's "
        "10 minutes and reports the endpoint's state; a Failed endpoint fails the step.",
    )

    gate_value = json_get(evaluate, evaluation_report, contracts.QUALITY_GATE_VALUE_PATH)
    gate_message = json_get(evaluate, evaluation_report, contracts.QUALITY_GATE_MESSAGE_PATH)
    too_low = FailStep(
        name=contracts.STEP_FAIL,
        error_message=Join(
            on=" ", values=["Forecast quality too low:", gate_message, "- the model was not registered."]
        ),
        display_name="Quality too low",
        description="Stop the execution: the backtest metric is worse than the threshold.",
    )
    champion_gate = champion_gate_step(evaluate, evaluation_report, p, register, deploy)
    gate = ConditionStep(
        name=contracts.STEP_GATE,
        conditions=[ConditionLessThanOrEqualTo(left=gate_value, right=p["QualityThreshold"])],
        if_steps=[champion_gate],
        else_steps=[too_low],
        display_name="Quality gate",
        description="Continue to registration only when the backtest QualityMetric <= QualityThreshold.",
    )

    return pipeline(
        name=settings.training_pipeline_name,
        parameters=list(p.values()),
        steps=[prepare, automl, backtest, champion, evaluate, gate],
        pipeline_experiment_config=PipelineExperimentConfig(
            ExecutionVariables.PIPELINE_NAME, ExecutionVariables.PIPELINE_EXECUTION_ID
        ),
        sagemaker_session=factory.session,
    )


def champion_gate_step(evaluate: Any, evaluation_report: Any, p: dict, register: Any, deploy: Any) -> Any:
    """ChampionGate: with a compared champion, the challenger's metric must be <= the limit
    Evaluate computed (champion x (1 + ChallengerTolerance)); otherwise ChallengerLost."""
    from sagemaker.core.workflow.conditions import (
        ConditionEquals,
        ConditionLessThanOrEqualTo,
        ConditionNot,
        ConditionOr,
    )
    from sagemaker.core.workflow.functions import Join
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep

    def read(path: str) -> Any:
        return json_get(evaluate, evaluation_report, path)

    challenger, limit = read(contracts.CHAMPION_CHALLENGER_VALUE_PATH), read(contracts.CHAMPION_LIMIT_PATH)
    lost = FailStep(
        name=contracts.STEP_CHALLENGER_LOST,
        # joined on "": each literal carries its own spaces, so ")" follows a value with none before it
        error_message=Join(
            on="",
            values=[
                "Challenger lost to the champion: ",
                p["QualityMetric"],
                " ",
                read(contracts.CHAMPION_CHALLENGER_SHOWN_PATH),  # Evaluate's rounding: an expression cannot round
                " is above the champion's ",
                read(contracts.CHAMPION_SHOWN_PATH),
                " (model package version ",
                read(contracts.CHAMPION_VERSION_PATH),
                ") x (1 + ChallengerTolerance ",
                p["ChallengerTolerance"],
                ") = ",
                read(contracts.CHAMPION_LIMIT_SHOWN_PATH),
                " on the same holdout - the model was not registered. A retry fails the same way: start a "
                "new execution on newer data, or with --param ChallengerTolerance=<x> to register a "
                "challenger up to x (0.05: 5%) worse.",
            ],
        ),
        display_name="Challenger lost",
        description="Stop the execution: the Approved champion forecasts the same holdout better.",
    )
    return ConditionStep(
        name=contracts.STEP_CHAMPION_GATE,
        conditions=[
            ConditionOr(
                conditions=[
                    ConditionNot(
                        expression=ConditionEquals(left=read(contracts.CHAMPION_STATUS_PATH), right="compared")
                    ),
                    ConditionLessThanOrEqualTo(left=challenger, right=limit),
                ]
            )
        ],
        if_steps=[register, deploy],
        else_steps=[lost],
        display_name="Champion gate",
        description="With an Approved champion scored on the same holdout, continue only when the "
        "candidate's QualityMetric <= champion's x (1 + ChallengerTolerance).",
    )


def definition(settings: Settings) -> dict:
    """The definition JSON (as a dict) that is upserted to SageMaker and run by the local runtime."""
    return json.loads(get_pipeline(settings).definition())
