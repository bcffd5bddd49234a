"""Deployments through the production pointer: retries, databases written before the pointer
existed, a deployment that died half-way, and how statuses and errors are spelled."""

from __future__ import annotations

from typing import Any

from graphql_api.domain.events import ChangeKind, EntityKind
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import promote, register_id
from tests.conftest import GraphQLClient
from tests.operations import ARCHIVE, CREATE_JOB, START

PRODUCTION = "query($n: String!) { productionModelVersion(modelName: $n) { modelId status } }"


async def kinds_of(storage: MongoStorage, model_id: str) -> list[tuple[str, str | None, str]]:
    events = await storage.events.for_entity(model_id, 1000)
    return [(e.kind.value, e.previous_status, e.status) for e in events]


async def in_production(gql: GraphQLClient, name: str = "churn") -> Any:
    return (await gql.data(PRODUCTION, n=name))["productionModelVersion"]


async def test_a_repeated_deployment_is_answered_without_a_second_change(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    old, new = await register_id(gql, "1.0.0"), await register_id(gql, "2.0.0")
    for model_id in (old, new):
        await promote(gql, model_id, "TESTING")
    await promote(gql, old, "PRODUCTION")
    first = await promote(gql, new, "PRODUCTION")
    for _ in range(3):  # a double-click, a client retrying after a lost reply
        again = await promote(gql, new, "PRODUCTION")
        assert again == first
    assert await kinds_of(storage, new) == [
        ("REGISTERED", None, "development"),
        ("PROMOTED", "development", "testing"),
        ("DEPLOYED", "testing", "production"),
    ]
    # The retired version cannot come back through a stale retry: it is archived, and says so.
    stale = await promote(gql, old, "PRODUCTION")
    assert stale["__typename"] == "InvalidTransitionError"
    assert (stale["currentStatus"], stale["requestedStatus"]) == ("ARCHIVED", "PRODUCTION")
    assert "ARCHIVED is final" in stale["message"]
    assert await in_production(gql) == {"modelId": new, "status": "PRODUCTION"}


async def test_transition_errors_spell_statuses_as_the_schema_and_name_the_next_stage(
    gql: GraphQLClient,
) -> None:
    model_id = await register_id(gql, "1.0.0")
    skipped = await promote(gql, model_id, "PRODUCTION")
    assert skipped["__typename"] == "InvalidTransitionError"
    assert (skipped["currentStatus"], skipped["requestedStatus"]) == ("DEVELOPMENT", "PRODUCTION")
    assert "next stage is TESTING" in skipped["message"]
    assert "development" not in skipped["message"]
    await promote(gql, model_id, "TESTING")
    backwards = await promote(gql, model_id, "TESTING")
    assert (backwards["currentStatus"], backwards["requestedStatus"]) == ("TESTING", "TESTING")
    assert "next stage is PRODUCTION" in backwards["message"]
    await promote(gql, model_id, "PRODUCTION")
    beyond = await promote(gql, model_id)
    assert (beyond["currentStatus"], beyond["requestedStatus"]) == ("PRODUCTION", None)
    await gql.data(ARCHIVE, id=model_id)
    twice = (await gql.data(ARCHIVE, id=model_id))["archiveModelVersion"]
    assert (twice["currentStatus"], twice["requestedStatus"]) == ("ARCHIVED", "ARCHIVED")
    assert twice["message"] == f"ModelVersion {model_id!r} is already ARCHIVED"


async def test_job_history_statuses_are_the_training_status_enum(gql: GraphQLClient) -> None:
    model_id = await register_id(gql, "1.0.0")
    job = (await gql.data(CREATE_JOB, input={"modelId": model_id, "datasetId": "d"}))[
        "createTrainingJob"
    ]
    await gql.data(START, id=job["jobId"])
    history = await gql.data(
        "query($id: ID!) { trainingJob(jobId: $id) {"
        " history { edges { node { previousStatus status } } } } }",
        id=job["jobId"],
    )
    assert [e["node"] for e in history["trainingJob"]["history"]["edges"]] == [
        {"previousStatus": None, "status": "PENDING"},
        {"previousStatus": "PENDING", "status": "RUNNING"},
    ]
    field_types = await gql.data(
        '{ __type(name: "ChangeEvent") { fields { name type { name ofType { name } } } } }'
    )
    types = {
        f["name"]: f["type"]["name"] or f["type"]["ofType"]["name"]
        for f in field_types["__type"]["fields"]
    }
    assert (types["status"], types["previousStatus"]) == ("TrainingStatus", "TrainingStatus")


async def test_a_database_written_before_the_pointer_keeps_its_production_version(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    """The shape the previous release stored: a production version, its unique production
    slot, no pointer document. It stays the production version; the next deployment retires
    it with its event."""
    old, new = await register_id(gql, "1.0.0"), await register_id(gql, "2.0.0")
    for model_id in (old, new):
        await promote(gql, model_id, "TESTING")
    await promote(gql, old, "PRODUCTION")
    db = storage.database
    await db["model_registry"].delete_many({})
    await db["model_versions"].update_one(
        {"_id": old},
        {"$set": {"production_slot": "production:churn"}, "$unset": {"production_revision": ""}},
    )
    assert await in_production(gql) == {"modelId": old, "status": "PRODUCTION"}
    deployed = await promote(gql, new, "PRODUCTION")
    assert deployed["status"] == "PRODUCTION"
    assert await in_production(gql) == {"modelId": new, "status": "PRODUCTION"}
    assert (await kinds_of(storage, old))[-1] == ("ARCHIVED", "production", "archived")


async def test_start_up_drops_the_unique_production_slot_of_the_previous_release(
    storage: MongoStorage,
) -> None:
    versions = storage.database["model_versions"]
    await versions.create_index("production_slot", unique=True, name="production_slot_unique")
    await storage.ensure_indexes()
    assert "production_slot_unique" not in await versions.index_information()
    await storage.ensure_indexes()  # idempotent


async def test_a_deployment_that_died_after_moving_the_pointer_is_completed_by_the_next(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    old, new = await register_id(gql, "1.0.0"), await register_id(gql, "2.0.0")
    for model_id in (old, new):
        await promote(gql, model_id, "TESTING")
    await promote(gql, old, "PRODUCTION")
    # The process died right after its compare-and-set: the pointer names the new version,
    # no status has followed.
    pointer = await storage.model_versions.production_pointer("churn")
    assert await storage.model_versions.move_production(pointer, new) is not None
    # Readers still get the version that is serving, never none.
    assert await in_production(gql) == {"modelId": old, "status": "PRODUCTION"}
    # The client's retry completes it, each change with its one event.
    retried = await promote(gql, new, "PRODUCTION")
    assert retried["status"] == "PRODUCTION"
    assert await in_production(gql) == {"modelId": new, "status": "PRODUCTION"}
    assert (await kinds_of(storage, new))[-1] == ("DEPLOYED", "testing", "production")
    assert (await kinds_of(storage, old))[-1] == ("ARCHIVED", "production", "archived")


async def test_a_change_whose_event_was_not_written_gets_it_before_the_next_change(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    """A writer that died between its status change and its event: the next writer of that
    version appends the event first, so the log has every change, in order."""
    model_id = await register_id(gql, "1.0.0")
    await promote(gql, model_id, "TESTING")
    # What the dead writer left: the change made and its event pending, not appended.
    await storage.database["model_versions"].update_one(
        {"_id": model_id},
        {
            "$set": {
                "status": "production",
                "production_revision": 1,
                "pending_event": {
                    "event_id": "lost-event-1",
                    "kind": "DEPLOYED",
                    "previous_status": "testing",
                    "occurred_at": (await storage.events.for_entity(model_id, 10))[0].occurred_at,
                    "actor": "ci",
                },
            }
        },
    )
    await storage.database["model_registry"].insert_one(
        {"_id": "churn", "model_id": model_id, "revision": 1, "previous_model_id": None}
    )
    archived = (await gql.data(ARCHIVE, id=model_id))["archiveModelVersion"]
    assert archived["status"] == "ARCHIVED"
    events = await storage.events.for_entity(model_id, 10)
    assert [(e.kind, e.previous_status, e.status) for e in events] == [
        (ChangeKind.REGISTERED, None, "development"),
        (ChangeKind.PROMOTED, "development", "testing"),
        (ChangeKind.DEPLOYED, "testing", "production"),
        (ChangeKind.ARCHIVED, "production", "archived"),
    ]
    assert events[2].actor == "ci"  # the change as its writer recorded it
    assert all(e.entity is EntityKind.MODEL_VERSION for e in events)
    assert await in_production(gql) is None
