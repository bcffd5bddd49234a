"""Round trips and process CPU per claim and per lifecycle mutation, in one process.

    .venv/bin/python -m bench.round_trips --uri mongodb://127.0.0.1:27112 [--jobs 200]
    cd /tmp/before && PYTHONPATH=/tmp/before /work/wt/writes/.venv/bin/python \\
        /work/wt/writes/bench/round_trips.py --uri ...      # another tree's code (paired runs)

The app is served in-process (httpx's ASGI transport, lifespan on) over a fresh database at
``--uri``, dropped afterwards. Claims: ``--jobs`` jobs of one queue claimed by one worker, then
``--jobs`` more by 8 racing workers (each run until the queue is empty, so the empty claims at
the end count too). Mutations: ``--jobs / 2`` jobs each started, reported on and completed, one
at a time, then ``--jobs / 2`` more by 8 concurrent clients. Printed: the storage's round trips
(``StoreStats``) per operation, which do not depend on the machine's load (the concurrent ones
a little: how many appends meet in a batch), and the process CPU time per operation (client
included: the same in both trees, so a difference is the server's).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from graphql_api.app import create_app
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage

REGISTER = (
    'mutation { registerModelVersion(input: {modelName: "rt", version: "1.0.0", '
    "modelType: REGRESSION}) { ... on ModelVersion { modelId } } }"
)
CREATE = (
    'mutation($m: ID!, $q: String!) { createTrainingJob(input: {modelId: $m, datasetId: "d", '
    "queue: $q}) { ... on TrainingJob { jobId } } }"
)
CLAIM = (
    "mutation($w: ID!, $q: String!) { claimTrainingJob(queue: $q, workerId: $w) "
    "{ __typename ... on TrainingJob { jobId } } }"
)
START = "mutation($id: ID!) { startTrainingJob(jobId: $id) { __typename } }"
REPORT = (
    "mutation($id: ID!) { reportTrainingMetrics(jobId: $id, metrics: {loss: 0.5}) { __typename } }"
)
COMPLETE = (
    "mutation($id: ID!) { completeTrainingJob(jobId: $id, metrics: {acc: 0.9}) { __typename } }"
)


async def run(uri: str, jobs: int) -> None:
    name = f"bench_round_trips_{uuid.uuid4().hex[:8]}"
    store = MongoStorage.connect(uri, name, timeout=30)
    await store.ensure_indexes()
    app = create_app(Settings(allowed_hosts=["testserver"]), storage=store)
    try:
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:

                async def gql(document: str, **variables: Any) -> Any:
                    body = {"query": document, "variables": variables}
                    answer = (await http.post("/graphql", json=body)).json()
                    assert "errors" not in answer, answer
                    return answer["data"]

                model_id = (await gql(REGISTER))["registerModelVersion"]["modelId"]

                async def measured(what: str, unit: str, work: Awaitable[int]) -> None:
                    """Round trips and process CPU per ``unit`` of ``work`` (which says how
                    many it did)."""
                    store.stats.round_trips = 0
                    cpu = time.process_time()
                    done = await work
                    cpu = time.process_time() - cpu
                    print(
                        f"{what}: {store.stats.round_trips / done:.2f} round trips per {unit}, "
                        f"{1000 * cpu / done:.2f} ms process CPU per {unit} ({done})"
                    )

                async def worker(n: int, queue: str) -> int:
                    got = 0
                    while (await gql(CLAIM, w=f"w{n}", q=queue))["claimTrainingJob"]:
                        got += 1
                    return got

                async def claims(queue: str, racers: int) -> int:
                    return sum(await asyncio.gather(*(worker(n, queue) for n in range(racers))))

                for racers in (1, 8):
                    for _ in range(jobs):
                        await gql(CREATE, m=model_id, q=f"q{racers}")
                    await measured(
                        f"claims, {racers} racer(s)", "claim", claims(f"q{racers}", racers)
                    )

                async def lifecycles(ids: list[str], clients: int) -> int:
                    """Start, report on and complete each job, by ``clients`` concurrent
                    clients each on its own jobs (with more than one, their events' appends
                    can share round trips: storage/mongo/events.py)."""

                    async def client(mine: list[str]) -> None:
                        for job_id in mine:
                            for operation in (START, REPORT, COMPLETE):
                                await gql(operation, id=job_id)

                    await asyncio.gather(*(client(ids[n::clients]) for n in range(clients)))
                    return 3 * len(ids)

                for clients, what in (
                    (1, "mutations (start, report, complete)"),
                    (8, "mutations, 8 concurrent clients"),
                ):
                    created = [
                        await gql(CREATE, m=model_id, q=f"m{clients}") for _ in range(jobs // 2)
                    ]
                    ids = [c["createTrainingJob"]["jobId"] for c in created]
                    await measured(what, "mutation", lifecycles(ids, clients))
    finally:
        await store.database.client.drop_database(name)
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uri", required=True)
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.uri, args.jobs))


if __name__ == "__main__":
    main()
