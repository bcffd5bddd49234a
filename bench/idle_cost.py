"""What one idle `mltrain serve` instance costs the database: commands per second, by name.

    .venv/bin/python -m bench.idle_cost --uri mongodb://127.0.0.1:27350 --poll-intervals 0.15 1
    .venv/bin/python -m bench.idle_cost --uri ... --db-pids ~/.cache/mltrain-realdb/run/27350.pids

Starts `mltrain serve` (no clients, empty test database) behind a loopback TCP proxy that
decodes each MongoDB wire message the server sends and counts it by command name, waits
``--warm-up`` seconds, then counts for ``--seconds``. Reports commands/s by name, the server
process's CPU (ms per second, from /proc), and with ``--db-pids`` (the file documentdb.sh
writes) the CPU of the database's processes (FerretDB, PostgreSQL and its backends) over the
same window. Loopback only; one server at a time; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import socket
import struct
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import bson
import httpx
import pymongo

OP_MSG = 2013
TICKS = os.sysconf("SC_CLK_TCK")


class CountingProxy:
    """Forwards bytes both ways; counts the client's OP_MSG commands by name."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.counts: collections.Counter[str] = collections.Counter()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        with contextlib.suppress(asyncio.CancelledError):
            await self._forward(reader, writer)
        self._connections.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        tasks = [
            asyncio.create_task(self._commands(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for w in (writer, up_writer):
                w.close()

    async def _commands(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header = await reader.readexactly(16)
                length, _, _, opcode = struct.unpack("<iiii", header)
                body = await reader.readexactly(length - 16)
                self.counts[command_name(opcode, body)] += 1
                writer.write(header + body)
                await writer.drain()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()


def command_name(opcode: int, body: bytes) -> str:
    """``find events`` for a find on the events collection; the opcode for other messages."""
    if opcode != OP_MSG or len(body) < 6 or body[4] != 0:
        return f"opcode {opcode}"
    document = bson.decode(body[5 : 5 + struct.unpack("<i", body[5:9])[0]])
    name = next(iter(document))
    target = document[name]
    return f"{name} {target}" if isinstance(target, str) else name


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def database_pids(pids_file: Path | None) -> list[int]:
    """FerretDB, PostgreSQL's postmaster, and every process whose parent is one of them."""
    if pids_file is None:
        return []
    values = dict(line.split("=", 1) for line in pids_file.read_text().splitlines() if "=" in line)
    roots = {int(values[k]) for k in ("FERRETDB_PID", "PG_PID") if k in values}
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent in roots:
                children.add(int(stat.parent.name))
    return sorted(roots | children)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def measure(args: argparse.Namespace, poll_interval: float) -> None:
    upstream = pymongo.uri_parser.parse_uri(args.uri)["nodelist"][0]
    proxy = CountingProxy((upstream[0], int(upstream[1])))
    await proxy.start()
    database = f"mltrain_bench_idle_{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIN_")}
    env.update(
        MLTRAIN_MONGODB_URI=f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true",
        MLTRAIN_MONGODB_DATABASE=database,
        MLTRAIN_FEED_POLL_INTERVAL=str(poll_interval),
        MLTRAIN_LOG_LEVEL="warning",
    )
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "graphql_api.cli", "serve", "--port", str(port), env=env
    )
    try:
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                if time.monotonic() > deadline or server.returncode is not None:
                    raise SystemExit("the server did not start")
                await asyncio.sleep(0.1)
        await asyncio.sleep(args.warm_up)
        db_pids = database_pids(args.db_pids)
        before = proxy.counts.copy()
        cpu_server, cpu_db = cpu_seconds([server.pid]), cpu_seconds(db_pids)
        await asyncio.sleep(args.seconds)
        counted = proxy.counts - before
        server_ms = (cpu_seconds([server.pid]) - cpu_server) * 1000 / args.seconds
        db_ms = (cpu_seconds(db_pids) - cpu_db) * 1000 / args.seconds
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 10)
        await proxy.close()
        admin: pymongo.MongoClient[dict[str, Any]]
        with pymongo.MongoClient(args.uri, serverSelectionTimeoutMS=5000) as admin:
            admin.drop_database(database)
    total = sum(counted.values()) / args.seconds
    print(f"poll interval {poll_interval} s: {total:.2f} commands/s over {args.seconds} s")
    for name, count in counted.most_common():
        print(f"  {name:28} {count / args.seconds:7.2f}/s")
    print(f"  server process CPU {server_ms:.1f} ms/s", end="")
    print(f"; database processes CPU {db_ms:.1f} ms/s" if db_pids else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--poll-intervals", type=float, nargs="+", default=[0.15])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warm-up", type=float, default=3.0)
    parser.add_argument("--db-pids", type=Path, default=None)
    args = parser.parse_args()
    for poll_interval in args.poll_intervals:
        asyncio.run(measure(args, poll_interval))


if __name__ == "__main__":
    main()
