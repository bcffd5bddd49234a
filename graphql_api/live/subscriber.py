"""One subscriber's bounded buffer between the feed and its connection.

The feed never waits for a subscriber: it offers each event and moves on. A subscriber has
fallen behind when its buffer is full, or when an event has waited longer than ``max_lag``
seconds (a client that reads slowly, or a server with more fan-out than CPU: delivery is
bounded in time as well as in memory). Rather than grow without bound it drops its buffer and
fails with ``FellBehind``, naming the last event it handed out, so the client can resume from
there with nothing lost (the log still has every event).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from graphql_api.domain.events import StoredEvent
from graphql_api.live.direct import DeliveryGroup, DirectStats, DirectTarget, SharedFrames
from graphql_api.live.selectors import Selector


class FellBehind(Exception):
    """The subscriber fell behind; resume after ``resume_seq``.

    Either its buffer overflowed (``capacity`` events waiting), or an event waited longer than
    ``max_lag`` seconds to be sent (``waited`` says how long): fan-out that cannot keep up is
    shed, rather than the server growing queues and slowing every request.
    """

    def __init__(
        self,
        resume_seq: int,
        capacity: int,
        *,
        waited: float | None = None,
        max_lag: float | None = None,
    ) -> None:
        why = (
            f"more than {capacity} events waiting"
            if waited is None
            else f"an event waited {waited:.1f} s (limit {max_lag} s)"
        )
        super().__init__(f"fell behind: {why}; resume after {resume_seq}")
        self.resume_seq = resume_seq
        self.capacity = capacity
        self.waited = waited
        self.max_lag = max_lag


class FeedStopped(Exception):
    """The server is shutting down; resume after ``resume_seq`` (on any instance)."""

    def __init__(self, resume_seq: int) -> None:
        super().__init__(f"the server is shutting down; resume after {resume_seq}")
        self.resume_seq = resume_seq


class CursorExpired(Exception):
    """Events after ``delivered_seq`` were deleted by retention before this server could send
    them (it lagged behind the log by more than the retention)."""

    def __init__(self, delivered_seq: int) -> None:
        super().__init__(f"events after {delivered_seq} were deleted by retention")
        self.delivered_seq = delivered_seq


class Parked(BaseException):
    """Raised by ``Subscriber.next`` to end its consumer (the operation's task and its chain of
    generators: Strawberry's, graphql-core's, the resolver's, the feed's stream) while the
    subscriber stays in the feed and in its delivery group, as a record whose frames the group
    writes (``direct``). Its operation is restarted, and adopts the subscriber where it is, when
    it must deliver an event itself. A ``BaseException``, as cancellation is: the ``except
    Exception`` on the way up (Strawberry's, graphql-core's) would make it an error result."""


class Subscriber:
    __slots__ = (
        "_buffer",
        "_capacity",
        "_clock",
        "_deferred",
        "_direct",
        "_leading",
        "_max_lag",
        "_parkable",
        "_parked",
        "_state",
        "_waiting",
        "_wakeup",
        "delivered_seq",
        "direct_target",
        "resting",
        "selector",
    )

    def __init__(
        self,
        selector: Selector,
        after_seq: int,
        capacity: int,
        *,
        max_lag: float = float("inf"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.selector = selector
        #: The last event handed out (or the starting point): where a resume must start.
        self.delivered_seq = after_seq
        self._capacity = capacity
        self._max_lag = max_lag
        self._clock = clock
        #: Each waiting event with the time it was offered (its lag is measured from there).
        #: None while empty, and the consumer's wake-up a future made only while it waits: an
        #: empty deque and an ``asyncio.Event`` (a deque too) are ~1.5 KiB, most of the idle
        #: subscriber's own memory (tracemalloc, bench.idle_memory).
        self._buffer: deque[tuple[StoredEvent, float]] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._state: FellBehind | FeedStopped | CursorExpired | None = None
        #: Direct delivery (``direct``): its group, where its frames go, the feed's counters.
        self._direct: tuple[DeliveryGroup, DirectTarget, DirectStats] | None = None
        #: The event (seq) it waits for its group's leader to send, not woken meanwhile.
        self._deferred: int | None = None
        #: The event (seq) it was woken to deliver for its group (its followers wait for it).
        self._leading: int | None = None
        #: Its consumer waits in ``next`` (every event before the buffered ones was sent).
        self._waiting = False
        #: Its consumer ended with ``Parked``: it is a record of its group (``_waiting`` too).
        self._parked = False
        #: It may park (its events are the same for each member of its group: no key scope).
        self._parkable = False
        #: Parked and idle, one of its group's resting members: the feed offers events to the
        #: group for all of them (``DeliveryGroup.offer_resting``), not to it.
        self.resting = False
        #: Where its frames are written directly while it is in a group (an attribute, not a
        #: property: the resting members' loop reads it for every member and event).
        self.direct_target: DirectTarget | None = None

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def max_lag(self) -> float:
        return self._max_lag

    @property
    def buffered(self) -> int:
        return 0 if self._buffer is None else len(self._buffer)

    @property
    def parked(self) -> bool:
        return self._parked

    @property
    def fell_behind(self) -> bool:
        """Ended as too slow; its consumer learns it when it next asks for an event."""
        return isinstance(self._state, FellBehind)

    def offer(self, event: StoredEvent) -> None:
        """Called for every event of the subscriber's entity, in log order."""
        if self.selector.matches(event):
            self.offer_matching(event, self._clock())

    def offer_matching(self, event: StoredEvent, now: float) -> None:
        """``offer`` of an event its selector matches, at ``now`` (what the feed calls: it
        evaluates each distinct selector once per event, not once per subscriber)."""
        if self._state is not None or event.seq <= self.delivered_seq:
            return  # ended, or an event the subscriber has had already (it started ahead)
        buffer = self._buffer
        if buffer is None:
            buffer = self._buffer = deque()
        if len(buffer) >= self._capacity:
            self._fall_behind(FellBehind(self.delivered_seq, self._capacity))
            return
        if buffer and now - buffer[0][1] > self._max_lag:
            self._fall_behind(self._lagging(now - buffer[0][1]))
            return
        buffer.append((event, now))
        if self._deferred is not None:
            return  # behind the deferred event: woken (or written to) when that one is settled
        if self._direct is not None and self._waiting and len(buffer) == 1:
            self._join_delivery(event.seq)  # a follower (not woken), or the leader (woken)
            return
        self._wake()

    # Direct delivery (``direct``) --------------------------------------------------------

    def join_group(
        self,
        group: DeliveryGroup,
        target: DirectTarget,
        stats: DirectStats,
        *,
        parkable: bool = False,
    ) -> None:
        self._direct = (group, target, stats)
        self.direct_target = target
        self._parkable = parkable
        group.active += 1

    def leave_group(self) -> DeliveryGroup | None:
        """Out of direct delivery (the subscription ends): nothing more is written for it."""
        if self._direct is None:
            return None
        group = self._direct[0]
        if self.resting:
            group.drop_resting(self)
        self._settle_lead(self._leading)
        if not self._parked:
            group.active -= 1
        self._parked = False
        self._direct = None
        self.direct_target = None
        self._deferred = None
        return group

    def sent_plain(self, encoded_data: str) -> None:
        """Its consumer is sending the event last handed out as a plain result (``data`` only)."""
        if self._direct is not None and self._leading == self.delivered_seq:
            group, _, stats = self._direct
            group.sent(self.delivered_seq, encoded_data, stats, self._clock())

    def moved_on(self, seq: int) -> None:
        """Its consumer is done with event ``seq`` (asks for the next one)."""
        if self._leading == seq:
            self._settle_lead(seq)

    def _settle_lead(self, seq: int | None) -> None:
        if seq is not None and self._direct is not None:
            self._leading = None
            group, _, stats = self._direct
            group.settle(seq, self, stats)

    def take_direct(self, seq: int, frames: SharedFrames, now: float) -> bool:
        """The leader sent deferred event ``seq``: write its frame to this subscriber's socket
        (True), or wake the subscriber to deliver it itself (False)."""
        if self._deferred != seq or self._direct is None:
            return False  # released, or ended, since
        self._deferred = None
        _, target, _ = self._direct
        buffer = self._buffer
        if (
            self._state is None
            and buffer
            and buffer[0][0].seq == seq
            and now - buffer[0][1] <= self._max_lag
            and target.writer.write(frames.for_target(target))
        ):
            buffer.popleft()
            self.delivered_seq = seq
            if buffer:
                # Events that came meanwhile: its consumer still waits (idle), so the next one
                # goes the same way (deferred, or led), rather than waking it for all of them.
                self._join_delivery(buffer[0][0].seq)
            else:
                self._buffer = None
                if self._parked:
                    self._rest()
            return True
        self._wake()
        return False

    def lead_deferred(self, seq: int) -> bool:
        """Its group found no leader for deferred event ``seq``: deliver it, for the group."""
        if self._deferred != seq or self._direct is None:
            return False
        self._deferred = None
        self._leading = seq
        self._wake()
        return True

    def _join_delivery(self, seq: int) -> None:
        """Its consumer is idle and event ``seq`` heads its buffer: wait for the group's
        leader of ``seq``, or lead it (woken)."""
        assert self._direct is not None
        if self._direct[0].lead_or_defer(seq, self, parked=self._parked):
            self._deferred = seq
            return
        self._leading = seq
        self._wake()

    def _rest(self) -> None:
        """Parked, idle, nothing buffered, deferred or led: join its group's resting members."""
        if (
            self._direct is not None
            and self._state is None
            and self._deferred is None
            and self._leading is None
            and self._direct[0].rest(self)
        ):
            self.resting = True

    def unrest(self, pending: list[tuple[StoredEvent, float]]) -> None:
        """It left its group's resting members, with the events they wait for that it has not
        had (called by the group)."""
        self.resting = False
        if pending:
            self._buffer = deque(pending)

    def defer(self, seq: int) -> None:
        """It waits for event ``seq``'s leader (called by the group, which listed it)."""
        self._deferred = seq

    def release_rest(self) -> None:
        """Out of the resting members: deliver its events itself."""
        self._wake()

    def release(self) -> None:
        """Deliver the deferred event itself: its leader sent no frame to share."""
        if self._deferred is not None:
            self._deferred = None
            self._wake()

    def stop(self) -> None:
        """End the subscription (the server is stopping); buffered events are still handed out."""
        if self._state is None:
            self._state = FeedStopped(self.delivered_seq)
            self._wake()

    def expire(self) -> None:
        """Events this subscriber should have had are gone (deleted by retention): end it at
        once, with nothing more handed out (what is buffered comes after the loss)."""
        if self.resting and self._direct is not None:
            self._direct[0].drop_resting(self)
        self._state = CursorExpired(self.delivered_seq)
        self._buffer = None
        self._deferred = None
        self._wake()

    async def next(self) -> tuple[StoredEvent, float]:
        """The next event and when it was offered; raises ``FellBehind``, ``CursorExpired`` or
        ``FeedStopped`` when the subscription ends. ``handed_out`` must follow before the next
        call."""
        while True:
            if isinstance(self._state, FellBehind | CursorExpired):
                raise self._state
            buffer = self._buffer
            if buffer:
                self._deferred = None  # woken anyway (stopping): it hands its events out
                event = buffer.popleft()
                if not buffer:
                    self._buffer = None
                return event
            if self._state is not None:
                raise FeedStopped(self.delivered_seq)
            if self._may_park():
                self._park()
                raise Parked
            # Whatever woke it before is settled by the checks above (no await since).
            wakeup = self._wakeup = asyncio.get_running_loop().create_future()
            self._waiting = True
            try:
                await wakeup
            finally:
                self._waiting = False
                self._wakeup = None

    def handed_out(self, event: StoredEvent, offered_at: float) -> None:
        """``event`` (from ``next``) is about to be sent: unless it waited too long, in which
        case the subscription ends here with ``FellBehind`` (resuming before ``event``)."""
        waited = self._clock() - offered_at
        if waited > self._max_lag:
            failure = self._lagging(waited)
            self._fall_behind(failure)
            raise failure
        self.delivered_seq = event.seq

    def _lagging(self, waited: float) -> FellBehind:
        return FellBehind(self.delivered_seq, self._capacity, waited=waited, max_lag=self._max_lag)

    def _fall_behind(self, failure: FellBehind) -> None:
        self._state = failure
        self._buffer = None  # the log keeps them: free the memory now
        self._deferred = None
        self._wake()

    def _may_park(self) -> bool:
        """Idle, nothing deferred or led, parkable, and another member of its group has a
        consumer (to lead the group's next event without a restart)."""
        direct = self._direct
        return (
            direct is not None
            and self._parkable
            and direct[1].restart is not None
            and self._deferred is None
            and self._leading is None
            and direct[0].active > 1
        )

    def _park(self) -> None:
        assert self._direct is not None
        self._parked = True
        self._waiting = True
        self._direct[0].active -= 1
        self._rest()

    def _wake(self) -> None:
        """Wake its consumer if it waits in ``next`` (if not, ``next`` checks before waiting);
        restart it if it is parked."""
        if self.resting and self._direct is not None:
            self._direct[0].wake_resting(self)  # its events waiting with the group: its own
        if self._parked:
            assert self._direct is not None
            group, target, stats = self._direct
            self._parked = False
            self._waiting = False
            group.active += 1
            stats.restarted += 1
            assert target.restart is not None
            target.restart()
            return
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)
