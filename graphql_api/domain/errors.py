"""Expected failures of the use cases.

Every error a client can cause is one of these; the GraphQL layer turns them into typed error
objects (mutations) or coded GraphQL errors (queries). Anything else is a bug and is masked.
"""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import ClassVar


class ErrorCode(StrEnum):
    """``Error.code`` of a mutation's typed error: one per error type, so a client can handle
    every case. The names are the strings clients received before the enum existed."""

    NOT_FOUND = "NOT_FOUND"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    CONFLICT = "CONFLICT"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    LEASE_LOST = "LEASE_LOST"
    #: Not a mutation's: a query or subscription ``after`` older than the change log keeps
    #: (``CursorExpiredError``, a GraphQL error whose ``extensions.code`` says it).
    CURSOR_EXPIRED = "CURSOR_EXPIRED"


class ValidationRule(StrEnum):
    """Every rule an input can break: ``ValidationError.rule`` and a query argument error's
    ``extensions.rule``. Lowercase, as clients received them when ``rule`` was a string, so
    the values on the wire did not change (docs/input-policy.md says which field has which).
    Every ``ValidationError`` and ``text.PolicyError`` takes one of these, so mypy refuses a
    rule that is not listed."""

    # Text policy (domain/text.py) and value limits (domain/values.py).
    min_length = "min_length"
    max_length = "max_length"
    characters = "characters"
    unicode_nfc = "unicode_nfc"
    id_pattern = "id_pattern"
    key_dollar = "key_dollar"
    key_dot = "key_dot"
    url = "url"
    url_scheme = "url_scheme"
    #: A webhook URL whose host resolves to a loopback, private, link-local or reserved address
    #: (docs/webhooks.md, "Which URLs are refused").
    public_address = "public_address"
    number = "number"
    finite_number = "finite_number"
    int64 = "int64"
    json = "json"
    max_depth = "max_depth"
    max_items = "max_items"
    #: Lists that go together (a metric series' steps, values, timestamps) differ in length.
    same_length = "same_length"
    # The registry (domain/artifacts.py, aliases, ranges).
    alias_pattern = "alias_pattern"
    digest = "digest"
    duplicate = "duplicate"
    immutable = "immutable"
    job_status = "job_status"
    model_name = "model_name"
    reserved = "reserved"
    semver_range = "semver_range"
    # Query arguments: pages, cursors, filters, the operation to run.
    min = "min"
    max = "max"
    cursor = "cursor"
    range = "range"
    timezone = "timezone"
    required = "required"
    #: A variable's value that does not fit the variable's GraphQL type: a wrong scalar, or an
    #: input field the type does not have (graphql_api/request_errors.py).
    type = "type"
    retention = "retention"
    # Pydantic's own checks on the models, under Pydantic's names (domain/validation.py):
    # an id that does not match its pattern, a version that is not SemVer (a validator's
    # ValueError), metrics or hyperparameters that are not a JSON object.
    string_pattern_mismatch = "string_pattern_mismatch"
    value_error = "value_error"
    dict_type = "dict_type"
    #: Any other failure of Pydantic's checks (none is known to reach a client).
    invalid = "invalid"


class DomainError(Exception):
    """Base of every expected failure. ``code`` is stable and machine-readable."""

    code: ClassVar[ErrorCode]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(DomainError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, resource: str, resource_id: str, field: str | None = None) -> None:
        super().__init__(f"{resource} {resource_id!r} does not exist")
        self.resource = resource
        self.resource_id = resource_id
        self.field = field


def status_name(status: Enum | str) -> str:
    """A status as clients spell it: the GraphQL enum name (``TESTING``, ``RUNNING``), whatever
    the stored value (model statuses are stored lowercase, as the seed schema has them)."""
    return status.name if isinstance(status, Enum) else status


class InvalidTransitionError(DomainError):
    code = ErrorCode.INVALID_TRANSITION

    def __init__(
        self,
        resource: str,
        resource_id: str,
        current: Enum | str,
        requested: Enum | str | None,
        message: str | None = None,
    ) -> None:
        current_name = status_name(current)
        requested_name = None if requested is None else status_name(requested)
        super().__init__(
            message
            or f"{resource} {resource_id!r} is {current_name} and cannot go to {requested_name}"
        )
        self.resource = resource
        self.resource_id = resource_id
        self.current_status = current_name
        self.requested_status = requested_name


class LeaseLostError(DomainError):
    """A worker's write carried a lease token that is not the job's current lease (the job
    was claimed again, or finished, after the lease lapsed): the worker must stop working on
    the job. Nothing was changed."""

    code = ErrorCode.LEASE_LOST

    def __init__(self, job_id: str, message: str | None = None) -> None:
        super().__init__(
            message
            or f"TrainingJob {job_id!r}: this lease token is not the job's current lease "
            "(the job was taken from this worker); stop working on it"
        )
        self.resource_id = job_id


class ConflictError(DomainError):
    code = ErrorCode.CONFLICT

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ValidationError(DomainError):
    """Bad input. ``field`` names the input field (camelCase path as the client sent it)."""

    code = ErrorCode.VALIDATION_ERROR

    def __init__(
        self, field: str, message: str, rule: ValidationRule = ValidationRule.invalid
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.rule = rule
        self.detail = message


class CursorExpiredError(ValidationError):
    """A change-log cursor older than the log's retention: the events after it are deleted."""

    code = ErrorCode.CURSOR_EXPIRED

    def __init__(self, field: str = "after") -> None:
        super().__init__(
            field,
            "is older than the change log keeps (its retention deleted the events after it): "
            "read the current state again (the query), then subscribe from now, without "
            "after, or from a cursor that query returns",
            rule=ValidationRule.retention,
        )


class UnauthenticatedError(DomainError):
    """No valid API key came with the request (and the server is not in open mode)."""

    code = ErrorCode.UNAUTHENTICATED

    def __init__(self) -> None:
        super().__init__("a valid API key is required: send `Authorization: Bearer <key>`")


class ForbiddenError(DomainError):
    """The key is valid but its role may not do this; nothing was changed."""

    code = ErrorCode.FORBIDDEN

    def __init__(self, operation: str, role: str, required_role: str) -> None:
        super().__init__(f"role {role} may not call {operation}: it needs {required_role} or above")
        self.operation = operation
        self.role = role
        self.required_role = required_role
