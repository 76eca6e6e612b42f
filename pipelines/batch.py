"""The batch forecasting pipeline: every item, with the latest approved model, into reports.

    ResolveModel ─┬─> CreateModel ──────┐
                  │                     ├──> BatchForecast ──> MonitorForecasts ──> Report
                  └─> PrepareBatchInput ┘

ResolveModel picks the newest Approved package of the group (and fails clearly when there
is none); CreateModel makes a Model from the package ARN, which brings every container of
the package; PrepareBatchInput writes the package's training schema, in whole-series files
cut by bytes (and the same rows as history.parquet, which MonitorForecasts and Report read);
BatchForecast is a transform over those files (one request each); Report writes the
tables, summary, inventory suggestions, charts and HTML page under OutputUrl.
MonitorForecasts keeps this run's forecasts under `<prefix>/forecast-history/<execution>/`,
scores earlier runs' forecasts against the actuals in this input (appending to
`<prefix>/accuracy-history/`) and states the input's drift since training (issue 15).
"""

from __future__ import annotations

from typing import Any

from pipelines.steps import StepFactory, flag, input_path, json_get, output_path, output_uri, property_file
from processing.kernel import contracts
from processing.kernel.settings import Settings


def parameter_specs(settings: Settings) -> list:
    """The batch pipeline's parameters: name, type, default and meaning (the --help table)."""
    from pipelines.training import ParameterSpec

    return [
        ParameterSpec(
            "InputDataUrl",
            "String",
            settings.s3_uri("data", "batch")
            + "/",  # a folder: without "/" S3 also matches data/batch.csv, data/batch_old/
            "history + future rows (known covariates, empty target): file, folder or S3 URI",
        ),
        ParameterSpec(
            "ModelPackageGroupName",
            "String",
            settings.model_package_group,
            "Model Registry group whose latest Approved version forecasts",
        ),
        ParameterSpec(
            "OutputUrl",
            "String",
            settings.s3_uri("reports", "latest"),
            "where the report goes (S3 URI; locally also a folder such as ./report)",
        ),
        ParameterSpec("ItemIdColumn", "String", "item_id", "item identifier column"),
        ParameterSpec("TimestampColumn", "String", "timestamp", "timestamp column"),
        ParameterSpec("TargetColumn", "String", "target_value", "column forecast (empty on future rows)"),
        ParameterSpec("GroupingColumns", "String", "", "comma-separated grouping columns, empty for none"),
        ParameterSpec("ServiceLevel", "Float", 0.9, "inventory service level: order-up-to = this quantile of demand"),
        ParameterSpec("ItemsPerFile", "Integer", 100, "items per transform input file (whole series per file)"),
        ParameterSpec("ProcessingInstanceType", "String", "ml.m5.xlarge", "instance of the processing steps"),
        ParameterSpec("TransformInstanceType", "String", "ml.m5.xlarge", "instance of the batch transform"),
    ]


def batch_parameters(settings: Settings) -> dict:
    """Every tunable of the batch pipeline, as real pipeline parameters."""
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString

    classes = {"String": ParameterString, "Integer": ParameterInteger, "Float": ParameterFloat}
    return {spec.name: classes[spec.kind](spec.name, default_value=spec.default) for spec in parameter_specs(settings)}


def get_batch_pipeline(settings: Settings, factory: Any = None) -> Any:
    """The batch pipeline object; `.definition()` renders offline."""
    from pipelines.sdk import defaults_validated_once

    with defaults_validated_once(settings.effective_region):  # steps are built and rendered in it
        return _batch_pipeline(settings, factory)


