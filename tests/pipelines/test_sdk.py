"""SDK sessions: telemetry opted out, explicit region and bucket, no network while rendering."""

from __future__ import annotations

import pytest

from pipelines import sdk
from tests.pipelines.definition_support import BUCKET, REGION, block_network, sagemaker_settings


def test_given_a_pipeline_session_then_telemetry_is_opted_out_through_the_sdk_config():
    from sagemaker.core.common_utils import resolve_value_from_config
    from sagemaker.core.config.config_schema import TELEMETRY_OPT_OUT_PATH

    session = sdk.pipeline_session(sagemaker_settings())
    assert (
        resolve_value_from_config(None, TELEMETRY_OPT_OUT_PATH, default_value=False, sagemaker_session=session) is True
    )
    assert session.boto_region_name == REGION
    assert session._default_bucket_name_override == BUCKET  # default_bucket() itself would ask S3


@pytest.mark.integration
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
            {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": "yes"}}}}
        )


def test_given_the_offline_environment_then_it_is_restored_afterwards(monkeypatch):
    import os

    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED")
    with sdk.offline_environment("ap-south-1"):
        assert os.environ["AWS_DEFAULT_REGION"] == "ap-south-1"
        assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"
    assert "AWS_DEFAULT_REGION" not in os.environ and "AWS_EC2_METADATA_DISABLED" not in os.environ


def _sdk_validate():
    from sagemaker.core.config.config_manager import SageMakerConfig

    return SageMakerConfig.__dict__["validate_sagemaker_config"].__func__


def _is_the_sdks_own(function) -> bool:
    return (
        function.__module__ == "sagemaker.core.config.config_manager"
        and function.__qualname__ == "SageMakerConfig.validate_sagemaker_config"
    )


@pytest.mark.integration
def test_given_the_sdk_imported_and_a_pipeline_rendered_then_the_sdks_validation_is_its_own_again():
    from pipelines.training import get_pipeline

    sdk.import_sdk(REGION)
    assert _is_the_sdks_own(_sdk_validate())  # importing changes nothing
    text = get_pipeline(sagemaker_settings()).definition()
    assert '"Name": "PrepareData"' in text
    assert _is_the_sdks_own(_sdk_validate())  # building and rendering put it back


def test_inside_the_scope_our_defaults_skip_validation_and_any_other_config_is_still_checked(monkeypatch):
    import jsonschema
    import pytest
    from sagemaker.core.config.config_manager import SageMakerConfig

    sdk.import_sdk(REGION)
    calls = []
    real = jsonschema.validate
    monkeypatch.setattr(jsonschema, "validate", lambda *a, **k: (calls.append(a[0]), real(*a, **k)))
    SageMakerConfig.validate_sagemaker_config(sdk.SDK_DEFAULTS)
    assert calls == [sdk.SDK_DEFAULTS]  # outside: the SDK validates at every lookup
    calls.clear()
    bad = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": "yes"}}}}
    with sdk.defaults_validated_once(REGION):
        with sdk.defaults_validated_once(REGION):  # nested: one patch
            SageMakerConfig.validate_sagemaker_config(sdk.SDK_DEFAULTS)
        SageMakerConfig.validate_sagemaker_config(sdk.SDK_DEFAULTS)
        assert calls == []
        with pytest.raises(jsonschema.ValidationError, match="is not of type 'boolean'"):
            SageMakerConfig.validate_sagemaker_config(bad)
    assert _is_the_sdks_own(_sdk_validate())
    calls.clear()
    SageMakerConfig.validate_sagemaker_config(sdk.SDK_DEFAULTS)
    assert calls == [sdk.SDK_DEFAULTS]


def test_an_error_inside_the_scope_still_puts_the_sdks_validation_back():
    import pytest

    with pytest.raises(RuntimeError, match="boom"):
        with sdk.defaults_validated_once(REGION):
            assert not _is_the_sdks_own(_sdk_validate())
            raise RuntimeError("boom")
    assert _is_the_sdks_own(_sdk_validate())


def test_steps_check_their_arguments_without_building_a_local_session_each():
    # ProcessingStep/TransformStep build LocalSagemakerClient() only for a method name; a real
    # one builds a LocalSession with boto3 clients (about a second per step on a busy machine)
    from pipelines.sdk import import_sdk

    import_sdk()
    from sagemaker.core.local.local_session import LocalSagemakerClient
    from sagemaker.mlops.workflow import steps

    with sdk.defaults_validated_once():
        client = steps.LocalSagemakerClient()
    assert client.sagemaker_session is None
    assert isinstance(client, LocalSagemakerClient)
    assert client.create_processing_job.__name__ == LocalSagemakerClient.create_processing_job.__name__
    assert client.create_transform_job.__name__ == "create_transform_job"
    assert steps.LocalSagemakerClient is LocalSagemakerClient  # outside the scope: the SDK's own
