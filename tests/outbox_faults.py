"""A storage that "crashes" the process using it after a given number of writes (the test-only
fault hook of the outbox tests; nothing in the package knows of it).

Every write method of the stores (a record's insert, update or claim, the production
pointer's moves, an event's append, clearing a pending event or a batch of them) counts as one
write. Once ``allow`` writes
have completed, the storage is dead: every later call, read or write, raises
``DatabaseUnavailable`` without reaching the database, exactly as if the process had been
killed right after that write (nothing it would have done next reaches the database).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from graphql_api.storage.base import DatabaseUnavailable, StoreStats
from graphql_api.storage.mongo import MongoStorage

#: The methods that write (``production_pointer`` may insert the pointer).
WRITES = frozenset(
    {
        "insert",
        "update",
        # A claim's conditional update of the job it takes.
        "claim",
        "touch",
        "clear_pending",
        "clear_relayed",
        "move_production",
        "release_holding",
        "production_pointer",
        "append",
        # Aliases (their pending change is in the name's registry document) and the list of
        # model names a registration adds to.
        "move_alias",
        "clear_alias_pending",
        "add_model_name",
    }
)


class Crash:
    """The shared write budget: unlimited until ``arm``."""

    def __init__(self) -> None:
        self.allow: int | None = None
        self.writes = 0
        self.dead = False
        #: The write methods called since the last ``arm``, in order.
        self.log: list[str] = []

    def arm(self, allow: int | None) -> None:
        self.allow, self.writes, self.dead, self.log = allow, 0, allow == 0, []

    def check(self) -> None:
        if self.dead:
            raise DatabaseUnavailable("simulated crash")


class _CrashingStore:
    def __init__(self, inner: Any, crash: Crash) -> None:
        self._inner = inner
        self._crash = crash

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target
        crash = self._crash

        async def call(*args: Any, **kwargs: Any) -> Any:
            crash.check()
            result = await target(*args, **kwargs)
            if name in WRITES:
                crash.writes += 1
                crash.log.append(name)
                if crash.allow is not None and crash.writes >= crash.allow:
                    crash.dead = True
            return result

        return call


class CrashingStorage:
    """``storage`` (its database stays as it is) seen through a ``Crash`` budget."""

    def __init__(self, storage: MongoStorage, crash: Crash) -> None:
        self._storage = storage
        self._crash = crash
        self._versions = _CrashingStore(storage.model_versions, crash)
        self._jobs = _CrashingStore(storage.training_jobs, crash)
        self._events = _CrashingStore(storage.events, crash)

    @property
    def model_versions(self) -> Any:
        return self._versions

    @property
    def training_jobs(self) -> Any:
        return self._jobs

    @property
    def events(self) -> Any:
        return self._events

    @property
    def metric_series(self) -> Any:
        # Points are not change events; not part of the crash model.
        return self._storage.metric_series

    @property
    def api_keys(self) -> Any:
        return self._storage.api_keys

    @property
    def webhooks(self) -> Any:
        return self._storage.webhooks

    @property
    def leaders(self) -> Any:
        # Leader leases (the liveness sweep's, webhook deliveries') are not change events; not
        # part of the model.
        return self._storage.leaders

    @property
    def stats(self) -> StoreStats:
        return self._storage.stats

    async def ensure_indexes(self) -> None:
        await self._storage.ensure_indexes()

    async def ping(self) -> None:
        self._crash.check()
        await self._storage.ping()

    async def close(self) -> None:
        """The test closes the real storage itself."""


async def wait_for(
    condition: Callable[[], Awaitable[bool]], what: str, attempts: int = 400
) -> None:
    """Poll ``condition`` (a database read) until it holds; a bounded number of attempts,
    each after yielding briefly so the server's background work can run."""
    import asyncio

    for _ in range(attempts):
        if await condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")
