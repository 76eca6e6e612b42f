"""The local SageMaker client: boto3-shaped methods over local state under FORECAST_HOME."""

from __future__ import annotations

from pipelines.local.sagemaker_endpoints import EndpointsMixin
from pipelines.local.sagemaker_jobs import JobsMixin
from pipelines.local.sagemaker_registry import RegistryMixin
from processing.kernel.settings import Settings, ensure_home


class LocalSageMakerClient(JobsMixin, RegistryMixin, EndpointsMixin):
    """Raises LocalClientError (with an AWS-style error code) where boto3 raises ClientError."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = ensure_home(settings.home_path)
        self.region = settings.effective_region
        self.account = "000000000000"

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account}:{kind}/{name.lower()}"
