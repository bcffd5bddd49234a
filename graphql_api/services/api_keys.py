"""Issuing, listing and revoking API keys kept in the database (admin use cases).

A new key's secret is returned once and never stored: the database keeps its SHA-256 digest.
Every input is checked before anything is written, so a refused request changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from graphql_api.domain.api_keys import (
    ModelScope,
    StoredApiKey,
    check_expiry,
    check_key_name,
    digest_of,
    new_secret,
    parse_scope,
)
from graphql_api.domain.errors import ConflictError, NotFoundError, ValidationError, ValidationRule
from graphql_api.storage.api_keys import ApiKeyStore


@dataclass(frozen=True)
class IssuedKey:
    secret: str  # shown once
    key: StoredApiKey


class ApiKeyService:
    def __init__(
        self,
        store: ApiKeyStore,
        roles: Sequence[str],
        reserved_names: Collection[str] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._roles = tuple(roles)
        #: Names of the configured keys: a stored key may not take one (names are actors).
        self._reserved = frozenset(reserved_names)
        self._clock = clock

    async def create(
        self,
        name: str,
        role: str,
        expires_at: datetime | None = None,
        model_names: Sequence[str] | None = None,
        actor: str | None = None,
    ) -> IssuedKey:
        now = self._clock()
        check_key_name(name)
        if role not in self._roles:
            raise ValidationError(
                "role",
                f"unknown role {role!r} (one of {', '.join(self._roles)})",
                rule=ValidationRule.invalid,
            )
        check_expiry(expires_at, now)
        scope = parse_scope(model_names)
        if name in self._reserved:
            raise ConflictError(
                f"{name!r} is the name of a configured key (MLTRAIN_API_KEYS or its file)",
                field="name",
            )
        secret = new_secret()
        key = StoredApiKey(
            name=name,
            role=role,
            digest=digest_of(secret),
            scope=scope,
            created_at=now,
            created_by=actor,
            expires_at=None if expires_at is None else expires_at.astimezone(UTC),
        )
        await self._store.insert(key)
        return IssuedKey(secret, key)

    async def revoke(self, name: str) -> StoredApiKey:
        revoked = await self._store.revoke(name, self._clock())
        if revoked is None:
            raise NotFoundError("ApiKey", name, field="name")
        return revoked

    async def all(self) -> list[StoredApiKey]:
        return await self._store.all()

    async def model_ids_in_scope(self, scope: ModelScope) -> list[str]:
        """The model versions a key limited to ``scope`` may see (one round trip)."""
        return await self._store.model_ids_in_scope(scope)
