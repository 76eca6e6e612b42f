"""The one place that hands out AWS clients: boto3 on SageMaker, local stand-ins otherwise.

Every script and handler asks this factory instead of calling boto3 directly, so the same
code runs against AWS, against a moto server (AWS_ENDPOINT_URL) and on the local runtime.
"""
from __future__ import annotations

import functools
from typing import Any, Optional

from pipelines.settings import Settings

LOCAL_SERVICES = ("s3", "sagemaker", "sagemaker-runtime")


def client(service: str, settings: Settings) -> Any:
    """A boto3-shaped client for `service` on the settings' target."""
    if settings.is_local:
        if service not in LOCAL_SERVICES:
            raise ValueError(f"the local runtime has no stand-in for {service!r}; "
                             f"it provides {', '.join(LOCAL_SERVICES)}")
        from pipelines.local.services import local_client  # heavy imports only on the local path

        return local_client(service, settings)
    return _boto3_session(settings.region).client(service)


@functools.lru_cache(maxsize=None)
def _boto3_session(region: Optional[str]) -> Any:
    """One boto3 session per region: building one reads config and credentials (slow)."""
    import boto3

    return boto3.session.Session(region_name=region)
