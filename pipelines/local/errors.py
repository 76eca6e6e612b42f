"""Errors raised by the local stand-ins, shaped like botocore's ClientError."""

from __future__ import annotations

from botocore.exceptions import ClientError


class LocalClientError(ClientError):
    """A ClientError raised locally, so callers handle local and AWS failures the same way."""

    def __init__(self, code: str, message: str, operation: str):
        super().__init__({"Error": {"Code": code, "Message": message}}, operation)


def not_found(what: str, operation: str) -> LocalClientError:
    return LocalClientError("ValidationException", f"{what} does not exist.", operation)
