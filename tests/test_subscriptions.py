"""Live subscriptions end to end: a real uvicorn server, real WebSocket clients, both protocols.

Changes are made with real HTTP mutations, the way a worker makes them; subscribers are
``websockets`` clients speaking graphql-transport-ws or the legacy graphql-ws. With
``MLTRAIN_TEST_MONGODB_URI`` set, every test also runs on that server, and the two-instance
test runs two ``mltrain serve`` processes on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import websockets

from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import create_job_id, mutate, register_id, report
from tests.conftest import BACKENDS, REAL_URI
from tests.live_servers import (
    LEGACY_WS,
    REAL_SERVER_TIMEOUT,
    TRANSPORT_WS,
    GraphQLHTTP,
    Server,
    ServerLoop,
    SubscriptionEnded,
    WSClient,
    eventually,
    serving,
)

PROTOCOLS = [TRANSPORT_WS, LEGACY_WS]

UPDATE_FIELDS = "cursor kind previousStatus status occurredAt"
JOB_UPDATES = f"""
subscription($jobId: ID, $modelId: ID, $statuses: [TrainingStatus!], $after: String) {{
  trainingJobUpdates(jobId: $jobId, modelId: $modelId, statuses: $statuses, after: $after) {{
    {UPDATE_FIELDS} job {{ jobId modelId status metrics logsUrl }}
  }}
}}"""
BIG_JOB_UPDATES = f"""
subscription($after: String) {{
  trainingJobUpdates(after: $after) {{ {UPDATE_FIELDS} job {{ jobId hyperparameters }} }}
}}"""
MODEL_UPDATES = f"""
subscription($modelName: String, $after: String) {{
  modelVersionUpdates(modelName: $modelName, after: $after) {{
    {UPDATE_FIELDS} modelVersion {{ modelId modelName version status }}
  }}
}}"""

ERRORS = "... on Error { code message }"
REGISTER = f"""mutation($input: RegisterModelVersionInput!) {{
  registerModelVersion(input: $input) {{ ... on ModelVersion {{ modelId }} {ERRORS} }} }}"""
PROMOTE = f"""mutation($id: ID!) {{
  promoteModelVersion(modelId: $id) {{ ... on ModelVersion {{ status }} {ERRORS} }} }}"""
CREATE_JOB = f"""mutation($input: CreateTrainingJobInput!) {{
  createTrainingJob(input: $input) {{ ... on TrainingJob {{ jobId }} {ERRORS} }} }}"""
START = f"""mutation($id: ID!) {{
  startTrainingJob(jobId: $id) {{ ... on TrainingJob {{ status }} {ERRORS} }} }}"""
REPORT = f"""mutation($id: ID!, $metrics: JSON!) {{
  reportTrainingMetrics(jobId: $id, metrics: $metrics) {{
    ... on TrainingJob {{ status }} {ERRORS}
  }}
}}"""
SET_LOGS = f"""mutation($id: ID!, $url: String!) {{
  setTrainingJobLogsUrl(jobId: $id, logsUrl: $url) {{ ... on TrainingJob {{ status }} {ERRORS} }}
}}"""
COMPLETE = f"""mutation($id: ID!) {{
  completeTrainingJob(jobId: $id, metrics: {{loss: 0.1}}) {{
    ... on TrainingJob {{ status }} {ERRORS}
  }}
}}"""
CANCEL = f"""mutation($id: ID!) {{
  cancelTrainingJob(jobId: $id) {{ ... on TrainingJob {{ status }} {ERRORS} }} }}"""
WORKER_WATCH = """
subscription($jobId: ID) { trainingJobUpdates(jobId: $jobId) {
  kind status job { cancelRequestedAt cancelDeadlineAt } } }"""
CLAIM = f"""mutation($queue: String!) {{
  claimTrainingJob(queue: $queue, workerId: "w-1") {{ ... on TrainingJob {{ status }} {ERRORS} }}
}}"""
CANCEL_WITH_GRACE = f"""mutation($id: ID!) {{
  cancelTrainingJob(jobId: $id, graceSeconds: 60) {{
    ... on TrainingJob {{ cancelRequestedAt cancelDeadlineAt }} {ERRORS}
  }}
}}"""
HISTORY = """query($id: ID!) {
  trainingJob(jobId: $id) { history(first: 100) { edges { node { cursor kind status } } } }
}"""


def history_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in data["trainingJob"]["history"]["edges"]]


# Servers ---------------------------------------------------------------------------------


class Live:
    """One test's database, the servers over it, and the clients opened on them."""

    def __init__(self, loop: ServerLoop, backend: str) -> None:
        self.loop = loop
        self.backend = backend
        self.database = f"mltrain_test_{uuid.uuid4().hex[:12]}"
        self.storage: MongoStorage | None = None
        #: Every storage opened (on a real server, one per instance): each is closed at the end.
        self._storages: list[MongoStorage] = []
        self.servers: list[Server] = []
        self._clients: list[WSClient] = []
        self._http: list[GraphQLHTTP] = []

    async def start(self, send_buffer: int | None = None, **settings: Any) -> Server:
        """A server over this test's database. On the mock, servers share one client (the
        mock's data lives in it); on a real server each has its own connection."""
        uri = REAL_URI if self.backend == "real" else None
        if self.storage is None or uri is not None:

            async def connect() -> MongoStorage:
                return MongoStorage.connect(uri, self.database, timeout=REAL_SERVER_TIMEOUT)

            storage = await self.loop.call(connect())
            self._storages.append(storage)
            self.storage = self.storage or storage
        else:
            storage = self.storage
        options = {"graphiql": False, "ws_keep_alive_interval": 30.0, **settings}
        server = await self.loop.start(Settings(**options), storage, send_buffer)
        self.servers.append(server)
        return server

    def http(self, server: Server) -> GraphQLHTTP:
        client = GraphQLHTTP(server.http_url)
        self._http.append(client)
        return client

    async def ws(self, server: Server, protocol: str = TRANSPORT_WS, **options: Any) -> WSClient:
        client = await WSClient.open(server.ws_url, protocol, **options)
        self._clients.append(client)
        return client

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
        for http in self._http:
            await http.aclose()
        await self.loop.stop_all()
        storages = self._storages

        async def drop_and_close() -> None:
            if self.backend == "real" and storages:
                await storages[0].database.client.drop_database(self.database)
            for storage in storages:
                await storage.close()

        await self.loop.call(drop_and_close())


