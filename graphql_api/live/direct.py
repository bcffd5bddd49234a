"""Direct delivery: one subscriber of a group runs the whole delivery, the rest get its frame.

``fanout`` made the execution and the encoding once per event and distinct operation, but
every subscriber still woke its own task and passed each event through a chain of async
generators (the feed's stream, the resolver, graphql-core's ``map_async_iterable``,
Strawberry's ``_stream`` and its per-result hooks, the handler) and the ASGI send (Starlette,
uvicorn): ~0.1 ms of CPU per delivery, where 5,000 subscribers at 20 changes/s need ~10 µs
(bench/README.md, "5,000 subscribers on one process").

Subscriptions that would get the same ``next`` frame but for their ``id`` form a
``DeliveryGroup``: same operation (document, operation name, variables but the one that only
gives ``after``), same scope (role and the key's model-name patterns), graphql-transport-ws,
and their connection is served by
uvicorn's sans-I/O WebSocket protocol (``FrameWriter``). For each event the feed wakes the
first idle member of a group (the leader), which delivers it as before; the other idle members
(followers) keep the event in their buffer without being woken. When the leader sends a plain
result for it (``data`` only: no errors, no extensions), the group writes that text, with each
follower's own ``id``, straight to each follower's socket: no task, no generator, no ASGI
call. What keeps the guarantees of docs/subscriptions.md:

- **Order and no gap**: a follower is deferred only when it is idle (waiting for an event, its
  buffer empty: every earlier event was sent), and a later event waits behind the deferred
  one. Its resume cursor (``delivered_seq``) moves only when the frame was written.
- **Fallback**: a follower whose socket is not writable (paused, closing, more than
  ``WRITE_BUFFER_LIMIT`` bytes waiting), whose event has waited past the lag limit, or whose
  leader sent no plain result (an error, an unreadable event, a leader that left or was shed)
  is woken and delivers the event itself, through the whole chain: its lag limit
  (``SUBSCRIBER_TOO_SLOW`` with its resume cursor), its error masking, its end.
- **Nothing waits on a follower, and no follower on the leader's socket**: a write is a copy
  into the socket's buffer (or, while the server is busy, into the frames kept for its next
  flush: ``WriteBatches``), done by the leader's task for the whole group before its own send
  (which may wait for a slow client's socket).

Idle members whose operation was ended (parked, ``subscriber.Parked``) rest with their group:
the feed offers each event once to all of them (``DeliveryGroup.offer_resting``) and the
leader's frame is written to them in one loop; one that must deliver an event itself leaves
them first, with the events they wait for in its own buffer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from websockets.protocol import OPEN

if TYPE_CHECKING:
    from graphql_api.domain.events import StoredEvent
    from graphql_api.live.selectors import Selector
    from graphql_api.live.subscriber import Subscriber

log = logging.getLogger("mltrain.live")

#: A follower whose socket has more than this many bytes waiting is not written to directly:
#: it is lagging, and its own path (which waits for the socket) applies the lag limit.
WRITE_BUFFER_LIMIT = 64 * 1024

#: (document text, operation name, variables as canonical JSON, scope)
GroupKey = tuple[str, str | None, str, str]


def text_frame_header(length: int) -> bytes:
    """RFC 6455 section 5.2: FIN and the text opcode, no mask, the payload's length."""
    if length < 126:
        return _FIN_TEXT + bytes((length,))
    if length < 1 << 16:
        return _FIN_TEXT + _LENGTH_16 + length.to_bytes(2, "big")
    return _FIN_TEXT + _LENGTH_64 + length.to_bytes(8, "big")


_FIN_TEXT = bytes((0x81,))
_LENGTH_16 = bytes((126,))
_LENGTH_64 = bytes((127,))