def _batch_pipeline(settings: Settings, factory: Any) -> Any:
    from pipelines.sdk import import_sdk, pipeline

    import_sdk(settings.effective_region)
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.mlops.workflow.pipeline_experiment_config import PipelineExperimentConfig

    factory = factory or StepFactory.create(settings)
    p = batch_parameters(settings)
    columns = [
        flag("item-id-column", p["ItemIdColumn"]),
        flag("timestamp-column", p["TimestampColumn"]),
        flag("target-column", p["TargetColumn"]),
    ]

    resolved_file = property_file(contracts.RESOLVED_MODEL_NAME, "result", contracts.RESOLVED_MODEL_FILE)
    resolve_model = factory.processing_step(
        contracts.STEP_RESOLVE_MODEL,
        "processing.resolve_model",
        arguments=[flag("model-package-group", p["ModelPackageGroupName"]), flag("result-dir", output_path("result"))],
        outputs=["result"],
        property_files=[resolved_file],
        instance_type=p["ProcessingInstanceType"],
        max_runtime_seconds=15 * 60,
        display_name="Resolve the approved model",
        description="Finds the newest Approved model package in ModelPackageGroupName; fails when none is approved.",
    )

    prepare_input = factory.processing_step(
        contracts.STEP_PREPARE_BATCH,
        "processing.batch_input",
        arguments=[
            flag("input", input_path("data")),
            flag("input-url", p["InputDataUrl"]),  # what messages name instead of the container's folder
            flag("output-dir", output_path("shards")),
            flag("history-dir", output_path("history")),
            flag("items-per-file", p["ItemsPerFile"]),
            flag("model-dir", input_path("model")),
            *columns,
        ],
        inputs={"data": p["InputDataUrl"], "model": output_uri(resolve_model, "result")},
        outputs=["shards", "history"],
        instance_type=p["ProcessingInstanceType"],
        display_name="Prepare batch input",
        description="Writes the input with exactly the model's training columns, sorted and cut into files of "
        "whole series (history plus future rows with known covariates), each within the "
        "transform request size; the same rows as one Parquet file for the monitoring and report steps.",
    )

    model_file = property_file(contracts.BATCH_MODEL_NAME, "result", contracts.BATCH_MODEL_FILE)
    create_model = factory.processing_step(
        contracts.STEP_CREATE_MODEL,
        "processing.create_model",
        arguments=[
            flag("resolved-dir", input_path("resolved")),
            flag("execution-id", ExecutionVariables.PIPELINE_EXECUTION_ID),
            flag("role-arn", settings.effective_role_arn),
            flag("result-dir", output_path("result")),
        ],
        inputs={"resolved": output_uri(resolve_model, "result")},
        outputs=["result"],
        property_files=[model_file],
        instance_type=p["ProcessingInstanceType"],
        max_runtime_seconds=15 * 60,
        display_name="Create the model",
        description="Creates a SageMaker Model from the resolved package ARN, bringing all its containers.",
    )

    forecast = factory.transform_step(
        contracts.STEP_BATCH_FORECAST,
        model_name=json_get(create_model, model_file, "model_name"),
        data=output_uri(prepare_input, "shards"),
        output_path=factory.execution_uri(contracts.STEP_BATCH_FORECAST, "forecasts"),
        instance_type=p["TransformInstanceType"],
        display_name="Forecast every item",
        description="Batch transform: one <file>.out per input shard with the mean and each quantile.",
    )

    from sagemaker.core.workflow.functions import Join

    monitor = factory.processing_step(
        contracts.STEP_MONITOR,
        "evaluation.monitor",
        arguments=[
            flag("forecasts", input_path("forecasts")),
            flag("history", input_path("history")),
            flag("model-dir", input_path("model")),
            flag("forecast-history-uri", settings.s3_uri(contracts.FORECAST_HISTORY_PREFIX)),
            flag("accuracy-history-uri", settings.s3_uri(contracts.ACCURACY_HISTORY_PREFIX)),
            flag("execution-id", ExecutionVariables.PIPELINE_EXECUTION_ID),
            flag("out", output_path("monitor")),
            flag("keep-dir", output_path("kept")),
            flag("record-dir", output_path("record")),
            flag("grouping-columns", p["GroupingColumns"]),
            *columns,
        ],
        inputs={
            "forecasts": forecast.properties.TransformOutput.S3OutputPath,
            "history": output_uri(prepare_input, "history"),
            "model": output_uri(resolve_model, "result"),
        },
        outputs={
            "monitor": factory.execution_uri(contracts.STEP_MONITOR, "monitor"),
            "kept": Join(
                on="/",
                values=[settings.s3_uri(contracts.FORECAST_HISTORY_PREFIX), ExecutionVariables.PIPELINE_EXECUTION_ID],
            ),
            "record": Join(
                on="/",
                values=[settings.s3_uri(contracts.ACCURACY_HISTORY_PREFIX), ExecutionVariables.PIPELINE_EXECUTION_ID],
            ),
        },
        instance_type=p["ProcessingInstanceType"],
        display_name="Monitor forecast accuracy and input drift",
        description="Keeps this run's forecasts; scores earlier runs' forecasts against the actuals in this "
        "input (wQL, WAPE, bias, coverage; CloudWatch metrics per model version); "
        "states items new since training, gone, or whose level moved.",
    )

    report = factory.processing_step(
        contracts.STEP_REPORT,
        "processing.report",
        arguments=[
            flag("forecasts", input_path("forecasts")),
            flag("history", input_path("history")),
            flag("model-dir", input_path("model")),
            flag("out", output_path("report")),
            flag("grouping-columns", p["GroupingColumns"]),
            flag("service-level", p["ServiceLevel"]),
            flag("monitor-dir", input_path("monitor")),
            *columns,
        ],
        inputs={
            "forecasts": forecast.properties.TransformOutput.S3OutputPath,
            "history": output_uri(prepare_input, "history"),
            "model": output_uri(resolve_model, "result"),
            "monitor": output_uri(monitor, "monitor"),
        },
        outputs={"report": p["OutputUrl"]},
        instance_type=p["ProcessingInstanceType"],
        display_name="Write the planner report",
        description="Forecast table (CSV, Parquet), summary.json, inventory order-up-to levels at "
        "ServiceLevel, charts and report.html under OutputUrl.",
    )

    return pipeline(
        name=settings.batch_pipeline_name,
        parameters=list(p.values()),
        steps=[resolve_model, prepare_input, create_model, forecast, monitor, report],
        pipeline_experiment_config=PipelineExperimentConfig(
            ExecutionVariables.PIPELINE_NAME, ExecutionVariables.PIPELINE_EXECUTION_ID
        ),
        sagemaker_session=factory.session,
    )
