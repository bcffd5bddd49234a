"""A command's send and receive on PyMongo's async client without the two extra asyncio tasks
per command that its own functions make, for the PyMongo versions checked here.

PyMongo's async client (4.20, ``pymongo/network_layer.py``) sends each command through
``asyncio.wait_for(protocol.write(message), timeout)``, which on Python 3.11 wraps the write in
a task and arms a timer, although ``PyMongoProtocol.write`` only hands the bytes to the
transport and never waits (its time-out bounds nothing). It awaits each reply through
``asyncio.wait`` over two new tasks: the read, and a poll that wakes every 0.5 s to see whether
the pool cancelled the connection's context (``interruptInUseConnections``, done when the
monitor's heartbeat times out), then cancels the poll and waits for it too. That is the bulk of
the asyncio share of a claim's server CPU (bench/README.md, "Claims"). No client option removes
it: the receive makes both tasks whatever the time-outs, and the send skips its task only
without any socket time-out (no ``timeoutMS``, no ``socketTimeoutMS``), which would leave an
unanswered command unbounded inside the driver.

Here the send writes directly, and the receive awaits the protocol's read under
``asyncio.timeout`` with the deadline the driver computes (the operation's ``timeoutMS`` left,
else the socket time-out), raising the driver's own ``TimeoutError("timed out")``, which the
connection turns into the same ``NetworkTimeout``/``ExecutionTimeout`` as before (so a hung
server still gives "no answer within N s"), closing the connection as before. What differs: an
application connection whose context the pool cancels is not interrupted mid-read; its read
ends at its own deadline (``MLTRAIN_MONGODB_TIMEOUT``, 2.5 s by default, shorter than the
monitor's heartbeat interval plus its time-out, after which the pool would interrupt it), and a
read on a connection already cancelled is refused at once. A closed connection still wakes its
read at once (the protocol resolves pending reads when the transport goes). The monitors'
connections keep the driver's receive, interruption included.

Its protocol also stops reading from the socket after each reply (``pause_reading``: taking
the socket out of the event loop's selector, one ``epoll_ctl`` and the selector's bookkeeping)
and starts again with the next command (``resume_reading``: back in), so that an exhaust
cursor's stream cannot pile up replies nobody reads. This project opens no exhaust cursor and
its connections carry one command and its reply at a time, so ``KeepReading`` keeps the socket
in the selector between replies (a connection idle in the pool then also sees its server close
it at once). The monitors' connections use it too: a monitor reads every reply it is sent.
Measured in one process over DocumentDB (``find_one`` by ``_id``, 3,000 each, microseconds of
process CPU per call, alternating, load ~5): the driver's functions 989, 846,
789 then 608, 707, 677; without the tasks 505, 508, 508 then 552, 553, 512; also reading
between replies 507, 484 then 473, 506.

Installed only for the PyMongo versions listed (``TESTED``), whose functions were read for
this: another version keeps its own, and tests/test_socket_io.py fails until this is checked
again.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, cast

import pymongo
from pymongo import _csot, network_layer, pool_shared
from pymongo.asynchronous import pool
from pymongo.common import MAX_MESSAGE_SIZE
from pymongo.errors import ProtocolError, _OperationCancelled
from pymongo.message import _UNPACK_REPLY, _OpMsg
from pymongo.network_layer import PyMongoProtocol

if TYPE_CHECKING:
    from asyncio import BaseTransport, Transport

    from pymongo.asynchronous.pool import AsyncConnection

#: PyMongo versions (major, minor) whose ``async_sendall``, ``async_receive_message`` and
#: ``PyMongoProtocol`` were read for this module.
TESTED = frozenset({(4, 20)})

_driver_send = network_layer.async_sendall
_driver_receive = network_layer.async_receive_message
_driver_protocol = network_layer.PyMongoProtocol


class ReadingTransport:
    """A connection's transport as ``PyMongoProtocol`` uses it, except that ``pause_reading``
    leaves the socket in the selector: the next reply is read as it arrives."""

    __slots__ = ("abort", "is_closing", "resume_reading", "set_write_buffer_limits", "write")

    def __init__(self, transport: Transport) -> None:
        # The transport's own bound methods: no extra call per use.
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.abort = transport.abort
        self.resume_reading = transport.resume_reading
        self.set_write_buffer_limits = transport.set_write_buffer_limits

    def pause_reading(self) -> None:
        """Called after each complete reply: the socket stays in the selector."""


class KeepReading(PyMongoProtocol):
    """PyMongo's protocol over a ``ReadingTransport``."""

    def connection_made(self, transport: BaseTransport) -> None:
        # The socket's transport (a Transport); the wrapper is not one by type, but is all of
        # one that PyMongoProtocol calls.
        reading = ReadingTransport(cast("Transport", transport))
        super().connection_made(cast("BaseTransport", reading))