class OutgoingFrame:
    """One ``next`` frame's text, and its bytes on the wire as a plain (uncompressed) server
    frame: encoded and framed once, however many sockets it is written to (the followers of a
    group that share an ``id``, as most clients number their first subscription "1")."""

    __slots__ = ("_wire", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            payload = self.text.encode()
            # RFC 6455: a server's frame is unmasked, and with no extension (permessage-deflate)
            # its bytes are the header and the payload; what websockets' send_text would write,
            # without its Frame object and serializer in Python.
            self._wire = text_frame_header(len(payload)) + payload
        return self._wire


class FrameWriter:
    """Writes text frames straight to a connection's uvicorn sans-I/O WebSocket protocol
    (what ``send_text`` through Starlette and the ASGI ``send`` end up doing), or says it
    cannot (the socket is not writable now), so the caller takes the ordinary path.

    With ``batches``, a plain frame is not written at once but kept until the batches' next
    flush, which writes everything kept for the socket in one system call (``WriteBatches``).
    Whatever else is sent on the connection must call ``flush`` first, so that frames keep
    their order."""

    __slots__ = ("_batches", "_pending", "_pending_size", "_protocol")

    def __init__(self, protocol: Any, batches: WriteBatches | None = None) -> None:
        self._protocol = protocol
        self._batches = batches
        self._pending: list[bytes] = []
        self._pending_size = 0

    @classmethod
    def of(cls, send: object, batches: WriteBatches | None = None) -> FrameWriter | None:
        """A writer for the connection whose ASGI ``send`` is ``send``, if uvicorn's sans-I/O
        protocol serves it (the bound ``send`` method of that protocol); else None."""
        protocol = getattr(send, "__self__", None)
        conn = getattr(protocol, "conn", None)
        if (
            all(kind.__name__ != "WebSocketsSansIOProtocol" for kind in type(protocol).__mro__)
            or not callable(getattr(conn, "send_text", None))
            or not hasattr(protocol, "writable")
        ):
            return None
        return cls(protocol, batches)

    def _closed(self) -> bool:
        """No data frame may go out any more: closing, closed, or its close frame sent."""
        protocol = self._protocol
        transport = protocol.transport
        return bool(
            protocol.close_sent
            or protocol.disconnected
            or transport is None
            or transport.is_closing()
        )

    def _open(self) -> bool:
        """The connection takes frames: open (handshake done), not closing, not paused."""
        protocol = self._protocol
        return (
            protocol.handshake_complete
            and protocol.initial_response is None
            and protocol.writable.is_set()
            and not self._closed()
        )

    def write(self, frame: OutgoingFrame) -> bool:
        pending = self._pending
        if pending:
            # Frames already kept for this socket: it passed the checks below for the first of
            # them, its transport's buffer cannot have grown since (anything else sent on the
            # connection flushes them first), and the flush checks again that it is open.
            if self._pending_size > WRITE_BUFFER_LIMIT:
                return False
            wire = frame.wire
            pending.append(wire)
            self._pending_size += len(wire)
            return True
        if (
            not self._open()
            or self._protocol.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT
        ):
            return False
        protocol = self._protocol
        conn = protocol.conn
        if (
            conn.state is OPEN
            and not conn.extensions
            and not conn.writes
            and not conn.expect_continuation_frame
            and not conn.debug
        ):
            wire = frame.wire
            batches = self._batches
            if batches is None or not batches.holding:
                protocol.transport.write(wire)
                if batches is not None:
                    batches.frames += 1
                    batches.writes += 1
            else:  # the first frame kept for this socket
                batches.add(self)
                pending.append(wire)
                self._pending_size = len(wire)
            return True
        self.flush()  # (nothing is kept for a compressed connection; kept frames go first)
        try:
            conn.send_text(frame.text.encode())
        except Exception:  # websockets' InvalidState: closing; the ordinary path says so
            return False
        protocol.transport.write(b"".join(conn.data_to_send()))
        return True

    def flush(self) -> int:
        """Write the frames kept for this socket, in one system call; the number of frames.
        Frames kept for a connection that closed meanwhile are dropped: its client resumes from
        the last cursor it received."""
        pending = self._pending
        if not pending:
            return 0
        self._pending = []
        self._pending_size = 0
        # Paused (uvicorn's "writable" cleared) is no reason to hold them back: they were
        # within the socket's limit when kept, and the transport buffers what it cannot send.
        if not self._closed():
            self._protocol.transport.write(pending[0] if len(pending) == 1 else b"".join(pending))
        return len(pending)


class WriteBatches:
    """Direct frames written to each socket in one system call per flush, not one per frame,
    when the server is busy fanning out.

    The ``send`` system call is most of a direct delivery's cost (44% of the server's CPU with
    5,000 subscribers, py-spy; loopback TCP does the receiver's work in the sender's call too),
    and it costs about the same for one frame as for several. An event's frames are written at
    once when the previous fan-out (``begin`` to ``end``) or flush ended at least as long ago as
    it took (at most ``max_gap``): an idle or lightly loaded server adds no delay. Within that
    gap they are kept per socket (``holding``) and written by one flush when the gap is over, so
    a busy server spends at most about half its time writing, and every event that comes
    meanwhile joins the same system call per socket: the busier it is, the more frames per call.
    A flush writes at most ``chunk`` sockets per turn of the loop, so requests are not held up
    behind thousands of writes.
    """

    def __init__(self, *, max_gap: float = 0.1, chunk: int = 500) -> None:
        self.max_gap = max_gap
        self.chunk = chunk
        #: Frames are being kept for the next flush, not written at once.
        self.holding = False
        self._dirty: deque[FrameWriter] = deque()
        #: The sockets the flush under way has still to write.
        self._flushing: deque[FrameWriter] = deque()
        self._handle: asyncio.Handle | None = None
        self._not_before = 0.0
        self._began = 0.0
        #: Seconds the flush under way has spent writing (its chunks, not the loop's turns
        #: between them); None: no flush under way.
        self._spent: float | None = None
        #: Flushes done; frames written, and system calls made for them (at once or flushed).
        self.flushes = 0
        self.frames = 0
        self.writes = 0

    def begin(self) -> None:
        """An event's frames are about to be written to its followers."""
        now = self._began = asyncio.get_running_loop().time()
        self.holding = self._handle is not None or now < self._not_before

    def end(self) -> None:
        if not self.holding:
            now = asyncio.get_running_loop().time()
            self._gap_after(now, now - self._began)
        self.holding = False

    def _gap_after(self, ended: float, took: float) -> None:
        """Frames are kept, not written at once, for as long as the writing that ended at
        ``ended`` took (at most ``max_gap``)."""
        self._not_before = ended + min(took, self.max_gap)

    def add(self, writer: FrameWriter) -> None:
        """``writer`` has its first kept frame: write it at the next flush."""
        self._dirty.append(writer)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_at(self._not_before, self._flush)

    def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        if self._spent is None:
            # A flush writes the sockets that had frames kept when it began. One that is
            # given frames while it runs (after its turn) waits for the next, so that the
            # frames of the events that come meanwhile share a call too.
            self._spent = 0.0
            self._flushing, self._dirty = self._dirty, deque()
            self.flushes += 1
        flushing = self._flushing
        for _ in range(min(self.chunk, len(flushing))):
            frames = flushing.popleft().flush()
            if frames:
                self.writes += 1
                self.frames += frames
        ended = loop.time()
        self._spent += ended - began
        if flushing:
            self._handle = loop.call_soon(self._flush)  # the rest on the next turn
            return
        self._gap_after(ended, self._spent)
        self._spent = None
        self._handle = loop.call_at(self._not_before, self._flush) if self._dirty else None


class SharedFrames:
    """The frames of one event's plain result for the followers of a group: one per distinct
    (protocol's frame builder, subscription ``id``), built on first use."""

    __slots__ = ("_frames", "encoded_data")

    def __init__(self, encoded_data: str) -> None:
        self.encoded_data = encoded_data
        self._frames: dict[tuple[Callable[[str, str], str], str], OutgoingFrame] = {}

    def for_target(self, target: DirectTarget) -> OutgoingFrame:
        key = target.frame_key
        frame = self._frames.get(key)
        if frame is None:
            text = target.frame(target.operation_id, self.encoded_data)
            frame = self._frames[key] = OutgoingFrame(text)
        return frame


class DirectTarget:
    """Where a subscription's frames can be written directly: its connection's writer, its
    ``id``, the frame builder of its protocol (``id``, encoded ``data``) -> text, (once it
    joined the live fan-out) the feed's subscriber behind it, and how to restart its operation
    once it was parked (``subscriber.Parked``; None: it is not parked, its consumer stays)."""

    __slots__ = ("frame", "frame_key", "operation_id", "restart", "subscriber", "writer")

    def __init__(
        self,
        writer: FrameWriter,
        operation_id: str,
        frame: Callable[[str, str], str],
        restart: Callable[[], None] | None = None,
    ) -> None:
        self.writer = writer
        self.operation_id = operation_id
        self.frame = frame
        #: What its frame for an event is the same for (``SharedFrames``).
        self.frame_key = (frame, operation_id)
        self.restart = restart
        self.subscriber: Subscriber | None = None


#: Set by the WebSocket handler around each graphql-transport-ws operation it runs (the
#: operation's task), read by the feed when the subscription joins the live fan-out.
current_target: ContextVar[DirectTarget | None] = ContextVar("mltrain_direct_target", default=None)


class DeliveryGroup:
    """The subscribers that get the same frame for an event, but for their ``id``."""

    __slots__ = (
        "_batches",
        "_deferred",
        "_leaders",
        "_resting",
        "_resting_events",
        "_unled",
        "_with_resting",
        "active",
        "key",
        "members",
        "selector",
    )

    def __init__(
        self,
        key: GroupKey,
        batches: WriteBatches | None = None,
        with_resting: set[DeliveryGroup] | None = None,
    ) -> None:
        self.key = key
        self._batches = WriteBatches() if batches is None else batches
        #: The groups (of its feed) that have resting members.
        self._with_resting: set[DeliveryGroup] = set() if with_resting is None else with_resting
        self.members = 0
        #: The selector its resting members share (one object: the feed interns them).
        self.selector: Selector | None = None
        #: Resting members (``rest``): parked, idle, nothing buffered, deferred or led. The
        #: feed offers each event once to all of them together (``offer_resting``), not to each.
        self._resting: dict[Subscriber, None] = {}
        #: The events offered to the resting members and not yet written to them, in order,
        #: each with when it was offered; they wait for the first one's leader.
        self._resting_events: deque[tuple[StoredEvent, float]] = deque()
        #: Members with a consumer (not parked): a member parks only while another one has one.
        self.active = 0
        #: Events that parked members wait for and no member leads yet (looked at once the
        #: feed has offered the event to everyone).
        self._unled: set[int] = set()
        #: event seq -> its leader (the member woken to deliver it)
        self._leaders: dict[int, Subscriber] = {}
        #: event seq -> the followers waiting for the leader's frame
        self._deferred: dict[int, list[Subscriber]] = {}

    def lead_or_defer(self, seq: int, subscriber: Subscriber, *, parked: bool = False) -> bool:
        """Called by an idle member offered event ``seq``: True if it is to wait for the
        leader's frame (a follower), False if it delivers the event itself (the leader).

        A parked member never leads at once (that restarts its operation): it waits, and if no
        member with a consumer has taken the lead once the feed is done offering (all busy, or
        none left), ``_lead_unled`` makes the first waiting one lead."""
        if seq in self._leaders or parked:
            self._deferred.setdefault(seq, []).append(subscriber)
            if seq not in self._leaders and seq not in self._unled:
                self._unled.add(seq)
                asyncio.get_running_loop().call_soon(self._lead_unled, seq)
            return True
        self._leaders[seq] = subscriber
        return False

    def _lead_unled(self, seq: int) -> None:
        self._unled.discard(seq)
        if seq in self._leaders:
            return
        followers = self._deferred.get(seq)
        while followers or self._wake_one_resting(seq):
            if not followers:
                followers = self._deferred[seq]  # the resting member just listed
            follower = followers.pop(0)
            self._leaders[seq] = follower  # first: a restart that fails settles it at once
            if follower.lead_deferred(seq):
                break
            if self._leaders.get(seq) is follower:
                del self._leaders[seq]
        if not followers and self._deferred.get(seq) is followers:
            self._deferred.pop(seq, None)

    def sent(self, seq: int, encoded_data: str, stats: DirectStats, now: float) -> None:
        """A member sent event ``seq`` as a plain result: write it to the followers."""
        frames = SharedFrames(encoded_data)
        batches = self._batches
        batches.begin()
        try:
            for follower in self._deferred.pop(seq, ()):
                if follower.take_direct(seq, frames, now):
                    stats.written += 1
                else:
                    stats.fell_back += 1
            events = self._resting_events
            if events and events[0][0].seq == seq:
                self._write_resting(seq, frames, stats, now)
        finally:
            batches.end()

    def settle(self, seq: int, leader: Subscriber, stats: DirectStats) -> None:
        """The leader is done with ``seq`` (moved on, or left): followers not written to
        deliver it themselves."""
        if self._leaders.get(seq) is leader:
            del self._leaders[seq]
        events = self._resting_events
        if events and events[0][0].seq == seq:
            stats.fell_back += len(self._resting)
            self._wake_all_resting()
        for follower in self._deferred.pop(seq, ()):
            stats.fell_back += 1
            follower.release()

    # Resting members: one offer and one loop per event for all of them ---------------

    def rest(self, member: Subscriber) -> bool:
        """``member`` (parked, idle, nothing buffered, deferred or led) joins the resting
        members, if it shares their selector."""
        if self.selector is None:
            self.selector = member.selector
        elif member.selector is not self.selector:
            return False
        self._resting[member] = None
        self._with_resting.add(self)
        return True

    def offer_resting(self, event: StoredEvent, now: float) -> None:
        """The feed's event for every resting member (their selector matches it)."""
        if not self._resting:
            return
        events = self._resting_events
        member = next(iter(self._resting))
        if len(events) >= member.capacity:
            # They would fall behind: each goes its own way, which sheds it.
            for member in self._wake_all_resting(wake=False):
                member.offer_matching(event, now)
            return
        events.append((event, now))
        if len(events) == 1:
            self._await_leader(event.seq)

    def _await_leader(self, seq: int) -> None:
        """The resting members wait for event ``seq``'s leader; if none has come once the
        feed is done offering, one of them leads (``_lead_unled``)."""
        if seq not in self._leaders and seq not in self._unled:
            self._unled.add(seq)
            asyncio.get_running_loop().call_soon(self._lead_unled, seq)

    def _write_resting(
        self, seq: int, frames: SharedFrames, stats: DirectStats, now: float
    ) -> None:
        events = self._resting_events
        head = events.popleft()
        resting = self._resting
        if now - head[1] > next(iter(resting)).max_lag:
            events.appendleft(head)
            stats.fell_back += len(resting)
            self._wake_all_resting()  # each sheds itself: the lag limit, its resume cursor
            return
        refused = []
        written = 0
        for member in resting:
            if member.delivered_seq >= seq:
                continue  # it rested after it was given this event on its own
            target = member.direct_target
            if target is not None and target.writer.write(frames.for_target(target)):
                member.delivered_seq = seq
                written += 1
            else:
                refused.append(member)
        stats.written += written
        if refused:
            # Each leaves with this event (put back for it) and the later ones; the last to
            # leave takes the group's waiting events with it.
            events.appendleft(head)
            for member in refused:
                stats.fell_back += 1
                self._wake_resting(member)  # it delivers the event itself
            if events and events[0] is head:
                events.popleft()
        if resting and events:
            self._await_leader(events[0][0].seq)

    def _wake_resting(self, member: Subscriber, *, defer: bool = False, wake: bool = True) -> None:
        """``member`` leaves the resting ones with the events they wait for (those it has not
        had) in its own buffer: deferred to the first one's leader, or woken to deliver them."""
        del self._resting[member]
        pending = [item for item in self._resting_events if item[0].seq > member.delivered_seq]
        self._none_resting()
        member.unrest(pending)
        if pending and defer:
            seq = pending[0][0].seq
            self._deferred.setdefault(seq, []).append(member)
            member.defer(seq)
        elif wake:
            member.release_rest()

    def _wake_one_resting(self, seq: int) -> bool:
        """The first resting member waiting for ``seq`` leaves them, deferred to it (to lead
        it); False if there is none."""
        events = self._resting_events
        if not events or events[0][0].seq != seq:
            return False
        for member in self._resting:
            if member.delivered_seq < seq:
                self._wake_resting(member, defer=True)
                return True
        return False

    def _wake_all_resting(self, *, wake: bool = True) -> list[Subscriber]:
        members = list(self._resting)
        for member in members:
            self._wake_resting(member, wake=wake)
        return members

    def drop_resting(self, member: Subscriber) -> None:
        """``member`` leaves the resting ones with nothing (it ends, or its events expired)."""
        if self._resting.pop(member, 0) is None:
            member.unrest([])
            self._none_resting()

    def _none_resting(self) -> None:
        if not self._resting:
            self._resting_events.clear()
            self._with_resting.discard(self)

    def wake_resting(self, member: Subscriber) -> None:
        """``member`` must run its own chain (stopping, shed): it leaves the resting ones with
        the events they wait for in its buffer."""
        if member in self._resting:
            self._wake_resting(member, wake=False)


class DirectStats:
    """What direct delivery did (tests and the bench read it)."""

    __slots__ = ("fell_back", "restarted", "written")

    def __init__(self) -> None:
        #: Frames written straight to a follower's socket.
        self.written = 0
        #: Deferred followers woken to deliver the event themselves.
        self.fell_back = 0
        #: Parked subscriptions whose operation was restarted (to lead, or to deliver itself).
        self.restarted = 0


class DeliveryGroups:
    """The groups of one feed, by key; a group lives while it has members."""

    def __init__(self) -> None:
        self._groups: dict[GroupKey, DeliveryGroup] = {}
        #: The groups with resting members: the feed offers each event to each of them as a
        #: whole, once (``DeliveryGroup.offer_resting``).
        self.with_resting: set[DeliveryGroup] = set()
        self.stats = DirectStats()
        #: Where the feed's connections' direct frames wait for their socket's next write.
        self.batches = WriteBatches()

    def __len__(self) -> int:
        return len(self._groups)

    def join(self, key: GroupKey) -> DeliveryGroup:
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = DeliveryGroup(key, self.batches, self.with_resting)
        group.members += 1
        return group

    def leave(self, group: DeliveryGroup) -> None:
        group.members -= 1
        if group.members <= 0 and self._groups.get(group.key) is group:
            del self._groups[group.key]
