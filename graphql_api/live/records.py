"""The record an event carries (its ``snapshot``), as a domain model.

One event goes to many subscribers; each shows the record, so it is parsed once per event and
kept in a small cache while the fan-out runs.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel

from graphql_api.domain.events import ChangeEvent
from graphql_api.domain.models import ModelVersion, TrainingJob

_CACHE_SIZE = 4096
#: Identifies an event across databases too (tests run many in one process; seqs repeat).
EventKey = tuple[int, str, str | None, datetime]
_cache: OrderedDict[EventKey, BaseModel] = OrderedDict()

M = TypeVar("M", bound=BaseModel)


def event_key(event: ChangeEvent) -> EventKey:
    return (event.seq, event.entity_id, event.event_id, event.occurred_at)


def _record(event: ChangeEvent, model: type[M]) -> M:
    key = event_key(event)
    found = _cache.get(key)
    if isinstance(found, model):
        _cache.move_to_end(key)
        return found
    record = model.model_validate(event.snapshot)
    _cache[key] = record
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return record


def job_after(event: ChangeEvent) -> TrainingJob:
    return _record(event, TrainingJob)


def model_version_after(event: ChangeEvent) -> ModelVersion:
    return _record(event, ModelVersion)
