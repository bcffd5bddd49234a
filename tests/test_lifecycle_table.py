"""The lifecycle table is consistent: what makes adding a state or a transition one row plus its
mutation safe."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import pytest
from pydantic import BaseModel

from graphql_api.auth.roles import MUTATION_ROLES, OTHER_MUTATION_ROLES, required_role
from graphql_api.domain.enums import ModelStatus, TrainingStatus
from graphql_api.domain.events import ChangeKind
from graphql_api.domain.lifecycle import (
    FINAL_TRAINING_STATUSES,
    JOB_TRANSITIONS,
    PROMOTION_PATH,
    VERSION_TRANSITIONS,
    Transition,
    VersionTransitions,
    path_to,
)
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.roles import Role
from graphql_api.schema import schema
from graphql_api.storage.mongo.documents import unwrap_annotation

TABLES: list[tuple[tuple[Transition[Any], ...], type[StrEnum], type[BaseModel]]] = [
    (JOB_TRANSITIONS, TrainingStatus, TrainingJob),
    (VERSION_TRANSITIONS, ModelStatus, ModelVersion),
]
ROWS: list[Transition[Any]] = [row for rows, _, _ in TABLES for row in rows]


@pytest.mark.parametrize(("rows", "statuses", "model"), TABLES)
def test_every_status_is_reachable_from_creation(
    rows: tuple[Transition[Any], ...], statuses: type[StrEnum], model: type[BaseModel]
) -> None:
    (create,) = [row for row in rows if row.creates]
    assert create.target is not None
    for status in statuses:
        steps = path_to(rows, status)
        here = create.target
        for step in steps:
            assert here in step.sources
            here = step.target
        assert here is status


@pytest.mark.parametrize(("rows", "statuses", "model"), TABLES)
def test_every_row_is_well_formed(
    rows: tuple[Transition[Any], ...], statuses: type[StrEnum], model: type[BaseModel]
) -> None:
    datetimes = {
        name
        for name, info in model.model_fields.items()
        if unwrap_annotation(info.annotation)[0] is datetime
    }
    for row in rows:
        assert all(isinstance(s, statuses) for s in row.sources), row.name
        assert row.target is None or isinstance(row.target, statuses), row.name
        # A change that leaves the status as it is applies to an existing record.
        assert row.target is not None or row.sources, row.name
        assert set(row.dates) <= datetimes, row.name


def test_names_and_kinds_are_unique_and_every_kind_has_its_row() -> None:
    assert len({row.name for row in ROWS}) == len(ROWS)
    # A rollback is a deployment: it records DEPLOYED as DEPLOY does (see its row), the one
    # kind two rows share.
    assert VersionTransitions.ROLLBACK.kind is VersionTransitions.DEPLOY.kind
    kinds = [row.kind for row in ROWS if row is not VersionTransitions.ROLLBACK]
    assert len(set(kinds)) == len(kinds), "two rows record the same event kind"
    assert set(kinds) == set(ChangeKind), "an event kind no change records"


def test_every_role_is_known_and_one_per_mutation() -> None:
    for row in ROWS:
        assert row.role in set(Role)
        if row.mutation is None:
            continue  # the server's own (the liveness sweep): no client may ask for it
        assert MUTATION_ROLES[row.mutation] is row.role
        assert required_role("mutation", row.mutation) is row.role


def test_every_mutation_maps_to_a_row_and_every_row_to_a_mutation() -> None:
    mutation_type = schema._schema.mutation_type
    assert mutation_type is not None
    lifecycle = {row.mutation for row in ROWS if row.mutation}
    # The rest (key management, ...) change no record's lifecycle; each is listed once, apart.
    assert not lifecycle & set(OTHER_MUTATION_ROLES)
    assert lifecycle | set(OTHER_MUTATION_ROLES) == set(mutation_type.fields)


def test_the_derived_views_follow_the_rows() -> None:
    assert {
        TrainingStatus.COMPLETED,
        TrainingStatus.FAILED,
        TrainingStatus.CANCELLED,
    } == FINAL_TRAINING_STATUSES
    assert dict(PROMOTION_PATH) == {
        ModelStatus.DEVELOPMENT: ModelStatus.TESTING,
        ModelStatus.TESTING: ModelStatus.PRODUCTION,
    }


def test_a_status_nothing_leads_to_is_reported() -> None:
    rows = tuple(row for row in JOB_TRANSITIONS if row.target is not TrainingStatus.FAILED)
    with pytest.raises(ValueError, match="FAILED"):
        path_to(rows, TrainingStatus.FAILED)
