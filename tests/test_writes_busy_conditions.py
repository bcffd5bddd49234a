"""A change refused by one of its own conditions is refused, not "busy".

A record with a pending change (its event not yet in the log) takes no other change, and the
storage tells that case (RecordBusy: the caller relays the pending event and retries) apart
from a change whose other conditions failed (None). The pending condition of a training job
whose event this server already relayed is an ``$or`` ("no pending change, or that logged
one"), and the check took every ``$or`` of an update for it, so a version archived only "if it
reached production before revision N" that had reached it later was reported busy: the
registry relayed nothing, retried 100 times and answered "being changed by too many
requests" (tests/test_realdb_query_shapes.py failed on it) instead of the transition error.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from graphql_api.domain.enums import ModelStatus, ModelType, TrainingStatus
from graphql_api.domain.events import ChangeKind
from graphql_api.domain.lifecycle import VersionTransitions
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.updates import Move
from graphql_api.domain.values import utc_now
from graphql_api.services.container import Services
from graphql_api.storage.base import PendingChange, RecordBusy
from graphql_api.storage.mongo import MongoStorage
from tests.api_helpers import promote, register_id
from tests.conftest import GraphQLClient
from tests.operations import ARCHIVE

PRODUCTION = "query($n: String!) { productionModelVersion(modelName: $n) { modelId status } }"


def pending_change(kind: ChangeKind, previous: str) -> PendingChange:
    return PendingChange(uuid.uuid4().hex, kind, previous, utc_now(), None)


def archive_move() -> list[Move]:
    return [Move(transition=VersionTransitions.ARCHIVE, at=utc_now())]


async def deployed(services: Services, version: str) -> ModelVersion:
    registered = await services.registry.register(
        model_name="churn", version=version, model_type=ModelType.REGRESSION
    )
    await services.registry.promote(registered.model_id, ModelStatus.TESTING)
    return await services.registry.promote(registered.model_id, ModelStatus.PRODUCTION)


async def test_an_archive_of_a_version_that_reached_production_later_is_refused_not_busy(
    storage: MongoStorage, services: Services
) -> None:
    versions = storage.model_versions
    version = await deployed(services, "1.0.0")
    pointer = await versions.production_pointer("churn")
    for revision in (0, pointer.revision):  # reached production at ``pointer.revision``
        storage.stats.round_trips = 0
        refused = await versions.update(
            version.model_id,
            {ModelStatus.PRODUCTION},
            archive_move(),
            before_production_revision=revision,
            pending=pending_change(ChangeKind.ARCHIVED, "production"),
        )
        assert refused is None
        assert storage.stats.round_trips <= 2  # the update, and the check that says why
    assert (await versions.get(version.model_id)) == version
    # Met, it applies; the busy check still holds (the version's change is pending now).
    archived = await versions.update(
        version.model_id,
        {ModelStatus.PRODUCTION},
        archive_move(),
        before_production_revision=pointer.revision + 1,
        pending=pending_change(ChangeKind.ARCHIVED, "production"),
    )
    assert archived is not None and archived.status is ModelStatus.ARCHIVED
    with pytest.raises(RecordBusy):
        await versions.update(
            version.model_id,
            {ModelStatus.ARCHIVED},
            [],
            pending=pending_change(ChangeKind.METRICS_UPDATED, "archived"),
        )


async def test_a_job_change_with_its_relayed_event_left_is_busy_or_refused_by_its_own_rule(
    storage: MongoStorage, services: Services
) -> None:
    """The job lane's ``$or`` (a pending change known to be logged may be replaced): a change
    whose lease token is wrong is refused (None) whether the job holds that logged change, an
    unknown one, or none; only the pending change of someone else makes it busy."""
    version = await deployed(services, "1.0.0")
    jobs = storage.training_jobs
    job = await services.training.create(model_id=version.model_id, dataset_id="d1")
    started = await services.training.start(job.job_id)
    logged = services.training._outbox.logged_job_events.get(job.job_id)
    assert logged is not None  # its STARTED event is in the log, the record still holds it

    async def report(token_hash: str | None, logged_event_id: str | None) -> TrainingJob | None:
        return await jobs.update(
            job.job_id,
            {TrainingStatus.RUNNING},
            [],
            lease_token_hash=token_hash,
            pending=pending_change(ChangeKind.METRICS_REPORTED, "running"),
            logged_event_id=logged_event_id,
        )

    assert await report("not-the-token", logged) is None
    token = started.lease_token_hash
    with pytest.raises(RecordBusy):  # a pending change not known to be logged: someone else's
        await report(token, None)
    assert await report("not-the-token", None) is None
    assert await report(token, logged) is not None  # replaces the logged change
    assert await report("not-the-token", None) is None
    with pytest.raises(RecordBusy):  # the change just written is pending, and not logged
        await report(token, logged)


async def test_archiving_a_version_a_deployment_just_put_in_production_says_so_at_once(
    gql: GraphQLClient, storage: MongoStorage, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another instance deploys the version right after the archive read the production
    pointer: the archive must not retire a version that reached production after it looked
    (that is the rule), and it answers with the transition error, in a few round trips."""
    old = await register_id(gql, "1.0.0")
    new = await register_id(gql, "2.0.0")
    for model_id in (old, new):
        await promote(gql, model_id, "TESTING")
    await promote(gql, old, "PRODUCTION")
    versions = storage.model_versions
    read_pointer = versions.production_pointer
    deploy_after_read = True

    async def pointer_then_deploy(model_name: str) -> Any:
        nonlocal deploy_after_read
        pointer = await read_pointer(model_name)
        if deploy_after_read:
            deploy_after_read = False
            await services.registry.promote(new, ModelStatus.PRODUCTION)
            storage.stats.round_trips = 0
        return pointer

    monkeypatch.setattr(versions, "production_pointer", pointer_then_deploy)
    result = (await gql.data(ARCHIVE, id=new))["archiveModelVersion"]
    assert not deploy_after_read
    assert result["__typename"] == "InvalidTransitionError", result
    assert (result["currentStatus"], result["requestedStatus"]) == ("PRODUCTION", "ARCHIVED")
    assert storage.stats.round_trips <= 10  # three refused steps and a read, not 100 retries
    monkeypatch.undo()
    found = (await gql.data(PRODUCTION, n="churn"))["productionModelVersion"]
    assert found == {"modelId": new, "status": "PRODUCTION"}
