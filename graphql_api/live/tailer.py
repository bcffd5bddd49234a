"""Reading the change log in sequence order without ever skipping an event.

Sequence numbers come from a counter that writers take *before* they insert, so the log can
show seq 11 while seq 10 is still being written, and a writer that dies in between leaves 10
empty for good. The tailer therefore only moves over a contiguous prefix: at a gap it waits,
and only after ``gap_grace`` seconds does it seal the hole (``EventStore.seal``). Sealing is an
insert on the unique ``_id``, so exactly one of "the late writer" and "the sealer" wins: a late
writer that loses takes a new number (its event then comes later in the log, not never), and a
sealer that loses reads the event that won. Either way nothing is lost and no event lands
behind the tailer's position. See docs/subscriptions.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from graphql_api.domain.events import ChangeEvent, LogEntry, SealedSeq, StoredEvent
from graphql_api.storage.base import EventStore

log = logging.getLogger("mltrain.live")


class LogTailer:
    def __init__(
        self,
        events: EventStore,
        position: int,
        *,
        gap_grace: float,
        batch: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._events = events
        #: Every sequence number up to here has been handed out (or was a sealed hole).
        self.position = position
        self._gap_grace = gap_grace
        self._batch = batch
        self._clock = clock
        # Entries known beyond the position: read past a gap, or offered by local appends.
        self._pending: dict[int, LogEntry] = {}
        self._gap_seen_at: float | None = None
        #: Set when the position had to jump over events retention deleted before this process
        #: read them (it lagged behind the log by more than the retention): the floor jumped to.
        self.expired_to: int | None = None

    @classmethod
    async def resume(
        cls, events: EventStore, *, gap_grace: float, batch: int, clock: Callable[[], float]
    ) -> LogTailer:
        """A tailer for a starting server: at the end of the log, yet before any hole near its
        end that may still be an append in flight (older holes are sealed on the spot)."""
        head = await events.head()
        # Never below the retention floor: numbers deleted by retention are not holes.
        start = max(head - batch, await events.floor(), 0)
        expected = start + 1
        now = datetime.now(UTC)
        for entry in await events.entries_after(start, batch):
            while expected < entry.seq:
                young = isinstance(entry, ChangeEvent) and (
                    now - entry.occurred_at < timedelta(seconds=gap_grace)
                )
                if young:
                    return cls(events, expected - 1, gap_grace=gap_grace, batch=batch, clock=clock)
                if await events.seal(expected) is None:
                    log.warning("sealed an old hole in the change log at seq %d", expected)
                expected += 1
            expected = entry.seq + 1
        return cls(events, head, gap_grace=gap_grace, batch=batch, clock=clock)

    @property
    def waiting(self) -> bool:
        """Entries beyond a gap are known: the gap must be filled or sealed."""
        return bool(self._pending)

    def offer(self, event: ChangeEvent) -> None:
        """An event this process just appended: usable without reading it back."""
        if event.seq > self.position:
            self._pending[event.seq] = event

    def ready(self) -> list[StoredEvent]:
        """The events that now continue the prefix, in order; moves the position over them.
        Unreadable events are handed on too: subscribers get a marker in their place."""
        out: list[StoredEvent] = []
        while (entry := self._pending.pop(self.position + 1, None)) is not None:
            self.position = entry.seq
            self._gap_seen_at = None
            if not isinstance(entry, SealedSeq):
                out.append(entry)
        return out

    async def poll(self) -> tuple[list[StoredEvent], bool]:
        """Read the log once: the events that continue the prefix, and whether to read again
        at once (a full batch went through)."""
        entries = await self._events.entries_after(self.position, self._batch)
        for entry in entries:
            if entry.seq > self.position:
                self._pending[entry.seq] = entry
        before = self.position
        out = self.ready()
        if self._pending:
            out += await self._handle_gap()
        return out, len(entries) == self._batch and self.position > before

    async def _handle_gap(self) -> list[StoredEvent]:
        now = self._clock()
        if self._gap_seen_at is None:
            self._gap_seen_at = now
            return []
        if now - self._gap_seen_at < self._gap_grace:
            return []
        floor = await self._events.floor()
        if floor > self.position:
            # Not holes: retention deleted them before this process read them (it lagged
            # behind by more than the retention). Never seal them (that would write them back);
            # move over them, and let the feed end the subscribers that missed them.
            log.warning(
                "the change log's retention deleted seq %d to %d before this server read them",
                self.position + 1,
                floor,
            )
            for seq in [s for s in self._pending if s <= floor]:
                del self._pending[seq]
            self.position = floor
            self.expired_to = floor
            self._gap_seen_at = None
            return self.ready()
        # Every number below the first known entry has been missing for the whole grace
        # period (entries only ever fill in): seal them all.
        first_known = min(self._pending)
        for seq in range(self.position + 1, first_known):
            winner = await self._events.seal(seq)
            if winner is None:
                log.warning(
                    "seq %d of the change log stayed empty for %.1f s (a writer died between "
                    "taking it and writing): sealed and skipped",
                    seq,
                    now - self._gap_seen_at,
                )
                self._pending[seq] = SealedSeq(seq)
            else:
                self._pending[seq] = winner
        self._gap_seen_at = None
        return self.ready()
