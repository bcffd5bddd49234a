"""Deployable versions over HTTP: artifact, digest, description, tags, createdBy, the source job
and lineage both ways, updateModelVersion, and records stored before these fields existed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.applications import Starlette

from graphql_api.auth.roles import Role
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.operations import COMPLETE, CREATE_JOB, PROMOTE, REGISTER, START
from tests.registry_operations import REGISTER_DEPLOYABLE, UPDATE_VERSION, VERSION
from tests.security_helpers import KEY_NAMES, RoleClient, client, secured_app, snapshot

DIGEST = "sha256:" + "0123456789abcdef" * 4


def version_input(**fields: Any) -> dict[str, Any]:
    return {
        "modelName": f"churn-{uuid.uuid4().hex[:6]}",
        "version": "1.0.0",
        "modelType": "CLASSIFICATION",
        **fields,
    }


async def register(gql: GraphQLClient, **fields: Any) -> dict[str, Any]:
    answer: dict[str, Any] = (await gql.data(REGISTER_DEPLOYABLE, input=version_input(**fields)))[
        "registerModelVersion"
    ]
    return answer


async def update(gql: GraphQLClient, model_id: str, **arguments: Any) -> dict[str, Any]:
    answer: dict[str, Any] = (await gql.data(UPDATE_VERSION, id=model_id, **arguments))[
        "updateModelVersion"
    ]
    return answer


async def completed_job(gql: GraphQLClient, *, finish: bool = True) -> str:
    trained = (await gql.data(REGISTER, input=version_input(version="0.1.0")))[
        "registerModelVersion"
    ]
    job = (await gql.data(CREATE_JOB, input={"modelId": trained["modelId"], "datasetId": "d"}))[
        "createTrainingJob"
    ]
    await gql.data(START, id=job["jobId"])
    if finish:
        await gql.data(COMPLETE, id=job["jobId"], metrics={"loss": 0.1})
    return str(job["jobId"])


async def test_a_version_registered_with_everything_reads_it_all_back(gql: GraphQLClient) -> None:
    job_id = await completed_job(gql)
    created = await register(
        gql,
        artifactUri="s3://models/churn/1.0.0/model.onnx",
        artifactDigest=DIGEST,
        description="Gradient boosting on the Q3 data.\nBeats 0.9.0 by 2 points.",
        tags=[{"key": "team", "value": "fraud"}, {"key": "dataset", "value": "2026-q3"}],
        sourceJobId=job_id,
    )
    assert created["__typename"] == "ModelVersion", created
    expected = {
        "artifactUri": "s3://models/churn/1.0.0/model.onnx",
        "artifactDigest": DIGEST,
        "description": "Gradient boosting on the Q3 data.\nBeats 0.9.0 by 2 points.",
        "tags": [{"key": "team", "value": "fraud"}, {"key": "dataset", "value": "2026-q3"}],
        "createdBy": None,  # open mode: no key, no name
        "sourceJobId": job_id,
    }
    assert {k: created[k] for k in expected} == expected
    read = (await gql.data(VERSION, id=created["modelId"]))["modelVersion"]
    assert {k: read[k] for k in expected} == expected


async def test_a_version_registered_with_nothing_new_has_empty_defaults(gql: GraphQLClient) -> None:
    created = await register(gql)
    assert {
        k: created[k]
        for k in ("artifactUri", "artifactDigest", "description", "tags", "sourceJobId")
    } == {
        "artifactUri": None,
        "artifactDigest": None,
        "description": None,
        "tags": [],
        "sourceJobId": None,
    }


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/key",
        "S3://bucket/a/b/model.pt",
        "gs://bucket/model",
        "az://container/model",
        "abfss://fs@account.dfs.core.windows.net/model",
        "hdfs://namenode:8020/models/x",
        "https://models.example.com/churn/1.0.0.tar.gz",
        "http://10.0.0.5:8080/m",
        "file:///models/churn/1.0.0",
        "file://localhost/models/churn",
    ],
)
async def test_artifact_uris_of_every_storage_scheme_are_accepted(
    gql: GraphQLClient, uri: str
) -> None:
    created = await register(gql, artifactUri=uri)
    assert created["artifactUri"] == uri


@pytest.mark.parametrize(
    ("uri", "rule"),
    [
        ("ftp://host/model", "url_scheme"),
        ("javascript:alert(1)", "url_scheme"),
        ("data:text/plain,hi", "url_scheme"),
        ("models/churn.pt", "url_scheme"),
        ("s3:///no-bucket", "url"),
        ("s3://bucket/with space", "url"),
        ("s3://bucket/caf\u00e9", "url"),
        ("s3://bucket/\u200bkey", "url"),
        ("file://otherhost/models/x", "url"),
        ("file:relative/path", "url"),
        ("", "min_length"),
        ("s3://b/" + "k" * 2100, "max_length"),
    ],
)
async def test_bad_artifact_uris_are_refused_naming_the_field_and_rule(
    gql: GraphQLClient, storage: MongoStorage, uri: str, rule: str
) -> None:
    before = await snapshot(storage)
    refused = await register(gql, artifactUri=uri)
    assert refused["__typename"] == "ValidationError", refused
    assert (refused["field"], refused["rule"]) == ("artifactUri", rule)
    assert await snapshot(storage) == before


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:" + "0" * 63,
        "sha256:" + "0" * 65,
        "sha256:" + "A" * 64,
        "SHA256:" + "0" * 64,
        "md5:" + "0" * 32,
        "0" * 64,
        "sha256:" + "0" * 64 + "\n",
        "sha256:" + "g" * 64,
        "sha256: " + "0" * 64,
    ],
)
async def test_digests_other_than_sha256_and_64_lowercase_hex_are_refused(
    gql: GraphQLClient, digest: str
) -> None:
    refused = await register(gql, artifactDigest=digest)
    assert (refused["__typename"], refused["field"], refused["rule"]) == (
        "ValidationError",
        "artifactDigest",
        "digest",
    )


@pytest.mark.parametrize(
    ("tags", "field", "rule"),
    [
        ([{"key": f"k{n}", "value": "v"} for n in range(51)], "tags", "max_items"),
        ([{"key": "a", "value": "1"}, {"key": "a", "value": "2"}], "tags[1].key", "duplicate"),
        ([{"key": "k" * 129, "value": "v"}], "tags[0].key", "max_length"),
        ([{"key": "k", "value": "v" * 257}], "tags[0].value", "max_length"),
        ([{"key": "", "value": "v"}], "tags[0].key", "min_length"),
        ([{"key": "k", "value": ""}], "tags[0].value", "min_length"),
        (
            [{"key": "ok", "value": "x"}, {"key": "te\u200bam", "value": "v"}],
            "tags[1].key",
            "characters",
        ),
        ([{"key": "k", "value": "a\u202eb"}], "tags[0].value", "characters"),
        ([{"key": " k", "value": "v"}], "tags[0].key", "characters"),
        ([{"key": "k", "value": "e\u0301"}], "tags[0].value", "unicode_nfc"),
    ],
)
async def test_tags_past_a_limit_or_breaking_the_text_policy_are_refused(
    gql: GraphQLClient, tags: list[dict[str, str]], field: str, rule: str
) -> None:
    refused = await register(gql, tags=tags)
    assert (refused["__typename"], refused["field"], refused["rule"]) == (
        "ValidationError",
        field,
        rule,
    ), refused


async def test_fifty_tags_of_full_length_are_accepted(gql: GraphQLClient) -> None:
    tags = [{"key": f"{n:03d}" + "k" * 125, "value": "v" * 256} for n in range(50)]
    created = await register(gql, tags=tags)
    assert created["tags"] == tags


async def test_the_description_follows_the_free_text_policy(gql: GraphQLClient) -> None:
    refused = await register(gql, description="fine\u202eevil")
    assert (refused["field"], refused["rule"]) == ("description", "characters")
    refused = await register(gql, description="x" * 4097)
    assert (refused["field"], refused["rule"]) == ("description", "max_length")


async def test_the_source_job_must_exist_and_be_completed(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    missing = await register(gql, sourceJobId="no-such-job")
    assert (missing["__typename"], missing["field"]) == ("NotFoundError", "sourceJobId")
    running = await completed_job(gql, finish=False)
    before = await snapshot(storage)
    refused = await register(gql, sourceJobId=running)
    assert (refused["__typename"], refused["field"], refused["rule"]) == (
        "ValidationError",
        "sourceJobId",
        "job_status",
    )
    assert "RUNNING" in refused["message"] and "COMPLETED" in refused["message"]
    assert await snapshot(storage) == before


LINEAGE = """
query($job: ID!) {
  trainingJob(jobId: $job) {
    jobId
    producedModelVersions { modelId version sourceJob { jobId status } }
  }
}"""

JOBS_WITH_LINEAGE = """
{ trainingJobs(first: 100, filter: {statuses: [COMPLETED]}) {
    edges { node { jobId producedModelVersions { modelId sourceJob { jobId } } } } } }"""


async def test_lineage_reads_both_ways_and_round_trips(gql: GraphQLClient) -> None:
    job_id = await completed_job(gql)
    other_job = await completed_job(gql)
    first = await register(gql, sourceJobId=job_id, version="1.0.0")
    second = await register(gql, sourceJobId=job_id, version="1.1.0")
    await register(gql, sourceJobId=other_job)
    answer = (await gql.data(LINEAGE, job=job_id))["trainingJob"]
    produced = answer["producedModelVersions"]
    # Newest first, each pointing back at the job it came from.
    assert [v["modelId"] for v in produced] == [second["modelId"], first["modelId"]]
    assert all(v["sourceJob"] == {"jobId": job_id, "status": "COMPLETED"} for v in produced)
    unproduced = await completed_job(gql)
    assert (await gql.data(LINEAGE, job=unproduced))["trainingJob"]["producedModelVersions"] == []


async def test_lineage_of_a_page_of_jobs_is_batched(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    """Twelve jobs with two versions each: one round trip for all their versions and one for
    all the versions' source jobs, whatever the number of jobs."""
    jobs = [await completed_job(gql) for _ in range(12)]
    for job_id in jobs:
        for minor in range(2):
            await register(gql, sourceJobId=job_id, version=f"2.{minor}.0")
    before = storage.stats.round_trips
    page = (await gql.data(JOBS_WITH_LINEAGE))["trainingJobs"]["edges"]
    trips = storage.stats.round_trips - before
    listed = {e["node"]["jobId"]: e["node"]["producedModelVersions"] for e in page}
    for job_id in jobs:
        assert len(listed[job_id]) == 2
        assert all(v["sourceJob"] == {"jobId": job_id} for v in listed[job_id])
    assert trips <= 3, trips  # the page, the produced versions, their source jobs


