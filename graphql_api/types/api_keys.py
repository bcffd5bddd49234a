"""API keys issued while running, as GraphQL shows them: never the secret nor its digest."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry

from graphql_api.auth.roles import Role
from graphql_api.domain.api_keys import StoredApiKey
from graphql_api.types.errors import MutationError

strawberry.enum(Role, name="ApiKeyRole", description="What a key may do (docs/security.md).")


@strawberry.enum(description="Whether a stored key is accepted now.")
class ApiKeyStatus(Enum):
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"


@strawberry.type(
    description="An API key kept in the database. The secret is shown only once, "
    "by createApiKey; the server keeps its SHA-256 digest, which is never shown."
)
class ApiKey:
    name: str = strawberry.field(description="Recorded as the actor of every change it makes.")
    role: Role
    model_names: list[str] = strawberry.field(
        description="Model-name patterns it is limited to (`*` any characters, `?` one); "
        "empty: every model."
    )
    status: ApiKeyStatus
    created_at: datetime
    created_by: str | None = strawberry.field(
        description="The key that issued it (null: the CLI or an open server)."
    )
    expires_at: datetime | None
    last_used_at: datetime | None = strawberry.field(
        description="Last accepted request, written in batches (MLTRAIN_KEY_LAST_USED_INTERVAL; "
        "this instance's newer uses are included)."
    )
    revoked_at: datetime | None

    @classmethod
    def of(cls, key: StoredApiKey, now: datetime, pending_use: datetime | None = None) -> ApiKey:
        if key.revoked_at is not None:
            status = ApiKeyStatus.REVOKED
        elif key.expires_at is not None and key.expires_at <= now:
            status = ApiKeyStatus.EXPIRED
        else:
            status = ApiKeyStatus.ACTIVE
        last_used = key.last_used_at
        if pending_use is not None and (last_used is None or pending_use > last_used):
            last_used = pending_use
        return cls(
            name=key.name,
            role=Role(key.role),
            model_names=list(key.scope.patterns),
            status=status,
            created_at=key.created_at,
            created_by=key.created_by,
            expires_at=key.expires_at,
            last_used_at=last_used,
            revoked_at=key.revoked_at,
        )


@strawberry.type(description="A new key and its secret: shown this once, never again.")
class CreatedApiKey:
    secret: str = strawberry.field(
        description="Send as `Authorization: Bearer <secret>`. Not stored: keep it now."
    )
    key: ApiKey


CreateApiKeyResult = Annotated[
    CreatedApiKey | MutationError,
    strawberry.union("CreateApiKeyResult", description="The new key, or why none was made."),
]

RevokeApiKeyResult = Annotated[
    ApiKey | MutationError,
    strawberry.union("RevokeApiKeyResult", description="The revoked key, or why not."),
]
