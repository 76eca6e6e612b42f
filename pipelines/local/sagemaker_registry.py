"""Model Registry operations of the local SageMaker client (boto3 request and response shapes).

Requests are validated against botocore's service model first, so code that works here sends
requests SageMaker accepts. Errors are LocalClientError with AWS's codes (ValidationException
for unknown resources, as SageMaker answers; ConflictException for a group that still has
versions). Only versioned model packages (in a group) exist locally.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any, Optional

from pipelines.local.errors import LocalClientError
from pipelines.local.registry import Registry, RegistryError
from processing.kernel.aws_validation import RequestValidationError, validate_request

DEFAULT_MAX_RESULTS = 10
_VERSIONED = re.compile(
    r"^(?:arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:model-package/)?"
    r"(?P<group>[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62})/(?P<version>[0-9]{1,9})$"
)
_GROUP = re.compile(
    r"^(?:arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:[a-z\-]*/)?"
    r"(?P<group>[a-zA-Z0-9](?:-*[a-zA-Z0-9]){0,62})$"
)
# CreateModelPackage members kept verbatim and echoed by DescribeModelPackage
_PASSTHROUGH = (
    "Domain",
    "Task",
    "SamplePayloadUrl",
    "SkipModelValidation",
    "SourceUri",
    "ModelCard",
    "ModelLifeCycle",
    "AdditionalInferenceSpecifications",
    "DriftCheckBaselines",
    "ValidationSpecification",
    "SourceAlgorithmSpecification",
    "ModelPackageRegistrationType",
    "SecurityConfig",
    "ManagedStorageType",
)


def _metadata() -> dict:
    return {"RequestId": str(uuid.uuid4()), "HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0}


def _page(items: list, max_results: Optional[int], next_token: Optional[str], operation: str):
    """Offset pagination with an opaque token, like the service's."""
    start = 0
    if next_token:
        try:
            start = int(json.loads(base64.urlsafe_b64decode(next_token.encode()).decode())["offset"])
        except (ValueError, KeyError, TypeError):
            raise LocalClientError(
                "ValidationException", f"Invalid pagination token {next_token!r}", operation
            ) from None
    size = max_results or DEFAULT_MAX_RESULTS
    chunk = items[start : start + size]
    token = None
    if start + size < len(items):
        token = base64.urlsafe_b64encode(json.dumps({"offset": start + size}).encode()).decode()
    return chunk, token


