"""``reportTrainingMetrics(series:)``, the columnar form of metric points (issue 13's ingest
goal): per key ``steps``, ``values`` and optional ``timestamps``. The same rules, limits and
write as ``points:``, through the public API on both backends."""

from __future__ import annotations

import json
from typing import Any

import pytest

from graphql_api.domain import series
from graphql_api.domain.series import MAX_KEYS_PER_JOB, MAX_POINTS_PER_CALL
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.operations import CANCEL, COMPLETE, ERROR_FIELDS, FAIL, JOB, JOB_FIELDS, REPORT
from tests.series_helpers import points, read, report, running_job

REPORT_SERIES = f"""
mutation($id: ID!, $series: [MetricSeriesInput!]) {{
  reportTrainingMetrics(jobId: $id, series: $series) {{
    ... on TrainingJob {{ {JOB_FIELDS} }} {ERROR_FIELDS}
  }}
}}"""


def column(key: str, steps: range | list[int], value: Any = None) -> dict[str, Any]:
    """One key's points as columns; values ``step / 10`` unless given (one number)."""
    steps = list(steps)
    values = [step / 10 if value is None else value for step in steps]
    return {"key": key, "steps": steps, "values": values}


async def report_columns(
    gql: GraphQLClient, job_id: str, sent: list[dict[str, Any]]
) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(REPORT_SERIES, id=job_id, series=sent))[
        "reportTrainingMetrics"
    ]
    return result


async def assert_only_a_later_good_call_is_stored(gql: GraphQLClient, job_id: str) -> None:
    assert (await read(gql, job_id))["metricKeys"] == []
    assert (await report_columns(gql, job_id, [column("loss", [4])]))["__typename"] == (
        "TrainingJob"
    )
    (loss,) = (await read(gql, job_id))["metricSeries"]
    assert [(p["step"], p["value"]) for p in loss["points"]] == [(4, 0.4)]


async def test_columns_store_what_the_same_points_store(gql: GraphQLClient) -> None:
    by_columns, by_points = await running_job(gql), await running_job(gql)
    stamps = ["2026-03-01T10:00:00.123456+02:00", "2026-03-01T09:00:00Z", "2026-03-01T11:00:00Z"]
    # Out of order, two keys, with timestamps; the same key again in a later entry.
    sent = [
        {**column("loss", [5, 1, 3]), "timestamps": stamps},
        {**column("acc", [2, 0]), "timestamps": stamps[:2]},
        {**column("acc", [7]), "timestamps": stamps[2:]},
    ]
    job = await report_columns(gql, by_columns, sent)
    assert job["__typename"] == "TrainingJob", job
    assert job["metrics"] == {"loss": 0.5, "acc": 0.7}  # each key's highest step
    as_points = points("loss", [5, 1, 3]) + points("acc", [2, 0, 7])
    for point, stamp in zip(as_points, stamps * 2, strict=True):
        point["timestamp"] = stamp
    await report(gql, by_points, as_points)
    read_back = await read(gql, by_columns)
    assert read_back == await read(gql, by_points)
    acc, loss = read_back["metricSeries"]
    assert [p["step"] for p in loss["points"]] == [1, 3, 5]
    assert [p["value"] for p in loss["points"]] == [0.1, 0.3, 0.5]
    assert loss["points"][2]["timestamp"] == "2026-03-01T08:00:00.123000+00:00"
    assert [p["step"] for p in acc["points"]] == [0, 2, 7]


async def test_a_retried_call_replaces_and_never_duplicates(gql: GraphQLClient) -> None:
    job_id = await running_job(gql)
    batch = [column("loss", range(0, 1500, 3)), column("acc", range(500))]
    for _ in range(3):
        assert (await report_columns(gql, job_id, batch))["__typename"] == "TrainingJob"
    # New values for some stored steps replace just those; within one call the later wins.
    await report_columns(gql, job_id, [column("loss", [3, 6, 3], value=-1.0)])
    await report_columns(gql, job_id, [column("loss", [9], value=5.0), column("loss", [9])])
    loss, acc = (await read(gql, job_id, keys=["loss", "acc"], max=10_000))["metricSeries"]
    assert (loss["totalPoints"], acc["totalPoints"]) == (500, 500)
    assert [p["value"] for p in loss["points"][:5]] == [0.0, -1.0, -1.0, 0.9, 1.2]
    assert loss["min"] == -1.0


