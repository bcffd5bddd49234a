"""Recording changes in the event log, shared by the registry and training services."""

from __future__ import annotations

from graphql_api.domain.events import ChangeEvent, ChangeKind, EntityKind
from graphql_api.domain.models import ModelVersion, TrainingJob
from graphql_api.domain.values import utc_now
from graphql_api.storage.base import EventStore


class ChangeRecorder:
    def __init__(self, events: EventStore) -> None:
        self._events = events

    async def job(
        self,
        job: TrainingJob,
        kind: ChangeKind,
        previous_status: str | None,
        actor: str | None,
    ) -> ChangeEvent:
        return await self._append(
            ChangeEvent(
                seq=0,
                entity=EntityKind.TRAINING_JOB,
                entity_id=job.job_id,
                kind=kind,
                previous_status=previous_status,
                status=job.status.value,
                occurred_at=utc_now(),
                model_id=job.model_id,
                actor=actor,
                snapshot=job.model_dump(mode="python"),
            )
        )

    async def model_version(
        self,
        version: ModelVersion,
        kind: ChangeKind,
        previous_status: str | None,
        actor: str | None,
    ) -> ChangeEvent:
        return await self._append(
            ChangeEvent(
                seq=0,
                entity=EntityKind.MODEL_VERSION,
                entity_id=version.model_id,
                kind=kind,
                previous_status=previous_status,
                status=version.status.value,
                occurred_at=utc_now(),
                model_id=version.model_id,
                model_name=version.model_name,
                actor=actor,
                snapshot=version.model_dump(mode="python"),
            )
        )

    async def _append(self, event: ChangeEvent) -> ChangeEvent:
        return await self._events.append(event)