@pytest.fixture(params=BACKENDS)
async def live(request: pytest.FixtureRequest, server_loop: ServerLoop) -> AsyncIterator[Live]:
    harness = Live(server_loop, request.param)
    try:
        yield harness
    finally:
        await harness.close()


# Changes, made as a client makes them -----------------------------------------------------


def updates(results: list[dict[str, Any]], field: str = "trainingJobUpdates") -> list[Any]:
    return [r[field] for r in results]


# Live delivery -----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_every_change_of_a_job_arrives_live_in_order(live: Live, protocol: str) -> None:
    server = await live.start()
    http = live.http(server)
    client = await live.ws(server, protocol)
    model_id = await register_id(http)
    op = await client.subscribe(JOB_UPDATES)
    await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 1))

    job_id = await create_job_id(http, model_id)
    await mutate(http, START, id=job_id)
    await report(http, job_id, 1)
    await mutate(http, SET_LOGS, id=job_id, url="s3://logs/run-1")
    await mutate(http, COMPLETE, id=job_id)

    got = updates(await client.take(op, 5))
    assert [(u["kind"], u["previousStatus"], u["status"]) for u in got] == [
        ("CREATED", None, "PENDING"),
        ("STARTED", "PENDING", "RUNNING"),
        ("METRICS_REPORTED", "RUNNING", "RUNNING"),
        ("LOGS_URL_SET", "RUNNING", "RUNNING"),
        ("COMPLETED", "RUNNING", "COMPLETED"),
    ]
    # Each event carries the job as it was right after that change.
    assert got[0]["job"] == {
        "jobId": job_id,
        "modelId": model_id,
        "status": "PENDING",
        "metrics": {},
        "logsUrl": None,
    }
    assert got[2]["job"]["metrics"] == {"step": 1}
    assert got[3]["job"]["logsUrl"] == "s3://logs/run-1"
    assert got[4]["job"]["metrics"] == {"step": 1, "loss": 0.1}
    assert len({u["cursor"] for u in got}) == 5
    assert all(u["occurredAt"] for u in got)


