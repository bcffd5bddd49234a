"""Metric series through the public API (issue 13): batches of points, replacement on retry,
ordering, the job's latest metrics, limits that write nothing when refused, freeze at a final
status. Both backends."""

from __future__ import annotations

import json

import pytest

from graphql_api.domain import series
from graphql_api.domain.series import MAX_KEYS_PER_JOB, MAX_POINTS_PER_CALL
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.operations import CANCEL, COMPLETE, CREATE_JOB, FAIL, JOB, REGISTER, REPORT
from tests.series_helpers import points, read, report, running_job


async def test_a_batch_is_stored_and_read_back_in_step_order(gql: GraphQLClient) -> None:
    job_id = await running_job(gql)
    # Sent out of order, two keys interleaved, one with an explicit timestamp.
    sent = points("loss", [5, 1, 3]) + points("acc", [2, 0])
    sent[0]["timestamp"] = "2026-03-01T10:00:00.123456+02:00"
    job = await report(gql, job_id, sent)
    assert job["__typename"] == "TrainingJob", job
    assert job["metrics"] == {"loss": 0.5, "acc": 0.2}  # each key's highest step
    read_back = await read(gql, job_id)
    assert read_back["metricKeys"] == ["acc", "loss"]
    acc, loss = read_back["metricSeries"]
    assert [p["step"] for p in loss["points"]] == [1, 3, 5]
    assert [p["value"] for p in loss["points"]] == [0.1, 0.3, 0.5]
    assert loss["points"][2]["timestamp"] == "2026-03-01T08:00:00.123000+00:00"
    assert (loss["totalPoints"], loss["sampled"], loss["firstStep"], loss["lastStep"]) == (
        3,
        False,
        1,
        5,
    )
    assert (loss["min"], loss["max"], loss["last"]) == (0.1, 0.5, 0.5)
    assert [p["step"] for p in acc["points"]] == [0, 2]


async def test_a_retried_call_replaces_and_never_duplicates(gql: GraphQLClient) -> None:
    job_id = await running_job(gql)
    batch = points("loss", range(0, 3000, 3))[:MAX_POINTS_PER_CALL]
    for _ in range(3):
        assert (await report(gql, job_id, batch))["__typename"] == "TrainingJob"
    # A later call with new values for some stored steps replaces just those.
    await report(gql, job_id, points("loss", [3, 6], value=-1.0))
    (loss,) = (await read(gql, job_id, keys=["loss"], max=10_000))["metricSeries"]
    assert loss["totalPoints"] == MAX_POINTS_PER_CALL
    steps = [p["step"] for p in loss["points"]]
    assert steps == sorted(set(steps)) and len(steps) == MAX_POINTS_PER_CALL
    assert [p["value"] for p in loss["points"][:4]] == [0.0, -1.0, -1.0, 0.9]
    assert loss["min"] == -1.0


async def test_latest_metrics_follow_the_highest_step_not_the_last_call(
    gql: GraphQLClient,
) -> None:
    job_id = await running_job(gql)
    await report(gql, job_id, points("loss", [10], value=0.3))
    late = await report(gql, job_id, points("loss", [4], value=0.9))  # an old step arrives late
    assert late["metrics"] == {"loss": 0.3}
    newer = await report(gql, job_id, points("loss", [10, 11], value=0.2))
    assert newer["metrics"] == {"loss": 0.2}
    # The old form keeps working, and both forms share the job's metrics.
    old_form = (await gql.data(REPORT, id=job_id, metrics={"epoch": 2}))["reportTrainingMetrics"]
    assert old_form["metrics"] == {"loss": 0.2, "epoch": 2}


