"""An app with API keys configured, a key per role, and a snapshot of everything stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from graphql_api.app import create_app
from graphql_api.auth.keys import KeyRing, generate
from graphql_api.auth.roles import Role
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage

#: role -> (secret, key name); one key per role.
SECRETS: dict[Role, str] = {}
KEY_NAMES = {role: f"{role.value}-key" for role in Role}
_keys = []
for _role in Role:
    _secret, _key = generate(KEY_NAMES[_role], _role)
    SECRETS[_role] = _secret
    _keys.append(_key)
KEYS = KeyRing(_keys)


def bearer(role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[role]}"}


@asynccontextmanager
async def secured_app(storage: MongoStorage, **settings: Any) -> AsyncIterator[Starlette]:
    # One instance: local changes wake the feed at once, so it need not poll.
    settings = {"feed_poll_interval": 60.0, **settings}
    application = create_app(Settings(**settings), storage=storage, keys=KEYS)
    async with LifespanManager(application):
        yield application


@asynccontextmanager
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


class RoleClient:
    """Posts operations with one role's key (or none)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(self, role: Role | None, query: str, **variables: Any) -> httpx.Response:
        headers = bearer(role) if role is not None else {}
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )

    async def data(self, role: Role, query: str, **variables: Any) -> dict[str, Any]:
        response = await self.post(role, query, **variables)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


async def snapshot(storage: MongoStorage) -> dict[str, list[dict[str, Any]]]:
    """Every document of every collection: equal snapshots mean nothing changed. Not the
    ``leaders`` collection (the leases of the liveness sweep and of webhook deliveries): the
    server renews those in the background, which is no change a request made."""
    db = storage.database
    names = sorted(set(await db.list_collection_names()) - {"leaders"})
    found = {name: await db[name].find({}).sort("_id", 1).to_list(None) for name in names}
    # A job's pending event whose event is in the log reads as cleared: the server clears
    # those in the background, in batches (services/outbox.py), which no request made.
    logged = {doc.get("event_id") for doc in found.get("events", [])}
    for job in found.get("training_jobs", []):
        pending = job.get("pending_event")
        if isinstance(pending, dict) and pending.get("event_id") in logged:
            job["pending_event"] = None
    return found