async def send(conn: PyMongoProtocol, buf: bytes) -> None:
    """Hand ``buf`` to the connection's transport: ``PyMongoProtocol.write`` never waits, so
    the driver's ``wait_for`` around it bounded nothing and cost a task and a timer."""
    await conn.write(buf)


async def receive(
    conn: AsyncConnection, request_id: int | None, max_message_size: int = MAX_MESSAGE_SIZE
) -> _OpMsg:
    """The reply to ``request_id``, within the driver's deadline for it, as
    ``network_layer.async_receive_message`` gives it, awaited without new tasks."""
    if conn.is_sdam:
        # A monitor's connection: the driver's own, interruptible by the pool.
        return await _driver_receive(conn, request_id, max_message_size)
    if conn.cancel_context.cancelled:
        raise _OperationCancelled("operation cancelled")
    # The deadline as the driver computes it (network_layer.async_receive_message).
    timeout: float | None = conn.conn.gettimeout
    if _csot.get_timeout():
        deadline: float | None = _csot.get_deadline()
    elif timeout:
        deadline = time.monotonic() + timeout
    else:
        deadline = None
    if deadline:
        timeout = max(deadline - time.monotonic(), 0)
    try:
        async with asyncio.timeout(timeout):
            data, op_code = await conn.conn.get_conn.read(request_id, max_message_size)
    except TimeoutError as error:
        # The driver's own words: the connection maps them to NetworkTimeout.
        raise TimeoutError("timed out") from error
    try:
        unpack_reply = _UNPACK_REPLY[op_code]
    except KeyError:
        raise ProtocolError(
            f"Got opcode {op_code!r} but expected {_UNPACK_REPLY.keys()!r}"
        ) from None
    return unpack_reply(data)


def install() -> bool:
    """Use ``send`` and ``receive`` in PyMongo's async connections if this PyMongo is one
    checked here and its pool still calls the driver's own functions; True if they are used."""
    if tuple(pymongo.version_tuple[:2]) not in TESTED:
        return False
    # The pool module imports the two by name (``from pymongo.network_layer import ...``) and
    # does not re-export them, hence ``vars`` rather than attributes.
    names = vars(pool)
    protocols = vars(pool_shared)
    if installed():
        return True
    if (
        names["async_sendall"] is not _driver_send
        or names["async_receive_message"] is not _driver_receive
        or protocols["PyMongoProtocol"] is not _driver_protocol
    ):
        return False  # someone else replaced them: leave theirs
    names["async_sendall"] = send
    names["async_receive_message"] = receive
    # The name the pool's connection factory looks up for each new connection.
    protocols["PyMongoProtocol"] = KeepReading
    return True


def installed() -> bool:
    """Whether PyMongo's async connections send, receive and read through this module."""
    names = vars(pool)
    return (
        names.get("async_sendall") is send
        and names.get("async_receive_message") is receive
        and vars(pool_shared).get("PyMongoProtocol") is KeepReading
    )
