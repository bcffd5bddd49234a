"""The outbox sweep: relays, in the background, the changes a crash left without their event.

A change and its event's header are one write of the record (``storage.mongo.outbox``); the
request that made the change relays the event to the log right away (``services.outbox``).
When that process died in between (or the database failed for longer than the append's
retries), the event waits in the record, and the next change of that record relays it first.
A record that never changes again would keep it for good: every server instance therefore
sweeps, every ``interval`` seconds, the records whose change has been pending for longer than
the grace, and relays them. Running it on several instances at once is harmless: the relay is
idempotent by event id, and a record's events keep their order (it cannot change meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from graphql_api.services.outbox import Outbox
from graphql_api.storage.base import uncounted

log = logging.getLogger("mltrain.live")


class OutboxSweep:
    def __init__(
        self,
        outbox: Outbox,
        *,
        interval: float,
        clear_relayed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``clear_relayed``: clears the pending changes whose events the request path relayed
        and left in their records (``Outbox.publish_job``); run first in every pass, so that
        none of them grows older than the grace and looks like a crashed writer's."""
        self._outbox = outbox
        self._interval = interval
        self._clear_relayed = clear_relayed
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mltrain-outbox-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._clear_relayed is not None:
            try:
                await self._clear_relayed()
            except Exception:
                # Shutting down with the database away: the next start's sweep clears them.
                log.exception("clearing relayed events at shutdown failed")

    async def run_once(self) -> int:
        """Sweep until nothing older than the grace is pending; how many events it relayed."""
        if self._clear_relayed is not None:
            await self._clear_relayed()
        relayed = 0
        while moved := await self._outbox.sweep():
            relayed += moved
        return relayed

    async def _run(self) -> None:
        uncounted()  # background work: no request's round trips (StoreStats)
        while True:
            try:
                await self.run_once()
            except Exception:
                # The database is away or failing: the next run tries again (the events wait
                # in their records meanwhile, nothing is lost).
                log.exception("outbox sweep failed; retrying in %.1f s", self._interval)
            await asyncio.sleep(self._interval)