async def test_model_version_updates_let_an_inference_service_swap_versions(live: Live) -> None:
    server = await live.start()
    http = live.http(server)
    client = await live.ws(server)
    op = await client.subscribe(MODEL_UPDATES, modelName="churn")
    await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 1))

    v1 = await register_id(http, "1.0.0", "churn")
    await register_id(http, "1.0.0", "fraud")  # another model: not for this subscriber
    await mutate(http, PROMOTE, id=v1)
    await mutate(http, PROMOTE, id=v1)
    v2 = await register_id(http, "1.1.0", "churn")
    await mutate(http, PROMOTE, id=v2)
    await mutate(http, PROMOTE, id=v2)

    got = updates(await client.take(op, 7), "modelVersionUpdates")
    assert [(u["kind"], u["modelVersion"]["version"], u["status"]) for u in got] == [
        ("REGISTERED", "1.0.0", "DEVELOPMENT"),
        ("PROMOTED", "1.0.0", "TESTING"),
        ("DEPLOYED", "1.0.0", "PRODUCTION"),
        ("REGISTERED", "1.1.0", "DEVELOPMENT"),
        ("PROMOTED", "1.1.0", "TESTING"),
        # The swap with no gap: the new version is deployed, then the old one retires.
        ("DEPLOYED", "1.1.0", "PRODUCTION"),
        ("ARCHIVED", "1.0.0", "ARCHIVED"),
    ]
    assert got[6]["previousStatus"] == "PRODUCTION"
    assert got[5]["modelVersion"]["modelId"] == v2


# Resuming ----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_client_that_comes_back_gets_what_it_missed_then_live_changes(
    live: Live, protocol: str
) -> None:
    server = await live.start()
    http = live.http(server)
    model_id = await register_id(http)
    job_id = await create_job_id(http, model_id)
    await mutate(http, START, id=job_id)

    client = await live.ws(server, protocol)
    op = await client.subscribe(JOB_UPDATES, jobId=job_id)
    await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 1))
    await report(http, job_id, 1)
    first = updates(await client.take(op, 1))[0]
    await client.close()  # the connection drops
    await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 0))

    for step in (2, 3, 4):  # changes made while the client is away
        await report(http, job_id, step)

    client = await live.ws(server, protocol)
    op = await client.subscribe(JOB_UPDATES, jobId=job_id, after=first["cursor"])
    missed = updates(await client.take(op, 3))
    assert [u["job"]["metrics"]["step"] for u in missed] == [2, 3, 4]
    await mutate(http, COMPLETE, id=job_id)  # and then the live ones
    (done,) = updates(await client.take(op, 1))
    assert done["kind"] == "COMPLETED"
    cursors = [first["cursor"], *(u["cursor"] for u in missed), done["cursor"]]
    assert len(set(cursors)) == 5


async def test_resuming_while_changes_keep_coming_has_no_gap_and_no_duplicate(live: Live) -> None:
    server = await live.start()
    http = live.http(server)
    model_id = await register_id(http)
    job_id = await create_job_id(http, model_id)
    await mutate(http, START, id=job_id)
    (start_cursor,) = [h["cursor"] for h in history_of(await http.data(HISTORY, id=job_id))][-1:]

    some_landed = asyncio.Event()

    async def keep_changing() -> None:
        for step in range(40):
            await report(http, job_id, step)
            if step == 10:
                some_landed.set()

    writer = asyncio.create_task(keep_changing())
    await some_landed.wait()  # subscribe mid-stream: catch-up, then live, while changes go on
    client = await live.ws(server)
    op = await client.subscribe(JOB_UPDATES, jobId=job_id, after=start_cursor)
    got = updates(await client.take(op, 40, within=10))
    await writer
    # Catch-up and live joined at the seam without losing or repeating a change.
    assert [u["job"]["metrics"]["step"] for u in got] == list(range(40))
    history = history_of(await http.data(HISTORY, id=job_id))
    assert [u["cursor"] for u in got] == [h["cursor"] for h in history[2:]]


