"""Lists ordered by a metric (``orderByMetric``): walking every page returns every record once,
in (value, id) order, records without the metric last, with ties and missing values, on both
backends (a property test), and the argument's checks."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from graphql_api.domain.enums import ModelType
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import register_id
from tests.conftest import GraphQLClient

EXAMPLES = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_unique = itertools.count(1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)

VERSIONS = """
query($name: String!, $order: MetricOrderInput, $first: Int, $after: String) {
  modelVersions(filter: {modelNames: [$name]}, orderByMetric: $order, first: $first,
                after: $after) {
    edges { cursor node { modelId metrics } }
    pageInfo { hasNextPage endCursor }
  }
}"""

JOBS = """
query($model: ID!, $order: MetricOrderInput, $first: Int, $after: String) {
  trainingJobs(filter: {modelIds: [$model]}, orderByMetric: $order, first: $first,
               after: $after) {
    edges { cursor node { jobId metrics } }
    pageInfo { hasNextPage endCursor }
  }
}"""

#: Few distinct values, so ties are common; 1 and 1.0 are the same value (a tie too).
metric_values = st.one_of(
    st.none(), st.sampled_from([0, 1, 1.0, 0.5]), st.sampled_from([-2.5, 10**12, 0.1])
)


async def walk(gql: GraphQLClient, query: str, root: str, key: str, **variables: Any) -> list[str]:
    """Every page, following endCursor, as the ids in order."""
    seen: list[str] = []
    after = None
    for _ in range(100):
        data = (await gql.data(query, after=after, **variables))[root]
        seen += [edge["node"][key] for edge in data["edges"]]
        if not data["pageInfo"]["hasNextPage"]:
            return seen
        after = data["pageInfo"]["endCursor"]
    raise AssertionError("more than 100 pages")


def expected(records: dict[str, float | int | None], descending: bool) -> list[str]:
    have = sorted((value, record_id) for record_id, value in records.items() if value is not None)
    lacking = sorted(record_id for record_id, value in records.items() if value is None)
    if descending:
        have.reverse()
        lacking.reverse()
    return [record_id for _, record_id in have] + lacking


@EXAMPLES
@example(values=[1, 1.0, None, 1, 0.5, None, 1, None], first=2, descending=True)
@example(values=[None, 0, 0, None, 0, 1], first=1, descending=False)
@given(
    values=st.lists(metric_values, min_size=0, max_size=12),
    first=st.integers(1, 5),
    descending=st.booleans(),
)
async def test_pages_by_a_metric_hold_every_record_once_in_order(
    storage: MongoStorage,
    gql: GraphQLClient,
    values: list[float | int | None],
    first: int,
    descending: bool,
) -> None:
    n = next(_unique)
    name = f"ordered-{n}"
    model_id = await register_id(gql, "1.0.0", f"jobs-of-{n}")
    versions: dict[str, float | int | None] = {}
    jobs: dict[str, float | int | None] = {}
    for i, value in enumerate(values):
        metrics = {} if value is None else {"val_acc": value}
        # Ids not in creation order, so the id tie-break is not the insertion order.
        version_id = f"v{n}-{(i * 7) % 13:02d}-{i}"
        await storage.model_versions.insert(
            ModelVersion(
                model_id=version_id,
                model_name=name,
                version=f"1.{i}.0",
                model_type=ModelType.REGRESSION,
                metrics={**metrics, "other": i},
                created_date=T0 + timedelta(minutes=i),
            )
        )
        versions[version_id] = value
        job_id = f"j{n}-{(i * 5) % 11:02d}-{i}"
        await storage.training_jobs.insert(
            TrainingJob(job_id=job_id, model_id=model_id, dataset_id="d", metrics=metrics)
        )
        jobs[job_id] = value
    order = {"metric": "val_acc", "direction": "DESC" if descending else "ASC"}

    got = await walk(gql, VERSIONS, "modelVersions", "modelId", name=name, order=order, first=first)
    assert got == expected(versions, descending)
    got_jobs = await walk(
        gql, JOBS, "trainingJobs", "jobId", model=model_id, order=order, first=first
    )
    assert got_jobs == expected(jobs, descending)


async def test_order_by_metric_checks_its_arguments(gql: GraphQLClient) -> None:
    await register_id(gql)
    both = await gql.execute(
        '{ modelVersions(orderBy: VERSION_DESC, orderByMetric: {metric: "a"}) { totalCount } }'
    )
    assert both["errors"][0]["extensions"] == {
        "code": "VALIDATION_ERROR",
        "field": "orderByMetric",
        "rule": "range",
    }
    for metric, rule in (("", "min_length"), ("a.b", "key_dot"), ("$x", "key_dollar")):
        body = await gql.execute(
            "query($m: String!) { trainingJobs(orderByMetric: {metric: $m}) { totalCount } }",
            m=metric,
        )
        assert body["errors"][0]["extensions"] == {
            "code": "VALIDATION_ERROR",
            "field": "orderByMetric.metric",
            "rule": rule,
        }, body


async def test_a_cursor_of_another_metric_or_direction_is_refused(gql: GraphQLClient) -> None:
    for i in range(3):
        await register_id(gql, f"1.{i}.0", metrics={"a": i, "b": i})
    query = """query($o: MetricOrderInput, $after: String) {
      modelVersions(orderByMetric: $o, first: 1, after: $after) { pageInfo { endCursor } } }"""
    page = await gql.data(query, o={"metric": "a"})
    cursor = page["modelVersions"]["pageInfo"]["endCursor"]
    for other in ({"metric": "b"}, {"metric": "a", "direction": "ASC"}):
        body = await gql.execute(query, o=other, after=cursor)
        assert body["errors"][0]["extensions"]["rule"] == "cursor", body
    plain = await gql.execute(
        "query($after: String) { modelVersions(after: $after) { totalCount } }", after=cursor
    )
    assert plain["errors"][0]["extensions"]["rule"] == "cursor", plain
