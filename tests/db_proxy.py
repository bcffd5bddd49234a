"""A loopback TCP proxy in front of the real database that a test can switch to fail.

``pass`` forwards both ways; ``refuse`` closes the listening socket and every connection, so
new connections are refused as by a stopped server; ``blackhole`` keeps accepting and reading
but forwards nothing, as a hung server (or a dropped route) does: requests get no answer and
no error. ``restore`` goes back to ``pass`` on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket


class DatabaseProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.mode = "pass"
        #: Bytes clients sent while black-holed (dropped, never forwarded).
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, reuse_address=True
        )

    async def refuse(self) -> None:
        self.mode = "refuse"
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()

    async def blackhole(self) -> None:
        self.mode = "blackhole"

    async def restore(self) -> None:
        self.mode = "pass"
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.refuse()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            if self.mode == "blackhole":
                await self._drop(reader)
                return
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            self._writers.add(upstream_writer)
            await asyncio.gather(
                self._pump(reader, upstream_writer, count_drops=True),
                self._pump(upstream_reader, writer, count_drops=False),
            )
        except (ConnectionError, OSError):
            pass
        finally:
            for each in (writer, upstream_writer):
                if each is not None:
                    self._writers.discard(each)
                    each.close()

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, count_drops: bool
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await source.read(65536):
                if self.mode == "pass":
                    sink.write(data)
                    await sink.drain()
                elif count_drops:
                    self.dropped += len(data)
        sink.close()

    async def _drop(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(65536):
            self.dropped += len(data)
