"""Connecting: a real server for a URI, else the in-memory mock."""

from __future__ import annotations

from typing import Any


def connect(uri: str | None, database: str) -> Any:
    """A database handle: a real server for ``uri``, else an in-memory mock."""
    if uri:
        from motor.motor_asyncio import AsyncIOMotorClient

        client: Any = AsyncIOMotorClient(uri, tz_aware=True, serverSelectionTimeoutMS=10_000)
    else:
        from mongomock_motor import AsyncMongoMockClient

        # Not tz_aware: the mock would rebuild every scanned document's datetimes on every
        # query (a third of a page's cost at 10k jobs); documents.py re-attaches UTC on read.
        client = AsyncMongoMockClient()
    return client[database]