class RegistryMixin:
    """create/describe/list/delete model package groups; create/describe/list/update/delete packages."""

    # --- helpers ---------------------------------------------------------------------------
    @property
    def registry(self) -> Registry:
        registry = getattr(self, "_registry", None)
        if registry is None:
            registry = self._registry = Registry.at_home(self.settings.home_path)
        return registry

    def _validated(self, operation: str, params: dict) -> None:
        try:
            validate_request("sagemaker", operation, params)
        except RequestValidationError as error:
            raise LocalClientError("ValidationException", str(error), operation) from None

    def _call(self, operation: str, function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except RegistryError as error:
            raise LocalClientError(error.code, str(error), operation) from None

    @staticmethod
    def _group_name(value: str, operation: str) -> str:
        match = _GROUP.match(value)
        if not match:
            raise LocalClientError(
                "ValidationException", f"{value!r} is not a model package group name or ARN", operation
            )
        return match.group("group")

    @staticmethod
    def _versioned(value: str, operation: str) -> tuple[str, int]:
        match = _VERSIONED.match(value)
        if not match:
            raise LocalClientError(
                "ValidationException",
                f"{value!r} is not a versioned model package ARN or <group>/<version>; the local registry "
                "holds versioned packages only (arn:aws:sagemaker:<region>:<account>:model-package/<group>/<n>)",
                operation,
            )
        return match.group("group"), int(match.group("version"))

    def _group_arn(self, name: str) -> str:
        return self.arn("model-package-group", name)

    def _package_arn(self, group: str, version: int) -> str:
        return self.arn("model-package", f"{group}/{version}")

    def _package(self, group: str, version: int, arn_text: str, operation: str) -> dict:
        row = self.registry.get_package(group, version)
        if row is None:
            raise LocalClientError("ValidationException", f"ModelPackage {arn_text} does not exist.", operation)
        return row

    # --- groups ----------------------------------------------------------------------------
    def create_model_package_group(self, **params: Any) -> dict:
        self._validated("CreateModelPackageGroup", params)
        row = self._call(
            "CreateModelPackageGroup",
            self.registry.create_group,
            params["ModelPackageGroupName"],
            params.get("ModelPackageGroupDescription"),
            params.get("Tags"),
        )
        return {"ModelPackageGroupArn": self._group_arn(row["name"]), "ResponseMetadata": _metadata()}

    def _group_summary(self, row: dict) -> dict:
        summary = {
            "ModelPackageGroupName": row["name"],
            "ModelPackageGroupArn": self._group_arn(row["name"]),
            "CreationTime": row["created_at"],
            "ModelPackageGroupStatus": "Completed",
        }
        if row.get("description"):
            summary["ModelPackageGroupDescription"] = row["description"]
        return summary

    def describe_model_package_group(self, **params: Any) -> dict:
        self._validated("DescribeModelPackageGroup", params)
        name = self._group_name(params["ModelPackageGroupName"], "DescribeModelPackageGroup")
        row = self.registry.get_group(name)
        if row is None:
            raise LocalClientError(
                "ValidationException", f"ModelPackageGroup {name} does not exist.", "DescribeModelPackageGroup"
            )
        return {**self._group_summary(row), "CreatedBy": {}, "ResponseMetadata": _metadata()}

    def list_model_package_groups(self, **params: Any) -> dict:
        self._validated("ListModelPackageGroups", params)
        rows = self.registry.list_groups(
            params.get("NameContains"),
            params.get("CreationTimeAfter"),
            params.get("CreationTimeBefore"),
            params.get("SortBy", "CreationTime"),
            params.get("SortOrder", "Descending"),
        )
        chunk, token = _page(rows, params.get("MaxResults"), params.get("NextToken"), "ListModelPackageGroups")
        response = {
            "ModelPackageGroupSummaryList": [self._group_summary(r) for r in chunk],
            "ResponseMetadata": _metadata(),
        }
        if token:
            response["NextToken"] = token
        return response

    def delete_model_package_group(self, **params: Any) -> dict:
        self._validated("DeleteModelPackageGroup", params)
        name = self._group_name(params["ModelPackageGroupName"], "DeleteModelPackageGroup")
        self._call("DeleteModelPackageGroup", self.registry.delete_group, name)
        return {"ResponseMetadata": _metadata()}

    # --- packages --------------------------------------------------------------------------
    def create_model_package(self, **params: Any) -> dict:
        operation = "CreateModelPackage"
        self._validated(operation, params)
        if "ModelPackageGroupName" not in params:
            raise LocalClientError(
                "ValidationException",
                "the local registry stores versioned model packages only: pass "
                "ModelPackageGroupName (ModelPackageName creates an unversioned package)",
                operation,
            )
        if "ModelPackageName" in params:
            raise LocalClientError(
                "ValidationException", "pass either ModelPackageName or ModelPackageGroupName, not both", operation
            )
        group = self._group_name(params["ModelPackageGroupName"], operation)
        row = self._call(
            operation,
            self.registry.create_package,
            group,
            approval_status=params.get("ModelApprovalStatus", "PendingManualApproval"),
            description=params.get("ModelPackageDescription"),
            inference_specification=params.get("InferenceSpecification"),
            model_metrics=params.get("ModelMetrics"),
            customer_metadata=params.get("CustomerMetadataProperties"),
            metadata_properties=params.get("MetadataProperties"),
            extra={key: params[key] for key in _PASSTHROUGH if key in params},
            tags=params.get("Tags"),
            client_token=params.get("ClientToken"),
        )
        return {
            "ModelPackageArn": self._package_arn(row["group_name"], row["version"]),
            "ResponseMetadata": _metadata(),
        }

    def _package_summary(self, row: dict) -> dict:
        summary = {
            "ModelPackageName": row["group_name"],
            "ModelPackageGroupName": row["group_name"],
            "ModelPackageVersion": row["version"],
            "ModelPackageArn": self._package_arn(row["group_name"], row["version"]),
            "CreationTime": row["created_at"],
            "ModelPackageStatus": "Completed",
            "ModelApprovalStatus": row["approval_status"],
        }
        if row.get("description"):
            summary["ModelPackageDescription"] = row["description"]
        return summary

    def describe_model_package(self, **params: Any) -> dict:
        operation = "DescribeModelPackage"
        self._validated(operation, params)
        group, version = self._versioned(params["ModelPackageName"], operation)
        row = self._package(group, version, params["ModelPackageName"], operation)
        response = self._package_summary(row)
        response.update(
            {
                "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
                "CertifyForMarketplace": False,
                "CreatedBy": {},
                "LastModifiedTime": row["modified_at"],
                "LastModifiedBy": {},
                "CustomerMetadataProperties": dict(row["customer_metadata"] or {}),
            }
        )
        optional = {
            "InferenceSpecification": row["inference_specification"],
            "ModelMetrics": row["model_metrics"],
            "MetadataProperties": row["metadata_properties"],
            "ApprovalDescription": row["approval_description"],
        }
        response.update({key: value for key, value in optional.items() if value is not None})
        response.update(row["extra"] or {})
        response["ResponseMetadata"] = _metadata()
        return response

    def list_model_packages(self, **params: Any) -> dict:
        operation = "ListModelPackages"
        self._validated(operation, params)
        group = params.get("ModelPackageGroupName")
        if group:
            group = self._group_name(group, operation)
        rows = []
        if params.get("ModelPackageType", "Versioned") in ("Versioned", "Both"):
            rows = self.registry.list_packages(
                group,
                params.get("ModelApprovalStatus"),
                params.get("CreationTimeAfter"),
                params.get("CreationTimeBefore"),
                params.get("NameContains"),
                params.get("SortBy", "CreationTime"),
                params.get("SortOrder", "Ascending"),
            )
        chunk, token = _page(rows, params.get("MaxResults"), params.get("NextToken"), operation)
        response = {
            "ModelPackageSummaryList": [self._package_summary(r) for r in chunk],
            "ResponseMetadata": _metadata(),
        }
        if token:
            response["NextToken"] = token
        return response

    def update_model_package(self, **params: Any) -> dict:
        operation = "UpdateModelPackage"
        self._validated(operation, params)
        group, version = self._versioned(params["ModelPackageArn"], operation)
        self._package(group, version, params["ModelPackageArn"], operation)
        extra = {
            key: params[key]
            for key in ("SourceUri", "ModelCard", "ModelLifeCycle", "ModelPackageRegistrationType")
            if key in params
        }
        if params.get("AdditionalInferenceSpecificationsToAdd"):
            current = self.registry.get_package(group, version)["extra"].get("AdditionalInferenceSpecifications", [])
            extra["AdditionalInferenceSpecifications"] = current + params["AdditionalInferenceSpecificationsToAdd"]
        row = self._call(
            operation,
            self.registry.update_package,
            group,
            version,
            approval_status=params.get("ModelApprovalStatus"),
            approval_description=params.get("ApprovalDescription"),
            customer_metadata=params.get("CustomerMetadataProperties"),
            customer_metadata_to_remove=params.get("CustomerMetadataPropertiesToRemove"),
            inference_specification=params.get("InferenceSpecification"),
            extra=extra,
        )
        return {
            "ModelPackageArn": self._package_arn(row["group_name"], row["version"]),
            "ResponseMetadata": _metadata(),
        }

    def delete_model_package(self, **params: Any) -> dict:
        operation = "DeleteModelPackage"
        self._validated(operation, params)
        group, version = self._versioned(params["ModelPackageName"], operation)
        self._package(group, version, params["ModelPackageName"], operation)
        self._call(operation, self.registry.delete_package, group, version)
        return {"ResponseMetadata": _metadata()}

    def model_package_history(self, model_package_arn: str) -> list[dict]:
        """Local extra (no boto3 counterpart): the approval audit trail of one version."""
        group, version = self._versioned(model_package_arn, "ModelPackageHistory")
        return self.registry.history(group, version)