@pytest.mark.parametrize(
    ("bad", "field", "rule"),
    [
        ({"key": "a.b", "step": 1, "value": 1.0}, "points[1].key", "key_dot"),
        ({"key": "$x", "step": 1, "value": 1.0}, "points[1].key", "key_dollar"),
        ({"key": "", "step": 1, "value": 1.0}, "points[1].key", "min_length"),
        ({"key": "ok\u200b", "step": 1, "value": 1.0}, "points[1].key", "characters"),
        ({"key": "ok", "step": -1, "value": 1.0}, "points[1].step", "min"),
        (
            {"key": "ok", "step": 1, "value": 1.0, "timestamp": "2026-01-01T00:00:00"},
            "points[1].timestamp",
            "timezone",
        ),
    ],
)
async def test_a_bad_point_refuses_the_whole_call(
    gql: GraphQLClient, bad: dict[str, object], field: str, rule: str
) -> None:
    job_id = await running_job(gql)
    refused = await report(gql, job_id, [*points("loss", [1]), bad])
    assert refused["__typename"] == "ValidationError", refused
    assert (refused["field"], refused["rule"]) == (field, rule)
    assert (await read(gql, job_id))["metricKeys"] == []


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e309"])
async def test_values_must_be_finite(gql: GraphQLClient, value: str) -> None:
    job_id = await running_job(gql)
    # Written as the raw JSON a careless client sends (Python's json emits NaN and Infinity).
    query = (
        "mutation($id: ID!, $points: [MetricPointInput!]) { reportTrainingMetrics(jobId: $id, "
        "points: $points) { __typename ... on ValidationError { field rule } } }"
    )
    variables = f'{{"id": "{job_id}", "points": [{{"key": "loss", "step": 1, "value": {value}}}]}}'
    body = f'{{"query": {json.dumps(query)}, "variables": {variables}}}'
    response = await gql.http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    answer = response.json()
    # Refused by the transport, by GraphQL's Float, or by the service: never stored.
    if response.status_code == 200 and "errors" not in answer:
        result = answer["data"]["reportTrainingMetrics"]
        assert (result["field"], result["rule"]) == ("points[0].value", "finite_number")
    assert (await read(gql, job_id))["metricKeys"] == []


@pytest.mark.parametrize("step", [2**63, 1.5, "7", True])
async def test_steps_are_64_bit_integers(gql: GraphQLClient, step: object) -> None:
    job_id = await running_job(gql)
    body = await gql.execute(
        "mutation($id: ID!, $points: [MetricPointInput!]) { reportTrainingMetrics(jobId: $id, "
        "points: $points) { __typename } }",
        id=job_id,
        points=[{"key": "loss", "step": step, "value": 1.0}],
    )
    assert "errors" in body and "Int64" in body["errors"][0]["message"]
    assert (await read(gql, job_id))["metricKeys"] == []


async def test_the_largest_step_round_trips(gql: GraphQLClient) -> None:
    job_id = await running_job(gql)
    top = 2**63 - 1
    await report(gql, job_id, points("loss", [0, top - 5, top], value=1.5))
    (loss,) = (await read(gql, job_id, **{"from": top - 5}))["metricSeries"]
    assert [p["step"] for p in loss["points"]] == [top - 5, top]
    assert loss["totalPoints"] == 2


@pytest.mark.parametrize("count", [MAX_POINTS_PER_CALL + 1, 5000])
async def test_more_than_1000_points_per_call_is_refused_naming_the_limit(
    gql: GraphQLClient, count: int
) -> None:
    job_id = await running_job(gql)
    refused = await report(gql, job_id, points("loss", range(count)))
    assert (refused["__typename"], refused["field"], refused["rule"]) == (
        "ValidationError",
        "points",
        "max_items",
    )
    assert "1000" in refused["message"].replace(",", "")
    assert (await read(gql, job_id))["metricKeys"] == []


async def test_empty_or_missing_points_and_both_forms_are_refused(gql: GraphQLClient) -> None:
    job_id = await running_job(gql)
    assert (await report(gql, job_id, []))["rule"] == "min_length"
    both = await gql.data(
        "mutation($id: ID!) { reportTrainingMetrics(jobId: $id, metrics: {a: 1}, points: "
        '[{key: "a", step: 1, value: 1}]) { __typename ... on ValidationError { field } } }',
        id=job_id,
    )
    assert both["reportTrainingMetrics"]["__typename"] == "ValidationError"
    neither = await gql.data(
        "mutation($id: ID!) { reportTrainingMetrics(jobId: $id) { __typename "
        "... on ValidationError { rule } } }",
        id=job_id,
    )
    assert neither["reportTrainingMetrics"]["rule"] == "required"
    assert (await gql.data(JOB, id=job_id))["trainingJob"]["metrics"] == {}


