"""Concurrent promotions and archives of one model name, in random mixes and interleavings.

Each trial registers a few versions of a fresh model name, then fires a random mix of
``promoteModelVersion(to: PRODUCTION)`` (the same version many times: a double-click or a
retry storm; and other versions), ``promoteModelVersion`` without ``to`` and
``archiveModelVersion``, in random order, through HTTP, while a reader polls
``productionModelVersion``. The storage under the app pauses (seeded, per trial) before and
after each registry operation, so the calls interleave differently in every trial. After each
trial the invariants are checked against storage and the event log:

* exactly one version is in production (or none), and it is the production pointer's;
* each version's status is the status of its last event, and its events form a chain
  (each event's previous status is the status of the one before): no change without its event;
* a promotion that answered PRODUCTION has its DEPLOYED event, and that version is still in
  production unless a later event retired it; a version is DEPLOYED at most once;
* the name ends in one of the requested outcomes: never back on the version it started with
  after another version answered PRODUCTION (the rollback the issue saw);
* losers get typed errors (ConflictError, InvalidTransitionError), never a GraphQL error;
* the reader never saw no production version while one existed before and nothing asked to
  archive it, and never a version whose status was not PRODUCTION.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from graphql_api.app import create_app
from graphql_api.domain.events import ChangeEvent, EntityKind
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import register_id
from tests.conftest import REAL_URI, GraphQLClient
from tests.operations import ARCHIVE, PROMOTE

MODES = ["mock", "mock-guarded", *(["real"] if REAL_URI else [])]
#: Each run explores other interleavings; a failure names its seed, and
#: MLTRAIN_TEST_SEED=<seed> replays it.
BASE_SEED = int(os.environ.get("MLTRAIN_TEST_SEED") or random.randrange(1_000_000))
#: Trials per backend. The real server is slower per trial; both stay well above 10.
TRIALS = {"mock": 40, "mock-guarded": 30, "real": 12}

PRODUCTION_QUERY = (
    "query($name: String!) { productionModelVersion(modelName: $name) { modelId status } }"
)


class Jitter:
    """A pause hook: before and after each storage call, yield to the other tasks a random
    number of times (and, on a real server, sleep a random fraction of a millisecond)."""

    def __init__(self, real: bool) -> None:
        self.rng = random.Random(0)
        self.real = real

    def reseed(self, seed: int) -> None:
        self.rng = random.Random(seed)

    async def pause(self) -> None:
        for _ in range(self.rng.randrange(4)):
            await asyncio.sleep(0)
        if self.real and self.rng.random() < 0.3:
            await asyncio.sleep(self.rng.random() / 1000)


class Jittered:
    """Wraps a store: every coroutine method pauses before and after the real call."""

    def __init__(self, inner: Any, jitter: Jitter) -> None:
        self._inner = inner
        self._jitter = jitter

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def paused(*args: Any, **kwargs: Any) -> Any:
            await self._jitter.pause()
            result = await attr(*args, **kwargs)
            await self._jitter.pause()
            return result

        return paused


class JitteredStorage:
    """The storage contract over a MongoStorage whose registry and event log pause randomly."""

    def __init__(self, inner: MongoStorage, jitter: Jitter) -> None:
        self.inner = inner
        self.model_versions = Jittered(inner.model_versions, jitter)
        self.training_jobs = inner.training_jobs
        self.events = inner.events
        self.leaders = inner.leaders
        self.metric_series = inner.metric_series
        self.api_keys = inner.api_keys
        self.webhooks = inner.webhooks
        self.stats = inner.stats

    async def ensure_indexes(self) -> None:
        await self.inner.ensure_indexes()

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class Racing:
    gql: GraphQLClient
    storage: MongoStorage
    jitter: Jitter
    mode: str


@pytest.fixture(params=MODES)
async def racing(request: pytest.FixtureRequest) -> AsyncIterator[Racing]:
    mode = request.param
    name = f"mltrain_promo_{uuid.uuid4().hex[:12]}"
    storage = MongoStorage.connect(
        REAL_URI if mode == "real" else None,
        name,
        guarded_updates=True if mode == "mock-guarded" else None,
    )
    jitter = Jitter(real=mode == "real")
    app = create_app(Settings(), storage=JitteredStorage(storage, jitter))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            yield Racing(GraphQLClient(http), storage, jitter, mode)
    if mode == "real":
        await storage.database.client.drop_database(name)
    await storage.close()


@dataclass
class Call:
    kind: str  # "deploy" (to: PRODUCTION), "step" (no `to`) or "archive"
    version: str
    answer: dict[str, Any] = field(default_factory=dict)


async def run_call(gql: GraphQLClient, call: Call, model_id: str) -> None:
    if call.kind == "archive":
        call.answer = (await gql.data(ARCHIVE, id=model_id))["archiveModelVersion"]
    elif call.kind == "deploy":
        call.answer = (await gql.data(PROMOTE, id=model_id, to="PRODUCTION"))["promoteModelVersion"]
    else:
        call.answer = (await gql.data(PROMOTE, id=model_id))["promoteModelVersion"]


def plan(rng: random.Random, versions: list[str]) -> list[Call]:
    """A random mix: mostly deployments of one hot version, some of others, a few steps and
    archives, in random order."""
    hot = rng.choice(versions)
    calls: list[Call] = []
    for _ in range(rng.randrange(6, 21)):
        roll = rng.random()
        if roll < 0.55:
            calls.append(Call("deploy", hot))
        elif roll < 0.8:
            calls.append(Call("deploy", rng.choice(versions)))
        elif roll < 0.9:
            calls.append(Call("step", rng.choice(versions)))
        else:
            calls.append(Call("archive", rng.choice(versions)))
    rng.shuffle(calls)
    return calls


async def events_of(storage: MongoStorage, model_name: str) -> list[ChangeEvent]:
    log = await storage.events.since(0, 100_000)
    return [
        e
        for e in log
        if isinstance(e, ChangeEvent)
        and e.entity is EntityKind.MODEL_VERSION
        and e.model_name == model_name
    ]


async def poll_production(
    gql: GraphQLClient, name: str, done: asyncio.Event, seen: list[dict[str, Any] | None]
) -> None:
    while not done.is_set():
        seen.append((await gql.data(PRODUCTION_QUERY, name=name))["productionModelVersion"])
        await asyncio.sleep(0)


async def one_trial(racing: Racing, trial: int) -> None:
    gql, storage = racing.gql, racing.storage
    rng = random.Random(f"{BASE_SEED}-{racing.mode}-{trial}")
    name = f"m{trial}"
    labels = [f"{n}.0.0" for n in range(1, rng.randrange(3, 5))]
    ids = {label: await register_id(gql, label, name) for label in labels}
    for label in labels:
        if rng.random() < 0.9:
            await gql.data(PROMOTE, id=ids[label], to="TESTING")
    initial = None
    if rng.random() < 0.7:
        initial = ids[labels[0]]
        first = (await gql.data(PROMOTE, id=initial, to="PRODUCTION"))["promoteModelVersion"]
        if first["__typename"] != "ModelVersion":
            initial = None
    calls = plan(rng, labels)

    racing.jitter.reseed(BASE_SEED + trial)
    done = asyncio.Event()
    seen: list[dict[str, Any] | None] = []
    reader = asyncio.create_task(poll_production(gql, name, done, seen))

    async def delayed(call: Call) -> None:
        await racing.jitter.pause()
        await run_call(gql, call, ids[call.version])

    await asyncio.gather(*(delayed(c) for c in calls))
    done.set()
    await reader

    context = f"seed {BASE_SEED}, trial {trial} ({racing.mode}): " + ", ".join(
        f"{c.kind} {c.version} -> {c.answer.get('status') or c.answer.get('code')}" for c in calls
    )
    by_id = {model_id: label for label, model_id in ids.items()}

    # Losers get typed errors, and every answer is one a client can act on.
    for call in calls:
        assert call.answer["__typename"] in {
            "ModelVersion",
            "ConflictError",
            "InvalidTransitionError",
        }, context
        if call.kind == "deploy" and call.answer["__typename"] == "ModelVersion":
            assert call.answer["status"] == "PRODUCTION", context

    # One version in production, and it is the pointer's.
    statuses = {}
    for model_id in ids.values():
        version = await storage.model_versions.get(model_id)
        assert version is not None
        statuses[model_id] = version.status.name
    in_production = [i for i, s in statuses.items() if s == "PRODUCTION"]
    assert len(in_production) <= 1, context
    pointer = await storage.model_versions.read_production_pointer(name)
    holder = pointer.model_id if pointer is not None else initial
    assert in_production == ([] if holder is None else [holder]), context
    answered = (await gql.data(PRODUCTION_QUERY, name=name))["productionModelVersion"]
    assert answered == (None if holder is None else {"modelId": holder, "status": "PRODUCTION"})

    # Every status change has its event, in a chain, and the last one is the status now.
    log = await events_of(storage, name)
    for model_id, status in statuses.items():
        own = [e for e in log if e.entity_id == model_id]
        assert own, context
        chain = [(e.previous_status, e.status) for e in own]
        for (_, before), (after_previous, _) in itertools.pairwise(chain):
            assert after_previous == before, f"{context}; {by_id[model_id]}: {chain}"
        assert own[-1].status.upper() == status, f"{context}; {by_id[model_id]}: {chain}"
        deployed = [e for e in own if e.kind == "DEPLOYED"]
        assert len(deployed) <= 1, f"{context}; {by_id[model_id]} deployed twice"

    # An answer of PRODUCTION is in the event log, and stays true until an event says otherwise.
    for call in calls:
        if call.answer.get("status") == "PRODUCTION":
            model_id = ids[call.version]
            own = [e for e in log if e.entity_id == model_id]
            assert any(e.kind == "DEPLOYED" for e in own), context
            assert statuses[model_id] == "PRODUCTION" or own[-1].kind == "ARCHIVED", context

    # The end state is one the requests asked for: never back on the starting version after
    # another version answered PRODUCTION.
    others_won = any(
        c.answer.get("status") == "PRODUCTION" and ids[c.version] != initial for c in calls
    )
    if others_won:
        assert holder != initial or initial is None, context
    archive_asked = any(c.kind == "archive" for c in calls)
    if holder is None and initial is not None:
        assert archive_asked, context

    # The reader: never a non-production answer; never none while production was not asked
    # to be emptied.
    for answer in seen:
        if answer is not None:
            assert answer["status"] == "PRODUCTION", context
        elif initial is not None and not archive_asked:
            raise AssertionError(f"{context}: the reader saw no production version")


async def test_random_concurrent_promotions_keep_one_consistent_production(
    racing: Racing,
) -> None:
    for trial in range(TRIALS[racing.mode]):
        await one_trial(racing, trial)


async def test_twenty_duplicate_deployments_answer_production_with_one_event(
    racing: Racing,
) -> None:
    """The issue's reproduction, widened: 20 concurrent promotions of the same version with
    another version in production; all 20 answer PRODUCTION (a duplicate is a retry), one
    DEPLOYED and one ARCHIVED event, and the old version is never put back."""
    for trial in range(5 if racing.mode == "real" else 10):
        racing.jitter.reseed(BASE_SEED + 1000 + trial)
        name = f"dup{trial}"
        old = await register_id(racing.gql, "1.0.0", name)
        new = await register_id(racing.gql, "2.0.0", name)
        for model_id in (old, new):
            await racing.gql.data(PROMOTE, id=model_id, to="TESTING")
        await racing.gql.data(PROMOTE, id=old, to="PRODUCTION")

        calls = [Call("deploy", "2.0.0") for _ in range(20)]

        async def delayed(call: Call, model_id: str) -> None:
            await racing.jitter.pause()
            await run_call(racing.gql, call, model_id)

        await asyncio.gather(*(delayed(c, new) for c in calls))
        assert [c.answer.get("status") for c in calls] == ["PRODUCTION"] * 20, [
            c.answer for c in calls
        ]
        log = await events_of(racing.storage, name)
        swap = [(e.kind.value, e.entity_id) for e in log if e.kind in {"DEPLOYED", "ARCHIVED"}]
        assert swap == [("DEPLOYED", old), ("DEPLOYED", new), ("ARCHIVED", old)]
        production = await racing.gql.data(PRODUCTION_QUERY, name=name)
        assert production["productionModelVersion"] == {"modelId": new, "status": "PRODUCTION"}


async def test_a_reader_polling_through_thirty_deployments_never_sees_none(
    racing: Racing,
) -> None:
    """The hand-over has no gap: each deployment runs while a reader polls (the storage
    pauses around every registry call, so the reader's requests land between its writes)."""
    gql = racing.gql
    racing.jitter.reseed(BASE_SEED)
    ids = [await register_id(gql, f"1.{n}.0", "gapless") for n in range(31)]
    for model_id in ids:
        await gql.data(PROMOTE, id=model_id, to="TESTING")
    await gql.data(PROMOTE, id=ids[0], to="PRODUCTION")
    seen: list[dict[str, Any] | None] = []
    for model_id in ids[1:]:
        deploying = asyncio.create_task(gql.data(PROMOTE, id=model_id, to="PRODUCTION"))
        while not deploying.done():
            seen.append(
                (await gql.data(PRODUCTION_QUERY, name="gapless"))["productionModelVersion"]
            )
        assert (await deploying)["promoteModelVersion"]["status"] == "PRODUCTION"
    assert len(seen) >= 30, f"seed {BASE_SEED}"
    assert all(a is not None and a["status"] == "PRODUCTION" for a in seen), f"seed {BASE_SEED}"
    order = [ids.index(answer["modelId"]) for answer in seen if answer is not None]
    assert order == sorted(order), f"seed {BASE_SEED}"  # never back to an older version
