"""Issue 14's acceptance audit: the sentences of the issue that no other test proved through the
API in every case it names (the artifact fixed in every status after development, both
orderings refused on either list, a rollback in a database of the previous release, and the
README's "Deploy from the registry" subscription followed through a deployment)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import create_job_id, promote, register_id
from tests.conftest import GraphQLClient
from tests.live_fixtures import live_fixture  # noqa: F401 (fixture)
from tests.operations import ARCHIVE
from tests.registry_operations import REGISTER_DEPLOYABLE, ROLLBACK, SET_ALIAS, UPDATE_VERSION
from tests.security_helpers import snapshot
from tests.test_registry_aliases import readme_deploy_operations
from tests.test_subscriptions import Live

DIGEST = "sha256:" + "0123456789abcdef" * 4
OTHER_DIGEST = "sha256:" + "f" * 64


@pytest.fixture
def name() -> str:
    return f"churn-{uuid.uuid4().hex[:6]}"


async def deployable(gql: Any, name: str, version: str) -> str:
    registered = await gql.data(
        REGISTER_DEPLOYABLE,
        input={
            "modelName": name,
            "version": version,
            "modelType": "REGRESSION",
            "artifactUri": f"s3://models/{name}/{version}",
            "artifactDigest": DIGEST,
        },
    )
    answer = registered["registerModelVersion"]
    assert answer["__typename"] == "ModelVersion", answer
    return str(answer["modelId"])


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (["TESTING"], "TESTING"),
        (["TESTING", "PRODUCTION"], "PRODUCTION"),
        (["ARCHIVE"], "ARCHIVED"),  # archived straight from development
        (["TESTING", "PRODUCTION", "ARCHIVE"], "ARCHIVED"),
    ],
)
@pytest.mark.parametrize(
    "change",
    [
        {"artifactUri": "gs://elsewhere/model"},
        {"artifactDigest": OTHER_DIGEST},
        {"artifactUri": "s3://models/same", "artifactDigest": DIGEST},
    ],
)
async def test_the_artifact_is_fixed_in_every_status_after_development(
    gql: GraphQLClient,
    storage: MongoStorage,
    name: str,
    path: list[str],
    status: str,
    change: dict[str, str],
) -> None:
    model_id = await deployable(gql, name, "1.0.0")
    for step in path:
        if step == "ARCHIVE":
            await gql.data(ARCHIVE, id=model_id)
        else:
            assert (await promote(gql, model_id, step))["status"] == step
    before = await snapshot(storage)
    refused = (await gql.data(UPDATE_VERSION, id=model_id, **change))["updateModelVersion"]
    assert (refused["__typename"], refused["rule"]) == ("ValidationError", "immutable"), refused
    assert refused["field"] in change
    assert status in refused["message"] and "DEVELOPMENT" in refused["message"], refused
    assert await snapshot(storage) == before
    # The description and tags still change, in that status.
    described = (await gql.data(UPDATE_VERSION, id=model_id, description="kept"))[
        "updateModelVersion"
    ]
    assert (described["description"], described["status"]) == ("kept", status)
    assert described["artifactUri"] == f"s3://models/{name}/1.0.0"


@pytest.mark.parametrize("path", [["TESTING"], ["TESTING", "PRODUCTION"], ["ARCHIVE"]])
async def test_the_artifact_sent_again_as_stored_is_no_change_after_development(
    gql: GraphQLClient, storage: MongoStorage, name: str, path: list[str]
) -> None:
    """A client that sends the whole record back (or retries an update) names the artifact
    as it is stored: that changes nothing, so it is not refused; only a different one is."""
    model_id = await deployable(gql, name, "1.0.0")
    for step in path:
        if step == "ARCHIVE":
            await gql.data(ARCHIVE, id=model_id)
        else:
            await promote(gql, model_id, step)
    stored = {"artifactUri": f"s3://models/{name}/1.0.0", "artifactDigest": DIGEST}
    before = await snapshot(storage)
    same = (await gql.data(UPDATE_VERSION, id=model_id, **stored))["updateModelVersion"]
    assert same["__typename"] == "ModelVersion", same
    assert same["artifactUri"] == stored["artifactUri"]
    assert await snapshot(storage) == before  # no write, no UPDATED event
    described = (await gql.data(UPDATE_VERSION, id=model_id, description="as sent", **stored))[
        "updateModelVersion"
    ]
    assert (described["__typename"], described["description"]) == ("ModelVersion", "as sent")
    # One field as stored, the other not: refused, naming the one that differs.
    refused = (
        await gql.data(UPDATE_VERSION, id=model_id, artifactUri=stored["artifactUri"],
                       artifactDigest=OTHER_DIGEST)
    )["updateModelVersion"]  # fmt: skip
    assert (refused["__typename"], refused["field"], refused["rule"]) == (
        "ValidationError", "artifactDigest", "immutable"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("root", "order"),
    [
        ("modelVersions", "VERSION_DESC"),
        ("modelVersions", "CREATED_DATE_ASC"),
        ("trainingJobs", "CREATED_DATE_DESC"),
        ("trainingJobs", "CREATED_DATE_ASC"),
    ],
)
async def test_both_orderings_on_either_list_are_refused_naming_the_field(
    gql: GraphQLClient, root: str, order: str
) -> None:
    await create_job_id(gql, await register_id(gql, metrics={"val_acc": 0.5}))
    body = await gql.execute(
        f'{{ {root}(orderBy: {order}, orderByMetric: {{metric: "val_acc", direction: DESC}})'
        " { totalCount } }"
    )
    assert body["data"] is None, body
    (error,) = body["errors"]
    assert error["extensions"] == {
        "code": "VALIDATION_ERROR",
        "field": "orderByMetric",
        "rule": "range",
    }
    assert "orderBy" in error["message"] and "orderByMetric" in error["message"]
    # Either one alone is served.
    for argument in (f"orderBy: {order}", 'orderByMetric: {metric: "val_acc"}'):
        alone = await gql.data(f"{{ {root}({argument}) {{ totalCount }} }}")
        assert alone[root]["totalCount"] >= 1


MODEL_HISTORY = """
query($name: String!) {
  modelHistory(modelName: $name, first: 100) {
    edges { node { kind modelId previousStatus status reason previousModelId actor } }
  }
}"""
MODEL_HISTORY_CURSORS = """
query($name: String!) { modelHistory(modelName: $name, first: 100) { edges { cursor } } }"""
PRODUCTION = "query($n: String!) { productionModelVersion(modelName: $n) { modelId status } }"


async def test_a_database_of_the_previous_release_rolls_back_and_tells_its_history(
    gql: GraphQLClient, storage: MongoStorage, name: str
) -> None:
    """What the previous release stored: versions with no artifact fields, a production version
    holding its unique production slot, an archived one that was in production before, no
    registry document, events without alias, reason or previous version. A rollback to the
    archived one works on it, and the history reads the old events with those fields null."""
    old, current = await register_id(gql, "1.0.0", name), await register_id(gql, "2.0.0", name)
    for model_id in (old, current):
        await promote(gql, model_id, "TESTING")
        await promote(gql, model_id, "PRODUCTION")
    db = storage.database
    await db["model_registry"].delete_many({})
    await db["model_aliases"].delete_many({})
    await db["model_versions"].update_many(
        {"_id": {"$in": [old, current]}},
        {
            "$unset": {
                "production_revision": "",
                "artifact_uri": "",
                "artifact_digest": "",
                "description": "",
                "tags": "",
                "created_by": "",
                "source_job_id": "",
            }
        },
    )
    await db["model_versions"].update_one(
        {"_id": current}, {"$set": {"production_slot": f"production:{name}"}}
    )
    await db["events"].update_many(
        {"model_name": name},
        {"$unset": {"alias": "", "reason": "", "previous_model_id": "", "event_id": ""}},
    )
    assert (await gql.data(PRODUCTION, n=name))["productionModelVersion"]["modelId"] == current

    back = (await gql.data(ROLLBACK, name=name, to=old, reason="2.0.0 regressed"))[
        "rollbackModelVersion"
    ]
    assert (back["__typename"], back["modelId"], back["status"]) == (
        "ModelVersion",
        old,
        "PRODUCTION",
    )
    assert (await gql.data(PRODUCTION, n=name))["productionModelVersion"] == {
        "modelId": old,
        "status": "PRODUCTION",
    }
    nodes = [e["node"] for e in (await gql.data(MODEL_HISTORY, name=name))["modelHistory"]["edges"]]
    steps = [
        (n["kind"], n["modelId"], n["status"], n["reason"], n["previousModelId"]) for n in nodes
    ]
    assert steps[-2:] == [
        ("DEPLOYED", old, "PRODUCTION", "2.0.0 regressed", current),
        ("ARCHIVED", current, "ARCHIVED", None, None),
    ]
    assert all(n["reason"] is None and n["previousModelId"] is None for n in nodes[:-2])
    assert len(nodes) == 2 * 3 + 1 + 2  # registered, promoted, deployed each; 1.0.0 archived


async def test_the_readme_follow_subscription_sees_a_deployment_with_its_artifact(
    live: Live, name: str
) -> None:
    """The README's inference service: `Serving` answers what to load, `Follow` (from the
    last change it knows of) pushes the next deployment with the new artifact, then the old
    version's ARCHIVED."""
    operations = readme_deploy_operations()
    server = await live.start()
    http = live.http(server)
    old, new = await deployable(http, name, "1.0.0"), await deployable(http, name, "1.1.0")
    for model_id in (old, new):
        await promote(http, model_id, "TESTING")
    await promote(http, old, "PRODUCTION")
    serving = (await http.data(operations["Serving"], model=name))["modelVersionByAlias"]
    assert (serving["modelId"], serving["artifactUri"]) == (old, f"s3://models/{name}/1.0.0")
    # The last change it knows of (a subscription without `after` starts from whenever the
    # server takes it, which would race the deployment below).
    known = await http.data(MODEL_HISTORY_CURSORS, name=name)
    last = known["modelHistory"]["edges"][-1]["cursor"]
    ws = await live.ws(server)
    op = await ws.subscribe(operations["Follow"], model=name, after=last)
    await promote(http, new, "PRODUCTION")
    deployed, archived = (u["modelVersionUpdates"] for u in await ws.take(op, 2))
    assert deployed["kind"] == "DEPLOYED"
    assert deployed["modelVersion"] == {
        "modelId": new,
        "version": "1.1.0",
        "status": "PRODUCTION",
        "artifactUri": f"s3://models/{name}/1.1.0",
        "artifactDigest": DIGEST,
    }
    assert (archived["kind"], archived["modelVersion"]["modelId"]) == ("ARCHIVED", old)
    # Reconnecting with the last cursor it handled misses nothing and repeats nothing.
    again = await ws.subscribe(operations["Follow"], model=name, after=deployed["cursor"])
    (resumed,) = [u["modelVersionUpdates"] for u in await ws.take(again, 1)]
    assert resumed["cursor"] == archived["cursor"]
    assert await ws.nothing_more(again)


