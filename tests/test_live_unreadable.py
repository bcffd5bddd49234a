"""Reading an event can never end a stream (issue 10, item 2).

Events are inserted straight into the log, as old or corrupt data would be: a record copy
written before a limit tightened, a copy that lost fields or has the wrong types, a header that
cannot be read. Live subscribers, subscribers resuming from before such an event, and history
readers all get past it: a copy that still has the record's shape is shown as recorded, anything
else is an explicit ``EVENT_UNREADABLE`` marker naming the event's cursor, and the next change
arrives as usual.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.api_helpers import create_job_id, mutate, register_id, report
from tests.live_fixtures import live_fixture  # noqa: F401 (fixtures)
from tests.live_servers import Server, WSClient, eventually
from tests.test_subscriptions import (
    HISTORY,
    JOB_UPDATES,
    MODEL_UPDATES,
    PROMOTE,
    START,
    Live,
    history_of,
)

Doc = dict[str, Any]

HISTORY_PAGE = """query($id: ID!, $after: String) {
  trainingJob(jobId: $id) {
    history(first: 1, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { kind status cursor } }
    }
  }
}"""


def too_many_metrics(doc: Doc) -> None:
    # Written before the stored-record cap: still the record's shape, shown as recorded.
    doc["snapshot"]["metrics"] = {f"m{i}": float(i) for i in range(300)}


def no_status_in_copy(doc: Doc) -> None:
    del doc["snapshot"]["status"]


def metrics_not_numbers(doc: Doc) -> None:
    doc["snapshot"]["metrics"] = {"loss": {"nested": "object"}}


def copy_not_an_object(doc: Doc) -> None:
    doc["snapshot"] = "corrupt"


def unknown_kind(doc: Doc) -> None:
    doc["kind"] = "EXPLODED"


def no_time(doc: Doc) -> None:
    del doc["occurred_at"]


def status_of_another_entity(doc: Doc) -> None:
    doc["status"] = "TESTING"


def no_entity(doc: Doc) -> None:
    # Nothing says whose event it is: every subscriber that might care is told.
    del doc["entity"]


#: Corruptions of the record's copy: a subscription cannot show the job, but history (which
#: shows the change, not the record) still can.
COPY_UNREADABLE = [no_status_in_copy, metrics_not_numbers, copy_not_an_object]
#: Corruptions of the event itself: history cannot show it either.
HEADER_UNREADABLE = [unknown_kind, no_time, no_entity]
#: Readable, but not an event of a job (a model version's status): cannot be shown as one.
UNREADABLE = [*COPY_UNREADABLE, *HEADER_UNREADABLE, status_of_another_entity]


async def insert_raw_copy(live: Live, entity_id: str, corrupt: Callable[[Doc], None]) -> int:
    """A copy of the entity's latest event, corrupted, stored as the next event of the log."""
    storage = live.storage
    assert storage is not None

    async def insert() -> int:
        events = storage.events
        cursor = storage.database["events"].find({"entity_id": entity_id}).sort("_id", -1).limit(1)
        (latest,) = await cursor.to_list(None)
        seq = await events._next_seq()
        doc = {**latest, "_id": seq, "event_id": uuid.uuid4().hex}
        doc["snapshot"] = dict(latest["snapshot"])
        corrupt(doc)
        await storage.database["events"].insert_one(doc)
        return seq

    return await live.loop.call(insert())


async def subscribed(live: Live, server: Server, count: int) -> bool:
    """The feed has ``count`` subscribers: what a subscription needs before changes are made."""
    return bool(await live.loop.peek(lambda: server.feed.subscriber_count) == count)


async def next_message(client: WSClient, op_id: str) -> dict[str, Any]:
    """The next result of ``op_id`` as sent (data and errors), failing if the stream ended."""
    message = await client.next_message(op_id, within=10)
    assert message["type"] in ("next", "data"), message
    payload: dict[str, Any] = message["payload"]
    return payload


def assert_marker(payload: dict[str, Any], field: str) -> str:
    assert payload.get("data") is None
    (error,) = payload["errors"]
    assert error["extensions"]["code"] == "EVENT_UNREADABLE"
    assert "skipped" in error["message"]
    assert error["path"][0] == field
    cursor: str = error["extensions"]["cursor"]
    return cursor


async def history_pages(live: Live, url: str, job_id: str) -> list[dict[str, Any]]:
    """Every page of the job's history, one change per page, errors included."""
    pages: list[dict[str, Any]] = []
    after = None
    http = live.http(live.servers[0])
    while True:
        response = await http.client.post(
            url, json={"query": HISTORY_PAGE, "variables": {"id": job_id, "after": after}}
        )
        body = response.json()
        pages.append(body)
        history = body["data"]["trainingJob"]["history"]
        if not history["pageInfo"]["hasNextPage"]:
            return pages
        after = history["pageInfo"]["endCursor"]
        assert len(pages) < 20


