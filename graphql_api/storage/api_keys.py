"""The storage contract of API keys issued while running (MongoDB: ``mongo/api_keys.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from graphql_api.domain.api_keys import ModelScope, StoredApiKey


class ApiKeyStore(Protocol):
    async def insert(self, key: StoredApiKey) -> None:
        """Store a new key and bump the revision; ConflictError on ``name`` if taken (by a
        revoked key too)."""

    async def all(self) -> list[StoredApiKey]:
        """Every stored key, revoked and expired ones included, by name."""

    async def active(self, now: datetime) -> list[StoredApiKey]:
        """The keys neither revoked nor expired at ``now``."""

    async def any_stored(self) -> bool:
        """Whether any key was ever stored (revoked ones count)."""

    async def revoke(self, name: str, now: datetime) -> StoredApiKey | None:
        """Revoke (idempotent) and bump the revision; None if there is no such key."""

    async def revision(self) -> int:
        """A number that changes whenever a key is added or revoked."""

    async def bump_revision(self) -> int: ...

    async def record_use(self, used: Mapping[str, datetime]) -> None:
        """Move each named key's last use forward to the given time (one write per key)."""

    async def model_ids_in_scope(self, scope: ModelScope) -> list[str]:
        """Ids of the model versions whose name is in ``scope``."""
