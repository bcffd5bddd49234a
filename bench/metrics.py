"""Metric series: ingest rate, a long series downsampled, a compare query (issue 13).

    .venv/bin/python -m bench.metrics                                   # the in-memory mock
    .venv/bin/python -m bench.metrics --uri mongodb://127.0.0.1:27403   # a real server
    .venv/bin/python -m bench.metrics --series-points 100000 --compare-points 10000  # quick
    .venv/bin/python -m bench.metrics --profile read                    # cProfile of one part
    .venv/bin/python -m bench.metrics --ingest-only                     # both ingest forms only
    .venv/bin/python -m bench.metrics --ingest-only --ingest-parts      # + where a call's CPU goes

The ASGI app is called in-process (as ``bench.inprocess`` does: no network, no uvicorn), so
what is measured is the server's own work: wall time per request (which, on a real server,
includes waiting for the database) and the process's CPU time (on the mock, the database's
work too, since the mock lives in the process; on a real server, only the API server's).

1. **Ingest**: ``--ingest-calls`` calls of ``reportTrainingMetrics`` with 1,000 new points
   each (4 keys x 250 steps), through HTTP-level GraphQL, once in each form (``points:``, a
   list of objects, then ``series:``, columns per key), each into a job of its own: points per
   second of wall time and per second of server CPU.
2. **Long series**: one job with ``--series-points`` points of one key (a point per step),
   stored through the service in calls of 1,000 (timed: the storage path without GraphQL),
   then ``metricSeries(keys: ["loss"], maxPoints: 500)``, whole and for a range cutting
   buckets, each the median of ``--rounds`` requests.
3. **Compare**: ``--compare-jobs`` jobs with ``--compare-points`` points each, then one
   ``trainingJobs(filter: {jobIds: [...]})`` query of every job's ``loss`` series at 500
   points, median of ``--rounds``.

With ``--ingest-parts``, the ``series:`` call is also taken apart, each part timed alone over
the same number of calls (process CPU per call): graphql-core's coercion of the variables,
the service's check (``check_series``), and the storage write (the service's store of checked
columns, into a job of its own), with its round trips per call (cProfile, ``--profile``,
inflates the Python-heavy parts several-fold, so the split is timed part by part).

Every request is encoded before, and its answer decoded and checked (totals, point counts)
after, the timed part.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bench.inprocess import _app_sender
from graphql_api.app import create_app
from graphql_api.domain.enums import ModelType
from graphql_api.domain.leases import Fence
from graphql_api.services.container import Services
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage

REPORT = """mutation($id: ID!, $points: [MetricPointInput!]) {
  reportTrainingMetrics(jobId: $id, points: $points) {
    __typename ... on Error { code message } } }"""
REPORT_SERIES = """mutation($id: ID!, $series: [MetricSeriesInput!]) {
  reportTrainingMetrics(jobId: $id, series: $series) {
    __typename ... on Error { code message } } }"""
SERIES = """query($id: ID!, $from: Int64, $to: Int64) { trainingJob(jobId: $id) {
  metricSeries(keys: ["loss"], fromStep: $from, toStep: $to, maxPoints: 500) {
    key totalPoints sampled min max last points { step value timestamp } } } }"""
COMPARE = """query($ids: [ID!]) { trainingJobs(first: 100, filter: {jobIds: $ids}) {
  edges { node { jobId metricSeries(keys: ["loss"], maxPoints: 500) {
    key totalPoints sampled min max points { step value } } } } } }"""


def sender(app: Any) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
    """POST /graphql through the whole ASGI app, in-process (``bench.inprocess``'s request)."""

    async def post(body: dict[str, Any]) -> dict[str, Any]:
        return answer_of(await (await _app_sender(app, body))())

    return post


async def prepared(app: Any, body: dict[str, Any]) -> Callable[[], Awaitable[bytes]]:
    """The request, encoded now: timed rounds then measure the server's work alone, not the
    client's encoding of its body (about a tenth of a 1,000-point call) or its decoding of
    the answer."""
    return await _app_sender(app, body)


def answer_of(raw: bytes) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(raw)
    if "errors" in answer:
        raise RuntimeError(answer["errors"])
    return answer


class Timer:
    """Wall and process-CPU milliseconds of a block (optionally under cProfile)."""

    def __init__(self, profile: bool = False) -> None:
        self.profiler = cProfile.Profile() if profile else None
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Timer:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        if self.profiler:
            self.profiler.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.profiler:
            self.profiler.disable()
            pstats.Stats(self.profiler).sort_stats("cumulative").print_stats(30)
            pstats.Stats(self.profiler).sort_stats("tottime").print_stats(20)
        self.wall += (time.perf_counter() - self._wall) * 1000
        self.cpu += (time.process_time() - self._cpu) * 1000


async def running_jobs(services: Services, count: int) -> list[str]:
    version = await services.registry.register(
        model_name=f"bench-{uuid.uuid4().hex[:6]}", version="1.0.0", model_type=ModelType.REGRESSION
    )
    jobs = []
    for _ in range(count):
        job = await services.training.create(model_id=version.model_id, dataset_id="bench")
        await services.training.start(job.job_id)
        jobs.append(job.job_id)
    # The app's outbox sweep would otherwise find these jobs' relayed STARTED events still in
    # their records (this container's outbox clears them in batches) and log each as a crash's.
    await services.training.clear_relayed_events()
    return jobs


async def store(services: Services, job_id: str, points: int) -> Timer:
    """``points`` points of ``loss`` (one per step) through the service, 1,000 per call."""
    timer = Timer()
    with timer:
        for start in range(0, points, 1000):
            batch = [
                {"key": "loss", "step": s, "value": 1 / (1 + s) + (50.0 if s % 9973 == 7 else 0)}
                for s in range(start, min(start + 1000, points))
            ]
            await services.series.report_points(job_id, batch)
    return timer


async def median_request(
    app: Any, body: dict[str, Any], rounds: int, profile: bool
) -> tuple[float, float, dict[str, Any]]:
    send = await prepared(app, body)
    answer = answer_of(await send())  # warm-up (parser and validation caches), checked
    walls, cpus = [], []
    for round_ in range(rounds):
        timer = Timer(profile and round_ == rounds - 1)
        with timer:
            raw = await send()
        answer_of(raw)
        walls.append(timer.wall)
        cpus.append(timer.cpu)
    return statistics.median(walls), statistics.median(cpus), answer


def ingest_body(form: str, job_id: str, keys: tuple[str, ...], call: int) -> dict[str, Any]:
    """One call's 1,000 new points (250 steps of each key), as ``points`` or ``series``."""
    steps = range(call * 250, call * 250 + 250)
    values = [0.5 + s / 1e3 for s in range(250)]
    if form == "points":
        points = [
            {"key": k, "step": step, "value": value}
            for k in keys
            for step, value in zip(steps, values, strict=True)
        ]
        return {"query": REPORT, "variables": {"id": job_id, "points": points}}
    series = [{"key": k, "steps": list(steps), "values": values} for k in keys]
    return {"query": REPORT_SERIES, "variables": {"id": job_id, "series": series}}


async def ingest_parts(services: Services, storage: MongoStorage, calls: int) -> None:
    """Process CPU per call of each part of a ``series:`` call (see the module's doc)."""
    from graphql import parse
    from graphql.execution.values import coerce_variable_values

    from graphql_api.domain import series
    from graphql_api.domain.values import utc_now
    from graphql_api.schema import schema

    keys = ("loss", "acc", "lr", "grad_norm")
    body = ingest_body("series", "job", keys, 0)
    (operation,) = parse(body["query"]).definitions
    definitions = getattr(operation, "variable_definitions", ())
    errors: list[Any] = []
    with Timer() as coercion:
        for _ in range(calls):
            coerce_variable_values(schema._schema, definitions, body["variables"], errors.append)
    assert not errors, errors
    columns = body["variables"]["series"]
    with Timer() as check:
        for _ in range(calls):
            series.check_series(columns, utc_now())
    (job_id,) = await running_jobs(services, 1)
    checked = [
        series.check_series(
            ingest_body("series", job_id, keys, c)["variables"]["series"], utc_now()
        )
        for c in range(calls + 3)
    ]
    for batch in checked[:3]:  # warm-up
        await services.series._store(job_id, batch, "series", Fence(None))
    before = storage.stats.round_trips
    with Timer() as store:
        for batch in checked[3:]:
            await services.series._store(job_id, batch, "series", Fence(None))
    trips = (storage.stats.round_trips - before) / calls
    print(
        f"  parts, CPU per call: variable coercion {coercion.cpu / calls:.2f} ms, "
        f"check_series {check.cpu / calls:.2f} ms, storage {store.cpu / calls:.2f} ms "
        f"({trips:g} round trips)"
    )


async def main(args: argparse.Namespace) -> None:
    database = f"mltrain_bench_metrics_{uuid.uuid4().hex[:8]}"
    storage = MongoStorage.connect(args.uri, database)
    app = create_app(Settings(feed_poll_interval=60.0), storage=storage)
    services = Services.over(storage)
    post = sender(app)
    backend = "mock" if args.uri is None else "real server"
    try:
        async with app.router.lifespan_context(app):
            keys = ("loss", "acc", "lr", "grad_norm")
            for form in ("points", "series"):
                (ingest_job,) = await running_jobs(services, 1)
                bodies = [
                    ingest_body(form, ingest_job, keys, call)
                    for call in range(args.ingest_calls + 3)
                ]
                for body in bodies[:3]:  # warm-up
                    await post(body)
                sends = [await prepared(app, body) for body in bodies[3:]]
                timer = Timer(args.profile == "ingest")
                with timer:
                    answers = [await send() for send in sends]
                for raw in answers:
                    answer = answer_of(raw)
                    assert answer["data"]["reportTrainingMetrics"]["__typename"] == "TrainingJob"
                points = 1000 * args.ingest_calls
                print(
                    f"[{backend}] ingest via GraphQL, {form}: form: {args.ingest_calls} calls x "
                    "1,000 points"
                )
                print(
                    f"  {points / timer.wall * 1000:,.0f} points/s wall, "
                    f"{points / timer.cpu * 1000:,.0f} points per server CPU-second, "
                    f"{timer.wall / args.ingest_calls:.1f} ms wall and "
                    f"{timer.cpu / args.ingest_calls:.1f} ms CPU per call"
                )

            if args.ingest_parts:
                await ingest_parts(services, storage, args.ingest_calls)
            if args.ingest_only:
                return
            (long_job,) = await running_jobs(services, 1)
            seeded = await store(services, long_job, args.series_points)
            print(
                f"  storing {args.series_points:,} points through the service (no GraphQL): "
                f"{args.series_points / seeded.wall * 1000:,.0f} points/s wall, "
                f"{args.series_points / seeded.cpu * 1000:,.0f} per CPU-second"
            )
            ranges = [(None, None), (args.series_points // 8 + 3, args.series_points * 7 // 8 - 3)]
            for low, high in ranges:
                body = {"query": SERIES, "variables": {"id": long_job, "from": low, "to": high}}
                wall, cpu, answer = await median_request(
                    app, body, args.rounds, args.profile == "read"
                )
                (found,) = answer["data"]["trainingJob"]["metricSeries"]
                assert found["sampled"] and len(found["points"]) <= 500
                expected = (high if high is not None else args.series_points - 1) - (low or 0) + 1
                assert found["totalPoints"] == expected, found["totalPoints"]
                where = "whole" if low is None else f"steps {low:,}-{high:,}"
                print(
                    f"[{backend}] {args.series_points:,}-point series to "
                    f"{len(found['points'])} points ({where}): median {wall:.1f} ms wall, "
                    f"{cpu:.1f} ms CPU per request"
                )

            compare_jobs = await running_jobs(services, args.compare_jobs)
            for job_id in compare_jobs:
                await store(services, job_id, args.compare_points)
            body = {"query": COMPARE, "variables": {"ids": compare_jobs}}
            before = storage.stats.round_trips
            wall, cpu, answer = await median_request(
                app, body, args.rounds, args.profile == "compare"
            )
            trips = (storage.stats.round_trips - before) // (args.rounds + 1)
            nodes = answer["data"]["trainingJobs"]["edges"]
            assert len(nodes) == args.compare_jobs
            assert all(
                n["node"]["metricSeries"][0]["totalPoints"] == args.compare_points for n in nodes
            )
            print(
                f"[{backend}] compare: {args.compare_jobs} series x "
                f"{args.compare_points:,} points at 500 points each, one query: median "
                f"{wall:.1f} ms wall, {cpu:.1f} ms CPU, {trips} round trips"
            )
    finally:
        if args.uri is not None:
            await storage._db.client.drop_database(database)
        await storage.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uri", default=None, help="a real server (default: the mock)")
    parser.add_argument("--ingest-calls", type=int, default=100)
    parser.add_argument("--ingest-only", action="store_true", help="skip the reads")
    parser.add_argument(
        "--ingest-parts", action="store_true", help="time each part of a series: call alone"
    )
    parser.add_argument("--series-points", type=int, default=1_000_000)
    parser.add_argument("--compare-jobs", type=int, default=20)
    parser.add_argument("--compare-points", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--profile", choices=["ingest", "read", "compare"], default=None)
    asyncio.run(main(parser.parse_args()))