@pytest.mark.parametrize(
    ("bad", "field", "rule"),
    [
        ({"key": "a.b", "steps": [1], "values": [1.0]}, "series[1].key", "key_dot"),
        ({"key": "$x", "steps": [1], "values": [1.0]}, "series[1].key", "key_dollar"),
        ({"key": "", "steps": [1], "values": [1.0]}, "series[1].key", "min_length"),
        ({"key": "ok\u200b", "steps": [1], "values": [1.0]}, "series[1].key", "characters"),
        ({"key": "ok", "steps": [1, -1], "values": [1.0, 2.0]}, "series[1].steps[1]", "min"),
        ({"key": "ok", "steps": [1, 2], "values": [1.0]}, "series[1].values", "same_length"),
        ({"key": "ok", "steps": [1], "values": [1.0, 2.0]}, "series[1].values", "same_length"),
        ({"key": "ok", "steps": [], "values": [1.0]}, "series[1].values", "same_length"),
        (
            {
                "key": "ok",
                "steps": [1, 2],
                "values": [1, 2],
                "timestamps": ["2026-01-01T00:00:00Z"],
            },
            "series[1].timestamps",
            "same_length",
        ),
        (
            {"key": "ok", "steps": [1], "values": [1], "timestamps": []},
            "series[1].timestamps",
            "same_length",
        ),
        (
            {
                "key": "ok",
                "steps": [1, 2],
                "values": [1, 2],
                "timestamps": ["2026-01-01T00:00:00Z", "2026-01-01T00:00:00"],
            },
            "series[1].timestamps[1]",
            "timezone",
        ),
    ],
)
async def test_a_bad_column_refuses_the_whole_call(
    gql: GraphQLClient, bad: dict[str, object], field: str, rule: str
) -> None:
    job_id = await running_job(gql)
    refused = await report_columns(gql, job_id, [column("loss", [1]), bad])
    assert refused["__typename"] == "ValidationError", refused
    assert (refused["field"], refused["rule"]) == (field, rule)
    assert (await read(gql, job_id))["metricKeys"] == []
    assert (await gql.data(JOB, id=job_id))["trainingJob"]["metrics"] == {}


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e309"])
async def test_values_must_be_finite(gql: GraphQLClient, value: str) -> None:
    job_id = await running_job(gql)
    query = (
        "mutation($id: ID!, $series: [MetricSeriesInput!]) { reportTrainingMetrics(jobId: $id, "
        "series: $series) { __typename ... on ValidationError { field rule } } }"
    )
    variables = (
        f'{{"id": "{job_id}", "series": [{{"key": "loss", "steps": [1, 2], '
        f'"values": [1.0, {value}]}}]}}'
    )
    body = f'{{"query": {json.dumps(query)}, "variables": {variables}}}'
    response = await gql.http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    answer = response.json()
    # Refused by the transport, by GraphQL's Float, or by the service: never stored.
    assert (
        response.status_code != 200
        or "errors" in answer
        or (answer["data"]["reportTrainingMetrics"]["rule"] == "finite_number")
    )
    await assert_only_a_later_good_call_is_stored(gql, job_id)


@pytest.mark.parametrize("step", [2**63, 1.5, "7", True, None])
async def test_steps_are_64_bit_integers(gql: GraphQLClient, step: object) -> None:
    job_id = await running_job(gql)
    body = await gql.execute(
        REPORT_SERIES, id=job_id, series=[{"key": "loss", "steps": [0, step], "values": [1, 2]}]
    )
    assert "errors" in body, body
    assert "Int64" in body["errors"][0]["message"] or "non-null" in body["errors"][0]["message"]
    await assert_only_a_later_good_call_is_stored(gql, job_id)


async def test_the_largest_step_round_trips(gql: GraphQLClient) -> None:
    job_id = await running_job(gql)
    top = 2**63 - 1
    await report_columns(gql, job_id, [column("loss", [0, top - 5, top], value=1.5)])
    (loss,) = (await read(gql, job_id, **{"from": top - 5}))["metricSeries"]
    assert [p["step"] for p in loss["points"]] == [top - 5, top]


@pytest.mark.parametrize(
    "sent",
    [
        [column("loss", range(MAX_POINTS_PER_CALL + 1))],
        # The limit counts every key of the call together, not each column.
        [column(f"k{i}", range(300)) for i in range(4)],
        [column("loss", range(999)), column("acc", range(2))],
        [column(f"k{i}", range(1)) for i in range(MAX_POINTS_PER_CALL + 1)],
    ],
)
async def test_more_than_1000_points_per_call_is_refused_naming_the_limit(
    gql: GraphQLClient, sent: list[dict[str, Any]]
) -> None:
    job_id = await running_job(gql)
    refused = await report_columns(gql, job_id, sent)
    assert (refused["__typename"], refused["field"], refused["rule"]) == (
        "ValidationError",
        "series",
        "max_items",
    )
    assert "1000" in refused["message"].replace(",", "")
    assert (await read(gql, job_id))["metricKeys"] == []
    # Exactly 1,000 across keys is accepted.
    fits = [column("loss", range(998)), column("acc", range(2))]
    assert (await report_columns(gql, job_id, fits))["__typename"] == "TrainingJob"


