"""The change feed of one server process: tails the log and fans events out to subscribers.

Events reach the feed two ways: a local service call's append wakes it at once (``notify``),
and a poll of the log every ``poll_interval`` brings those appended by other processes. Both
go through one ``LogTailer``, so subscribers see every event exactly once, in log order,
whichever way it arrived.

A subscription with ``after`` first reads the log from that cursor up to the feed's position,
then joins the live fan-out at exactly that position (no await between the check and the
join), so there is neither a gap nor a duplicate at the seam.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncGenerator, Callable

from graphql_api.domain.errors import CursorExpiredError, ValidationError, ValidationRule
from graphql_api.domain.events import ChangeEvent, EntityKind, StoredEvent
from graphql_api.live.direct import DeliveryGroups, DirectTarget, GroupKey, current_target
from graphql_api.live.fanout import EncodedResults, SharedRenders
from graphql_api.live.pacing import DeliveryGate, Ticket
from graphql_api.live.selectors import Selector
from graphql_api.live.subscriber import FeedStopped, Subscriber
from graphql_api.live.tailer import LogTailer
from graphql_api.storage.base import EventStore

log = logging.getLogger("mltrain.live")


class ChangeFeed:
    def __init__(
        self,
        events: EventStore,
        *,
        poll_interval: float = 0.15,
        gap_grace: float = 2.0,
        batch: int = 500,
        buffer: int = 1000,
        max_lag: float = 10.0,
        delivery_slots: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._events = events
        self._poll_interval = poll_interval
        self._gap_grace = gap_grace
        self._batch = batch
        self.buffer = buffer
        self.max_lag = max_lag
        self.gate = DeliveryGate(delivery_slots)
        #: Subscribers of the same operation share one execution per event (``fanout``).
        self.renders = SharedRenders()
        #: ... and their results are encoded once (``fanout.EncodedResults``).
        self.encodings = EncodedResults()
        #: ... and written once per group to the sockets of its idle members (``direct``).
        self.groups = DeliveryGroups()
        self._clock = clock
        self._tailer: LogTailer | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopped = False
        self._subscribers: dict[EntityKind, set[Subscriber]] = {kind: set() for kind in EntityKind}
        #: Equal selectors of live subscribers, as one object (``_fan_out``).
        self._selectors: weakref.WeakValueDictionary[tuple[type, int], Selector] = (
            weakref.WeakValueDictionary()
        )

    # Life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._tailer = await LogTailer.resume(
            self._events, gap_grace=self._gap_grace, batch=self._batch, clock=self._clock
        )
        self._task = asyncio.create_task(self._run(), name="mltrain-change-feed")

    async def stop(self) -> None:
        self._stopped = True
        for subscribers in self._subscribers.values():
            # A copy: a parked subscriber woken here may be dropped from the set at once.
            for subscriber in list(subscribers):
                subscriber.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def position(self) -> int:
        """Every event up to this sequence number has been fanned out."""
        return 0 if self._tailer is None else self._tailer.position

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    @property
    def fallen_behind(self) -> int:
        """Subscribers ended as too slow whose consumers have not been told yet."""
        return sum(s.fell_behind for subscribers in self._subscribers.values() for s in subscribers)

    def notify(self, event: ChangeEvent) -> None:
        """A local append happened: hand it over without waiting for the next poll."""
        if self._tailer is not None:
            self._tailer.offer(event)
            self._wake.set()

    # Subscribing -----------------------------------------------------------------------

    async def stream(
        self,
        selector: Selector,
        after: int | None = None,
        group: GroupKey | None = None,
        *,
        parkable: bool = False,
    ) -> AsyncGenerator[StoredEvent, None]:
        """The selected events after ``after`` (default: from now on), then live ones.

        Ends with ``FellBehind`` if the consumer lets its buffer overflow or lets an event wait
        longer than ``max_lag``, or ``FeedStopped`` when the server stops; both name where to
        resume. Every event is handed out with a turn of the delivery gate (``pacing``), held
        until the consumer asks for the next one.

        ``group``: what makes the subscription's frames the same as others' (``direct``); with
        it, and a connection whose frames can be written directly (``direct.current_target``,
        set by the WebSocket handler), live events may be written to its socket by another
        member of its group, without this generator handing them out. ``parkable``: while it
        is idle, and another member has a consumer, its consumer may end (``Parked``: this
        generator and everything above it, up to the operation's task), the subscriber staying
        in its group as a record; the restarted operation calls this again and continues from
        where the subscriber is (no head read, no replay).
        """
        if self._tailer is None:
            raise RuntimeError("the change feed is not running")
        direct = current_target.get() if group is not None else None
        if direct is not None and direct.subscriber is not None:
            # A parked subscription's operation, restarted: it goes on where it was.
            ticket = self.gate.ticket()
            try:
                async for event in self._live(direct.subscriber, ticket, direct):
                    yield event
            finally:
                ticket.release()
            return
        # "From now on" is the log's head now, read from storage: the feed's position can lag
        # it (a poll not yet run, a wake-up not yet handled), and a subscription started there
        # would receive changes made before it was opened. Events up to the head are skipped
        # by the subscriber (it starts ahead of the feed).
        last = max(await self._events.head(), self.position) if after is None else after
        if after is not None and last > self.position and last > await self._events.head():
            # Every event's cursor is at most the head; this one names no event (yet).
            raise ValidationError("after", "is ahead of the change log", rule=ValidationRule.cursor)
        ticket = self.gate.ticket()
        try:
            while last < self.position:
                target = self.position
                page = [e for e in await self._events.since(last, self._batch) if e.seq <= target]
                if last < await self._events.floor():
                    # Retention deleted events after the cursor (read after the page: the floor
                    # rises before a deletion, so below it the page may have holes).
                    raise CursorExpiredError()
                for event in page:
                    if selector.matches(event):
                        await ticket.take()
                        yield event
                        ticket.release()
                # A short page means everything up to the target has been read (holes in it
                # are sealed: the tailer moved past them).
                last = page[-1].seq if len(page) == self._batch else target
                # This frame lives as long as the subscription: a page kept here is this
                # subscriber's own copy of what it replayed (~2 KiB per idle subscriber that
                # resumed from one event back, tracemalloc, bench.idle_memory).
                page.clear()
            if self._stopped:
                raise FeedStopped(last)
            # No await since the loop's check: the live fan-out continues from exactly ``last``.
            subscriber = Subscriber(
                self._intern(selector), last, self.buffer, max_lag=self.max_lag, clock=self._clock
            )
            if group is not None and direct is not None:
                subscriber.join_group(
                    self.groups.join(group), direct, self.groups.stats, parkable=parkable
                )
                direct.subscriber = subscriber
            self._subscribers[selector.entity].add(subscriber)
            async for event in self._live(subscriber, ticket, direct):
                yield event
        finally:
            ticket.release()

    async def _live(
        self, subscriber: Subscriber, ticket: Ticket, direct: DirectTarget | None
    ) -> AsyncGenerator[StoredEvent, None]:
        try:
            while True:
                event, offered_at = await subscriber.next()  # or Parked, FellBehind, ...
                await ticket.take()
                subscriber.handed_out(event, offered_at)  # or FellBehind: waited too long
                yield event
                ticket.release()
                subscriber.moved_on(event.seq)  # its followers, if it led: settled
        finally:
            if not subscriber.parked:
                self.forget(subscriber)
                if direct is not None and direct.subscriber is subscriber:
                    direct.subscriber = None

    def forget(self, subscriber: Subscriber) -> None:
        """The subscription ended (or its parked record is dropped): out of the fan-out and its
        group. Idempotent."""
        self._subscribers[subscriber.selector.entity].discard(subscriber)
        left = subscriber.leave_group()
        if left is not None:
            self.groups.leave(left)

    # The loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._tailer is not None
        tailer = self._tailer
        next_poll = self._clock()
        failing = False
        while True:
            self._fan_out(tailer.ready())
            if self._clock() >= next_poll:
                try:
                    events, more = await tailer.poll()
                    if failing:
                        log.info("reading the change log works again")
                    failing = False
                except Exception:
                    # The database is unreachable or failing: keep the subscribers and retry
                    # every poll interval; say so once per outage, not every 150 ms.
                    if not failing:
                        log.exception("reading the change log failed; retrying")
                    failing = True
                    events, more = [], False
                if tailer.expired_to is not None:
                    # The position jumped over events deleted by retention: every subscriber
                    # missed them (new ones start at the new position, so they have not).
                    tailer.expired_to = None
                    for subscribers in self._subscribers.values():
                        for subscriber in list(subscribers):  # (a copy, as in stop)
                            subscriber.expire()
                self._fan_out(events)
                next_poll = self._clock() + self._poll_interval
                if more:
                    next_poll = self._clock()
                    await asyncio.sleep(0)  # let subscribers drain before the next batch
                    continue
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # coincides with a wake-up, and stop() would wait for this task forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(next_poll - self._clock(), 0)):
                    await self._wake.wait()
            self._wake.clear()

    def _fan_out(self, events: list[StoredEvent]) -> None:
        for event in events:
            kinds = list(EntityKind) if event.entity is None else [event.entity]
            now = self._clock()
            # Equal selectors are one object (``_intern``): each distinct one is evaluated once
            # per event, not once per subscriber (with 5,000 subscribers of one job, the
            # selector was a tenth of the server's CPU, py-spy). The ids are of live objects
            # for the whole loop: no id is reused within it.
            matched: dict[int, bool] = {}
            for kind in kinds:
                for subscriber in list(self._subscribers[kind]):
                    if subscriber.resting:
                        continue  # offered with its group's other resting members, below
                    selector = subscriber.selector
                    hit = matched.get(id(selector))
                    if hit is None:
                        hit = matched[id(selector)] = selector.matches(event)
                    if hit:
                        subscriber.offer_matching(event, now)
            for group in list(self.groups.with_resting):
                shared = group.selector
                if shared is None or shared.entity not in kinds:
                    continue
                hit = matched.get(id(shared))
                if hit is None:
                    hit = matched[id(shared)] = shared.matches(event)
                if hit:
                    group.offer_resting(event, now)

    def _intern(self, selector: Selector) -> Selector:
        """The one live selector equal to ``selector`` (selectors are frozen dataclasses).

        Keyed by its type and hash, not by itself: a weak-valued table keeps its keys, so a
        selector as its own key would never be freed (one per job ever watched). Two unequal
        selectors with one hash just stay two objects."""
        try:
            key = (type(selector), hash(selector))
            found = self._selectors.get(key)
            if found is not None:
                return found if found == selector else selector
            self._selectors[key] = selector
        except TypeError:  # not hashable or not weakly referable: its own object
            pass
        return selector