async def test_a_history_cursor_starts_a_subscription_right_after_that_change(live: Live) -> None:
    server = await live.start()
    http = live.http(server)
    model_id = await register_id(http)
    job_id = await create_job_id(http, model_id)
    await mutate(http, START, id=job_id)
    history = history_of(await http.data(HISTORY, id=job_id))
    assert [h["kind"] for h in history] == ["CREATED", "STARTED"]

    client = await live.ws(server)
    op = await client.subscribe(JOB_UPDATES, jobId=job_id, after=history[0]["cursor"])
    (started,) = updates(await client.take(op, 1))
    assert (started["kind"], started["cursor"]) == ("STARTED", history[1]["cursor"])


@pytest.mark.parametrize("cursor", ["not-a-cursor", "Y2hnOi0x", ""])
async def test_a_malformed_cursor_is_refused_clearly(live: Live, cursor: str) -> None:
    server = await live.start()
    client = await live.ws(server)
    op = await client.subscribe(JOB_UPDATES, after=cursor)
    with pytest.raises(SubscriptionEnded) as ended:
        await client.next(op)
    (error,) = ended.value.errors
    assert error["extensions"]["code"] == "VALIDATION_ERROR"
    assert error["extensions"]["field"] == "after"
    assert "cursor" in error["message"]


async def test_a_cursor_ahead_of_the_log_is_refused(live: Live) -> None:
    server = await live.start()
    client = await live.ws(server)
    far = "Y2hnOjk5OTk5OQ"  # chg:999999
    op = await client.subscribe(JOB_UPDATES, after=far)
    with pytest.raises(SubscriptionEnded) as ended:
        await client.next(op)
    assert "ahead of the change log" in ended.value.errors[0]["message"]


# Filters -----------------------------------------------------------------------------------


async def test_filters_deliver_only_matching_jobs(live: Live) -> None:
    server = await live.start()
    http = live.http(server)
    churn = await register_id(http, name="churn")
    fraud = await register_id(http, name="fraud")
    watched = await create_job_id(http, churn)
    client = await live.ws(server)
    by_job = await client.subscribe(JOB_UPDATES, jobId=watched)
    by_model = await client.subscribe(JOB_UPDATES, modelId=fraud)
    ended = await client.subscribe(JOB_UPDATES, statuses=["COMPLETED", "CANCELLED"])
    await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 3))

    other = await create_job_id(http, churn)
    fraud_job = await create_job_id(http, fraud)
    await mutate(http, START, id=other)
    await mutate(http, CANCEL, id=fraud_job)
    await mutate(http, START, id=watched)
    await mutate(http, COMPLETE, id=other)

    # Events arrive in log order, so each subscriber's next event being the one expected
    # proves that the changes in between were not sent to it.
    (job_event,) = updates(await client.take(by_job, 1))
    assert (job_event["job"]["jobId"], job_event["kind"]) == (watched, "STARTED")
    model_events = updates(await client.take(by_model, 2))
    assert [(u["job"]["jobId"], u["kind"]) for u in model_events] == [
        (fraud_job, "CREATED"),
        (fraud_job, "CANCELLED"),
    ]
    ended_events = updates(await client.take(ended, 2))
    assert [(u["job"]["jobId"], u["status"]) for u in ended_events] == [
        (fraud_job, "CANCELLED"),
        (other, "COMPLETED"),
    ]
    await mutate(http, COMPLETE, id=watched)
    assert updates(await client.take(by_job, 1))[0]["kind"] == "COMPLETED"
    assert updates(await client.take(ended, 1))[0]["job"]["jobId"] == watched


