"""Import the SageMaker Python SDK v3 and build sessions that render definitions offline.

Three habits keep rendering free of network calls (checked by tests that block sockets):

1. `sagemaker.mlops` creates a boto3 client when it is imported, which needs a region and
   resolves credentials: `import_sdk` supplies the region and, for the import only, keeps
   botocore from probing the EC2 instance metadata service for credentials.
2. The SDK sends telemetry over HTTP when objects are created or pipelines upserted unless
   `SageMaker.PythonSDK.Modules.TelemetryOptOut` is true in its defaults config: every
   session built here carries that config (`SDK_DEFAULTS`).
3. A session given an explicit region and default bucket never asks STS for the account or
   S3 for a default bucket.
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import Any, Iterator, Optional

from processing.kernel.settings import Settings

# The SDK's defaults config (schema: sagemaker.core.config.config_schema); opting out of
# telemetry there is the SDK's documented switch (TELEMETRY_OPT_OUT_PATH).
SDK_DEFAULTS: dict = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}

_IMPORTED = False


@contextlib.contextmanager
def offline_environment(region: str) -> Iterator[None]:
    """A region for the clients the SDK creates on its own, and no instance-metadata probe.

    Needed around the import (sagemaker.mlops builds a client) and around step construction
    (ProcessingStep builds a LocalSession from the default boto3 session to check its
    arguments). Environment changes are undone on exit.
    """
    saved = {name: os.environ.get(name) for name in ("AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED")}
    if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
        os.environ["AWS_DEFAULT_REGION"] = region
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def import_sdk(region: str = "us-east-1") -> None:
    """Import sagemaker.core / sagemaker.mlops once, offline, and quiet their render-time chatter."""
    global _IMPORTED
    if _IMPORTED:
        return
    with offline_environment(region):
        import sagemaker.core.workflow.pipeline_context  # noqa: F401
        import sagemaker.mlops.workflow.pipeline  # noqa: F401
    _validate_defaults_once()
    _steps_without_local_sessions()
    # "Running within a PipelineSession ..." and "Popping out 'ProcessingJobName' ..." are
    # expected when rendering; they only add noise to the CLI output.
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")
    warnings.filterwarnings("ignore", message="Lambda function won.t be updated")
    for name in ("sagemaker.core.workflow.utilities", "sagemaker.config", "sagemaker.core.config"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # The SDK configures the root logger at INFO on import; botocore then announces where it
    # found credentials and endpoints on every client. Keep the CLI output to what we print.
    for name in ("botocore", "boto3", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    _IMPORTED = True


def _steps_without_local_sessions() -> None:
    """ProcessingStep and TransformStep build a ``LocalSagemakerClient()`` each, only to read the
    name of its create_processing_job / create_transform_job method; each one builds a LocalSession
    with its own boto3 clients: ~0.3 s per step on a quiet machine, 1.2 s on a busy one (7 s of
    every training render). The names are the class's, so a client that skips the session gives
    the same names and the same definition."""
    from sagemaker.core.local.local_session import LocalSagemakerClient
    from sagemaker.mlops.workflow import steps

    if getattr(steps.LocalSagemakerClient, "_forecast_names_only", False):
        return

    class NamesOnly(LocalSagemakerClient):
        _forecast_names_only = True

        def __init__(self, sagemaker_session: Any = None):  # no LocalSession, no boto3 clients
            self.sagemaker_session = sagemaker_session

    steps.LocalSagemakerClient = NamesOnly


def _validate_defaults_once() -> None:
    """Validate SDK_DEFAULTS against the SDK's config schema once instead of at every lookup.

    The SDK re-runs jsonschema validation (schema check included, ~0.5 s) on every config
    lookup, and rendering the training pipeline does ~75 lookups: a minute per render on a
    busy machine. Our defaults are a constant, so validating them once is enough; any other
    config (a user's config.yaml) is still validated by the SDK as usual.
    """
    from sagemaker.core.config.config_manager import SageMakerConfig

    original = SageMakerConfig.validate_sagemaker_config
    if getattr(original, "_forecast_validated_once", False):
        return
    original(SDK_DEFAULTS)

    def validate(sagemaker_config: Optional[dict] = None) -> None:
        if sagemaker_config is SDK_DEFAULTS:
            return
        original(sagemaker_config)

    validate._forecast_validated_once = True  # type: ignore[attr-defined]
    SageMakerConfig.validate_sagemaker_config = staticmethod(validate)


def pipeline_session(settings: Settings) -> Any:
    """A PipelineSession with explicit region, bucket and telemetry opt-out: rendering stays offline."""
    import_sdk(settings.effective_region)
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    # The session's clients are never called while rendering (the CLI upserts with its own
    # boto3 client), so they need no credentials: don't probe instance metadata for them.
    with offline_environment(settings.effective_region):
        boto_session = boto3.session.Session(region_name=settings.effective_region)
        return PipelineSession(
            boto_session=boto_session,
            default_bucket=settings.effective_bucket or "unset-bucket",
            sagemaker_config=SDK_DEFAULTS,
        )
