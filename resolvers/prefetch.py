"""Loading a page's relations before its items are resolved, when the operation selects them.

A list root field (``trainingJobs``) knows its items before GraphQL walks into them. When the
selection asks for a relation of every item (``edges { node { modelVersion } }``), the root
resolver starts the loader's batch for all of them at once; each item's relation field then finds
its value already loaded and answers without suspending. The queries are the same (one batched
query per relation, through the same per-request DataLoader); what goes away is an awaitable,
and graphql-core's gathering of it, per item.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from graphql_api.context import Info
from graphql_api.domain.models import TrainingJob

Selection = SelectedField | FragmentSpread | InlineFragment


def _children(selections: Iterable[Selection], name: str) -> list[Selection]:
    """The selections of every field called ``name``, looking through fragments."""
    found: list[Selection] = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name == name:
                found.extend(selection.selections)
        else:
            found.extend(_children(selection.selections, name))
    return found


def selected_at(info: Info, *path: str) -> list[Selection]:
    """What the current field's selection asks for at ``path`` (GraphQL names, through
    fragments and aliases). ``@skip``/``@include`` are not evaluated: a skipped relation is
    loaded anyway, which costs a query and changes no answer."""
    # info.selected_fields converts the whole selection from the AST on every access.
    level: list[Selection] = [s for field in info.selected_fields for s in field.selections]
    for name in path:
        level = _children(level, name)
    return level


def _has_field(selections: Iterable[Selection], name: str) -> bool:
    return any(
        s.name == name if isinstance(s, SelectedField) else _has_field(s.selections, name)
        for s in selections
    )


def _fields(selections: Iterable[Selection], name: str) -> list[SelectedField]:
    """Every field called ``name`` at this level, looking through fragments."""
    found: list[SelectedField] = []
    for s in selections:
        if isinstance(s, SelectedField):
            if s.name == name:
                found.append(s)
        else:
            found.extend(_fields(s.selections, name))
    return found


async def prime_job_relations(info: Info, jobs: Sequence[TrainingJob], *path: str) -> None:
    """Load the relations the operation selects at ``path`` for all ``jobs``, in one batch each."""
    if not jobs:
        return
    loaders = info.context.loaders
    item = selected_at(info, *path)
    loads: list[Awaitable[Any]] = []
    if _has_field(item, "modelVersion"):
        loads.append(loaders.model_version.load_many([job.model_id for job in jobs]))
    for history in _fields(item, "history"):
        page_loader = loaders.history_page_of(history.arguments)
        if page_loader is not None:
            loads.append(page_loader.load_many([job.job_id for job in jobs]))
    # A failed load is not raised here: the loader keeps the failed result, so each item's field
    # reports it, as it would have without priming.
    await asyncio.gather(*loads, return_exceptions=True)
