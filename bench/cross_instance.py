"""Latency of a change from one `mltrain serve` to a subscriber on another (issue 11: the wall
clock bound the subscription test asserted lives here now).

    .venv/bin/python -m bench.cross_instance --uri mongodb://127.0.0.1:27019 --events 20

Two server processes on one real database (a fresh one per run); a graphql-transport-ws
subscriber on the second watches one job; the first gets ``--events`` metric reports at
``--rate`` per second. For each, the time from the mutation's HTTP response to the receipt
of its event on the other instance: the other instance only learns of the change by polling
the log (``MLTRAIN_FEED_POLL_INTERVAL``, 150 ms by default), so expect up to one interval plus
the delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bench.subscriptions import CREATE_JOB, HISTORY, PROJECT, REGISTER, REPORT, START, free_port

SUBSCRIPTION = """subscription($jobId: ID!, $after: String) {
  trainingJobUpdates(jobId: $jobId, after: $after) { kind job { metrics } }
}"""


@contextlib.contextmanager
def two_servers(uri: str) -> Iterator[list[str]]:
    database = f"bench_cross_{uuid.uuid4().hex[:8]}"
    processes, urls = [], []
    try:
        for _ in range(2):
            port = free_port()
            env = {
                **os.environ,
                "MLTRAIN_PORT": str(port),
                "MLTRAIN_LOG_LEVEL": "warning",
                "MLTRAIN_MONGODB_URI": uri,
                "MLTRAIN_MONGODB_DATABASE": database,
            }
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "graphql_api.cli", "serve"],
                    env=env,
                    cwd=PROJECT,
                    stdout=subprocess.DEVNULL,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} did not start")
                time.sleep(0.1)
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


async def gql(http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    body: dict[str, Any] = (
        await http.post("/graphql", json={"query": query, "variables": variables})
    ).json()
    assert "errors" not in body, body
    result: dict[str, Any] = next(iter(body["data"].values()))
    assert "code" not in result, result
    return result


async def measure(writer: str, reader: str, events: int, rate: float) -> list[float]:
    async with httpx.AsyncClient(base_url=writer, timeout=30) as http:
        model = await gql(
            http,
            REGISTER,
            input={"modelName": "cross", "version": "1.0.0", "modelType": "REGRESSION"},
        )
        job = await gql(http, CREATE_JOB, input={"modelId": model["modelId"], "datasetId": "d"})
        history = await gql(http, HISTORY, id=job["jobId"])
        ws = await connect(
            reader.replace("http", "ws", 1) + "/graphql",
            subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        )
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        await ws.recv()
        # From the creation on: the subscriber cannot miss the start however long it takes
        # the other process to set the subscription up; once the start arrives, it is live.
        variables = {"jobId": job["jobId"], "after": history["history"]["edges"][0]["cursor"]}
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": SUBSCRIPTION, "variables": variables},
                }
            )
        )
        await gql(http, START, id=job["jobId"])
        json.loads(await asyncio.wait_for(ws.recv(), 30))  # STARTED
        latencies = []
        for step in range(events):
            began = time.perf_counter()
            await gql(http, REPORT, id=job["jobId"], metrics={"step": step})
            responded = time.perf_counter()
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            received = time.perf_counter()
            assert message["payload"]["data"]["trainingJobUpdates"]["job"]["metrics"] == {
                "step": step
            }, message
            latencies.append(max(0.0, received - responded) * 1000)
            await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - began)))
        await ws.close()
        return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uri", required=True, help="a real MongoDB-wire server (shared)")
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2.0, help="changes per second")
    args = parser.parse_args()
    with two_servers(args.uri) as (writer, reader):
        latencies = asyncio.run(measure(writer, reader, args.events, args.rate))
    ordered = sorted(latencies)
    print(
        f"{len(latencies)} changes: p50 {statistics.median(latencies):.0f} ms, "
        f"p90 {ordered[int(0.9 * (len(ordered) - 1))]:.0f} ms, max {ordered[-1]:.0f} ms"
    )


if __name__ == "__main__":
    main()
