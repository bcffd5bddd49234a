"""The floor of our dashboard query's shape: plain Strawberry, in-memory objects, no database.

    .venv/bin/python -m bench.shape_floor

The peers' cached-Strawberry floor resolves 50 jobs x 10 fields (501 fields). Our dashboard
selects 50 edges, each with a node of 11 fields and a modelVersion of 3, plus pageInfo: 805
fields. This builds that exact shape as a minimal Strawberry schema over prebuilt objects (with
ParserCache and ValidationCache, like the floor) and times ``schema.execute`` plus
``json.dumps`` of the answer, with the relation resolved three ways:

- ``attribute``: the model version is a plain attribute of the job (no resolver at all);
- ``primed``: a resolver returning the value a DataLoader already holds (what mltrain does);
- ``async``: an ``async`` resolver awaiting a DataLoader (mltrain before priming).

It answers "how close to the floor can this query get on this stack", apart from the database.
"""

import argparse
import datetime as dt
import enum
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.scalars import JSON

from bench.queries import DASHBOARD


@strawberry.enum
class TrainingStatus(enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@strawberry.enum
class ModelStatus(enum.Enum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


@strawberry.enum
class TrainingJobOrder(enum.Enum):
    CREATED_DATE_DESC = "CREATED_DATE_DESC"


@strawberry.input
class TrainingJobFilter:
    statuses: list[TrainingStatus] | None = None


@strawberry.type
class ModelVersion:
    model_name: str
    version: str
    status: ModelStatus


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
VERSIONS = {
    f"model-{i}": ModelVersion(
        model_name=f"model-{i}", version="1.0.0", status=ModelStatus.PRODUCTION
    )
    for i in range(50)
}


def build_schema(relation: str) -> strawberry.Schema:
    """The dashboard's shape, with the job's modelVersion resolved the ``relation`` way."""

    @strawberry.type(name="TrainingJob")
    class Job:
        job_id: strawberry.ID
        model_id: strawberry.ID
        status: TrainingStatus
        hyperparameters: JSON
        dataset_id: str
        started_date: dt.datetime | None
        completed_date: dt.datetime | None
        metrics: JSON
        logs_url: str | None
        created_date: dt.datetime
        failure_reason: str | None

    if relation == "attribute":

        @strawberry.type(name="TrainingJob")
        class Node(Job):
            model_version: ModelVersion | None

    elif relation == "primed":

        @strawberry.type(name="TrainingJob")
        class Node(Job):
            @strawberry.field
            def model_version(self, info: strawberry.Info) -> ModelVersion | None:
                pending = info.context["versions"].load(self.model_id)
                return pending.result() if pending.done() else pending  # type: ignore[no-any-return]

    else:

        @strawberry.type(name="TrainingJob")
        class Node(Job):
            @strawberry.field
            async def model_version(self, info: strawberry.Info) -> ModelVersion | None:
                return await info.context["versions"].load(self.model_id)  # type: ignore[no-any-return]

    @strawberry.type(name="TrainingJobEdge")
    class Edge:
        cursor: str
        node: Node

    @strawberry.type(name="TrainingJobConnection")
    class Connection:
        edges: list[Edge]
        page_info: PageInfo

    def job(i: int) -> Node:
        extra = {"model_version": VERSIONS[f"model-{i}"]} if relation == "attribute" else {}
        return Node(
            job_id=strawberry.ID(f"job-{i:06d}"),
            model_id=strawberry.ID(f"model-{i}"),
            status=TrainingStatus.COMPLETED,
            hyperparameters={"lr": 0.001, "batch_size": 64, "epochs": 10, "optimizer": "adam"},
            dataset_id=f"dataset-{i % 11}",
            started_date=T0,
            completed_date=T0,
            metrics={"loss": 0.31, "accuracy": 0.91, "f1": 0.88, "val_loss": 0.35},
            logs_url=f"s3://logs/job-{i:06d}.log",
            created_date=T0,
            failure_reason=None,
            **extra,
        )

    jobs = [job(i) for i in range(50)]

    @strawberry.type
    class Query:
        @strawberry.field
        async def training_jobs(
            self,
            info: strawberry.Info,
            filter: TrainingJobFilter | None = None,
            order_by: TrainingJobOrder = TrainingJobOrder.CREATED_DATE_DESC,
            first: int = 20,
            after: str | None = None,
        ) -> Connection:
            if relation == "primed":
                await info.context["versions"].load_many([j.model_id for j in jobs[:first]])
            return Connection(
                edges=[Edge(cursor=f"c{i}", node=j) for i, j in enumerate(jobs[:first])],
                page_info=PageInfo(has_next_page=True, end_cursor="c49"),
            )

    return strawberry.Schema(
        query=Query,
        extensions=[lambda: ParserCache(maxsize=256), lambda: ValidationCache(maxsize=256)],
    )


async def _load_versions(keys: list[str]) -> list[ModelVersion | None]:
    return [VERSIONS.get(k) for k in keys]


def _runner(relation: str) -> Callable[[], Awaitable[Any]]:
    schema = build_schema(relation)
    query, variables = DASHBOARD["query"], DASHBOARD["variables"]

    async def run_once() -> Any:
        result = await schema.execute(
            query,  # type: ignore[arg-type]
            variable_values=variables,  # type: ignore[arg-type]
            context_value={"versions": DataLoader(load_fn=_load_versions)},
        )
        assert not result.errors, result.errors
        return json.dumps({"data": result.data}, separators=(",", ":"))

    return run_once


async def _measure(rounds: int, requests: int) -> None:
    runners = {relation: _runner(relation) for relation in ("attribute", "primed", "async")}
    for run_once in runners.values():
        answer = json.loads(await run_once())
        assert len(answer["data"]["trainingJobs"]["edges"]) == 50
        for _ in range(20):
            await run_once()
    samples: dict[str, list[float]] = {relation: [] for relation in runners}
    for _ in range(rounds):  # interleaved, so machine noise lands on all three
        for relation, run_once in runners.items():
            started = time.process_time()
            for _ in range(requests):
                await run_once()
            samples[relation].append((time.process_time() - started) * 1000 / requests)
    for relation, values in samples.items():
        print(
            f"dashboard shape, relation {relation:9s} {statistics.median(values):6.2f} ms of CPU "
            f"per query (median of {rounds} rounds of {requests}; best {min(values):.2f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    import uvloop

    uvloop.run(_measure(args.rounds, args.requests))


if __name__ == "__main__":
    main()