@pytest.mark.parametrize("final", ["complete", "fail", "cancel"])
async def test_points_for_a_final_job_are_refused_and_the_series_frozen(
    gql: GraphQLClient, final: str
) -> None:
    job_id = await running_job(gql)
    await report(gql, job_id, points("loss", range(10)))
    if final == "complete":
        await gql.data(COMPLETE, id=job_id, metrics={"loss": 0.01})
    elif final == "fail":
        await gql.data(FAIL, id=job_id, reason="oom")
    else:
        await gql.data(CANCEL, id=job_id)
    before = await read(gql, job_id)
    for attempt in (points("loss", [3], value=9.0), points("loss", [100]), points("new", [1])):
        refused = await report(gql, job_id, attempt)
        assert refused["__typename"] == "InvalidTransitionError", refused
        assert refused["currentStatus"] in ("COMPLETED", "FAILED", "CANCELLED")
    assert await read(gql, job_id) == before


async def test_points_for_a_pending_job_are_refused_like_metrics(gql: GraphQLClient) -> None:
    model = (
        await gql.data(
            REGISTER, input={"modelName": "p", "version": "1.0.0", "modelType": "REGRESSION"}
        )
    )["registerModelVersion"]
    job = (await gql.data(CREATE_JOB, input={"modelId": model["modelId"], "datasetId": "d"}))[
        "createTrainingJob"
    ]
    refused = await report(gql, job["jobId"], points("loss", [1]))
    assert (refused["__typename"], refused["currentStatus"]) == (
        "InvalidTransitionError",
        "PENDING",
    )
    missing = await report(gql, "no-such-job", points("loss", [1]))
    assert (missing["__typename"], missing["field"]) == ("NotFoundError", "jobId")


async def test_points_are_not_change_events(gql: GraphQLClient, storage: MongoStorage) -> None:
    job_id = await running_job(gql)
    head = await storage.events.head()
    await report(gql, job_id, points("loss", range(50)))
    assert await storage.events.head() == head


async def test_a_job_holds_at_most_1000_keys_counting_both_forms(
    gql: GraphQLClient, storage: MongoStorage
) -> None:
    job_id = await running_job(gql)
    await gql.data(REPORT, id=job_id, metrics={f"old{i}": 1 for i in range(10)})
    first = [{"key": f"k{i}", "step": 0, "value": 1.0} for i in range(MAX_KEYS_PER_JOB - 10)]
    assert (await report(gql, job_id, first))["__typename"] == "TrainingJob"
    before = await read(gql, job_id)
    # One new key among replacements of stored ones: refused whole.
    refused = await report(gql, job_id, [*points("k1", [0, 1]), *points("one-more", [0])])
    assert (refused["__typename"], refused["field"], refused["rule"]) == (
        "ValidationError",
        "points",
        "max_items",
    )
    assert "1,000" in refused["message"] and "1,001" in refused["message"]
    assert await read(gql, job_id) == before
    # Stored keys take more points; the old form is held to the same count.
    assert (await report(gql, job_id, points("k1", [1, 2])))["__typename"] == "TrainingJob"
    old_form = (await gql.data(REPORT, id=job_id, metrics={"another": 1}))["reportTrainingMetrics"]
    assert old_form["__typename"] == "ValidationError"


async def test_the_points_limit_holds_for_what_is_stored(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real limit is 10,000,000; the rule is the same at any size.
    monkeypatch.setattr(series, "MAX_POINTS_PER_JOB", 2_500)
    job_id = await running_job(gql)
    await report(gql, job_id, points("a", range(1000)))
    await report(gql, job_id, points("b", range(1000)))
    before = await read(gql, job_id, max=10_000)
    refused = await report(gql, job_id, points("c", range(501)) + points("a", range(499)))
    assert (refused["__typename"], refused["rule"]) == ("ValidationError", "max_items")
    assert "2,000" in refused["message"] and "2,501" in refused["message"]
    assert await read(gql, job_id, max=10_000) == before
    # Replacements do not count; 500 new points exactly reach the limit.
    assert (await report(gql, job_id, points("a", range(1000), value=0.0)))["metrics"]["a"] == 0.0
    assert (await report(gql, job_id, points("c", range(500))))["__typename"] == "TrainingJob"
    totals = {s["key"]: s["totalPoints"] for s in (await read(gql, job_id))["metricSeries"]}
    assert totals == {"a": 1000, "b": 1000, "c": 500}
    assert (await report(gql, job_id, points("c", [999])))["__typename"] == "ValidationError"
