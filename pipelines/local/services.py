"""Local stand-ins for the AWS services, behind the same boto3-shaped interface.

The SageMaker stand-in is assembled from mixins kept in their own modules:
jobs (AutoML V2, models, transform jobs) in `sagemaker_jobs.py`, the model registry in
`sagemaker_registry.py` (SQLite, `registry.py`), endpoints in `sagemaker_endpoints.py`.
"""

from __future__ import annotations

from typing import Any

from processing.kernel.settings import Settings


def local_client(service: str, settings: Settings) -> Any:
    if service == "s3":
        from pipelines.local.store import LocalS3Client

        return LocalS3Client(settings)
    if service == "sagemaker":
        from pipelines.local.sagemaker import LocalSageMakerClient

        return LocalSageMakerClient(settings)
    if service == "sagemaker-runtime":
        from pipelines.local.sagemaker_endpoints import LocalSageMakerRuntimeClient

        return LocalSageMakerRuntimeClient(settings)
    raise ValueError(f"no local stand-in for {service!r}")
