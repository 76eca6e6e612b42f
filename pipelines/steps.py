"""Helpers that build pipeline steps the same way for every pipeline (training, batch).

A processing step here is: the scikit-learn processing image, the code bundle mounted at
contracts.CODE_DIR (on PYTHONPATH), entrypoint `python3 -m processing.entry <module>`, named
inputs mounted at contracts.INPUT_DIR/<name>, named outputs written from
contracts.OUTPUT_DIR/<name> to explicit S3 destinations under
`<prefix>/executions/<execution id>/<step>/<output>`. Explicit destinations make the
definition deterministic and let the local runtime map every URI to its object store.

Usage (see pipelines/training.py):

    factory = StepFactory.create(settings)                 # offline: no upload, no network
    prep = factory.processing_step(
        "PrepareData", "processing.prepare",
        arguments=[flag("input", input_path("data")), flag("horizon", horizon_param)],
        inputs={"data": input_data_url_param},
        outputs=["train", "holdout"],
        instance_type=instance_type_param,
        display_name="Prepare data", description="...")
    train_uri = output_uri(prep, "train")                  # a property reference: adds the edge

Arguments use the single-token form `--name=value`, built with Join when the value is a
pipeline variable, so an empty parameter value ("") still parses as a value.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from pipelines import processing_image
from pipelines.sdk import defaults_validated_once
from processing.kernel import contracts
from processing.kernel.settings import Settings

# The scikit-learn processing image (version and Python environment: pipelines/processing_image.toml,
# which the local runtime reads too). Its URI comes from the SDK's offline image table
# (sagemaker/core/image_uri_config/sklearn.json); no network.
SKLEARN_VERSION = processing_image.load().version
CODE_INPUT = "code"
ENTRY_MODULE = "processing.entry"
DEFAULT_MAX_RUNTIME_SECONDS = 2 * 60 * 60
DEFAULT_VOLUME_GB = 30


def sklearn_image_uri(region: str) -> str:
    """The SageMaker scikit-learn processing image for `region` (the SDK's offline table)."""
    from pipelines.sdk import import_sdk

    import_sdk(region)
    from sagemaker.core import image_uris

    image = processing_image.load()
    return image_uris.retrieve(
        image.framework,
        region=region,
        version=image.version,
        py_version="py3",
        instance_type="ml.m5.xlarge",
        image_scope="training",
    )


def input_path(name: str) -> str:
    """Where input `name` is mounted inside the container."""
    return f"{contracts.INPUT_DIR}/{name}"


def output_path(name: str) -> str:
    """The folder a step writes output `name` to inside the container."""
    return f"{contracts.OUTPUT_DIR}/{name}"


def is_pipeline_variable(value: Any) -> bool:
    from sagemaker.core.workflow.entities import PipelineVariable

    return isinstance(value, PipelineVariable)


def flag(name: str, value: Any) -> Any:
    """`--name=value` as one token: a plain string, or a Join when value is a pipeline variable."""
    if is_pipeline_variable(value):
        from sagemaker.core.workflow.functions import Join

        return Join(on="", values=[f"--{name}=", value])
    return f"--{name}={value}"


def execution_uri(settings: Settings, step: str, output: str) -> Any:
    """s3://<bucket>/<prefix>/executions/<execution id>/<step>/<output> (a Join)."""
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join

    return Join(on="/", values=[settings.s3_uri("executions"), ExecutionVariables.PIPELINE_EXECUTION_ID, step, output])


def output_uri(step: Any, output: str) -> Any:
    """The S3 URI a processing step wrote output `output` to (a property reference)."""
    return step.properties.ProcessingOutputConfig.Outputs[output].S3Output.S3Uri


def property_file(name: str, output: str, path: str) -> Any:
    """A JSON file in a step output that later steps read with JsonGet."""
    from sagemaker.core.workflow.properties import PropertyFile

    return PropertyFile(name=name, output_name=output, path=path)


def json_get(step: Any, prop_file: Any, json_path: str) -> Any:
    from sagemaker.core.workflow.functions import JsonGet

    return JsonGet(step_name=step.name, property_file=prop_file, json_path=json_path)


def container_environment(settings: Settings) -> dict[str, str]:
    """What step scripts need to resolve() the same settings in the container.

    The local runtime passes it as is; it points the steps' boto3 at its loopback SageMaker
    API (AWS_ENDPOINT_URL_SAGEMAKER) and turns requirement installs off.
    """
    env = {
        "PYTHONPATH": contracts.CODE_DIR,
        "PYTHONUNBUFFERED": "1",
        "FORECAST_TARGET": "sagemaker",
        "FORECAST_REGION": settings.effective_region,
        "FORECAST_BUCKET": settings.effective_bucket,
        "FORECAST_PREFIX": settings.prefix,
        "FORECAST_ROLE_ARN": settings.effective_role_arn,
        "FORECAST_INSTALL_REQUIREMENTS": "1",
    }
    return env


@dataclasses.dataclass
class StepFactory:
    """Builds steps sharing one session, role, image, code bundle and environment."""

    settings: Settings
    session: Any
    code_uri: str
    image_uri: str

    @classmethod
    def create(cls, settings: Settings, session: Any = None, code_uri: Optional[str] = None) -> "StepFactory":
        """code_uri defaults to the content-addressed bundle URI of the working tree."""
        from pipelines.code_bundle import bundle_uri
        from pipelines.sdk import pipeline_session

        return cls(
            settings=settings,
            session=session or pipeline_session(settings),
            code_uri=code_uri or bundle_uri(settings),
            image_uri=sklearn_image_uri(settings.effective_region),
        )

    @property
    def role(self) -> str:
        return self.settings.effective_role_arn

    def execution_uri(self, step: str, output: str) -> Any:
        return execution_uri(self.settings, step, output)

    @defaults_validated_once()  # the SDK looks up its config for every processor and step
    def processing_step(
        self,
        name: str,
        module: str,
        *,
        arguments: Sequence[Any] = (),
        inputs: Optional[Mapping[str, Any]] = None,
        outputs: Union[Iterable[str], Mapping[str, Any]] = (),
        property_files: Sequence[Any] = (),
        instance_type: Union[str, Any] = "ml.m5.xlarge",
        display_name: Optional[str] = None,
        description: Optional[str] = None,
        max_runtime_seconds: int = DEFAULT_MAX_RUNTIME_SECONDS,
        environment: Optional[Mapping[str, Any]] = None,
        depends_on: Optional[Sequence[Any]] = None,
        cache_expire_after: Optional[str] = None,
    ) -> Any:
        """A ProcessingStep running `python3 -m processing.entry <module> <arguments>`.

        inputs: input name -> S3 URI (str or pipeline variable), mounted at input_path(name).
        outputs: output names, each written from output_path(name) to
        execution_uri(name-of-step, output); or a mapping name -> destination URI (str or
        pipeline variable) for outputs that go where the user says (the batch report's
        OutputUrl). Inputs named "code" are reserved for the bundle.
        cache_expire_after: an ISO 8601 duration ('P30D'): step caching on (CacheConfig), a run
        with the same arguments and inputs within it reuses the earlier run's outputs.
        """
        from sagemaker.core.processing import Processor
        from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
        from sagemaker.mlops.workflow.steps import CacheConfig, ProcessingStep

        from pipelines.sdk import offline_environment

        inputs = dict(inputs or {})
        if CODE_INPUT in inputs:
            raise ValueError(f"step {name}: input name {CODE_INPUT!r} is reserved for the code bundle")
        env = container_environment(self.settings)
        env.update(environment or {})
        processor = Processor(
            role=self.role,
            image_uri=self.image_uri,
            instance_count=1,
            instance_type=instance_type,
            entrypoint=["python3", "-m", ENTRY_MODULE, module],
            volume_size_in_gb=DEFAULT_VOLUME_GB,
            max_runtime_in_seconds=max_runtime_seconds,
            base_job_name=name,
            sagemaker_session=self.session,
            env=env,
        )
        processing_inputs = [
            ProcessingInput(
                input_name=CODE_INPUT,
                s3_input=ProcessingS3Input(
                    s3_uri=self.code_uri, local_path=contracts.CODE_DIR, s3_data_type="S3Prefix", s3_input_mode="File"
                ),
            )
        ]
        for input_name, uri in inputs.items():
            processing_inputs.append(
                ProcessingInput(
                    input_name=input_name,
                    s3_input=ProcessingS3Input(
                        s3_uri=uri, local_path=input_path(input_name), s3_data_type="S3Prefix", s3_input_mode="File"
                    ),
                )
            )
        destinations = (
            dict(outputs)
            if isinstance(outputs, Mapping)
            else {output: self.execution_uri(name, output) for output in outputs}
        )
        processing_outputs = [
            ProcessingOutput(
                output_name=output,
                s3_output=ProcessingS3Output(
                    s3_uri=destination, local_path=output_path(output), s3_upload_mode="EndOfJob"
                ),
            )
            for output, destination in destinations.items()
        ]
        step_args = processor.run(
            inputs=processing_inputs, outputs=processing_outputs, arguments=list(arguments) or None
        )
        with offline_environment(self.settings.effective_region):
            cache = CacheConfig(enable_caching=True, expire_after=cache_expire_after) if cache_expire_after else None
            return ProcessingStep(
                name,
                step_args=step_args,
                display_name=display_name,
                description=description,
                property_files=list(property_files) or None,
                cache_config=cache,
                depends_on=list(depends_on) if depends_on else None,
            )

    @defaults_validated_once()
    def transform_step(
        self,
        name: str,
        *,
        model_name: Any,
        data: Any,
        output_path: Any,
        instance_type: Union[str, Any] = "ml.m5.xlarge",
        content_type: str = "text/csv",
        display_name: Optional[str] = None,
        description: Optional[str] = None,
        depends_on: Optional[Sequence[Any]] = None,
    ) -> Any:
        """A TransformStep over an S3 prefix of whole-series CSV files (one request per file).

        Autopilot time-series models read a file per request (SplitType None) and write
        `<input file>.out`; the local runtime writes the same layout. MaxPayloadInMB and the
        invocation timeout are set as AWS's Autopilot time-series sample sets them
        (contracts.TRANSFORM_*); the steps writing the input cut files by bytes.
        """
        from sagemaker.core.transformer import Transformer
        from sagemaker.mlops.workflow.steps import TransformStep

        from pipelines.sdk import offline_environment

        transformer = Transformer(
            model_name=model_name,
            instance_count=1,
            instance_type=instance_type,
            output_path=output_path,
            accept=content_type,
            assemble_with="None",
            max_payload=contracts.TRANSFORM_MAX_PAYLOAD_MB,
            base_transform_job_name=name,
            sagemaker_session=self.session,
        )
        step_args = transformer.transform(
            data=data,
            data_type="S3Prefix",
            content_type=content_type,
            split_type="None",
            model_client_config={"InvocationsTimeoutInSeconds": contracts.TRANSFORM_INVOCATIONS_TIMEOUT_SECONDS},
        )
        with offline_environment(self.settings.effective_region):
            return TransformStep(
                name,
                step_args=step_args,
                display_name=display_name,
                description=description,
                depends_on=list(depends_on) if depends_on else None,
            )
