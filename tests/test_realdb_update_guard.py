"""The update-claim guard is a decision per server, made explicitly at start-up, and forceable.

FerretDB v1's conditional updates are not atomic across connections and need the guard; MongoDB's
and FerretDB v2 + DocumentDB's are, and do not. The races below are the measurement that decided
it for DocumentDB (20 concurrent starts of one job, 10 trials, guard off: one winner each time);
they run on every backend, so CI repeats the measurement on each run.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError

from graphql_api.app import create_app
from graphql_api.domain.enums import ModelType, TrainingStatus
from graphql_api.domain.errors import InvalidTransitionError
from graphql_api.domain.events import ChangeKind
from graphql_api.services.container import Services
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from graphql_api.storage.mongo.server import ServerKind, identify, update_guard_wanted
from tests.conftest import REAL_URI

# buildInfo replies as the servers send them (trimmed to the fields that matter).
FERRETDB_V1_BUILD_INFO = {"version": "7.0.42", "ferretdbVersion": "v1.24.2", "ok": 1.0}
FERRETDB_V2_BUILD_INFO = {
    "version": "7.0.77",
    "gitVersion": "unknown",
    "ferretdb": {"package": "unknown", "version": "v2.7.0"},
    "ok": 1.0,
}
MONGODB_BUILD_INFO = {"version": "7.0.14", "gitVersion": "ce59cfc6a3c5e5c067dca0d30697edd68d4f5188"}
MOCK_BUILD_INFO = {"ok": 1.0, "version": "5.0.5", "versionArray": [5, 0, 5]}

RACERS, TRIALS = 20, 10


@pytest.mark.parametrize(
    ("build_info", "kind", "version", "guarded"),
    [
        (FERRETDB_V1_BUILD_INFO, ServerKind.FERRETDB_V1, "v1.24.2", True),
        (FERRETDB_V2_BUILD_INFO, ServerKind.FERRETDB_V2, "v2.7.0", False),
        (MONGODB_BUILD_INFO, ServerKind.MONGODB, "7.0.14", False),
        (MOCK_BUILD_INFO, ServerKind.MONGODB, "5.0.5", False),
    ],
)
def test_each_server_is_recognised_and_guarded_only_if_it_needs_it(
    build_info: dict[str, Any], kind: ServerKind, version: str, guarded: bool
) -> None:
    server = identify(build_info)
    assert (server.kind, server.version) == (kind, version)
    assert update_guard_wanted(server, None) is guarded
    # The setting wins over the server, both ways.
    assert update_guard_wanted(server, True) is True
    assert update_guard_wanted(server, False) is False


@pytest.mark.parametrize(
    ("value", "forced"), [("auto", None), ("on", True), ("off", False), ("ON", None)]
)
def test_the_setting_reads_auto_on_off(
    monkeypatch: pytest.MonkeyPatch, value: str, forced: bool | None
) -> None:
    monkeypatch.setenv("MLTRAIN_UPDATE_GUARD", value)
    if value == "ON":  # only the documented spellings: a typo must not silently mean "auto"
        with pytest.raises(ValidationError, match="update_guard"):
            Settings()
        return
    assert Settings().guarded_updates is forced


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("on", "through the claim guard"),
        ("off", "plain (atomic per document)"),
        ("auto", "plain (atomic per document)"),
    ],
)
async def test_the_server_says_at_start_up_which_update_path_it_uses(
    caplog: pytest.LogCaptureFixture, setting: str, said: str
) -> None:
    app = create_app(Settings.model_validate({"update_guard": setting}))
    with caplog.at_level(logging.INFO, logger="mltrain.storage"):
        async with LifespanManager(app):
            pass
    assert f"database server: MongoDB 5.0.5; conditional updates {said}" in caplog.text


@pytest.fixture(params=["mock", *(["real"] if REAL_URI else [])])
async def unguarded(request: pytest.FixtureRequest) -> AsyncIterator[MongoStorage]:
    """Storage with the guard decided by the server (auto), over each backend."""
    name = f"mltrain_guard_{uuid.uuid4().hex[:10]}"
    storage = MongoStorage.connect(REAL_URI if request.param == "real" else None, name)
    await storage.ensure_indexes()
    yield storage
    if request.param == "real":
        await storage.database.client.drop_database(name)
    await storage.close()


async def test_auto_turns_the_guard_on_exactly_where_the_server_needs_it(
    unguarded: MongoStorage,
) -> None:
    assert unguarded.guard.enabled is unguarded.server.needs_update_guard
    if unguarded.server.kind is ServerKind.FERRETDB_V2:
        assert not unguarded.guard.enabled


async def test_twenty_way_races_have_one_winner_in_each_of_ten_trials_without_the_guard(
    unguarded: MongoStorage,
) -> None:
    if unguarded.guard.enabled:
        pytest.skip(
            f"{unguarded.server} needs the guard: races without it are not expected to hold"
        )
    services = Services.over(unguarded)
    version = await services.registry.register(
        model_name="race", version="1.0.0", model_type=ModelType.REGRESSION
    )
    winners_per_trial = []
    for _ in range(TRIALS):
        job = await services.training.create(model_id=version.model_id, dataset_id="d")
        outcomes = await asyncio.gather(
            *(services.training.start(job.job_id) for _ in range(RACERS)), return_exceptions=True
        )
        winners = [o for o in outcomes if not isinstance(o, BaseException)]
        losers = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(isinstance(o, InvalidTransitionError) for o in losers), losers
        winners_per_trial.append(len(winners))
        stored = await services.training.get(job.job_id)
        assert stored is not None and stored.status is TrainingStatus.RUNNING
        # Exactly one STARTED event: no loser wrote one.
        history = await unguarded.events.for_entity(job.job_id, 100)
        assert [e.kind for e in history].count(ChangeKind.STARTED) == 1
    assert winners_per_trial == [1] * TRIALS


async def test_a_forced_guard_is_used_on_a_server_that_does_not_need_it(
    unguarded: MongoStorage,
) -> None:
    forced = MongoStorage(unguarded.database, guarded_updates=True)
    await forced.ensure_indexes()
    assert forced.guard.enabled
    services = Services.over(forced)
    version = await services.registry.register(
        model_name="forced", version="1.0.0", model_type=ModelType.REGRESSION
    )
    job = await services.training.create(model_id=version.model_id, dataset_id="d")
    outcomes = await asyncio.gather(
        *(services.training.start(job.job_id) for _ in range(RACERS)), return_exceptions=True
    )
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    # The guard's revision claims were taken and released.
    assert await forced.database["update_claims"].count_documents({}) == 0
