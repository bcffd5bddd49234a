"""Which events a subscription wants: the subscription's arguments as a predicate."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from graphql_api.domain.events import EntityKind, StoredEvent, UnreadableEvent


class Selector(Protocol):
    @property
    def entity(self) -> EntityKind:
        """The only kind of record whose events can match (lets the feed index subscribers)."""

    def matches(self, event: StoredEvent) -> bool: ...


def _may_concern(event: UnreadableEvent, entity: EntityKind, entity_id: str | None) -> bool:
    """An unreadable event goes to every subscriber it may concern (what could be read of it
    matches), so that none of them misses it without a word."""
    return event.entity in (None, entity) and (
        entity_id is None or event.entity_id in (None, entity_id)
    )


@dataclass(frozen=True)
class JobSelector:
    """Events of training jobs; every given criterion must hold.

    ``statuses`` is about the job after the change: ``[COMPLETED, FAILED]`` selects the events
    that end jobs (and any later change of such a job, like its logs location being set).
    """

    job_id: str | None = None
    model_id: str | None = None
    statuses: frozenset[str] | None = None

    @classmethod
    def of(
        cls, job_id: str | None, model_id: str | None, statuses: Iterable[str] | None
    ) -> JobSelector:
        return cls(job_id, model_id, None if statuses is None else frozenset(statuses))

    @property
    def entity(self) -> EntityKind:
        return EntityKind.TRAINING_JOB

    def matches(self, event: StoredEvent) -> bool:
        if isinstance(event, UnreadableEvent):
            return _may_concern(event, EntityKind.TRAINING_JOB, self.job_id)
        return (
            event.entity is EntityKind.TRAINING_JOB
            and (self.job_id is None or event.entity_id == self.job_id)
            and (self.model_id is None or event.model_id == self.model_id)
            and (self.statuses is None or event.status in self.statuses)
        )


@dataclass(frozen=True)
class ModelVersionSelector:
    """Events of model versions, of one model name if given."""

    model_name: str | None = None

    @property
    def entity(self) -> EntityKind:
        return EntityKind.MODEL_VERSION

    def matches(self, event: StoredEvent) -> bool:
        if isinstance(event, UnreadableEvent):
            return _may_concern(event, EntityKind.MODEL_VERSION, None)
        return event.entity is EntityKind.MODEL_VERSION and (
            self.model_name is None or event.model_name == self.model_name
        )
