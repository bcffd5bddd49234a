"""The one place typed changes (``domain.updates``) become a MongoDB update."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphql_api.domain.updates import Change, MetricsMerge
from graphql_api.storage.mongo.documents import RecordMapping


def update_of(
    mapping: RecordMapping[Any], changes: Iterable[Change]
) -> tuple[dict[str, Any], MetricsMerge | None]:
    """The ``$set`` fields of ``changes``, and the metrics merge among them (applied as a
    checked merge: see ``MongoCollection._merge_within``)."""
    fields: dict[str, Any] = {}
    merge = None
    for change in changes:
        if isinstance(change, MetricsMerge):
            merge = change
        else:
            fields.update(change.fields())
    return mapping.stored_values(fields), merge
