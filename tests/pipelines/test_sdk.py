"""SDK sessions: telemetry opted out, explicit region and bucket, no network while rendering."""
from __future__ import annotations

from pipelines import sdk
from tests.pipelines.definition_support import BUCKET, REGION, block_network, sagemaker_settings


def test_given_a_pipeline_session_then_telemetry_is_opted_out_through_the_sdk_config():
    from sagemaker.core.common_utils import resolve_value_from_config
    from sagemaker.core.config.config_schema import TELEMETRY_OPT_OUT_PATH

    session = sdk.pipeline_session(sagemaker_settings())
    assert resolve_value_from_config(None, TELEMETRY_OPT_OUT_PATH, default_value=False,
                                     sagemaker_session=session) is True
    assert session.boto_region_name == REGION
    assert session._default_bucket_name_override == BUCKET  # default_bucket() itself would ask S3


def test_given_sockets_blocked_when_rendering_the_training_pipeline_then_no_connection_is_attempted(monkeypatch):
    from pipelines.training import get_pipeline

    attempts = block_network(monkeypatch)
    text = get_pipeline(sagemaker_settings()).definition()
    assert attempts == []
    assert '"Name": "PrepareData"' in text


def test_given_another_config_when_validated_then_the_sdk_still_rejects_it():
    import pytest
    from jsonschema import ValidationError
    from sagemaker.core.config.config_manager import SageMakerConfig

    sdk.import_sdk(REGION)
    with pytest.raises(ValidationError, match="is not of type 'boolean'"):
        SageMakerConfig.validate_sagemaker_config(
            {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": "yes"}}}})


def test_given_the_offline_environment_then_it_is_restored_afterwards(monkeypatch):
    import os

    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    with sdk.offline_environment("ap-south-1"):
        assert os.environ["AWS_DEFAULT_REGION"] == "ap-south-1"
        assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
    assert "AWS_DEFAULT_REGION" not in os.environ and "AWS_EC2_METADATA_DISABLED" not in os.environ


def test_steps_check_their_arguments_without_building_a_local_session_each():
    # ProcessingStep/TransformStep build LocalSagemakerClient() only for a method name; a real
    # one builds a LocalSession with boto3 clients (about a second per step on a busy machine)
    from pipelines.sdk import import_sdk
    import_sdk()
    from sagemaker.core.local.local_session import LocalSagemakerClient
    from sagemaker.mlops.workflow import steps

    client = steps.LocalSagemakerClient()
    assert client.sagemaker_session is None
    assert isinstance(client, LocalSagemakerClient)
    assert client.create_processing_job.__name__ == LocalSagemakerClient.create_processing_job.__name__
    assert client.create_transform_job.__name__ == "create_transform_job"
