"""Typed errors returned by mutations: every one implements ``Error { code message }``."""

from __future__ import annotations

import strawberry

from graphql_api.domain import errors as domain
from graphql_api.domain.errors import ErrorCode, ValidationRule

# The domain enums themselves, with their GraphQL descriptions (see types/enums.py).
strawberry.enum(
    ErrorCode,
    description="What kind of expected failure: one value per error type, so a client can "
    "handle every case.",
)
strawberry.enum(
    ValidationRule,
    description="The rule an input value broke (docs/input-policy.md lists each field's). "
    "Also the value of a query argument error's `extensions.rule`.",
)


@strawberry.interface(description="An expected failure; nothing was changed.")
class Error:
    code: ErrorCode = strawberry.field(description="Stable, machine-readable error code.")
    message: str = strawberry.field(description="What went wrong, for people.")


@strawberry.type(description="The record named by the input does not exist.")
class NotFoundError(Error):
    resource: str = strawberry.field(description="The kind of record: ModelVersion or TrainingJob.")
    id: strawberry.ID = strawberry.field(description="The id that was not found.")
    field: str | None = strawberry.field(description="The input field that named it.")


@strawberry.type(description="The record's current status does not allow the change.")
class InvalidTransitionError(Error):
    current_status: str = strawberry.field(description="The status the record is in.")
    requested_status: str | None = strawberry.field(
        description="The status that was asked for; null when the change is not a status "
        "change (e.g. reporting metrics) or there is no next stage."
    )


@strawberry.type(description="The change conflicts with another record or a concurrent change.")
class ConflictError(Error):
    field: str | None = strawberry.field(description="The input field in conflict.")


@strawberry.type(description="An input value breaks a rule.")
class ValidationError(Error):
    field: str | None = strawberry.field(
        description="The input field, as a path (e.g. metrics.f1). Nullable only so that "
        "`field` has one type across all error types."
    )
    rule: ValidationRule = strawberry.field(
        description="The rule that failed (e.g. max_length, max_items, characters)."
    )


@strawberry.type(description="No valid API key came with the request; nothing was changed.")
class UnauthenticatedError(Error):
    pass


@strawberry.type(description="The API key's role may not make this change; nothing was changed.")
class ForbiddenError(Error):
    role: str = strawberry.field(description="The role of the key that was used.")
    required_role: str = strawberry.field(description="The least role that may make the change.")


@strawberry.type(
    description="The lease token is not the job's current lease (the job was taken from this "
    "worker, or it was claimed and the write carried no token); nothing was changed. The "
    "worker must stop working on the job."
)
class LeaseLostError(Error):
    job_id: strawberry.ID = strawberry.field(description="The job whose lease was lost.")


#: Every typed error a mutation can return: the one list each result union is built from.
MutationError = (
    NotFoundError
    | InvalidTransitionError
    | ConflictError
    | ValidationError
    | UnauthenticatedError
    | ForbiddenError
    | LeaseLostError
)


def to_graphql(error: domain.DomainError) -> MutationError:
    match error:
        case domain.NotFoundError():
            return NotFoundError(
                code=error.code,
                message=error.message,
                resource=error.resource,
                id=strawberry.ID(error.resource_id),
                field=error.field,
            )
        case domain.InvalidTransitionError():
            return InvalidTransitionError(
                code=error.code,
                message=error.message,
                current_status=error.current_status,
                requested_status=error.requested_status,
            )
        case domain.ConflictError():
            return ConflictError(code=error.code, message=error.message, field=error.field)
        case domain.ValidationError():
            return ValidationError(
                code=error.code, message=error.message, field=error.field, rule=error.rule
            )
        case domain.UnauthenticatedError():
            return UnauthenticatedError(code=error.code, message=error.message)
        case domain.ForbiddenError():
            return ForbiddenError(
                code=error.code,
                message=error.message,
                role=error.role,
                required_role=error.required_role,
            )
        case domain.LeaseLostError():
            return LeaseLostError(
                code=error.code, message=error.message, job_id=strawberry.ID(error.resource_id)
            )
    raise TypeError(f"no GraphQL error type for {type(error).__name__}")
