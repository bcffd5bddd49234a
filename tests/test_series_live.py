"""trainingMetricUpdates (issue 13 item 4): new points pushed live over WebSocket, coalesced,
resumable from a message's cursor with no gap and no duplicate point, ending once every job is
final and its points are delivered. Real servers (uvicorn) on both backends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.api_helpers import create_job_id, mutate, register_id
from tests.live_fixtures import live_fixture  # noqa: F401 (fixtures)
from tests.live_servers import GraphQLHTTP, SubscriptionEnded
from tests.operations import COMPLETE, FAIL, START
from tests.series_helpers import REPORT_POINTS, points
from tests.test_subscriptions import Live

UPDATES = """
subscription($jobIds: [ID!]!, $keys: [String!], $after: String) {
  trainingMetricUpdates(jobIds: $jobIds, keys: $keys, after: $after) {
    cursor endedJobIds points { jobId key step value timestamp }
  }
}"""

Point = tuple[str, str, int, float]


async def running(http: GraphQLHTTP, name: str) -> str:
    job_id = await create_job_id(http, await register_id(http, name=name))
    await mutate(http, START, id=job_id)
    return job_id


async def send(http: GraphQLHTTP, job_id: str, sent: list[dict[str, Any]]) -> None:
    result = (await http.data(REPORT_POINTS, id=job_id, points=sent))["reportTrainingMetrics"]
    assert result["__typename"] == "TrainingJob", result


def flat(message: dict[str, Any]) -> list[Point]:
    return [
        (p["jobId"], p["key"], p["step"], p["value"])
        for p in message["trainingMetricUpdates"]["points"]
    ]


async def subscribe(client: Any, **variables: Any) -> tuple[str, dict[str, Any]]:
    """A subscription and its first message, sent at once (the cursor where it starts)."""
    op = await client.subscribe(UPDATES, **variables)
    return op, await client.next(op)


async def collect(client: Any, op: str, want: int, within: float = 10.0) -> list[dict[str, Any]]:
    """Messages until ``want`` points have arrived."""
    messages = []
    got = 0
    while got < want:
        message = await client.next(op, within)
        messages.append(message)
        got += len(flat(message))
    return messages


async def test_points_arrive_coalesced_and_exactly_once(live: Live) -> None:
    server = await live.start()
    http = live.http(server)
    job_id = await running(http, "live-a")
    await send(http, job_id, points("loss", range(5)))  # before subscribing: not delivered
    client = await live.ws(server)
    op, started = await subscribe(client, jobIds=[job_id])
    assert flat(started) == []
    calls = 12
    sent: list[Point] = []
    for call in range(calls):
        batch = points("loss", range(100 + call * 50, 150 + call * 50)) + points("lr", [call])
        await send(http, job_id, batch)
        sent += [(job_id, p["key"], p["step"], p["value"]) for p in batch]
    messages = await collect(client, op, len(sent))
    received = [point for message in messages for point in flat(message)]
    assert sorted(received) == sorted(sent)  # every point once, none from before subscribing
    assert len(messages) < calls  # coalesced: a message carries several calls' points
    assert await client.nothing_more(op, 1.2)


async def test_resuming_from_a_cursor_has_no_gap_and_no_duplicate(live: Live) -> None:
    server = await live.start()
    http = live.http(server)
    job_id, other = await running(http, "live-b"), await running(http, "live-c")
    client = await live.ws(server)
    op, _ = await subscribe(client, jobIds=[job_id, other])
    await send(http, job_id, points("loss", range(10)))
    first = await collect(client, op, 10)
    cursor = first[-1]["trainingMetricUpdates"]["cursor"]
    await client.unsubscribe(op)

    writing = asyncio.Event()

    async def keep_writing() -> None:
        for call in range(20):
            await send(
                http,
                job_id if call % 2 else other,
                points("loss", range(10 + call * 7, 17 + call * 7)),
            )
            if call == 5:
                writing.set()

    writer = asyncio.create_task(keep_writing())
    await writing.wait()  # resume while points keep coming: catch-up, then live
    again = await live.ws(server)
    op = await again.subscribe(UPDATES, jobIds=[job_id, other], after=cursor)
    await writer
    resumed = await collect(again, op, 20 * 7)
    received = [p for m in resumed for p in flat(m)]
    expected = [
        (job_id if call % 2 else other, "loss", step, step / 10)
        for call in range(20)
        for step in range(10 + call * 7, 17 + call * 7)
    ]
    assert sorted(received) == sorted(expected)
    assert len(set(received)) == len(received)
    # Each job's points come in the order they were written.
    for job in (job_id, other):
        steps = [p[2] for p in received if p[0] == job]
        assert steps == sorted(steps)
    assert await again.nothing_more(op, 1.2)


async def test_a_point_sent_again_comes_again_with_its_new_value(live: Live) -> None:
    server = await live.start()
    http = live.http(server)
    job_id = await running(http, "live-d")
    client = await live.ws(server)
    op, _ = await subscribe(client, jobIds=[job_id], keys=["loss"])
    await send(http, job_id, points("loss", [1, 2]) + points("acc", [1]))
    assert sorted(flat(*(await collect(client, op, 2)))) == [
        (job_id, "loss", 1, 0.1),
        (job_id, "loss", 2, 0.2),
    ]
    await send(http, job_id, points("loss", [2], value=9.0) + points("acc", [2]))
    assert flat(await client.next(op)) == [(job_id, "loss", 2, 9.0)]


@pytest.mark.parametrize("final", [COMPLETE, FAIL])
async def test_the_subscription_ends_when_every_job_is_final(live: Live, final: str) -> None:
    server = await live.start()
    http = live.http(server)
    first, second = await running(http, "live-e"), await running(http, "live-f")
    client = await live.ws(server)
    op, _ = await subscribe(client, jobIds=[first, second])
    await send(http, first, points("loss", range(3)))
    variables = {"reason": "diverged"} if final == FAIL else {}
    await mutate(http, final, id=first, **variables)
    ended_first: list[str] = []
    got: list[Point] = []
    while not ended_first:
        message = await client.next(op, 10)
        got += flat(message)
        ended_first = message["trainingMetricUpdates"]["endedJobIds"]
    assert ended_first == [first] and len(got) == 3
    refused = await http.data(REPORT_POINTS, id=first, points=points("loss", [9]))
    assert refused["reportTrainingMetrics"]["__typename"] == "InvalidTransitionError"
    await send(http, second, points("acc", [1]))
    await mutate(http, final, id=second, **variables)
    rest: list[dict[str, Any]] = []
    with pytest.raises(SubscriptionEnded, match="ended \\(complete\\)"):
        while True:
            rest.append(await client.next(op, 10))
    assert [p for m in rest for p in flat(m)] == [(second, "acc", 1, 0.1)]
    assert rest[-1]["trainingMetricUpdates"]["endedJobIds"] == [second]


async def test_a_job_already_final_ends_at_once_and_unknown_jobs_are_refused(
    live: Live,
) -> None:
    server = await live.start()
    http = live.http(server)
    job_id = await running(http, "live-g")
    await mutate(http, COMPLETE, id=job_id)
    client = await live.ws(server)
    op = await client.subscribe(UPDATES, jobIds=[job_id])
    assert (await client.next(op))["trainingMetricUpdates"]["endedJobIds"] == [job_id]
    with pytest.raises(SubscriptionEnded, match="complete"):
        await client.next(op)
    op = await client.subscribe(UPDATES, jobIds=[job_id, "no-such-job"])
    with pytest.raises(SubscriptionEnded) as ended:
        await client.next(op)
    assert "no-such-job" in str(ended.value)
    op = await client.subscribe(UPDATES, jobIds=[job_id], after="bm90IGEgY3Vyc29y")
    with pytest.raises(SubscriptionEnded) as bad:
        await client.next(op)
    assert bad.value.errors[0]["extensions"]["field"] == "after"
