"""How long a key issued or revoked through one `mltrain serve` takes to hold on another, and
what the keys' poll costs at rest (issue 17 item 3; goal: a revocation everywhere within 1 s).

    .venv/bin/python -m bench.key_propagation --uri mongodb://127.0.0.1:27405 --rounds 20

Two server processes over one real database (a fresh one per run), a configured admin key.
Each round: ``createApiKey`` through A, then the time until B answers a request with the new
key; a WebSocket opened on B with it; ``revokeApiKey`` through A, then the time from A's answer
until B refuses the key over HTTP (401) and until B's WebSocket is closed (4403). B is asked
every 5 ms. Each step waits a random 0-0.3 s first, so that it falls anywhere in B's poll
cycle. Expect up to one ``MLTRAIN_KEY_POLL_INTERVAL`` (0.25 s) plus a read.

At rest: the CPU time an idle instance spends over ``--idle`` seconds with the default poll
and with the poll every 60 s (the difference is the poll's), and the time of one revision
read on this database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import time
import uuid
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.servers import serve
from graphql_api.auth.keys import generate
from graphql_api.auth.roles import Role
from graphql_api.storage.mongo import MongoStorage

CREATE = """mutation($name: String!) { createApiKey(name: $name, role: VIEWER) {
  ... on CreatedApiKey { secret } ... on Error { message } } }"""
REVOKE = """mutation($name: String!) { revokeApiKey(name: $name) { __typename } }"""
STEP = 0.005


async def until(check: Any, limit: float = 10.0) -> float:
    began = time.perf_counter()
    while not await check():
        if time.perf_counter() - began > limit:
            raise TimeoutError("not within the limit")
        await asyncio.sleep(STEP)
    return time.perf_counter() - began


async def one_round(
    http: httpx.AsyncClient, first: str, second: str, admin: dict[str, str], name: str
) -> tuple[float, float, float]:
    """Seconds until B accepts a key issued via A, refuses it once revoked via A, and closes
    the WebSocket opened with it."""
    # At a random point of B's poll cycle: otherwise each round starts right after a tick of B
    # (it just saw the last change) and measures a whole interval every time.
    await asyncio.sleep(random.uniform(0, 0.3))
    body = (
        await http.post(
            f"{first}/graphql", json={"query": CREATE, "variables": {"name": name}}, headers=admin
        )
    ).json()
    theirs = {"Authorization": f"Bearer {body['data']['createApiKey']['secret']}"}

    async def status() -> int:
        answer = await http.post(
            f"{second}/graphql", json={"query": "{ __typename }"}, headers=theirs
        )
        return answer.status_code

    async def accepted() -> bool:
        return await status() == 200

    async def refused() -> bool:
        return await status() == 401

    issued = await until(accepted)
    ws = await connect(
        second.replace("http", "ws", 1) + "/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
    )
    await ws.send(json.dumps({"type": "connection_init", "payload": theirs}))
    await ws.recv()
    closed: asyncio.Future[tuple[float, int | None]] = asyncio.get_running_loop().create_future()

    async def watch() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass
        closed.set_result((time.perf_counter(), ws.close_code))

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(random.uniform(0, 0.3))
    await http.post(
        f"{first}/graphql", json={"query": REVOKE, "variables": {"name": name}}, headers=admin
    )
    revoked_at = time.perf_counter()
    refused_after = await until(refused)
    at, code = await asyncio.wait_for(closed, 10)
    assert code == 4403, code
    await watcher
    return issued, refused_after, at - revoked_at


async def rounds(first: str, second: str, admin: str, count: int) -> dict[str, list[float]]:
    headers = {"Authorization": f"Bearer {admin}"}
    results: dict[str, list[float]] = {"issue": [], "revoke_http": [], "revoke_ws": []}
    async with httpx.AsyncClient(timeout=10) as http:
        for index in range(count):
            issued, refused, closed = await one_round(http, first, second, headers, f"b{index}")
            results["issue"].append(issued)
            results["revoke_http"].append(refused)
            results["revoke_ws"].append(closed)
    return results


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(uri: str, seconds: float, **env: str) -> float:
    with serve(uri, f"bench_keys_idle_{uuid.uuid4().hex[:8]}", 1, **env) as [server]:
        time.sleep(2)  # start-up done
        before = cpu_seconds(server.process.pid)
        time.sleep(seconds)
        return (cpu_seconds(server.process.pid) - before) / seconds * 1000  # ms of CPU a second


async def revision_read_ms(uri: str, reads: int) -> float:
    storage = MongoStorage.connect(uri, f"bench_keys_rev_{uuid.uuid4().hex[:8]}")
    try:
        await storage.api_keys.bump_revision()
        began = time.perf_counter()
        for _ in range(reads):
            await storage.api_keys.revision()
        return (time.perf_counter() - began) / reads * 1000
    finally:
        await storage._db.client.drop_database(storage._db.name)
        await storage.close()


def summary(label: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (
        f"{label:<34} median {statistics.median(ms):6.0f} ms  p95 {p95:6.0f} ms  "
        f"max {ms[-1]:6.0f} ms  (n={len(ms)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uri", required=True, help="a real MongoDB-wire server (shared)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds per idle sample")
    args = parser.parse_args()
    secret, admin = generate("bench-admin", Role.ADMIN)
    database = f"bench_keys_{uuid.uuid4().hex[:8]}"
    try:
        with serve(args.uri, database, 2, MLTRAIN_API_KEYS=admin.entry()) as (a, b):
            results = asyncio.run(rounds(a.url, b.url, secret, args.rounds))
    finally:
        asyncio.run(drop(args.uri, database))
    print(summary("issued via A, accepted by B", results["issue"]))
    print(summary("revoked via A, refused by B (HTTP)", results["revoke_http"]))
    print(summary("revoked via A, B's WebSocket closed", results["revoke_ws"]))
    read = asyncio.run(revision_read_ms(args.uri, 200))
    print(f"one revision read: {read:.2f} ms (4 a second per instance at the default interval)")
    polled = idle_cpu(args.uri, args.idle)
    rare = idle_cpu(args.uri, args.idle, MLTRAIN_KEY_POLL_INTERVAL="60")
    print(
        f"idle instance CPU: {polled:.1f} ms/s with the 0.25 s key poll, {rare:.1f} ms/s with "
        "a 60 s one"
    )


async def drop(uri: str, database: str) -> None:
    storage = MongoStorage.connect(uri, database)
    try:
        await storage._db.client.drop_database(database)
    finally:
        await storage.close()


if __name__ == "__main__":
    main()
