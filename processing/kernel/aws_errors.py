"""What an AWS error says, read one way everywhere: its code, its message, not found, already exists.

botocore's ClientError carries `response["Error"]` with Code and Message. Services disagree on how
they say "missing": SageMaker answers DescribeAutoMLJobV2 with ResourceNotFound but DescribeModel /
DescribeEndpoint with a ValidationException "Could not find ..."; IAM says NoSuchEntity, S3 404 /
NoSuchKey / NoSuchBucket, Lambda, EventBridge and Scheduler ResourceNotFoundException. "Exists"
is SageMaker's ResourceInUse (CreateAutoMLJobV2) or a ValidationException "... already exists"
(CreateModelPackageGroup), IAM's EntityAlreadyExists. Standard library only (container-safe).
"""

from __future__ import annotations

NOT_FOUND_CODES = frozenset(
    {"ResourceNotFound", "ResourceNotFoundException", "NoSuchEntity", "NoSuchKey", "NoSuchBucket", "NotFound", "404"}
)
NOT_FOUND_PHRASES = ("could not find", "does not exist", "not found")
ALREADY_EXISTS_CODES = frozenset(
    {
        "ResourceInUse",
        "ResourceInUseException",
        "EntityAlreadyExists",
        "AlreadyExistsException",
        "ResourceAlreadyExistsException",
    }
)


def _error(error: BaseException) -> dict:
    response = getattr(error, "response", None)
    return (response.get("Error") or {}) if isinstance(response, dict) else {}


def error_code(error: BaseException) -> str:
    """The error's Code ('' when there is none: not a ClientError, or no Code)."""
    return str(_error(error).get("Code") or "")


def error_message(error: BaseException) -> str:
    """The error's Message ('' when there is none)."""
    return str(_error(error).get("Message") or "")


def is_not_found(error: BaseException) -> bool:
    """Whether the error says the resource asked for does not exist, in any service's words."""
    if error_code(error) in NOT_FOUND_CODES:
        return True
    message = error_message(error).lower()
    return any(phrase in message for phrase in NOT_FOUND_PHRASES)


def already_exists(error: BaseException) -> bool:
    """Whether the error says a create found the (same-named) resource already there."""
    return error_code(error) in ALREADY_EXISTS_CODES or "already exist" in error_message(error).lower()
