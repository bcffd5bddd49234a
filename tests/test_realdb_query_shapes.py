"""Index discipline: every query the storage sends is a listed shape, and none reads a whole
collection on the real server except the ones listed as doing so (with the reason).

Runs on the real server only (``MLTRAIN_TEST_MONGODB_URI``): the mock has no indexes and no
``explain``. The driver's command monitoring records what every storage method sends; each
recorded read is then explained. On DocumentDB ``explain`` returns PostgreSQL's plan: a
``Seq Scan``, or an index scan whose only condition is the collection's shard key, reads every
document of the collection.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graphql_api.domain.enums import ModelStatus, ModelType, TrainingStatus
from graphql_api.domain.errors import ConflictError
from graphql_api.domain.events import ChangeKind
from graphql_api.domain.lifecycle import JobTransitions, VersionTransitions
from graphql_api.domain.queries import (
    DateRange,
    HyperparameterCondition,
    MetricCondition,
    MetricOrder,
    ModelVersionFilter,
    ModelVersionOrder,
    PageRequest,
    TagCondition,
    TrainingJobFilter,
    TrainingJobOrder,
)
from graphql_api.domain.series import MetricPoint, as_columns
from graphql_api.domain.updates import MetricsMerge, Move, VersionMetadata
from graphql_api.domain.values import utc_now
from graphql_api.services.container import Services
from graphql_api.services.liveness import LivenessSweep
from graphql_api.storage.base import PendingChange, RecordBusy
from graphql_api.storage.mongo import MongoStorage, documents
from graphql_api.storage.mongo.query_shapes import SHAPES, ShapeKey, declared, shape_of
from graphql_api.storage.mongo.server import ServerKind
from graphql_api.storage.series import SeriesLimitExceeded
from tests.conftest import REAL_URI
from tests.recorded_commands import Recorder, recorded_fixture  # noqa: F401 (fixture)

#: Documents per collection: enough that PostgreSQL's planner prefers an index where one serves
#: (a handful of rows is cheaper to scan, which would hide a missing index).
JOBS = 3000
#: The bulk events' sequence numbers start here (after the few the services append).
BULK_EVENTS_FROM = 1000
SHARD_KEY_ONLY = re.compile(r"^\(*shard_key_value = '\d+'::bigint\)*$")


async def seed(storage: MongoStorage) -> tuple[list[str], list[str]]:
    """Model versions through the services (with their events), jobs in bulk."""
    services = Services.over(storage)
    model_ids = []
    for n in range(12):
        registered = await services.registry.register(
            model_name=f"m{n % 4}", version=f"1.{n}.0", model_type=ModelType.REGRESSION
        )
        model_ids.append(registered.model_id)
    job_ids = []
    for n in range(5):
        job = await services.training.create(model_id=model_ids[n], dataset_id="d1")
        job_ids.append(job.job_id)
    await services.training.start(job_ids[0])
    await services.training.report_metrics(job_ids[0], {"loss": 0.5})
    await services.training.complete(job_ids[0], {"loss": 0.1})
    await services.registry.promote(model_ids[0], ModelStatus.TESTING)
    await services.registry.promote(model_ids[0], ModelStatus.PRODUCTION)
    # The bulk: documents as the storage writes them, without their events.
    template = await services.training.get(job_ids[1])
    assert template is not None
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    bulk = [
        documents.TRAINING_JOBS.to_doc(
            template.model_copy(
                update={
                    "job_id": f"bulk-{n:05d}",
                    "model_id": model_ids[n % len(model_ids)],
                    "dataset_id": f"d{n % 30}",
                    # Filters the test uses select a few percent: a planner with statistics
                    # may rightly scan for a value that half the rows have.
                    "status": TrainingStatus.FAILED if n % 50 == 0 else TrainingStatus.COMPLETED,
                    "created_date": t0 + timedelta(minutes=n),
                    "started_date": t0 + timedelta(minutes=n, seconds=30),
                    "completed_date": t0 + timedelta(minutes=n + 5),
                }
            )
        )
        for n in range(JOBS)
    ]
    await storage.database["training_jobs"].insert_many(bulk)
    # Versions and events in bulk too: on a table of a few dozen rows PostgreSQL rightly scans
    # (once it has statistics), which would make the verdicts depend on autovacuum's timing.
    # The bulk rows match none of the filters the test uses, so each filter stays selective.
    version = await services.registry.get(model_ids[1])
    assert version is not None
    await storage.database["model_versions"].insert_many(
        [
            documents.MODEL_VERSIONS.to_doc(
                version.model_copy(
                    update={
                        "model_id": f"bulk-version-{n:05d}",
                        "model_name": f"bulk-{n % 100}",
                        "version": f"2.{n}.0",
                        "status": ModelStatus.ARCHIVED,
                        "model_type": ModelType.CLASSIFICATION,
                        "created_date": t0 - timedelta(days=365, minutes=n),
                    }
                )
            )
            for n in range(JOBS)
        ]
    )
    event = await storage.database["events"].find_one({"_id": 1})
    assert event is not None
    event.pop("event_id", None)
    events = [
        {**event, "_id": BULK_EVENTS_FROM + n, "entity_id": f"bulk-{n % 300}"} for n in range(JOBS)
    ]
    await storage.database["events"].insert_many(events)
    await storage.database["counters"].update_one(
        {"_id": "events"}, {"$max": {"seq": BULK_EVENTS_FROM + JOBS}}
    )
    # Production pointers in bulk (one per model name), for the same reason.
    await storage.database["model_registry"].insert_many(
        [
            {
                "_id": f"bulk-{n}",
                "model_id": None,
                "revision": 0,
                "previous_model_id": None,
                "held": [],
            }
            for n in range(JOBS)
        ]
    )
    # What a release before the precedence rule could store: equal-precedence twins without
    # ``precedence_twin`` (and no index over it), for the start-up path that builds the index.
    await storage.database["model_versions"].drop_index("model_name_precedence_unique")
    twins = []
    for n in range(3):
        twin = documents.MODEL_VERSIONS.to_doc(
            version.model_copy(
                update={
                    "model_id": f"twin-{n}",
                    "model_name": "twins",
                    "version": f"5.0.0+build.{n}",
                    "created_date": t0 + timedelta(minutes=n),
                }
            )
        )
        twin.pop("precedence_twin")
        twins.append(twin)
    await storage.database["model_versions"].insert_many(twins)
    # Metric series of other jobs in bulk (buckets and their summary copies), for the same
    # reason: the series queries must find theirs through the indexes.
    series_bulk = [
        {
            "_id": f"bulk-{n % 300}\x1floss\x1f{n // 300}",
            "job_id": f"bulk-{n % 300}",
            "key": "loss",
            "b": n // 300,
            "w": 1,
            "n": 1,
            **{field: [n, 0.5, 0] for field in ("first", "last", "min", "max")},
            "s": [n],
            "v": [0.5],
            "t": [0],
            "q": [1],
        }
        for n in range(JOBS)
    ]
    await storage.database["metric_buckets"].insert_many(series_bulk)
    summary_fields = ("_id", "job_id", "key", "b", "w", "n", "first", "last", "min", "max")
    await storage.database["metric_summaries"].insert_many(
        [{field: doc[field] for field in summary_fields} for doc in series_bulk]
    )
    return model_ids, job_ids


def job_filters(model_ids: list[str], job_ids: list[str]) -> list[TrainingJobFilter]:
    hour = DateRange(
        since=datetime(2026, 1, 2, tzinfo=UTC), until=datetime(2026, 1, 2, 1, tzinfo=UTC)
    )
    return [
        TrainingJobFilter(),
        TrainingJobFilter(job_ids=tuple(job_ids[:2])),
        TrainingJobFilter(model_ids=(model_ids[1],)),
        TrainingJobFilter(dataset_ids=("d3",)),
        TrainingJobFilter(statuses=(TrainingStatus.RUNNING, TrainingStatus.FAILED)),
        TrainingJobFilter(created=hour),
        TrainingJobFilter(started=hour),
        TrainingJobFilter(completed=hour),
        TrainingJobFilter(statuses=(TrainingStatus.FAILED,), model_ids=(model_ids[2],)),
        TrainingJobFilter(hyperparameters=(HyperparameterCondition(("optimizer", "lr"), 0.1),)),
        TrainingJobFilter(metrics=(MetricCondition("loss", lt=0.2),)),
    ]


def version_filters(model_ids: list[str]) -> list[ModelVersionFilter]:
    day = DateRange(since=datetime.now(UTC) - timedelta(days=1))  # the registered ones only
    return [
        ModelVersionFilter(),
        ModelVersionFilter(model_ids=tuple(model_ids[:2])),
        ModelVersionFilter(model_names=("m1",)),
        ModelVersionFilter(statuses=(ModelStatus.DEVELOPMENT,)),
        ModelVersionFilter(model_types=(ModelType.REGRESSION,)),
        ModelVersionFilter(created=day),
        ModelVersionFilter(deployed=day),
        ModelVersionFilter(tags=(TagCondition("team", ("fraud", "risk")),)),
        ModelVersionFilter(name_contains="M1"),
        ModelVersionFilter(metrics=(MetricCondition("f1", gte=0.1, lt=0.9),)),
    ]


async def drive_every_read(storage: MongoStorage, model_ids: list[str], job_ids: list[str]) -> None:
    """Every storage method the API uses, each list with every filter field and ordering, on
    a first page and a page after a cursor; the production pointer's reads and moves, pending
    changes, and the start-up path that builds the precedence index over old records."""
    jobs, versions, events = storage.training_jobs, storage.model_versions, storage.events
    # Start-up over records stored before the precedence rule (seed left twins): marks them,
    # groups versions by precedence, and builds the unique index.
    await storage.ensure_indexes()
    for where in job_filters(model_ids, job_ids):
        await jobs.count(where)
        for order in TrainingJobOrder:
            page = await jobs.find(where, order, PageRequest(first=3))
            if page.cursors:
                await jobs.find(where, order, PageRequest(first=3, after=page.cursors[-1]))
    await jobs.get(job_ids[0])
    await jobs.get_many(job_ids)
    await jobs.find_per_model(
        model_ids[:3], TrainingJobFilter(), TrainingJobOrder.CREATED_DATE_DESC, 3
    )
    await jobs.count_per_model(model_ids[:3], TrainingJobFilter())
    start = Move(transition=JobTransitions.START, at=utc_now())
    await jobs.update(job_ids[1], [TrainingStatus.PENDING], [start])
    # A progress report: metrics merged within the stored limit (conditional on revision).
    await jobs.update(job_ids[1], [TrainingStatus.RUNNING], [MetricsMerge(metrics={"loss": 0.3})])
    for version_where in version_filters(model_ids):
        await versions.count(version_where)
        for version_order in ModelVersionOrder:
            found = await versions.find(version_where, version_order, PageRequest(first=3))
            if found.cursors:
                after = PageRequest(first=3, after=found.cursors[-1])
                await versions.find(version_where, version_order, after)
    # Ordered by a metric (search): a first page, and the pages after it until the end.
    for descending in (True, False):
        job_cursor = version_cursor = None
        for _ in range(3):  # past the one record with the metric, into those without it
            job_page = await jobs.find(
                TrainingJobFilter(),
                MetricOrder("loss", descending),
                PageRequest(first=1, after=job_cursor),
            )
            job_cursor = job_page.end_cursor
            version_page = await versions.find(
                ModelVersionFilter(),
                MetricOrder("f1", descending),
                PageRequest(first=1, after=version_cursor),
            )
            version_cursor = version_page.end_cursor
    await versions.get(model_ids[0])
    await versions.get_many(model_ids)
    await versions.get_revisioned(model_ids[0])
    await versions.latest("m1")
    await versions.update(
        model_ids[1], [ModelStatus.DEVELOPMENT], [MetricsMerge(metrics={"f1": 0.5})]
    )
    # The production pointer (seed deployed model_ids[0] of m0; m0 is model_ids[0::4]).
    await versions.read_production_pointer("m0")
    await versions.newest_in_production("m0")
    pointer = await versions.production_pointer("m0")  # stored
    await versions.production_pointer("m3")  # created from the statuses
    await versions.displaced_in_production("m0", pointer.model_id, pointer.revision)
    moved = await versions.move_production(pointer, model_ids[4], first_holding=True)
    assert moved is not None
    await versions.release_holding("m0", model_ids[4])
    assert await versions.move_production(moved, pointer.model_id) is not None
    assert await versions.move_production(pointer, None) is None  # lost the compare-and-set
    # A status change with its event pending, conditional on the revision; read and cleared.
    read = await versions.get_revisioned(model_ids[8])
    assert read is not None
    pending = PendingChange(uuid.uuid4().hex, ChangeKind.PROMOTED, "development", utc_now(), None)
    changed = await versions.update(
        model_ids[8],
        {ModelStatus.DEVELOPMENT},
        [Move(transition=VersionTransitions.PROMOTE_TO_TESTING, at=utc_now())],
        at_revision=read.revision,
        pending=pending,
    )
    assert changed is not None
    assert await versions.pending_change(model_ids[8]) is not None
    await versions.clear_pending(model_ids[8], pending.event_id)
    await versions.touch(model_ids[8], {ModelStatus.TESTING})
    await versions.update(  # matches nothing: it reached production at no revision below 1
        model_ids[0],
        {ModelStatus.PRODUCTION},
        [Move(transition=VersionTransitions.ARCHIVE, at=utc_now())],
        before_production_revision=0,
    )
    # Deployable versions: metadata updates and lineage.
    await versions.update(
        model_ids[1], {ModelStatus.DEVELOPMENT}, [VersionMetadata(description="d")]
    )
    await versions.produced_by(job_ids[:2])
    await versions.count_produced_by(job_ids[0])
    # The list of models: names (a page and the next), their count, the page's stats.
    await versions.add_model_name("m1")
    names = await versions.model_names(None, PageRequest(first=2))
    await versions.model_names(None, PageRequest(first=2, after=names.cursors[-1]))
    await versions.count_model_names(None)
    await versions.model_stats(names.items)
    # resolveModelVersion: a name's versions by precedence, a page and the page after it.
    top = await versions.by_precedence("m1", {ModelStatus.DEVELOPMENT}, None, 2)
    below = (top[-1].semver.sort_key, top[-1].model_id)
    await versions.by_precedence("m1", {ModelStatus.DEVELOPMENT}, below, 2)
    # A model name's history (all its versions' events, in log order).
    await events.page_for_model("m0", 0, 3)
    await events.count_for_model("m0")
    # Aliases, in the registry documents (m0's exists: the pointer above).
    await versions.aliases_of(["m0", "m1"])
    assert await versions.move_alias("m0", "champion", model_ids[0], None, 100)
    assert await versions.move_alias("m0", "champion", model_ids[4], model_ids[0], 100)
    assert await versions.move_alias("m0", "champion", None, model_ids[4], 100)
    # An alias move with its event pending in the registry document (the outbox's alias lane):
    # a second move finds it busy; the relay's reads, the sweep's read and the clearing.
    alias_pending = replace(
        PendingChange(uuid.uuid4().hex, ChangeKind.ALIAS_SET, None, utc_now(), None, True),
        alias="champion",
        model_id=model_ids[0],
    )
    assert await versions.move_alias(
        "m0", "champion", model_ids[0], None, 100, pending=alias_pending
    )
    with pytest.raises(RecordBusy):
        await versions.move_alias(
            "m0", "champion", model_ids[4], model_ids[0], 100, pending=alias_pending
        )
    assert await versions.alias_pending_change("m0") is not None
    assert await versions.alias_pending_before(utc_now() + timedelta(seconds=1), 10)
    await versions.clear_alias_pending("m0", alias_pending.event_id)
    services = Services.over(storage)
    await services.inference.production_version("m0")
    await services.inference.production_versions(["m0", "m1", "m3", "none"])
    await services.models.latest(["m0", "m1", "twins", "none"])
    await services.inference.latest_version("m2")
    for model_name, version in (("m1", "1.1.0"), ("m1", "1.1.0+other"), ("twins", "5.0.0")):
        with pytest.raises(ConflictError):  # a taken version or precedence: which one?
            await services.registry.register(
                model_name=model_name, version=version, model_type=ModelType.REGRESSION
            )
    with pytest.raises(ConflictError):  # a taken id
        await services.registry.register(
            model_name="m9", version="1.0.0", model_type=ModelType.REGRESSION, model_id=model_ids[0]
        )
    await events.for_entity(job_ids[0], 10)
    await events.page_for_entities(job_ids, 0, 5)  # the history of many entities at once
    head = await events.head()
    await events.since(head - 10, 50)  # the feed reads the newest few
    await events.entries_after(head - 10, 50)
    await events.seal(10_000)  # a hole far ahead: inserted, so no read
    await events.seal(1)  # an existing event: the insert fails, the event is read
    await drive_metric_series(storage, job_ids[1])
    # Retention (last: it deletes events): the floor, and one step by age and count.
    await events.floor()
    await events.trim(datetime.now(UTC), 5, 10, 100)


async def drive_metric_series(storage: MongoStorage, running_job_id: str) -> None:
    """Points written (new buckets, then rewritten ones, a refusal, a recount after an
    abandoned write) and read every way the API reads them, over bulk buckets of other jobs."""
    series = storage.metric_series
    running = [TrainingStatus.RUNNING]
    points = [MetricPoint("loss", step, step / 10, 0) for step in range(0, 3000, 3)]
    await series.append(running_job_id, as_columns(points), running, 1000, 10_000_000)
    await series.append(running_job_id, as_columns(points[:10]), running, 1000, 10_000_000)
    with pytest.raises(SeriesLimitExceeded):  # 1,000 stored, 1 more
        await series.append(
            running_job_id, as_columns([MetricPoint("acc", 1, 0.5, 0)]), running, 1000, 1_000
        )
    # A writer that failed after writing leaves its lease stale: the next write recounts.
    leased = await series._acquire(running_job_id, [TrainingStatus.RUNNING.value])
    assert leased is not None
    await series._give_up(running_job_id, leased["metric_lease"]["seq"], heal=True)
    await series.append(running_job_id, as_columns(points[:5]), running, 1000, 10_000_000)
    await series.keys_of([running_job_id])
    found = await series.summaries([running_job_id], ["loss"], 10, 2000)
    await series.summaries([running_job_id, "bulk-1"], None, 0, 2**63 - 1)
    await series.open([b.ref for b in found[(running_job_id, "loss")]])
    position = (await series.positions([running_job_id]))[running_job_id]
    await series.written_between({running_job_id: (0, position.seq)}, None)
    await series.written_between({running_job_id: (0, position.seq), "bulk-2": (0, 5)}, ["loss"])


async def drive_deployments(storage: MongoStorage, first: str, second: str) -> None:
    """Hand-overs through the registry, of two versions of one name never deployed: the first
    deployment creates the pointer, the second displaces and retires the first, an archive
    empties the pointer."""
    registry = Services.over(storage).registry
    for model_id in (first, second):
        await registry.promote(model_id, ModelStatus.TESTING)
        await registry.promote(model_id, ModelStatus.PRODUCTION)
    await registry.update_metrics(second, {"auc": 0.9})
    await registry.archive(second)


def whole_collection_scans(plan: dict[str, Any]) -> list[str]:
    """The plan's scans that read every document of a collection."""
    found = []
    node_type = plan.get("Node Type", "")
    if node_type == "Seq Scan":
        found.append(f"Seq Scan on {plan.get('Relation Name')}")
    if node_type in ("Index Scan", "Index Only Scan", "Bitmap Index Scan"):
        condition = plan.get("Index Cond", "")
        if not condition or SHARD_KEY_ONLY.match(condition):
            found.append(f"{node_type} on {plan.get('Index Name')} with no condition on a field")
    for child in plan.get("Plans", []):
        found += whole_collection_scans(child)
    return found


