"""List queries over HTTP: filters, orderings, keyset pages, nested relations and their cost."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graphql_api.domain.enums import ModelType
from graphql_api.services.container import Services
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient

JOBS_PAGE = """
query($first: Int, $after: String, $filter: TrainingJobFilter, $order: TrainingJobOrder) {
  trainingJobs(first: $first, after: $after, filter: $filter, orderBy: $order) {
    edges { cursor node { jobId status modelId datasetId createdDate } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""

DASHBOARD = """
query {
  trainingJobs(first: 50, filter: {statuses: [COMPLETED, RUNNING]}) {
    edges { node {
      jobId modelId status hyperparameters datasetId startedDate completedDate metrics logsUrl
      modelVersion { modelName version status }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""


async def seed(services: Services, versions: int = 10, jobs_per_version: int = 5) -> list[str]:
    """Versions of two models; jobs cycle through statuses. Returns job ids, oldest first."""
    job_ids = []
    for index in range(versions):
        version = await services.registry.register(
            model_name="churn" if index % 2 else "fraud",
            version=f"1.{index}.0",
            model_type=ModelType.CLASSIFICATION,
        )
        for n in range(jobs_per_version):
            job = await services.training.create(
                model_id=version.model_id, dataset_id=f"ds-{n % 3}"
            )
            if n % 5 in (1, 2):
                await services.training.start(job.job_id)
            if n % 5 == 2:
                await services.training.complete(job.job_id, {"loss": 0.1 * n})
            job_ids.append(job.job_id)
    return job_ids


async def pages(gql: GraphQLClient, first: int, **variables: Any) -> list[list[str]]:
    result, after = [], None
    while True:
        data = (await gql.data(JOBS_PAGE, first=first, after=after, **variables))["trainingJobs"]
        result.append([e["node"]["jobId"] for e in data["edges"]])
        if not data["pageInfo"]["hasNextPage"]:
            return result
        assert data["pageInfo"]["endCursor"] == data["edges"][-1]["cursor"]
        after = data["pageInfo"]["endCursor"]


async def test_keyset_pages_cover_every_job_once_in_order(
    gql: GraphQLClient, services: Services
) -> None:
    job_ids = await seed(services)
    newest_first = await pages(gql, 7)
    assert [len(p) for p in newest_first] == [7] * 7 + [1]
    assert [j for p in newest_first for j in p] == job_ids[::-1]
    oldest_first = await pages(gql, 20, order="CREATED_DATE_ASC")
    assert [j for p in oldest_first for j in p] == job_ids


async def test_pages_stay_stable_when_jobs_are_added_meanwhile(
    gql: GraphQLClient, services: Services
) -> None:
    job_ids = await seed(services, versions=2)
    first = (await gql.data(JOBS_PAGE, first=4))["trainingJobs"]
    version = await services.registry.register(
        model_name="late", version="1.0.0", model_type=ModelType.REGRESSION
    )
    await services.training.create(model_id=version.model_id, dataset_id="new")
    rest = await gql.data(JOBS_PAGE, first=50, after=first["pageInfo"]["endCursor"])
    seen = [e["node"]["jobId"] for e in first["edges"] + rest["trainingJobs"]["edges"]]
    assert seen == job_ids[::-1]


async def test_filters_combine_with_and_and_lists_with_or(
    gql: GraphQLClient, services: Services
) -> None:
    await seed(services)
    data = await gql.data(
        JOBS_PAGE, first=100, filter={"statuses": ["RUNNING", "COMPLETED"], "datasetIds": ["ds-1"]}
    )
    nodes = [e["node"] for e in data["trainingJobs"]["edges"]]
    assert nodes and all(n["datasetId"] == "ds-1" for n in nodes)
    assert {n["status"] for n in nodes} <= {"RUNNING", "COMPLETED"}
    everything = await gql.data(JOBS_PAGE, first=100)
    expected = [
        e["node"]["jobId"]
        for e in everything["trainingJobs"]["edges"]
        if e["node"]["datasetId"] == "ds-1" and e["node"]["status"] in ("RUNNING", "COMPLETED")
    ]
    assert [n["jobId"] for n in nodes] == expected


async def test_date_range_filters_are_inclusive_and_need_a_timezone(
    gql: GraphQLClient, services: Services
) -> None:
    await seed(services, versions=2)
    everything = (await gql.data(JOBS_PAGE, first=100))["trainingJobs"]["edges"]
    middle = everything[len(everything) // 2]["node"]["createdDate"]
    since = await gql.data(JOBS_PAGE, first=100, filter={"createdDate": {"since": middle}})
    dates = [e["node"]["createdDate"] for e in since["trainingJobs"]["edges"]]
    assert middle in dates and all(d >= middle for d in dates)
    naive = await gql.execute(
        JOBS_PAGE, first=5, filter={"createdDate": {"since": "2026-01-01T00:00:00"}}
    )
    assert naive["errors"][0]["extensions"]["field"] == "filter.createdDate.since"
    backwards = await gql.execute(
        JOBS_PAGE,
        first=5,
        filter={"createdDate": {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}},
    )
    assert backwards["errors"][0]["extensions"]["rule"] == "range"


async def test_model_version_filters_and_counts(gql: GraphQLClient, services: Services) -> None:
    await seed(services, jobs_per_version=1)
    query = """query($filter: ModelVersionFilter) {
      modelVersions(filter: $filter, first: 3) { totalCount edges { node { modelName } } } }"""
    churn = (await gql.data(query, filter={"modelNames": ["churn"]}))["modelVersions"]
    assert churn["totalCount"] == 5 and len(churn["edges"]) == 3
    assert {e["node"]["modelName"] for e in churn["edges"]} == {"churn"}
    none = (await gql.data(query, filter={"statuses": ["PRODUCTION"]}))["modelVersions"]
    assert none == {"totalCount": 0, "edges": []}
    recent = datetime.now(UTC) - timedelta(minutes=5)
    typed = await gql.data(
        query,
        filter={"modelTypes": ["CLASSIFICATION"], "createdDate": {"since": recent.isoformat()}},
    )
    assert typed["modelVersions"]["totalCount"] == 10


@pytest.mark.parametrize(
    ("arguments", "field", "rule"),
    [
        ("first: 101", "first", "max"),
        ("first: -1", "first", "min"),
        ('after: "not-a-cursor"', "after", "cursor"),
        ('after: "WyJDUkVBVEVEX0RBVEVfQVNDIiwxLCJ4Il0"', "after", "cursor"),
    ],
)
async def test_bad_page_arguments_are_coded_errors(
    gql: GraphQLClient, arguments: str, field: str, rule: str
) -> None:
    body = await gql.execute(f"{{ trainingJobs({arguments}) {{ edges {{ cursor }} }} }}")
    error = body["errors"][0]
    assert error["extensions"] == {"code": "VALIDATION_ERROR", "field": field, "rule": rule}
    assert field in error["message"]


async def test_a_cursor_of_another_ordering_is_refused(
    gql: GraphQLClient, services: Services
) -> None:
    await seed(services, versions=1)
    page = (await gql.data(JOBS_PAGE, first=2))["trainingJobs"]
    cursor = page["pageInfo"]["endCursor"]
    assert base64.urlsafe_b64decode(cursor + "==").startswith(b'["trainingJobs:CREATED_DATE_DESC"')
    body = await gql.execute(JOBS_PAGE, first=2, after=cursor, order="CREATED_DATE_ASC")
    assert "another ordering" in body["errors"][0]["message"]


async def test_first_zero_reports_whether_anything_matches(
    gql: GraphQLClient, services: Services
) -> None:
    await seed(services, versions=1)
    page = (await gql.data(JOBS_PAGE, first=0))["trainingJobs"]
    assert page["edges"] == [] and page["pageInfo"]["hasNextPage"] is True


async def test_dashboard_query_costs_two_round_trips_for_fifty_jobs(
    gql: GraphQLClient, services: Services, storage: MongoStorage
) -> None:
    await seed(services, versions=20, jobs_per_version=10)
    storage.stats.round_trips = 0
    data = await gql.data(DASHBOARD)
    edges = data["trainingJobs"]["edges"]
    assert len(edges) == 50
    assert all(e["node"]["modelVersion"]["modelName"] in ("churn", "fraud") for e in edges)
    # One query for the page, one batched query for all the model versions it names.
    assert storage.stats.round_trips == 2
    storage.stats.round_trips = 0
    await gql.data("{ trainingJobs(first: 50) { totalCount edges { cursor } } }")
    assert storage.stats.round_trips == 2  # the page, and a count only because it was asked for


async def test_nested_jobs_of_versions_cost_one_query_per_level(
    gql: GraphQLClient, services: Services, storage: MongoStorage
) -> None:
    await seed(services, versions=10, jobs_per_version=5)
    storage.stats.round_trips = 0
    data = await gql.data(
        """{ modelVersions(first: 10) { edges { node { version
            trainingJobs(first: 2, filter: {statuses: [PENDING]}) {
              totalCount pageInfo { hasNextPage } edges { node { jobId status } } } } } } }"""
    )
    assert storage.stats.round_trips == 3  # versions, their jobs, the jobs' counts
    for edge in data["modelVersions"]["edges"]:
        jobs = edge["node"]["trainingJobs"]
        assert jobs["totalCount"] == 3
        assert [j["node"]["status"] for j in jobs["edges"]] == ["PENDING", "PENDING"]
        assert jobs["pageInfo"]["hasNextPage"] is True
    too_many = await gql.execute(
        "{ modelVersions(first: 1) { edges { node { trainingJobs(first: 500) { totalCount } } } } }"
    )
    assert too_many["errors"][0]["extensions"]["field"] == "first"


async def test_job_lookup_by_id(gql: GraphQLClient, services: Services) -> None:
    job_ids = await seed(services, versions=1, jobs_per_version=2)
    data = await gql.data(
        "query($id: ID!) { trainingJob(jobId: $id) { jobId modelVersion { version } } "
        'missing: trainingJob(jobId: "nope") { jobId } }',
        id=job_ids[0],
    )
    assert data == {
        "trainingJob": {"jobId": job_ids[0], "modelVersion": {"version": "1.0.0"}},
        "missing": None,
    }


async def test_histories_of_a_page_of_jobs_cost_one_more_round_trip(
    gql: GraphQLClient, services: Services, storage: MongoStorage
) -> None:
    await seed(services, versions=10, jobs_per_version=5)
    storage.stats.round_trips = 0
    data = await gql.data(
        "{ trainingJobs(first: 50) { edges { node { status "
        "history { edges { node { kind status } } } } } } }"
    )
    assert storage.stats.round_trips == 2  # the page, then every job's history at once
    expected_kinds = {
        "PENDING": ["CREATED"],
        "RUNNING": ["CREATED", "STARTED"],
        "COMPLETED": ["CREATED", "STARTED", "COMPLETED"],
    }
    for edge in data["trainingJobs"]["edges"]:
        node = edge["node"]
        history = [edge["node"] for edge in node["history"]["edges"]]
        assert [h["kind"] for h in history] == expected_kinds[node["status"]]
        assert history[-1]["status"] == node["status"]


async def test_relations_selected_through_fragments_are_batched_the_same(
    gql: GraphQLClient, services: Services, storage: MongoStorage
) -> None:
    # The page field loads the relations its selection asks for before the items resolve;
    # a selection spelled with fragments and aliases must be seen the same way.
    await seed(services, versions=10, jobs_per_version=5)
    storage.stats.round_trips = 0
    data = await gql.data(
        """fragment Row on TrainingJob { jobId model: modelVersion { modelId } }
        { trainingJobs(first: 50) { edges { ... on TrainingJobEdge { node { ...Row
            ... on TrainingJob { history { edges { node { kind } } } } } } } } }"""
    )
    assert storage.stats.round_trips == 3  # the page, the versions, the histories
    nodes = [e["node"] for e in data["trainingJobs"]["edges"]]
    assert len(nodes) == 50
    for node in nodes:
        job = await services.training.get(node["jobId"])
        assert job is not None and node["model"] == {"modelId": job.model_id}
        assert node["history"]["edges"][0]["node"]["kind"] == "CREATED"


async def test_relations_nested_below_another_list_are_still_batched(
    gql: GraphQLClient, services: Services, storage: MongoStorage
) -> None:
    # Jobs reached through their versions are not primed: their relation loads stay pending
    # until GraphQL gathers them, and are still one query for all of them.
    await seed(services, versions=10, jobs_per_version=5)
    storage.stats.round_trips = 0
    data = await gql.data(
        """{ modelVersions(first: 10) { edges { node { modelId
            trainingJobs(first: 3) { edges { node { modelVersion { modelId } } } } } } } }"""
    )
    assert storage.stats.round_trips == 3  # versions, their jobs, the jobs' versions
    for edge in data["modelVersions"]["edges"]:
        version = edge["node"]
        jobs = version["trainingJobs"]["edges"]
        assert len(jobs) == 3
        assert {j["node"]["modelVersion"]["modelId"] for j in jobs} == {version["modelId"]}


async def test_a_failed_relation_load_fails_only_that_field_of_each_job(
    gql: GraphQLClient,
    services: Services,
    storage: MongoStorage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The page primes the versions before its jobs resolve; when that load fails, the page is
    # still answered and each job's modelVersion carries the (masked) error.
    await seed(services, versions=2, jobs_per_version=3)

    async def unavailable(model_ids: Any) -> Any:
        raise RuntimeError("model_versions collection is unavailable")

    monkeypatch.setattr(storage.model_versions, "get_many", unavailable)
    body = await gql.execute(DASHBOARD)
    nodes = [edge["node"] for edge in body["data"]["trainingJobs"]["edges"]]
    assert nodes and all(node["modelVersion"] is None and node["jobId"] for node in nodes)
    paths = sorted(tuple(error["path"]) for error in body["errors"])
    expected = [("trainingJobs", "edges", i, "node", "modelVersion") for i in range(len(nodes))]
    assert paths == expected
    assert {error["extensions"]["code"] for error in body["errors"]} == {"INTERNAL_SERVER_ERROR"}
