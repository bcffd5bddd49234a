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
                for racers in (1, 8):
                    queue = f"q{racers}"
                    for _ in range(jobs):
                        await gql(CREATE, m=model_id, q=queue)
                    store.stats.round_trips = 0
                    cpu = time.process_time()

                    async def worker(n: int, queue: str = queue) -> int:
                        got = 0
                        while (await gql(CLAIM, w=f"w{n}", q=queue))["claimTrainingJob"]:
                            got += 1
                        return got

                    claimed = sum(await asyncio.gather(*(worker(n) for n in range(racers))))
                    cpu = time.process_time() - cpu
                    print(
                        f"claims, {racers} racer(s): "
                        f"{store.stats.round_trips / claimed:.2f} round trips per claim, "
                        f"{1000 * cpu / claimed:.2f} ms process CPU per claim ({claimed})"
                    )
                created = [await gql(CREATE, m=model_id, q="m") for _ in range(jobs // 2)]
                ids = [c["createTrainingJob"]["jobId"] for c in created]
                store.stats.round_trips = 0
                cpu = time.process_time()
                for operation in (START, REPORT, COMPLETE):
                    for job_id in ids:
                        await gql(operation, id=job_id)
                cpu = time.process_time() - cpu
                count = 3 * len(ids)
                print(
                    "mutations (start, report, complete): "
                    f"{store.stats.round_trips / count:.2f} round trips per mutation, "
                    f"{1000 * cpu / count:.2f} ms process CPU per mutation ({count})"
                )
                # The same by 8 concurrent clients, each on its own jobs (their events' appends
                # can share round trips: storage/mongo/events.py).
                created = [await gql(CREATE, m=model_id, q="m8") for _ in range(jobs // 2)]
                ids = [c["createTrainingJob"]["jobId"] for c in created]
                store.stats.round_trips = 0
                cpu = time.process_time()

                async def client(mine: list[str]) -> None:
                    for job_id in mine:
                        for operation in (START, REPORT, COMPLETE):
                            await gql(operation, id=job_id)

                await asyncio.gather(*(client(ids[n::8]) for n in range(8)))
                cpu = time.process_time() - cpu
                count = 3 * len(ids)
                print(
                    "mutations, 8 concurrent clients: "
                    f"{store.stats.round_trips / count:.2f} round trips per mutation, "
                    f"{1000 * cpu / count:.2f} ms process CPU per mutation ({count})"
                )
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
