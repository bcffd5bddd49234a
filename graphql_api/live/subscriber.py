"""One subscriber's bounded buffer between the feed and its connection.

The feed never waits for a subscriber: it offers each event and moves on. A subscriber whose
buffer is full has fallen behind; rather than grow without bound it drops its buffer and
fails with ``FellBehind``, naming the last event it handed out, so the client can resume from
there with nothing lost (the log still has every event).
"""

from __future__ import annotations

import asyncio
from collections import deque

from graphql_api.domain.events import ChangeEvent
from graphql_api.live.selectors import Selector


class FellBehind(Exception):
    """The subscriber's buffer overflowed; resume after ``resume_seq``."""

    def __init__(self, resume_seq: int, capacity: int) -> None:
        super().__init__(f"fell behind by more than {capacity} events; resume after {resume_seq}")
        self.resume_seq = resume_seq
        self.capacity = capacity


class FeedStopped(Exception):
    """The server is shutting down; resume after ``resume_seq`` (on any instance)."""

    def __init__(self, resume_seq: int) -> None:
        super().__init__(f"the server is shutting down; resume after {resume_seq}")
        self.resume_seq = resume_seq


class Subscriber:
    __slots__ = (
        "_buffer",
        "_capacity",
        "_ready",
        "_state",
        "delivered_seq",
        "selector",
    )

    def __init__(
        self,
        selector: Selector,
        after_seq: int,
        capacity: int,
    ) -> None:
        self.selector = selector
        #: The last event handed out (or the starting point): where a resume must start.
        self.delivered_seq = after_seq
        self._capacity = capacity
        self._buffer: deque[ChangeEvent] = deque()
        self._ready = asyncio.Event()
        self._state: FellBehind | FeedStopped | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def offer(self, event: ChangeEvent) -> None:
        """Called by the feed for every event of the subscriber's entity, in log order."""
        if self._state is not None or event.seq <= self.delivered_seq:
            return  # ended, or an event the subscriber has had already (it started ahead)
        if not self.selector.matches(event):
            return
        if len(self._buffer) >= self._capacity:
            self._state = FellBehind(self.delivered_seq, self._capacity)
            self._buffer.clear()  # the log keeps them: free the memory now
            self._ready.set()
            return
        self._buffer.append(event)
        self._ready.set()

    def stop(self) -> None:
        """End the subscription (the server is stopping); buffered events are still handed out."""
        if self._state is None:
            self._state = FeedStopped(self.delivered_seq)
            self._ready.set()

    async def next(self) -> ChangeEvent:
        """The next event; raises ``FellBehind`` or ``FeedStopped`` when the subscription ends."""
        while True:
            if isinstance(self._state, FellBehind):
                raise self._state
            if self._buffer:
                event = self._buffer.popleft()
                self.delivered_seq = event.seq
                return event
            if self._state is not None:
                raise FeedStopped(self.delivered_seq)
            self._ready.clear()
            await self._ready.wait()
