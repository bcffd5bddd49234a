"""The WebSocket protocol `mltrain serve` runs: uvicorn's sans-I/O one, lighter per connection.

An idle subscribed connection is mostly objects that live as long as it does (issue 12 item 6:
at most 30 KiB per idle subscriber). uvicorn's ``WebSocketsSansIOProtocol`` (what its ``auto``
choice is with websockets installed, and its lightest: the legacy ``websockets`` protocol adds
a task and stream readers per connection; ``wsproto`` is not installed) keeps per connection an
``asyncio.Queue`` of received messages and an ``asyncio.Event`` that says whether the socket is
writable: four empty ``collections.deque`` objects (waiters, items), ~760 bytes each
(tracemalloc, bench.idle_memory), for a queue that is empty and an event nobody waits on while
the connection is idle. ``LeanWebSocketsProtocol`` is that protocol with the two replaced by
equivalents that hold nothing while idle (``LeanQueue``, ``LeanEvent``), and without the
handshake's request and response once the connection is accepted (uvicorn keeps them, with
their headers, for the connection's life but reads them only until it has answered; the ASGI
scope keeps the request headers the app reads). Everything else (framing, permessage-deflate,
pings, back-pressure, closing) is uvicorn's, unchanged.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Generic, TypeVar, cast

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

Item = TypeVar("Item")


class LeanQueue(Generic[Item]):
    """What uvicorn's protocol uses of ``asyncio.Queue`` (unbounded: ``put_nowait``, ``get``,
    ``empty``), holding no container while empty and no waiter while nobody waits."""

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        self._items: deque[Item] | None = None
        self._getters: list[asyncio.Future[None]] | None = None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return 0 if self._items is None else len(self._items)

    def put_nowait(self, item: Item) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        self._wake_one()

    async def get(self) -> Item:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getters = self._getters or []
                if getter in getters:
                    getters.remove(getter)
                elif self._items:
                    # Cancelled after a put woke it: the wake-up passes on (as asyncio's).
                    self._wake_one()
                raise
            finally:
                if not self._getters:
                    self._getters = None
        item = self._items.popleft()
        if not self._items:
            self._items = None
        return item

    def _wake_one(self) -> None:
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                return


class LeanEvent:
    """What uvicorn's protocol uses of ``asyncio.Event`` (``set``, ``clear``, ``is_set``,
    ``wait``), holding no waiter list while nobody waits."""

    __slots__ = ("_flag", "_waiters")

    def __init__(self, *, is_set: bool = False) -> None:
        self._flag = is_set
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    async def wait(self) -> bool:
        if self._flag:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


class LeanWebSocketsProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol with ``LeanQueue``/``LeanEvent`` and no handshake
    kept after it is accepted (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The attributes are typed as asyncio's classes; these have every method uvicorn calls
        # on them (tests/test_ws_protocol_lean.py runs uvicorn's paths through them).
        self.queue = cast("asyncio.Queue[ASGIReceiveEvent]", LeanQueue[ASGIReceiveEvent]())
        self.writable = cast(asyncio.Event, LeanEvent(is_set=True))

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            self.forget_handshake()

    def forget_handshake(self) -> None:
        """Drop the handshake's request and response (their headers, ~4.5 KiB per connection
        with tracemalloc): read until the response is sent, kept by uvicorn for the connection's
        life. websockets' parser keeps the request in a suspended generator's frame, out of
        reach, so its headers are emptied in place."""
        request = getattr(self, "request", None)
        if request is not None:
            request.headers.clear()
        vars(self).update(request=None, response=None)