async def test_a_worker_watching_its_job_sees_a_graceful_cancel_request(live: Live) -> None:
    """Issue 15 item 6: a worker learns of a graceful cancel from its heartbeat answer or
    from its job's subscription, which carries the request and the deadline."""
    server = await live.start()
    http = live.http(server)
    queue = f"q-{uuid.uuid4().hex[:8]}"
    job_id = await create_job_id(http, await register_id(http), queue=queue)
    client = await live.ws(server)
    watching = await client.subscribe(WORKER_WATCH, jobId=job_id)
    await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 1))

    await mutate(http, CLAIM, queue=queue)
    asked = await mutate(http, CANCEL_WITH_GRACE, id=job_id)
    got = updates(await client.take(watching, 2))
    assert [(u["kind"], u["status"]) for u in got] == [
        ("CLAIMED", "RUNNING"),
        ("CANCEL_REQUESTED", "RUNNING"),
    ]
    assert got[0]["job"]["cancelRequestedAt"] is None
    request = got[1]["job"]
    assert request["cancelRequestedAt"] == asked["cancelRequestedAt"]
    assert request["cancelDeadlineAt"] == asked["cancelDeadlineAt"]


# Across instances --------------------------------------------------------------------------


@pytest.fixture
def serve_processes(live: Live) -> Iterator[list[str]]:
    """Two ``mltrain serve`` processes on the real server's test database (real backend);
    their base URLs, once both answer."""
    with contextlib.ExitStack() as stack:
        urls = []
        if live.backend == "real":
            env = {
                "MLTRAIN_MONGODB_URI": str(REAL_URI),
                "MLTRAIN_MONGODB_DATABASE": live.database,
                "MLTRAIN_LOG_LEVEL": "warning",
            }
            urls = [stack.enter_context(serving(env=env))[0] for _ in range(2)]
        yield urls


async def test_a_change_on_one_instance_reaches_a_subscriber_on_another(
    live: Live, serve_processes: list[str]
) -> None:
    if serve_processes:  # real database: two `mltrain serve` processes
        writer, reader = serve_processes
        writer_url, reader_ws = f"{writer}/graphql", f"{reader.replace('http', 'ws', 1)}/graphql"
    else:  # the mock lives in one process: two servers there, each with its own feed
        first, second = await live.start(), await live.start()
        writer_url, reader_ws = first.http_url, second.ws_url
    http = GraphQLHTTP(writer_url)
    client = await WSClient.open(reader_ws)
    try:
        model_id = await register_id(http)
        job_id = await create_job_id(http, model_id)
        history = history_of(await http.data(HISTORY, id=job_id))
        # Resuming from the creation: the subscription cannot miss the start, however long
        # the other process takes to set it up; once the start arrives, it is live.
        op = await client.subscribe(JOB_UPDATES, jobId=job_id, after=history[0]["cursor"])
        await mutate(http, START, id=job_id)
        assert updates(await client.take(op, 1))[0]["kind"] == "STARTED"
        # Each change arrives, in order, through the other instance's poll of the log. How
        # fast is the poll interval's business (bench/README.md, "Across instances"): a wall
        # clock bound here would fail on a busy CI machine, not on slow code.
        for step in range(3):
            await report(http, job_id, step)
            (got,) = updates(await client.take(op, 1))
            assert got["job"]["metrics"] == {"step": step}
    finally:
        await client.close()
        await http.aclose()