BY_ALIAS_STATUS = """
query($name: String!, $alias: String!) {
  modelVersionByAlias(modelName: $name, alias: $alias) { modelId status }
}"""


async def test_an_alias_keeps_naming_an_archived_version_until_moved_and_production_follows(
    gql: GraphQLClient, name: str
) -> None:
    """What the README's Aliases section says of archiving: `production` follows the status,
    other aliases stay until a client moves or deletes them."""
    serving, candidate, next_one = [await register_id(gql, f"1.{n}.0", name) for n in range(3)]
    for model_id in (serving, candidate):
        await promote(gql, model_id, "TESTING")
    await promote(gql, serving, "PRODUCTION")
    await gql.data(SET_ALIAS, name=name, alias="champion", id=candidate, expected=None)
    for model_id in (serving, candidate):
        archived = (await gql.data(ARCHIVE, id=model_id))["archiveModelVersion"]
        assert archived["status"] == "ARCHIVED"

    async def named(alias: str) -> Any:
        return (await gql.data(BY_ALIAS_STATUS, name=name, alias=alias))["modelVersionByAlias"]

    assert await named("production") is None
    assert await named("champion") == {"modelId": candidate, "status": "ARCHIVED"}
    # Moved by compare-and-set from the archived version it names.
    moved = await gql.data(SET_ALIAS, name=name, alias="champion", id=next_one, expected=candidate)
    assert moved["setModelAlias"]["modelId"] == next_one
    assert await named("champion") == {"modelId": next_one, "status": "DEVELOPMENT"}