async def explain(storage: MongoStorage, command: dict[str, Any]) -> dict[str, Any]:
    name = next(iter(command))
    keep = {"find": ("filter", "sort", "limit", "projection"), "aggregate": ("pipeline", "cursor")}
    body = {name: command[name], **{k: command[k] for k in keep[name] if k in command}}
    reply: dict[str, Any] = await storage.database.command(
        "explain", body, verbosity="queryPlanner"
    )
    return reply


@pytest.mark.skipif(not REAL_URI, reason="needs MLTRAIN_TEST_MONGODB_URI (a real server)")
async def test_every_query_is_listed_and_none_reads_a_whole_collection_unless_listed(
    recorded: tuple[MongoStorage, Recorder],
) -> None:
    storage, recorder = recorded
    guarded = MongoStorage(storage.database, guarded_updates=True)
    await guarded.ensure_indexes()  # before seed: its old records are for the recorded start-up
    model_ids, job_ids = await seed(storage)

    recorder.on = True
    await drive_every_read(storage, model_ids, job_ids)
    # The writes of a lifecycle, plain and through the guard.
    services, guarded_services = Services.over(storage), Services.over(guarded)
    job = await services.training.create(model_id=model_ids[3], dataset_id="d1")
    await services.training.start(job.job_id)
    await guarded_services.training.complete(job.job_id, {"loss": 0.2})
    # Claims (the seed's jobs joined the default queue at the recorded start-up).
    await services.training.claim("default", "w-1")
    await guarded_services.training.claim("default", "w-2")
    # A retry by hand (the chain's read, the new attempt, the mark on the old one).
    await services.training.retry(job.job_id)
    await services.training.attempts(job)
    # The liveness sweep and its leader lease, plain and through the guard.
    for over, name in ((storage, "plain"), (guarded, "guarded")):
        sweep = LivenessSweep(
            Services.over(over).training, over.leaders, interval=1, grace=0, instance=name
        )
        if await sweep.lead():
            await sweep.sweep_once(datetime.now(UTC) + timedelta(hours=1))
        await over.leaders.release("liveness-sweep", name)
    await guarded_services.registry.promote(model_ids[5], ModelStatus.TESTING)
    # Deployments, plain (m1: model_ids[1::4]) and through the guard (m2: model_ids[2::4]).
    await drive_deployments(storage, model_ids[1], model_ids[9])
    await drive_deployments(guarded, model_ids[2], model_ids[6])
    recorder.on = False

    shapes: dict[ShapeKey, dict[str, Any]] = {}
    for command in recorder.commands:
        key = shape_of(command)
        if key is not None:
            shapes.setdefault(key, command)
    unlisted = sorted(str(k) for k in shapes if declared(k) is None)
    assert not unlisted, "queries not listed in storage/mongo/query_shapes.py:\n" + "\n".join(
        unlisted
    )

    if storage.server.kind is not ServerKind.FERRETDB_V2:
        pytest.skip(f"plans are checked on DocumentDB; this is {storage.server}")
    surprises = []
    for key, command in shapes.items():
        if key.command not in ("find", "aggregate"):
            continue  # writes by _id; DocumentDB explains no findAndModify
        reply = await explain(storage, command)
        scans = whole_collection_scans(reply["queryPlanner"]["Plan"])
        shape = declared(key)
        assert shape is not None
        if shape.matches_all:
            continue  # reads everything whichever plan serves it (query_shapes.py)
        if bool(scans) == shape.bounded:
            said = "reads a whole collection: " + "; ".join(scans) if scans else "is bounded"
            surprises.append(f"{key} {said}, but query_shapes.py says bounded={shape.bounded}")
    assert not surprises, "\n".join(surprises)


def test_every_listed_index_exists_in_the_code() -> None:
    """The table names real indexes (the index names ensure_indexes creates)."""
    import inspect

    from graphql_api.storage.mongo import (
        events,
        metric_series,
        model_aliases,
        model_history,
        model_metadata,
        model_versions,
        outbox,
        training_jobs,
        webhooks,
    )

    modules = (
        events,
        metric_series,
        model_aliases,
        model_history,
        model_metadata,
        model_versions,
        training_jobs,
        outbox,
        webhooks,
    )
    # model_catalog's shapes all use _id_ (listed above) or model_versions' own indexes.
    source = "".join(inspect.getsource(m) for m in modules)
    for shape in SHAPES:
        index = shape.index.split(" ")[0].rstrip(",")
        assert index == "_id_" or f'name="{index}"' in source, shape


def test_the_docs_carry_the_current_table() -> None:
    from pathlib import Path

    from graphql_api.storage.mongo.query_shapes import markdown_table

    docs = (Path(__file__).parent.parent / "docs" / "real-server.md").read_text()
    assert markdown_table() in docs, (
        "docs/real-server.md is out of date: paste the output of "
        "`python -m graphql_api.storage.mongo.query_shapes`"
    )
