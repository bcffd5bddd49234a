"""The lifecycle table: every named change of a training job or a model version, in one place.

Each row says from which statuses the change may be made, the status it leads to (None: the
status stays), the kind of the event it records, the dates it sets (to the time of the change)
and the least role that may ask for it through its mutation. The services, the role table
(``auth.roles``), the demo data and the tests that enumerate moves all read it, so adding a
state or a transition is one row here plus its mutation; ``tests/test_lifecycle_table.py``
checks the table is consistent.

Services apply each change as a conditional update on the current status (storage), so two
concurrent callers can never both make the same move.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from graphql_api.domain.enums import ModelStatus, TrainingStatus
from graphql_api.domain.events import ChangeKind
from graphql_api.domain.roles import Role

S = TypeVar("S", bound=StrEnum)


@dataclass(frozen=True)
class Transition(Generic[S]):
    """One named change of a record."""

    name: str
    #: The root mutation a client asks for it with; None for a change only the server makes
    #: (the liveness sweep), which no client may ask for.
    mutation: str | None
    #: Statuses the record may be in; empty for the change that creates the record.
    sources: frozenset[S]
    #: The status afterwards; None when the change leaves the status as it is.
    target: S | None
    kind: ChangeKind
    role: Role
    #: Date fields of the record set to the time of the change.
    dates: tuple[str, ...] = ()

    @property
    def creates(self) -> bool:
        return not self.sources

    @property
    def moves(self) -> bool:
        """Whether it moves an existing record to another status."""
        return self.target is not None and not self.creates


_PENDING, _RUNNING = TrainingStatus.PENDING, TrainingStatus.RUNNING
_DEV, _TEST, _PROD = ModelStatus.DEVELOPMENT, ModelStatus.TESTING, ModelStatus.PRODUCTION


def _sources(*statuses: S) -> frozenset[S]:
    return frozenset(statuses)


class JobTransitions:
    """Training jobs: PENDING -> RUNNING -> COMPLETED | FAILED; CANCELLED from PENDING or
    RUNNING. COMPLETED, FAILED and CANCELLED are final."""

    CREATE = Transition(
        "CREATE", "createTrainingJob", _sources(), _PENDING, ChangeKind.CREATED, Role.OPERATOR
    )
    START = Transition(
        "START", "startTrainingJob", _sources(_PENDING), _RUNNING, ChangeKind.STARTED, Role.WORKER,
        ("started_date",),
    )  # fmt: skip
    # The worker's way to start a job (docs/workers.md): the oldest PENDING job of a queue,
    # with a lease the worker's later writes are fenced by.
    CLAIM = Transition(
        "CLAIM", "claimTrainingJob", _sources(_PENDING), _RUNNING, ChangeKind.CLAIMED,
        Role.WORKER, ("started_date",),
    )  # fmt: skip
    # Extends the lease. A heartbeat is not an event (one every few seconds per job would bury
    # the history): its row's kind is recorded only when the heartbeat changes what a reader
    # sees (a LATE job whose worker came back: docs/workers.md).
    HEARTBEAT = Transition(
        "HEARTBEAT", "heartbeatTrainingJob", _sources(_RUNNING), None, ChangeKind.RECOVERED,
        Role.WORKER,
    )  # fmt: skip
    REPORT_METRICS = Transition(
        "REPORT_METRICS", "reportTrainingMetrics", _sources(_RUNNING), None,
        ChangeKind.METRICS_REPORTED, Role.WORKER,
    )  # fmt: skip
    # Allowed in every status: logs are often uploaded at the end.
    SET_LOGS_URL = Transition(
        "SET_LOGS_URL", "setTrainingJobLogsUrl", frozenset(TrainingStatus), None,
        ChangeKind.LOGS_URL_SET, Role.WORKER,
    )  # fmt: skip
    COMPLETE = Transition(
        "COMPLETE", "completeTrainingJob", _sources(_RUNNING), TrainingStatus.COMPLETED,
        ChangeKind.COMPLETED, Role.WORKER, ("completed_date",),
    )  # fmt: skip
    FAIL = Transition(
        "FAIL", "failTrainingJob", _sources(_RUNNING), TrainingStatus.FAILED, ChangeKind.FAILED,
        Role.WORKER, ("completed_date",),
    )  # fmt: skip
    # A graceful cancel of a RUNNING job: asked for, then acknowledged by the worker (after
    # it saved a checkpoint), or forced by the sweep when the grace runs out.
    REQUEST_CANCEL = Transition(
        "REQUEST_CANCEL", "cancelTrainingJob", _sources(_RUNNING), None,
        ChangeKind.CANCEL_REQUESTED, Role.OPERATOR, ("cancel_requested_at",),
    )  # fmt: skip
    ACKNOWLEDGE_CANCEL = Transition(
        "ACKNOWLEDGE_CANCEL", "acknowledgeTrainingJobCancel", _sources(_RUNNING),
        TrainingStatus.CANCELLED, ChangeKind.CANCEL_ACKNOWLEDGED, Role.WORKER,
        ("completed_date",),
    )  # fmt: skip
    FORCE_CANCEL = Transition(
        "FORCE_CANCEL", None, _sources(_RUNNING), TrainingStatus.CANCELLED,
        ChangeKind.CANCEL_FORCED, Role.ADMIN, ("completed_date",),
    )  # fmt: skip
    # Creates the next attempt (a new PENDING job) of a job that ended; by hand, or by the
    # sweep when the retry policy says so. The ended job keeps its status.
    RETRY = Transition(
        "RETRY", "retryTrainingJob",
        _sources(TrainingStatus.COMPLETED, TrainingStatus.FAILED, TrainingStatus.CANCELLED),
        None, ChangeKind.RETRIED, Role.OPERATOR,
    )  # fmt: skip
    # Made by the server's liveness sweep (services.liveness), never by a client.
    MARK_LATE = Transition(
        "MARK_LATE", None, _sources(_RUNNING), None, ChangeKind.LATE, Role.ADMIN,
    )  # fmt: skip
    LOSE = Transition(
        "LOSE", None, _sources(_RUNNING), TrainingStatus.FAILED, ChangeKind.LOST, Role.ADMIN,
        ("completed_date",),
    )  # fmt: skip
    TIME_OUT = Transition(
        "TIME_OUT", None, _sources(_RUNNING), TrainingStatus.FAILED, ChangeKind.TIMED_OUT,
        Role.ADMIN, ("completed_date",),
    )  # fmt: skip
    CANCEL = Transition(
        "CANCEL", "cancelTrainingJob", _sources(_PENDING, _RUNNING), TrainingStatus.CANCELLED,
        ChangeKind.CANCELLED, Role.OPERATOR, ("completed_date",),
    )  # fmt: skip


class VersionTransitions:
    """Model versions: development -> testing -> production, one step at a time; archived
    from any live status, and back to production only by a rollback of a version that was in
    production before. Which version of a name is in production is its
    production pointer: see ``services.registry``."""

    REGISTER = Transition(
        "REGISTER", "registerModelVersion", _sources(), _DEV, ChangeKind.REGISTERED, Role.OPERATOR
    )
    PROMOTE_TO_TESTING = Transition(
        "PROMOTE_TO_TESTING", "promoteModelVersion", _sources(_DEV), _TEST, ChangeKind.PROMOTED,
        Role.OPERATOR,
    )  # fmt: skip
    DEPLOY = Transition(
        "DEPLOY", "promoteModelVersion", _sources(_TEST), _PROD, ChangeKind.DEPLOYED, Role.OPERATOR,
        ("deployed_date",),
    )  # fmt: skip
    # Also how a deployment retires the version it displaced from production.
    ARCHIVE = Transition(
        "ARCHIVE", "archiveModelVersion", _sources(_DEV, _TEST, _PROD), ModelStatus.ARCHIVED,
        ChangeKind.ARCHIVED, Role.OPERATOR,
    )  # fmt: skip
    UPDATE_METRICS = Transition(
        "UPDATE_METRICS", "updateModelVersionMetrics", _sources(_DEV, _TEST, _PROD), None,
        ChangeKind.METRICS_UPDATED, Role.OPERATOR,
    )  # fmt: skip
    # Description and tags in every status; the artifact only in development
    # (services.registry_metadata checks which fields a call changes).
    UPDATE = Transition(
        "UPDATE", "updateModelVersion", frozenset(ModelStatus), None, ChangeKind.UPDATED,
        Role.OPERATOR,
    )  # fmt: skip
    # An alias names a live version; deleting one is allowed whatever its version's status.
    SET_ALIAS = Transition(
        "SET_ALIAS", "setModelAlias", _sources(_DEV, _TEST, _PROD), None, ChangeKind.ALIAS_SET,
        Role.OPERATOR,
    )  # fmt: skip
    DELETE_ALIAS = Transition(
        "DELETE_ALIAS", "deleteModelAlias", frozenset(ModelStatus), None,
        ChangeKind.ALIAS_DELETED, Role.OPERATOR,
    )  # fmt: skip
    # Puts back a version that was in production before (services.registry_rollback checks
    # it had a deployed date). A rollback is a deployment: it records DEPLOYED, with the
    # reason and the version it replaced, so a consumer of deployments needs no new case.
    ROLLBACK = Transition(
        "ROLLBACK", "rollbackModelVersion", _sources(ModelStatus.ARCHIVED), _PROD,
        ChangeKind.DEPLOYED, Role.OPERATOR, ("deployed_date",),
    )  # fmt: skip


def _rows(namespace: type) -> tuple[Transition[S], ...]:
    return tuple(v for v in vars(namespace).values() if isinstance(v, Transition))


JOB_TRANSITIONS: tuple[Transition[TrainingStatus], ...] = _rows(JobTransitions)
VERSION_TRANSITIONS: tuple[Transition[ModelStatus], ...] = _rows(VersionTransitions)


def _final(rows: Iterable[Transition[S]], statuses: Iterable[S]) -> frozenset[S]:
    leaving = {s for row in rows if row.moves for s in row.sources}
    return frozenset(s for s in statuses if s not in leaving)


#: Statuses a job never leaves.
FINAL_TRAINING_STATUSES: frozenset[TrainingStatus] = _final(JOB_TRANSITIONS, TrainingStatus)

#: ``promoteModelVersion`` moves one step along this path: the promotion from each status.
PROMOTIONS: Mapping[ModelStatus, Transition[ModelStatus]] = MappingProxyType(
    {
        source: row
        for row in VERSION_TRANSITIONS
        if row.mutation == VersionTransitions.PROMOTE_TO_TESTING.mutation
        for source in row.sources
    }
)
PROMOTION_PATH: Mapping[ModelStatus, ModelStatus] = MappingProxyType(
    {source: row.target for source, row in PROMOTIONS.items() if row.target is not None}
)


def can_train_transition(current: TrainingStatus, target: TrainingStatus) -> bool:
    return any(
        row.moves and row.target is target and current in row.sources for row in JOB_TRANSITIONS
    )


def can_model_transition(current: ModelStatus, target: ModelStatus) -> bool:
    return any(
        row.moves and row.target is target and current in row.sources for row in VERSION_TRANSITIONS
    )


def path_to(rows: Sequence[Transition[S]], status: S) -> list[Transition[S]]:
    """The shortest run of moves that takes a new record to ``status`` (ValueError if none)."""
    start = next(row.target for row in rows if row.creates)
    paths: dict[S, list[Transition[S]]] = {start: []} if start is not None else {}
    frontier = list(paths)
    while frontier:
        nxt: list[S] = []
        for current in frontier:
            for row in rows:
                if row.moves and current in row.sources and row.target not in paths:
                    assert row.target is not None
                    paths[row.target] = [*paths[current], row]
                    nxt.append(row.target)
        frontier = nxt
    if status not in paths:
        raise ValueError(f"no transition leads to {status}")
    return paths[status]


def mutation_roles() -> dict[str, Role]:
    """Each lifecycle mutation and the role its rows need (one mutation, one role)."""
    roles: dict[str, Role] = {}
    rows: list[Transition[Any]] = [*JOB_TRANSITIONS, *VERSION_TRANSITIONS]
    for row in rows:
        if row.mutation is None:
            continue
        if roles.setdefault(row.mutation, row.role) is not row.role:
            raise ValueError(f"{row.mutation} has rows needing different roles")
    return roles
