"""A local HTTP receiver for webhook tests: a real socket on 127.0.0.1, answering each POST
with the next status code of a script (then 200), and keeping what it received."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    #: Status codes to answer, in order; 200 once they run out.
    script: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)


async def _handle(
    receiver: Receiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            request_line = await reader.readline()
            if not request_line:
                return
            _, path, _ = request_line.decode().split(" ", 2)
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            payload = await reader.readexactly(int(headers.get("content-length", "0")))
            receiver.received.append(Received(path, headers, payload))
            status = receiver.script.pop(0) if receiver.script else 200
            writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n".encode())
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


@asynccontextmanager
async def receiving(script: list[int] | None = None) -> AsyncIterator[Receiver]:
    receiver = Receiver(url="", script=list(script or []))
    server = await asyncio.start_server(lambda r, w: _handle(receiver, r, w), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    async with server:
        yield receiver
