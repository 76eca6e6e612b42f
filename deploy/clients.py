"""AWS clients for code that runs in the user's process: boto3 on SageMaker, local stand-ins otherwise.

CLIs and handlers (deploy.approve, deploy.api, teardown, ...) ask this factory, so the same
code runs against AWS, a moto server (AWS_ENDPOINT_URL) and the local runtime's state.
Processing steps never do: they call plain boto3, and the local runtime serves the API they
use on loopback (pipelines.local.aws_api), so this module is not part of the step bundle.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

from processing.kernel.settings import Settings

LOCAL_SERVICES = ("s3", "sagemaker", "sagemaker-runtime")


def client(service: str, settings: Settings) -> Any:
    """A boto3-shaped client for `service` on the settings' target."""
    if settings.is_local:
        if service not in LOCAL_SERVICES:
            raise ValueError(
                f"the local runtime has no stand-in for {service!r}; it provides {', '.join(LOCAL_SERVICES)}"
            )
        from pipelines.local.services import local_client  # heavy imports only on the local path

        return local_client(service, settings)
    return _boto3_session(settings.region).client(service)


@functools.lru_cache(maxsize=None)
def _boto3_session(region: Optional[str]) -> Any:
    """One boto3 session per region: building one reads config and credentials (slow)."""
    import boto3

    return boto3.session.Session(region_name=region)
