"""Expected failures of the use cases.

Every error a client can cause is one of these; the GraphQL layer turns them into typed error
objects (mutations) or coded GraphQL errors (queries). Anything else is a bug and is masked.
"""

from __future__ import annotations

from enum import Enum


class DomainError(Exception):
    """Base of every expected failure. ``code`` is stable and machine-readable."""

    code = "DOMAIN_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(DomainError):
    code = "NOT_FOUND"

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
    code = "INVALID_TRANSITION"

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


class ConflictError(DomainError):
    code = "CONFLICT"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ValidationError(DomainError):
    """Bad input. ``field`` names the input field (camelCase path as the client sent it)."""

    code = "VALIDATION_ERROR"

    def __init__(self, field: str, message: str, rule: str = "invalid") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.rule = rule
        self.detail = message


class CursorExpiredError(ValidationError):
    """A change-log cursor older than the log's retention: the events after it are deleted."""

    code = "CURSOR_EXPIRED"

    def __init__(self, field: str = "after") -> None:
        super().__init__(
            field,
            "is older than the change log keeps (its retention deleted the events after it): "
            "read the current state again (the query), then subscribe from now, without "
            "after, or from a cursor that query returns",
            rule="retention",
        )


class UnauthenticatedError(DomainError):
    """No valid API key came with the request (and the server is not in open mode)."""

    code = "UNAUTHENTICATED"

    def __init__(self) -> None:
        super().__init__("a valid API key is required: send `Authorization: Bearer <key>`")


class ForbiddenError(DomainError):
    """The key is valid but its role may not do this; nothing was changed."""

    code = "FORBIDDEN"

    def __init__(self, operation: str, role: str, required_role: str) -> None:
        super().__init__(f"role {role} may not call {operation}: it needs {required_role} or above")
        self.operation = operation
        self.role = role
        self.required_role = required_role
