"""``TrainingJob.history`` is a connection: it never stops silently (issue 10, item 6).

It used to be a list cut at 1,000 events without a sign, so a job with more changes showed
COMPLETED while its history had no COMPLETED. Now a page says whether more follow, pages join
without a gap or a duplicate up to the last change, ``totalCount`` counts them all, and the
histories of a page of jobs are still read in one batch.
"""

from __future__ import annotations

from typing import Any

import pytest

from graphql_api.services.container import Services
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient

PAGE = """query($id: ID!, $first: Int, $after: String) {
  trainingJob(jobId: $id) {
    status
    history(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor startCursor }
      edges { cursor node { kind status cursor } }
    }
  }
}"""


async def job_with_reports(services: Services, reports: int, *, complete: bool = True) -> str:
    version = await services.registry.register(
        model_name="long", version="1.0.0", model_type="regression"
    )
    job = await services.training.create(model_id=version.model_id, dataset_id="d")
    await services.training.start(job.job_id)
    for step in range(reports):
        await services.training.report_metrics(job.job_id, {"step": float(step)})
    if complete:
        await services.training.complete(job.job_id)
    return job.job_id


async def read_all(gql: GraphQLClient, job_id: str, first: int) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    after = None
    while True:
        data = await gql.data(PAGE, id=job_id, first=first, after=after)
        history = data["trainingJob"]["history"]
        pages.append(history)
        assert len(history["edges"]) <= first
        if not history["pageInfo"]["hasNextPage"]:
            return pages
        assert len(history["edges"]) == first  # only the last page is short
        after = history["pageInfo"]["endCursor"]


@pytest.mark.parametrize(
    ("reports", "first"),
    [
        (1_050, 100),  # the old cap was 1,000 events
        # Pages of a size that does not divide the history (the last one short); a shorter
        # history, as the cap is the first case's (1,050 reports cost ~18 s on the mock).
        (120, 37),
    ],
)
async def test_a_history_longer_than_the_old_cap_pages_to_its_last_change(
    gql: GraphQLClient, services: Services, reports: int, first: int
) -> None:
    job_id = await job_with_reports(services, reports)
    pages = await read_all(gql, job_id, first)
    edges = [edge for page in pages for edge in page["edges"]]
    kinds = [edge["node"]["kind"] for edge in edges]
    assert kinds == ["CREATED", "STARTED", *["METRICS_REPORTED"] * reports, "COMPLETED"]
    assert {page["totalCount"] for page in pages} == {reports + 3}
    cursors = [edge["cursor"] for edge in edges]
    assert cursors == [edge["node"]["cursor"] for edge in edges]
    assert len(set(cursors)) == len(cursors)  # no change twice across pages
    assert pages[0]["pageInfo"]["startCursor"] == cursors[0]


async def test_first_zero_still_says_how_many_and_whether_more_follow(
    gql: GraphQLClient, services: Services
) -> None:
    job_id = await job_with_reports(services, 3, complete=False)
    history = (await gql.data(PAGE, id=job_id, first=0))["trainingJob"]["history"]
    assert history["edges"] == []
    assert history["pageInfo"]["hasNextPage"] is True
    assert history["totalCount"] == 5


@pytest.mark.parametrize(
    ("arguments", "field", "rule"),
    [
        ({"first": 101}, "first", "max"),
        ({"first": -1}, "first", "min"),
        ({"after": ""}, "after", "cursor"),
        ({"after": "not-a-cursor"}, "after", "cursor"),
        # A cursor of another list (trainingJobs) is not a position in a history.
        ({"after": "job-list-cursor"}, "after", "cursor"),
    ],
)
async def test_bad_page_arguments_are_refused_naming_the_argument(
    gql: GraphQLClient, services: Services, arguments: dict[str, Any], field: str, rule: str
) -> None:
    job_id = await job_with_reports(services, 1, complete=False)
    if arguments.get("after") == "job-list-cursor":
        page = await gql.data("{ trainingJobs(first: 1) { pageInfo { endCursor } } }")
        arguments = {"after": page["trainingJobs"]["pageInfo"]["endCursor"]}
    body = await gql.execute(PAGE, id=job_id, **arguments)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "VALIDATION_ERROR"
    assert (error["extensions"]["field"], error["extensions"]["rule"]) == (field, rule)


async def test_history_pages_of_a_page_of_jobs_are_one_batch(
    gql: GraphQLClient, services: Services, storage: MongoStorage
) -> None:
    version = await services.registry.register(
        model_name="batch", version="1.0.0", model_type="regression"
    )
    lengths = [1, 2, 3, 4, 6, 9, 1, 2]
    for reports in lengths:
        job = await services.training.create(model_id=version.model_id, dataset_id="d")
        await services.training.start(job.job_id)
        for step in range(reports):
            await services.training.report_metrics(job.job_id, {"step": float(step)})

    query = """query($first: Int, $after: String) { trainingJobs(first: 50) { edges { node {
        history(first: $first, after: $after) {
            totalCount pageInfo { hasNextPage } edges { node { kind } } } } } } }"""
    # Short histories: the page of jobs, every job's history page, every job's count.
    storage.stats.round_trips = 0
    data = await gql.data(query, first=20)
    assert storage.stats.round_trips == 3
    totals = sorted(e["node"]["history"]["totalCount"] for e in data["trainingJobs"]["edges"])
    assert totals == sorted(2 + n for n in lengths)
    assert not any(
        e["node"]["history"]["pageInfo"]["hasNextPage"] for e in data["trainingJobs"]["edges"]
    )

    # Pages shorter than the histories: the batch fills what it can, and each job whose page
    # it could not fill gets one more indexed read; never one per event or per page.
    storage.stats.round_trips = 0
    data = await gql.data(query, first=2)
    nodes = [e["node"]["history"] for e in data["trainingJobs"]["edges"]]
    assert storage.stats.round_trips <= 3 + len(lengths)
    for history in nodes:
        assert len(history["edges"]) == min(2, history["totalCount"])
        assert history["pageInfo"]["hasNextPage"] == (history["totalCount"] > 2)
