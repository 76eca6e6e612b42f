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

Speed: building steps and rendering run inside `defaults_validated_once()`, which spares the
SDK re-validating our constant config at every lookup, for the duration of those calls only
(importing this module or the SDK changes nothing).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
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


def _names_only_client() -> Any:
    """ProcessingStep and TransformStep build a ``LocalSagemakerClient()`` each, only to read the
    name of its create_processing_job / create_transform_job method; each one builds a LocalSession
    with its own boto3 clients: ~0.3 s per step on a quiet machine, 1.2 s on a busy one (7 s of
    every training render). The names are the class's, so a client that skips the session gives
    the same names and the same definition. Used only inside defaults_validated_once()."""
    from sagemaker.core.local.local_session import LocalSagemakerClient

    class NamesOnly(LocalSagemakerClient):
        def __init__(self, sagemaker_session: Any = None):  # no LocalSession, no boto3 clients
            self.sagemaker_session = sagemaker_session

    return NamesOnly


_scope_lock = threading.Lock()
_scope_depth = 0
_scope_saved: Any = None  # SageMakerConfig's own validate_sagemaker_config (the staticmethod)
_scope_saved_client: Any = None  # the SDK's steps.LocalSagemakerClient
_defaults_valid = False


@contextlib.contextmanager
def defaults_validated_once(region: str = "us-east-1") -> Iterator[None]:
    """Within this block the SDK does not re-validate SDK_DEFAULTS at every config lookup.

    The SDK re-runs jsonschema validation (schema check included, ~0.5 s) on every config lookup
    (SageMakerConfig.validate_sagemaker_config), and building and rendering the training pipeline
    does ~90 lookups: a minute per render on a busy machine. SDK v3 has no setting to skip or
    cache it, so inside this block (building steps, rendering a definition) the lookup skips our
    constant SDK_DEFAULTS, which is validated for real once per process; any other config (a
    user's config.yaml) is still validated as usual. On leaving the outermost block the SDK's own
    function is put back: outside these calls, and for anyone else importing the SDK, nothing
    changes. Re-entrant and thread-safe (nested blocks share one patch). Also usable as a decorator.
    Steps built inside also skip the throwaway LocalSession each one would build (_names_only_client).
    """
    global _scope_depth, _scope_saved, _scope_saved_client, _defaults_valid
    import_sdk(region)
    from sagemaker.core.config.config_manager import SageMakerConfig
    from sagemaker.mlops.workflow import steps

    with _scope_lock:
        if not _defaults_valid:
            SageMakerConfig.validate_sagemaker_config(SDK_DEFAULTS)
            _defaults_valid = True
        if _scope_depth == 0:
            _scope_saved = SageMakerConfig.__dict__["validate_sagemaker_config"]
            original = _scope_saved.__func__

            def validate(sagemaker_config: Optional[dict] = None) -> None:
                if sagemaker_config is SDK_DEFAULTS:
                    return
                original(sagemaker_config)

            SageMakerConfig.validate_sagemaker_config = staticmethod(validate)
            _scope_saved_client = steps.LocalSagemakerClient
            steps.LocalSagemakerClient = _names_only_client()
        _scope_depth += 1
    try:
        yield
    finally:
        with _scope_lock:
            _scope_depth -= 1
            if _scope_depth == 0:
                SageMakerConfig.validate_sagemaker_config = _scope_saved
                steps.LocalSagemakerClient = _scope_saved_client
                _scope_saved = _scope_saved_client = None


def pipeline(*args: Any, **kwargs: Any) -> Any:
    """An SDK Pipeline whose definition() (and so create/update/upsert) runs in defaults_validated_once()."""
    return _pipeline_class()(*args, **kwargs)


_PIPELINE_CLASS: Any = None


def _pipeline_class() -> Any:
    global _PIPELINE_CLASS
    if _PIPELINE_CLASS is None:
        import_sdk()
        from sagemaker.mlops.workflow.pipeline import Pipeline

        class ScopedPipeline(Pipeline):
            """sagemaker.mlops.workflow.pipeline.Pipeline, rendering with SDK_DEFAULTS validated once."""

            def definition(self) -> str:
                with defaults_validated_once():
                    return super().definition()

        _PIPELINE_CLASS = ScopedPipeline
    return _PIPELINE_CLASS


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