async def test_update_changes_description_and_tags_in_any_status_with_an_event(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    created = await register(gql, description="first", tags=[{"key": "a", "value": "1"}])
    model_id = created["modelId"]
    for stage in ("TESTING", "PRODUCTION"):
        await gql.data(PROMOTE, id=model_id, to=stage)
    changed = await update(gql, model_id, description="second", tags=[{"key": "b", "value": "2"}])
    assert (changed["description"], changed["tags"], changed["status"]) == (
        "second",
        [{"key": "b", "value": "2"}],
        "PRODUCTION",
    )
    # Omitted arguments are unchanged; "" clears the description; [] clears the tags.
    assert (await update(gql, model_id, tags=[]))["description"] == "second"
    cleared = await update(gql, model_id, description="")
    assert (cleared["description"], cleared["tags"]) == (None, [])
    events = await storage.events.for_entity(model_id, 20)
    updates = [e for e in events if e.kind == "UPDATED"]
    assert len(updates) == 3
    assert updates[0].snapshot["description"] == "second"
    assert (updates[0].previous_status, updates[0].status) == ("production", "production")


async def test_the_artifact_changes_in_development_and_is_fixed_after(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    created = await register(gql, artifactUri="s3://m/a", artifactDigest=DIGEST)
    model_id = created["modelId"]
    other = "sha256:" + "f" * 64
    moved = await update(gql, model_id, artifactUri="gs://m/b", artifactDigest=other)
    assert (moved["artifactUri"], moved["artifactDigest"]) == ("gs://m/b", other)
    await gql.data(PROMOTE, id=model_id, to="TESTING")
    before = await snapshot(storage)
    for arguments in (
        {"artifactUri": "s3://m/c"},
        {"artifactDigest": DIGEST},
        {"artifactUri": "s3://m/c", "description": "with a description too"},
    ):
        refused = await update(gql, model_id, **arguments)
        assert (refused["__typename"], refused["rule"]) == ("ValidationError", "immutable")
        assert refused["field"] in {"artifactUri", "artifactDigest"}
        assert "TESTING" in refused["message"] and "DEVELOPMENT" in refused["message"]
        assert await snapshot(storage) == before  # nothing, not even the description
    assert (await update(gql, model_id, description="ok"))["description"] == "ok"


async def test_update_errors_name_what_is_wrong(gql: GraphQLClient) -> None:
    missing = await update(gql, "no-such-version", description="x")
    assert (missing["__typename"], missing["field"]) == ("NotFoundError", "modelId")
    model_id = (await register(gql))["modelId"]
    nothing = await update(gql, model_id)
    assert (nothing["__typename"], nothing["rule"]) == ("ValidationError", "required")
    bad = await update(gql, model_id, tags=[{"key": "a", "value": "1"}] * 2)
    assert (bad["field"], bad["rule"]) == ("tags[1].key", "duplicate")
    bad = await update(gql, model_id, artifactUri="ftp://x/y")
    assert (bad["field"], bad["rule"]) == ("artifactUri", "url_scheme")


async def test_a_version_stored_before_these_fields_loads_with_defaults_and_takes_them(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    """The document shape of the previous release: no artifact, no tags, no createdBy."""
    await storage._db["model_versions"].insert_one(
        {
            "_id": "legacy-1",
            "model_name": "legacy",
            "version": "1.0.0",
            "version_sort_key": "whatever-ensure-indexes-does-not-read-it",
            "model_type": "regression",
            "status": "development",
            "metrics": {"f1": 0.5},
            "created_date": datetime(2025, 1, 1, tzinfo=UTC),
            "deployed_date": None,
            "precedence_twin": "",
            "rev": 3,
        }
    )
    read = (await gql.data(VERSION, id="legacy-1"))["modelVersion"]
    assert {
        k: read[k]
        for k in (
            "artifactUri",
            "artifactDigest",
            "description",
            "tags",
            "createdBy",
            "sourceJobId",
        )
    } == {
        "artifactUri": None,
        "artifactDigest": None,
        "description": None,
        "tags": [],
        "createdBy": None,
        "sourceJobId": None,
    }
    listed = await gql.data(
        '{ modelVersions(filter: {modelNames: ["legacy"]}) { edges { node { tags { key } '
        "sourceJob { jobId } } } } }"
    )
    assert listed["modelVersions"]["edges"] == [{"node": {"tags": [], "sourceJob": None}}]
    changed = await update(
        gql, "legacy-1", artifactUri="s3://m/legacy", tags=[{"key": "k", "value": "v"}]
    )
    assert (changed["artifactUri"], changed["tags"], changed["metrics"]) == (
        "s3://m/legacy",
        [{"key": "k", "value": "v"}],
        {"f1": 0.5},
    )
    promoted = (await gql.data(PROMOTE, id="legacy-1", to="TESTING"))["promoteModelVersion"]
    assert promoted["status"] == "TESTING"


@pytest.fixture
async def keyed(storage: MongoStorage) -> AsyncIterator[RoleClient]:
    app: Starlette
    async with secured_app(storage) as app, client(app) as http:
        yield RoleClient(http)


async def test_created_by_is_the_name_of_the_key_that_registered_it(keyed: RoleClient) -> None:
    for role in (Role.OPERATOR, Role.ADMIN):
        data = await keyed.data(role, REGISTER_DEPLOYABLE, input=version_input())
        assert data["registerModelVersion"]["createdBy"] == KEY_NAMES[role]


async def test_a_viewer_or_worker_may_not_update_a_version(
    keyed: RoleClient, storage: MongoStorage
) -> None:
    created = await keyed.data(Role.OPERATOR, REGISTER_DEPLOYABLE, input=version_input())
    model_id = created["registerModelVersion"]["modelId"]
    before = await snapshot(storage)
    for role in (Role.VIEWER, Role.WORKER):
        refused = await keyed.data(role, UPDATE_VERSION, id=model_id, description="x")
        assert refused["updateModelVersion"]["__typename"] == "ForbiddenError"
    assert await snapshot(storage) == before