# Slow and dead clients ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "slow_first",
    [True, False],
    ids=["the slow one leads", "the slow one rests"],  # (the other's frame written to it)
)
async def test_a_client_that_stops_reading_is_ended_with_a_resume_cursor_and_loses_nothing(
    live: Live, slow_first: bool
) -> None:
    server = await live.start(subscriber_buffer=4, send_buffer=16384)
    http = live.http(server)
    model_id = await register_id(http)
    # Big events (~32 KB each, sent uncompressed) fill the socket buffers after a few, so the
    # server's sends stall.
    blob = {f"p{i}": "x" * 4000 for i in range(8)}
    job_id = await create_job_id(http, model_id, hyperparameters=blob)
    await mutate(http, START, id=job_id)

    # A small receive window, set before connecting, so that it is what the server sees.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    slow = await live.ws(
        server, read=False, sock=sock, max_queue=1, max_size=None, compression=None
    )
    healthy = await live.ws(server)
    # The two share a delivery group: the first to subscribe keeps its consumer (it leads each
    # event), the second rests and is written the leader's frame (graphql_api/live/direct.py).
    if slow_first:
        slow_op = await slow.subscribe(BIG_JOB_UPDATES)
        await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 1))
        healthy_op = await healthy.subscribe(BIG_JOB_UPDATES)
    else:
        healthy_op = await healthy.subscribe(BIG_JOB_UPDATES)
        await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 1))
        slow_op = await slow.subscribe(BIG_JOB_UPDATES)
    await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 2))

    steps = 30
    # The healthy subscriber keeps up with the very same stream and buffer size. It is given
    # each change before the next is made: the real server's feed offers what one poll found
    # at once, and a loaded machine could put more than the buffer's 4 in one poll (a
    # subscription ended for that, not for reading slowly: failed once on DocumentDB).
    for step in range(steps):
        await report(http, job_id, step)
        assert len(await healthy.take(healthy_op, 1, within=10)) == 1
    stats = server.feed.groups.stats
    written, fell_back = await live.loop.peek(lambda: (stats.written, stats.fell_back))
    assert written > 0  # the one resting was written the leader's frames
    if not slow_first:
        assert fell_back > 0  # until its socket refused: then it delivered them itself

    # The slow one reads again: some events, then the end, naming where to resume.
    slow.start_reading()
    received: list[dict[str, Any]] = []
    with pytest.raises(SubscriptionEnded) as ended:
        while True:
            received.append((await slow.next(slow_op))["trainingJobUpdates"])
    (error,) = ended.value.errors
    assert error["extensions"]["code"] == "SUBSCRIBER_TOO_SLOW"
    assert "fell behind" in error["message"]
    assert len(received) < steps
    resume = error["extensions"]["resumeAfter"]
    assert resume == received[-1]["cursor"]

    resumed_op = await healthy.subscribe(BIG_JOB_UPDATES, after=resume)
    rest = updates(await healthy.take(resumed_op, steps - len(received), within=10))
    cursors = [u["cursor"] for u in received + rest]
    assert len(set(cursors)) == steps  # every change exactly once across the two streams
    history = history_of(await http.data(HISTORY, id=job_id))
    assert cursors == [h["cursor"] for h in history[2:]]


async def test_closed_sockets_unsubscribe(live: Live) -> None:
    server = await live.start()
    clients = [await live.ws(server, protocol) for protocol in PROTOCOLS]
    for client in clients:
        await client.subscribe(JOB_UPDATES)
        await client.subscribe(MODEL_UPDATES)
    await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 4))
    await clients[0].unsubscribe("1")
    await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 3))
    for client in clients:
        await client.close()
    await eventually(
        lambda: live.loop.peek(lambda: server.feed.subscriber_count == 0),
        what="the feed to drop the closed sockets' subscribers",
    )


# Protocol details ---------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_quiet_connections_get_keep_alives(live: Live, protocol: str) -> None:
    server = await live.start(ws_keep_alive_interval=0.1)
    client = await live.ws(server, protocol)
    await client.subscribe(JOB_UPDATES)

    async def kept_alive() -> bool:
        return (client.pings if protocol == TRANSPORT_WS else client.keep_alives) >= 2

    await eventually(kept_alive, within=3, what="keep-alive messages")


async def test_browser_origins_must_be_allowed(live: Live) -> None:
    server = await live.start(allowed_origins=["https://monitor.example.com"])
    allowed = await live.ws(server, origin="https://monitor.example.com")
    await allowed.subscribe(JOB_UPDATES)
    no_origin = await live.ws(server)  # not a browser
    await no_origin.subscribe(JOB_UPDATES)
    await eventually(lambda: live.loop.peek(lambda: server.feed.subscriber_count == 2))

    with pytest.raises(websockets.InvalidStatus) as refused:
        await WSClient.open(server.ws_url, origin="https://evil.example.com")
    response = refused.value.response
    assert response.status_code == 403
    assert b"origin https://evil.example.com is not allowed" in response.body
    assert b"MLTRAIN_ALLOWED_ORIGINS" in response.body
