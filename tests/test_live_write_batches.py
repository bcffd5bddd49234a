"""Direct frames share a socket write when the server is busy fanning out
(graphql_api/live/direct.py ``WriteBatches``) - issue 12 item 6.

The ``send`` system call is most of what a direct delivery costs; these tests pin what the
batching may and may not do: an idle server writes each frame at once, a busy one keeps the
frames of the events that come within the gap and writes each socket's frames in one call, in
order, and nothing kept is written after the connection closed or behind a later frame."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from websockets.protocol import OPEN

from graphql_api.live.direct import (
    FrameWriter,
    OutgoingFrame,
    WriteBatches,
    text_frame_header,
)


class Transport:
    def __init__(self) -> None:
        self.calls: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0


def connection() -> tuple[Any, Transport]:
    """What FrameWriter reads of uvicorn's sans-I/O protocol, open and writable."""
    transport = Transport()
    writable = asyncio.Event()
    writable.set()
    conn = SimpleNamespace(
        state=OPEN, extensions=[], writes=[], expect_continuation_frame=False, debug=False
    )
    protocol = SimpleNamespace(
        transport=transport,
        conn=conn,
        close_sent=False,
        disconnected=False,
        handshake_complete=True,
        initial_response=None,
        writable=writable,
    )
    return protocol, transport


def busy_writer() -> tuple[WriteBatches, Any, Transport, FrameWriter]:
    """Batches in a long gap (as after a fan-out that took a minute: frames are kept) and the
    writer of one open connection."""
    batches = WriteBatches(max_gap=10.0)
    batches._not_before = asyncio.get_running_loop().time() + 60
    protocol, transport = connection()
    return batches, protocol, transport, FrameWriter(protocol, batches)


def wire(text: str) -> bytes:
    return text_frame_header(len(text.encode())) + text.encode()


async def fan_out(batches: WriteBatches, writers: list[FrameWriter], text: str) -> None:
    """One event's frames written to every follower, as ``DeliveryGroup.sent`` does."""
    frame = OutgoingFrame(text)
    batches.begin()
    try:
        for writer in writers:
            assert writer.write(frame)
    finally:
        batches.end()


async def turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_an_idle_server_writes_each_frame_at_once() -> None:
    batches = WriteBatches(max_gap=0.0)
    protocol, transport = connection()
    writer = FrameWriter(protocol, batches)
    await fan_out(batches, [writer], "one")
    assert transport.calls == [wire("one")]  # in the fan-out itself, no turn of the loop
    await fan_out(batches, [writer], "two")
    assert transport.calls == [wire("one"), wire("two")]
    assert (batches.frames, batches.writes, batches.flushes) == (2, 2, 0)


async def test_events_within_the_gap_share_one_write_per_socket_in_order() -> None:
    batches = WriteBatches(max_gap=10.0)
    sockets = [connection() for _ in range(3)]
    writers = [FrameWriter(protocol, batches) for protocol, _ in sockets]
    loop = asyncio.get_running_loop()
    # The first event is written at once; the gap after it is as long as it took.
    await fan_out(batches, writers, "e1")
    batches._not_before = loop.time() + 0.05  # as if that fan-out took 50 ms
    for text in ("e2", "e3", "e4"):
        await fan_out(batches, writers, text)
    assert all(transport.calls == [wire("e1")] for _, transport in sockets)  # kept

    # One flush, due when the gap ends.
    flush = batches._handle
    assert isinstance(flush, asyncio.TimerHandle)
    assert flush.when() == batches._not_before
    await asyncio.sleep(flush.when() - loop.time())
    await turns()
    assert batches.flushes == 1
    for _, transport in sockets:
        assert transport.calls == [wire("e1"), wire("e2") + wire("e3") + wire("e4")]
    assert (batches.frames, batches.writes) == (12, 6)


async def test_a_flush_writes_a_bounded_number_of_sockets_per_turn_of_the_loop() -> None:
    batches = WriteBatches(max_gap=10.0, chunk=2)
    sockets = [connection() for _ in range(5)]
    writers = [FrameWriter(protocol, batches) for protocol, _ in sockets]
    batches._not_before = asyncio.get_running_loop().time()  # a flush is due at once
    batches._handle = asyncio.get_running_loop().call_soon(lambda: None)  # one under way
    await fan_out(batches, writers, "e")
    batches._handle = None
    batches.add(writers[0])  # (schedules the flush; writers[0] is listed twice: harmless)
    written = []
    for _ in range(4):
        await asyncio.sleep(0)
        written.append(sum(len(t.calls) for _, t in sockets))
    assert written[0] <= 2 and written[-1] == 5  # 2 sockets a turn, then the rest
    assert all(t.calls == [wire("e")] for _, t in sockets)


async def test_an_ordinary_send_flushes_the_kept_frames_first() -> None:
    batches, _, transport, writer = busy_writer()  # frames are kept
    await fan_out(batches, [writer], "kept")
    assert transport.calls == []
    writer.flush()  # what the WebSocket handler does before any frame of its own
    transport.write(b"own")
    assert transport.calls == [wire("kept"), b"own"]
    await turns()
    assert transport.calls == [wire("kept"), b"own"]  # the batch's flush writes nothing again


async def test_frames_kept_for_a_connection_that_closed_are_dropped() -> None:
    batches, protocol, transport, writer = busy_writer()  # frames are kept
    await fan_out(batches, [writer], "kept")
    protocol.close_sent = True  # a close frame went out meanwhile
    assert writer.flush() == 1
    assert transport.calls == []  # no data frame after a close frame


async def test_kept_bytes_count_against_the_socket_write_limit() -> None:
    batches, _, _, writer = busy_writer()  # frames are kept
    big = OutgoingFrame("x" * 40_000)
    batches.begin()
    assert writer.write(big)
    assert writer.write(big)
    # Over 64 KiB waiting (kept, not yet in the transport): like a full socket, it is not
    # written to directly; its own path applies the lag limit.
    assert not writer.write(big)
    batches.end()


async def test_frames_kept_for_a_paused_connection_are_written_not_dropped() -> None:
    # uvicorn pauses writing (its flow control) while the socket's buffer is high: the frames
    # were within the limit when kept, so the flush writes them; dropping them would leave a
    # gap on a connection that stays open.
    batches, protocol, transport, writer = busy_writer()  # frames are kept
    await fan_out(batches, [writer], "kept")
    protocol.writable.clear()
    assert writer.flush() == 1
    assert transport.calls == [wire("kept")]
    assert not writer.write(OutgoingFrame("next"))  # but nothing new is kept while paused
