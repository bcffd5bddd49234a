"""Enforces the role table on every root query and mutation field, before its resolver runs.

A refused mutation returns its typed ``UnauthenticatedError``/``ForbiddenError`` (members of
every mutation result union) without calling the resolver, so nothing changes; a refused query
field becomes a GraphQL error with that code. Only root fields are checked (whoever may ask for
a record may read all of it), so the check is a field extension on the root fields alone: a
schema-wide ``resolve`` hook would wrap every field of every record (measured in-process on
a 50-job dashboard query: 13.7 ms with the hook, 11.3 ms with this; see bench/README.md).
Subscriptions are authorised once, at ``connection_init``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.types import Info
from strawberry.types.base import get_object_definition

from graphql_api.auth.roles import required_role
from graphql_api.domain.errors import DomainError, ForbiddenError, UnauthenticatedError
from graphql_api.types.errors import to_graphql


def refusal(context: Any, operation: str, field: str) -> DomainError | None:
    """Why ``context``'s caller may not resolve root ``field`` of ``operation``, or None."""
    if getattr(context, "open_access", False):
        return None
    key = getattr(context, "api_key", None)
    if key is None:
        return UnauthenticatedError()
    needed = required_role(operation, field)
    if not key.role.includes(needed):
        return ForbiddenError(field, key.role.value, needed.value)
    return None


class RoleCheck(FieldExtension):
    def _refused(self, info: Info[Any, Any]) -> object | None:
        operation = info.operation.operation.value
        denied = refusal(info.context, operation, info.field_name)
        if denied is None:
            return None
        if operation == "mutation":
            return to_graphql(denied)
        raise denied

    def resolve(
        self, next_: Callable[..., Any], source: Any, info: Info[Any, Any], **kwargs: Any
    ) -> Any:
        refused = self._refused(info)
        return refused if refused is not None else next_(source, info, **kwargs)

    async def resolve_async(
        self,
        next_: Callable[..., Awaitable[Any]],
        source: Any,
        info: Info[Any, Any],
        **kwargs: Any,
    ) -> Any:
        refused = self._refused(info)
        return refused if refused is not None else await next_(source, info, **kwargs)


def guard_root_fields(*root_types: type) -> None:
    """Put the role check on every field of these root types (once, however often called)."""
    for root_type in root_types:
        for field in get_object_definition(root_type, strict=True).fields:
            if not any(isinstance(e, RoleCheck) for e in field.extensions):
                field.extensions.append(RoleCheck())
