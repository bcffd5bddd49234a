"""Every key this server accepts: the configured ones (environment, file) and those issued while
running, kept in the database, with revocations reaching every instance within a second.

**Propagation.** Each instance reads one small document, the keys' revision
(``api_key_revision``), every ``MLTRAIN_KEY_POLL_INTERVAL`` seconds (0.25 by default); every
issue or revocation bumps it, and an instance that sees it move reloads the active keys (one
more query). A key that is revoked or expires is dropped from memory and every WebSocket open
with it is closed with 4403 at that tick (an HTTP subscription stream ends with an error saying
so), so a revocation holds everywhere within the poll
interval plus one read (bench/key_propagation.py measures it). At rest this costs one indexed
``find_one`` by ``_id`` per interval per instance (4 a second at the default). As a backstop
for a revision bump lost to a crash between the two writes, every instance also reloads the
active keys every ``FULL_RELOAD_EVERY`` seconds whatever the revision says.

The change feed was the other candidate: it already polls, but only the change log, whose
events are per record and kept for 30 days; putting key changes in it would hand them to
every subscriber's filter and to history. One more tiny read per tick is simpler.

**Last used.** Verifying a key writes nothing: the time of its last use is kept in memory and
written for all keys used since the last flush in one round trip every
``MLTRAIN_KEY_LAST_USED_INTERVAL`` seconds (and when the server stops), so ``lastUsedAt`` is at
most that stale and costs nothing per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from starlette.websockets import WebSocket

from graphql_api.auth.keys import ApiKey, KeyRing
from graphql_api.auth.roles import Role
from graphql_api.domain.api_keys import StoredApiKey, digest_of
from graphql_api.live.throttled_log import ThrottledWarning
from graphql_api.storage.api_keys import ApiKeyStore
from graphql_api.storage.base import DatabaseUnavailable

log = logging.getLogger("mltrain.auth")
db_warning = ThrottledWarning(log)

#: Seconds between reloads of the active keys whatever the revision says (a backstop).
FULL_RELOAD_EVERY = 30.0
#: The close code of a WebSocket whose key was revoked or expired while it was open.
KEY_REVOKED = 4403


class Keys(Protocol):
    """What the transport asks of the keys: whether any is required, and whose a secret is."""

    @property
    def enabled(self) -> bool: ...

    def verify(self, secret: str | None) -> ApiKey | None: ...


def as_api_key(stored: StoredApiKey) -> ApiKey:
    return ApiKey(
        name=stored.name,
        role=Role(stored.role),
        digest=stored.digest,
        scope=stored.scope,
        expires_at=stored.expires_at,
        stored=True,
    )


class KeyDirectory:
    """The configured keys plus the database's, refreshed by a poll of the keys' revision."""

    def __init__(
        self,
        configured: KeyRing,
        *,
        poll_interval: float = 0.25,
        last_used_interval: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.configured = configured
        self.poll_interval = poll_interval
        self.last_used_interval = last_used_interval
        self._clock = clock
        self._store: ApiKeyStore | None = None
        self._by_digest: dict[str, ApiKey] = {}
        self._revision: int | None = None
        self._stored_ever = False
        self._last_full_reload = 0.0
        self._last_flush = time.monotonic()
        #: name -> time of its last use not yet written.
        self._used: dict[str, datetime] = {}
        #: name -> WebSockets open with that key (closed when it is revoked or expires).
        self._sockets: dict[str, set[WebSocket]] = {}
        #: name -> futures of HTTP subscription streams open with that key: each gets why
        #: the key stopped working, and its stream ends (graphql_api/http_subscriptions.py).
        self._streams: dict[str, set[asyncio.Future[str]]] = {}
        self._task: asyncio.Task[None] | None = None
        #: Revision reads and key reloads made, for the cost-at-rest measurement.
        self.revision_reads = 0
        self.reloads = 0

    # What the transport uses ------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Authentication is on when a key is configured or any key was ever stored (a
        revoked last key does not open the server up)."""
        return self.configured.enabled or self._stored_ever

    @property
    def names(self) -> list[str]:
        return [k.name for k in self.configured.keys] + sorted(
            k.name for k in self._by_digest.values()
        )

    def verify(self, secret: str | None) -> ApiKey | None:
        key = self.configured.verify(secret)
        if key is not None or not secret or not self._by_digest:
            return key
        candidate = digest_of(secret)
        # A dict lookup by the digest of what was presented, then a constant-time compare:
        # the lookup's timing can only tell about the digest, and a SHA-256 preimage of a
        # 256-bit secret is out of reach, so nothing usable leaks.
        found = self._by_digest.get(candidate)
        if found is None or not hmac.compare_digest(found.digest, candidate):
            return None
        now = self._clock()
        if found.expires_at is not None and found.expires_at <= now:
            return None
        self._used[found.name] = now
        return found

    def register_socket(self, key: ApiKey, websocket: WebSocket) -> None:
        if key.stored:
            self._sockets.setdefault(key.name, set()).add(websocket)

    def unregister_socket(self, name: str, websocket: WebSocket) -> None:
        sockets = self._sockets.get(name)
        if sockets is not None:
            sockets.discard(websocket)
            if not sockets:
                del self._sockets[name]

    def watch_stream(self, key: ApiKey) -> asyncio.Future[str]:
        """For a stream opened with stored ``key``: a future that gets why the key stopped
        working (revoked or expired), at the same tick its WebSockets are closed."""
        ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._streams.setdefault(key.name, set()).add(ended)
        return ended

    def unwatch_stream(self, name: str, ended: asyncio.Future[str]) -> None:
        streams = self._streams.get(name)
        if streams is not None:
            streams.discard(ended)
            if not streams:
                del self._streams[name]
        ended.cancel()

    # Keeping up with the database -----------------------------------------------------------

    async def start(self, store: ApiKeyStore) -> None:
        """Load the stored keys (start-up fails if the database cannot be read) and poll."""
        self._store = store
        await self._reload(await store.revision())
        self._task = asyncio.create_task(self._poll_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(DatabaseUnavailable):
            await self.flush_last_used()

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.refresh()
            except DatabaseUnavailable as error:
                db_warning.warn("API keys not refreshed: database unavailable (%s)", error.reason)
            except Exception:
                log.exception("API keys not refreshed")

    async def refresh(self) -> None:
        """One tick: reload if the revision moved (or the backstop is due), drop expired keys,
        and flush last-use times when their interval has passed."""
        assert self._store is not None
        self.revision_reads += 1
        revision = await self._store.revision()
        if (
            revision != self._revision
            or time.monotonic() - self._last_full_reload > FULL_RELOAD_EVERY
        ):
            await self._reload(revision)
        else:
            now = self._clock()
            expired = [k for k in self._by_digest.values() if k.expires_at and k.expires_at <= now]
            for key in expired:
                del self._by_digest[key.digest]
            await self._close_sockets({k.name for k in expired}, "expired")
        if time.monotonic() - self._last_flush >= self.last_used_interval:
            await self.flush_last_used()

    async def _reload(self, revision: int) -> None:
        assert self._store is not None
        self.reloads += 1
        active = await self._store.active(self._clock())
        if not self._stored_ever:
            self._stored_ever = bool(active) or await self._store.any_stored()
        before = {k.name for k in self._by_digest.values()}
        self._by_digest = {k.digest: as_api_key(k) for k in active if k.role in set(Role)}
        self._revision = revision
        self._last_full_reload = time.monotonic()
        gone = before - {k.name for k in self._by_digest.values()}
        await self._close_sockets(gone, "revoked or expired")

    async def _close_sockets(self, names: set[str], why: str) -> None:
        for name in names:
            for ended in self._streams.pop(name, ()):
                if not ended.done():
                    ended.set_result(f"API key {name} was {why}")
            for websocket in list(self._sockets.pop(name, ())):
                with contextlib.suppress(Exception):  # already closing: nothing to do
                    await websocket.close(code=KEY_REVOKED, reason=f"API key {name} was {why}")

    async def flush_last_used(self) -> None:
        """Write the coalesced last-use times: one round trip for every key used since."""
        self._last_flush = time.monotonic()
        if self._store is None or not self._used:
            return
        used, self._used = self._used, {}
        try:
            await self._store.record_use(used)
        except DatabaseUnavailable:
            # Keep them for the next flush (a later use of the same key supersedes).
            for name, at in used.items():
                self._used.setdefault(name, at)
            raise

    def pending_use(self, name: str) -> datetime | None:
        """A use of ``name`` seen here and not yet written."""
        return self._used.get(name)
