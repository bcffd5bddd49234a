"""Admin: issue, list and revoke API keys kept in the database (docs/security.md).

The role table requires ``admin`` for all three; a key limited to model names may not manage
keys at all (it could otherwise issue itself an unlimited one).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import strawberry

from graphql_api.auth.roles import Role
from graphql_api.context import Info
from graphql_api.domain.errors import DomainError, ForbiddenError
from graphql_api.types import typed
from graphql_api.types.api_keys import (
    ApiKey,
    CreateApiKeyResult,
    CreatedApiKey,
    RevokeApiKeyResult,
)
from graphql_api.types.errors import MutationError, to_graphql


class ScopedAdminError(ForbiddenError):
    def __init__(self, operation: str) -> None:
        super().__init__(operation, "admin", "admin")
        self.message = (
            f"a key limited to model names may not call {operation}: manage keys with an "
            "unlimited admin key"
        )
        self.args = (self.message,)


def _refuse_scoped(info: Info, operation: str) -> None:
    key = info.context.api_key
    if key is not None and not key.scope.unrestricted:
        raise ScopedAdminError(operation)


def _pending_use(info: Info, name: str) -> datetime | None:
    directory = info.context.keys
    return None if directory is None else directory.pending_use(name)


async def _refresh_here(info: Info) -> None:
    """This instance applies the change at once; the others at their next poll."""
    if info.context.keys is not None:
        await info.context.keys.refresh()


@strawberry.type
class ApiKeyQuery:
    @typed.field(
        description="Every API key kept in the database (revoked and expired ones too), by "
        "name; admin only. Keys configured in MLTRAIN_API_KEYS or its file are not listed.",
        graphql_type=list[ApiKey],
    )
    async def api_keys(self, info: Info) -> list[ApiKey]:
        _refuse_scoped(info, "apiKeys")
        now = datetime.now(UTC)
        keys = await info.context.services.api_keys.all()
        return [ApiKey.of(k, now, _pending_use(info, k.name)) for k in keys]


@strawberry.type
class ApiKeyMutation:
    @typed.mutation(
        description="Issue a key (admin): the secret is in the answer once and never again. "
        "Takes effect on every instance within MLTRAIN_KEY_POLL_INTERVAL. Errors: "
        "ValidationError (name, expiresAt in the past, modelNames pattern), ConflictError "
        "(name taken, also by a revoked or configured key).",
        graphql_type=CreateApiKeyResult,
    )
    async def create_api_key(
        self,
        info: Info,
        name: str,
        role: Role,
        expires_at: Annotated[
            datetime | None, strawberry.argument(description="When it stops working; null: never.")
        ] = None,
        model_names: Annotated[
            list[str] | None,
            strawberry.argument(
                description="Limit it to these model names (`churn-*`: `*` any characters, `?` "
                "one). Null or empty: every model."
            ),
        ] = None,
    ) -> CreatedApiKey | MutationError:
        try:
            _refuse_scoped(info, "createApiKey")
            issued = await info.context.services.api_keys.create(
                name, role.value, expires_at, model_names, actor=info.context.actor
            )
        except DomainError as error:
            return to_graphql(error)
        await _refresh_here(info)
        return CreatedApiKey(secret=issued.secret, key=ApiKey.of(issued.key, datetime.now(UTC)))

    @typed.mutation(
        description="Revoke a key (admin; idempotent): every instance refuses it within "
        "MLTRAIN_KEY_POLL_INTERVAL and closes its open WebSockets with 4403. Errors: "
        "NotFoundError (name).",
        graphql_type=RevokeApiKeyResult,
    )
    async def revoke_api_key(self, info: Info, name: str) -> ApiKey | MutationError:
        try:
            _refuse_scoped(info, "revokeApiKey")
            revoked = await info.context.services.api_keys.revoke(name)
        except DomainError as error:
            return to_graphql(error)
        await _refresh_here(info)
        return ApiKey.of(revoked, datetime.now(UTC), _pending_use(info, name))