async def test_empty_series_and_two_forms_at_once_are_refused(gql: GraphQLClient) -> None:
    job_id = await running_job(gql)
    assert (await report_columns(gql, job_id, []))["rule"] == "min_length"
    empty = await report_columns(gql, job_id, [{"key": "loss", "steps": [], "values": []}])
    assert (empty["field"], empty["rule"]) == ("series", "min_length")
    for other in ("metrics: {a: 1}", 'points: [{key: "a", step: 1, value: 1}]'):
        both = await gql.data(
            f"mutation($id: ID!) {{ reportTrainingMetrics(jobId: $id, {other}, series: "
            '[{key: "a", steps: [1], values: [1]}]) { __typename ... on ValidationError '
            "{ field rule } } }",
            id=job_id,
        )
        assert both["reportTrainingMetrics"]["__typename"] == "ValidationError", both
        assert both["reportTrainingMetrics"]["rule"] == "invalid"
    assert (await gql.data(JOB, id=job_id))["trainingJob"]["metrics"] == {}
    assert (await read(gql, job_id))["metricKeys"] == []


@pytest.mark.parametrize("final", ["complete", "fail", "cancel"])
async def test_columns_for_a_final_job_are_refused_and_the_series_frozen(
    gql: GraphQLClient, final: str
) -> None:
    job_id = await running_job(gql)
    await report_columns(gql, job_id, [column("loss", range(10))])
    if final == "complete":
        await gql.data(COMPLETE, id=job_id, metrics={"loss": 0.01})
    elif final == "fail":
        await gql.data(FAIL, id=job_id, reason="oom")
    else:
        await gql.data(CANCEL, id=job_id)
    before = await read(gql, job_id)
    for attempt in ([column("loss", [3], value=9.0)], [column("loss", [100])], [column("n", [1])]):
        refused = await report_columns(gql, job_id, attempt)
        assert refused["__typename"] == "InvalidTransitionError", refused
        assert refused["currentStatus"] in ("COMPLETED", "FAILED", "CANCELLED")
    assert await read(gql, job_id) == before
    missing = await report_columns(gql, "no-such-job", [column("loss", [1])])
    assert (missing["__typename"], missing["field"]) == ("NotFoundError", "jobId")


async def test_columns_are_not_change_events(gql: GraphQLClient, storage: MongoStorage) -> None:
    job_id = await running_job(gql)
    head = await storage.events.head()
    await report_columns(gql, job_id, [column("loss", range(50))])
    assert await storage.events.head() == head


async def test_the_key_and_points_limits_hold_for_what_is_stored(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(series, "MAX_POINTS_PER_JOB", 2_500)
    job_id = await running_job(gql)
    await report_columns(gql, job_id, [column("a", range(1000))])
    await report(gql, job_id, points("b", range(1000)))  # both forms count together
    before = await read(gql, job_id, max=10_000)
    refused = await report_columns(gql, job_id, [column("c", range(501)), column("a", range(499))])
    assert (refused["__typename"], refused["field"], refused["rule"]) == (
        "ValidationError",
        "series",
        "max_items",
    )
    assert "2,000" in refused["message"] and "2,501" in refused["message"]
    assert await read(gql, job_id, max=10_000) == before
    # Replacements do not count; 500 new points exactly reach the limit.
    assert (await report_columns(gql, job_id, [column("c", range(500))]))["__typename"] == (
        "TrainingJob"
    )
    assert (await report_columns(gql, job_id, [column("c", [999])]))["rule"] == "max_items"


async def test_a_job_holds_at_most_1000_keys(gql: GraphQLClient) -> None:
    job_id = await running_job(gql)
    await gql.data(REPORT, id=job_id, metrics={f"old{i}": 1 for i in range(10)})
    first = [column(f"k{i}", [0]) for i in range(MAX_KEYS_PER_JOB - 10)]
    assert (await report_columns(gql, job_id, first))["__typename"] == "TrainingJob"
    before = await read(gql, job_id)
    refused = await report_columns(gql, job_id, [column("k1", [0, 1]), column("one-more", [0])])
    assert (refused["field"], refused["rule"]) == ("series", "max_items")
    assert await read(gql, job_id) == before
