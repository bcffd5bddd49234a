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
import json
import statistics
import time
import uuid
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bench.servers import serve
from bench.subscriptions import CREATE_JOB, HISTORY, REGISTER, REPORT, START

SUBSCRIPTION = """subscription($jobId: ID!, $after: String) {
  trainingJobUpdates(jobId: $jobId, after: $after) { kind job { metrics } }
}"""


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
    with serve(args.uri, f"bench_cross_{uuid.uuid4().hex[:8]}", 2) as (writer, reader):
        latencies = asyncio.run(measure(writer.url, reader.url, args.events, args.rate))
    ordered = sorted(latencies)
    print(
        f"{len(latencies)} changes: p50 {statistics.median(latencies):.0f} ms, "
        f"p90 {ordered[int(0.9 * (len(ordered) - 1))]:.0f} ms, max {ordered[-1]:.0f} ms"
    )


if __name__ == "__main__":
    main()
