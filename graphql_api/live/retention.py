"""Retention of the change log: deletes old events in bounded steps, inside the server.

Every instance runs it; running it from several at once is harmless (``EventStore.trim``: the
floor only rises, a second deletion of the same range deletes nothing). Each step moves the
floor at most ``batch`` sequence numbers and deletes up to it; a run takes steps until there is
nothing more to delete or ``max_steps`` were taken, so one run's work is bounded and the rest
waits for the next run. A cursor below the floor then gets ``CURSOR_EXPIRED`` (history and
subscriptions), never a silent gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from graphql_api.storage.base import EventStore

log = logging.getLogger("mltrain.live")

#: The newest sequence numbers are never deleted, whatever their age: a starting server reads
#: the last 500 (the feed's batch) to find where the log ends and which holes are appends in
#: flight; deleting them would make those look like holes.
KEEP_NEWEST = 1000


class LogRetention:
    def __init__(
        self,
        events: EventStore,
        *,
        max_age: float | None,
        max_count: int | None,
        interval: float,
        batch: int = 1000,
        max_steps: int = 20,
        keep_newest: int = KEEP_NEWEST,
        after_trim: Callable[[int], Awaitable[object]] | None = None,
    ) -> None:
        """``after_trim``: given the floor after a run that raised it (and after the first
        run), removes what only the deleted events made useful (webhooks' delivery log
        entries)."""
        self._events = events
        self._after_trim = after_trim
        self._trimmed_to: int | None = None
        self._max_age = max_age
        self._max_count = max_count
        self._interval = interval
        self._batch = batch
        self._max_steps = max_steps
        self._keep_newest = keep_newest
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self._max_age is not None or self._max_count is not None

    async def start(self) -> None:
        if self.enabled:
            self._task = asyncio.create_task(self._run(), name="mltrain-log-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> int:
        """One run: bounded steps until nothing more is due. Returns the floor."""
        floor = -1
        for _ in range(self._max_steps):
            older_than = (
                None
                if self._max_age is None
                else datetime.now(UTC) - timedelta(seconds=self._max_age)
            )
            moved = await self._events.trim(
                older_than, self._max_count, self._keep_newest, self._batch
            )
            if moved == floor:
                break
            floor = moved
        if self._after_trim is not None and (self._trimmed_to is None or floor > self._trimmed_to):
            await self._after_trim(max(floor, 0))
            self._trimmed_to = floor
        return floor

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                # The database is away or failing: the next run tries again; retention waiting
                # a while costs nothing but space.
                log.exception("change-log retention failed; retrying in %.0f s", self._interval)
            await asyncio.sleep(self._interval)
