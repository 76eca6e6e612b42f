"""One reading of AWS errors: the shapes real services answer with."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from processing.kernel import aws_errors


def _error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Operation")


@pytest.mark.parametrize(
    "code, message",
    [
        ("ResourceNotFound", "Job x not found"),  # DescribeAutoMLJobV2
        ("ValidationException", 'Could not find model "arn:aws:sagemaker:..."'),  # DescribeModel
        ("ValidationException", 'Could not find endpoint "forecast".'),  # DescribeEndpoint
        ("NoSuchEntity", "The role with name x cannot be found."),  # IAM
        ("404", "Not Found"),
        ("NoSuchKey", ""),
        ("NoSuchBucket", ""),  # S3
        ("ResourceNotFoundException", "Function not found: arn:..."),  # Lambda, EventBridge
    ],
)
def test_each_services_not_found_is_not_found(code, message):
    assert aws_errors.is_not_found(_error(code, message))
    assert not aws_errors.already_exists(_error(code, message))


@pytest.mark.parametrize(
    "code, message",
    [
        ("ResourceInUse", "Job x already exists"),  # CreateAutoMLJobV2
        ("ValidationException", "Model Package Group already exists: arn:..."),  # CreateModelPackageGroup
        ("EntityAlreadyExists", "Role with name x already exists."),  # IAM
    ],
)
def test_each_services_already_exists_is_already_exists(code, message):
    assert aws_errors.already_exists(_error(code, message))
    assert not aws_errors.is_not_found(_error(code, message))


@pytest.mark.parametrize(
    "error",
    [
        _error("ThrottlingException", "Rate exceeded"),
        _error("AccessDeniedException", "User x is not authorized"),
        _error("ValidationException", "1 validation error detected"),
        ValueError("not an AWS error"),
    ],
)
def test_other_errors_are_neither(error):
    assert not aws_errors.is_not_found(error) and not aws_errors.already_exists(error)


def test_code_and_message_are_empty_strings_when_absent():
    assert aws_errors.error_code(ValueError("x")) == "" and aws_errors.error_message(ValueError("x")) == ""
    assert aws_errors.error_code(ClientError({}, "Op")) == ""
    assert aws_errors.error_code(_error("404")) == "404"