@pytest.mark.parametrize("corrupt", UNREADABLE, ids=lambda f: f.__name__)
async def test_job_streams_and_history_get_past_an_unreadable_event(
    live: Live, corrupt: Callable[[Doc], None]
) -> None:
    server = await live.start()
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    await mutate(http, START, id=job_id)
    before = history_of(await http.data(HISTORY, id=job_id))[-1]["cursor"]
    watching = await live.ws(server)
    live_op = await watching.subscribe(JOB_UPDATES, jobId=job_id)
    everything_op = await watching.subscribe(JOB_UPDATES)
    await eventually(
        lambda: subscribed(live, server, 2), within=10, what="both subscriptions registered"
    )

    seq = await insert_raw_copy(live, job_id, corrupt)
    await report(http, job_id, 7)

    resuming = await live.ws(server)
    resumed_op = await resuming.subscribe(JOB_UPDATES, jobId=job_id, after=before)
    for client, op in ((watching, live_op), (watching, everything_op), (resuming, resumed_op)):
        marker_cursor = assert_marker(await next_message(client, op), "trainingJobUpdates")
        after = await next_message(client, op)
        update = after["data"]["trainingJobUpdates"]
        assert (update["kind"], update["job"]["metrics"]) == ("METRICS_REPORTED", {"step": 7})
        # The marker's cursor resumes right after the unreadable event.
        follow = await live.ws(server)
        follow_op = await follow.subscribe(JOB_UPDATES, jobId=job_id, after=marker_cursor)
        assert (await follow.next(follow_op))["trainingJobUpdates"]["cursor"] == update["cursor"]

    pages = await history_pages(live, server.http_url, job_id)
    kinds: list[str | None] = []
    for page in pages:
        history = page["data"]["trainingJob"]["history"]
        assert history["totalCount"] == 4
        (edge,) = history["edges"]
        if edge["node"] is None:
            (error,) = page["errors"]
            assert error["extensions"]["code"] == "EVENT_UNREADABLE"
            assert error["extensions"]["cursor"] == edge["cursor"]
            assert error["path"][-2:] == ["edges", 0] or error["path"][-1] == "node"
            kinds.append(None)
        else:
            assert "errors" not in page
            kinds.append(edge["node"]["kind"])
    # The corrupt event is a copy of STARTED. History spells statuses as the job's status enum,
    # so a status that is not a job's cannot be shown there either.
    shown = (
        None if corrupt in HEADER_UNREADABLE or corrupt is status_of_another_entity else "STARTED"
    )
    assert kinds == ["CREATED", "STARTED", shown, "METRICS_REPORTED"]
    assert seq > 0


async def test_a_copy_written_under_older_limits_is_shown_as_recorded(live: Live) -> None:
    server = await live.start()
    http = live.http(server)
    job_id = await create_job_id(http, await register_id(http))
    await mutate(http, START, id=job_id)
    before = history_of(await http.data(HISTORY, id=job_id))[-1]["cursor"]
    await insert_raw_copy(live, job_id, too_many_metrics)
    await report(http, job_id, 1)

    client = await live.ws(server)
    op = await client.subscribe(JOB_UPDATES, jobId=job_id, after=before)
    recorded, following = await client.take(op, 2)
    assert len(recorded["trainingJobUpdates"]["job"]["metrics"]) == 300
    assert following["trainingJobUpdates"]["job"]["metrics"] == {"step": 1}
    kinds = [h["kind"] for h in history_of(await http.data(HISTORY, id=job_id))]
    assert kinds == ["CREATED", "STARTED", "STARTED", "METRICS_REPORTED"]


@pytest.mark.parametrize(
    "corrupt", [no_status_in_copy, unknown_kind, no_entity], ids=lambda f: f.__name__
)
async def test_the_model_version_stream_gets_past_an_unreadable_event(
    live: Live, corrupt: Callable[[Doc], None]
) -> None:
    server = await live.start()
    http = live.http(server)
    model_id = await register_id(http)
    client = await live.ws(server)
    op = await client.subscribe(MODEL_UPDATES, modelName="churn")
    await eventually(lambda: subscribed(live, server, 1), within=10, what="the subscription")
    await insert_raw_copy(live, model_id, corrupt)
    await mutate(http, PROMOTE, id=model_id)

    assert_marker(await next_message(client, op), "modelVersionUpdates")
    promoted = (await next_message(client, op))["data"]["modelVersionUpdates"]
    assert (promoted["kind"], promoted["status"]) == ("PROMOTED", "TESTING")
