"""Loading a page's relations before its items are resolved, when the operation selects them.

A list root field (``trainingJobs``) knows its items before GraphQL walks into them. When the
selection asks for a relation of every item (``edges { node { modelVersion } }``), the root
resolver starts the loader's batch for all of them at once; each item's relation field then finds
its value already loaded and answers without suspending. The queries are the same (one batched
query per relation, through the same per-request DataLoader); what goes away is an awaitable,
and graphql-core's gathering of it, per item.

What the selection asks for is read from the query's syntax tree, visiting each fragment at
most once per level, as graphql-core's own field collection does. Strawberry's
``info.selected_fields`` would convert the whole selection with every fragment spread expanded
again, which a document that spreads each fragment twice makes exponential (issue 10).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    SelectionSetNode,
)
from strawberry.types.nodes import convert_arguments

from graphql_api.context import Info
from graphql_api.domain.models import TrainingJob


@dataclass
class SelectionWalk:
    """Field names a selection asks for at a path, through fragments and aliases.

    ``@skip``/``@include`` are not evaluated: a skipped relation is loaded anyway, which costs
    a query and changes no answer."""

    fragments: Mapping[str, FragmentDefinitionNode]
    #: Selections visited: at most the document's selections once per path level.
    visits: int = 0

    def fields_at(self, fields: Collection[FieldNode], path: Sequence[str]) -> list[FieldNode]:
        """The fields selected at ``path`` below ``fields``, through fragments and aliases."""
        level = [field.selection_set for field in fields if field.selection_set is not None]
        for name in path:
            level = [
                field.selection_set
                for field in self._fields(level)
                if field.name.value == name and field.selection_set is not None
            ]
        return self._fields(level)

    def names_at(self, fields: Collection[FieldNode], path: Sequence[str]) -> set[str]:
        return {field.name.value for field in self.fields_at(fields, path)}

    def _fields(self, selection_sets: list[SelectionSetNode]) -> list[FieldNode]:
        """The fields of these selection sets, looking through fragments; a fragment spread
        more than once is read once."""
        found: list[FieldNode] = []
        seen: set[str] = set()
        pending = list(selection_sets)  # a stack, not recursion: nesting is the client's choice
        while pending:
            for selection in pending.pop().selections:
                self.visits += 1
                if isinstance(selection, FieldNode):
                    found.append(selection)
                elif isinstance(selection, InlineFragmentNode):
                    pending.append(selection.selection_set)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.fragments.get(name)
                    if fragment is not None and name not in seen:
                        seen.add(name)
                        pending.append(fragment.selection_set)
        return found


def selected_at(info: Info, *path: str) -> list[FieldNode]:
    """The fields the current field's selection asks for at ``path`` (GraphQL names)."""
    # Strawberry's Info keeps graphql-core's resolve info as _raw_info (a declared field of
    # its dataclass); the syntax tree is only there.
    raw = info._raw_info
    return SelectionWalk(raw.fragments).fields_at(raw.field_nodes, path)


async def prime_job_relations(info: Info, jobs: Sequence[TrainingJob], *path: str) -> None:
    """Load the relations the operation selects at ``path`` for all ``jobs``, in one batch each."""
    if not jobs:
        return
    loaders = info.context.loaders
    item = selected_at(info, *path)
    loads: list[Awaitable[Any]] = []
    if any(field.name.value == "modelVersion" for field in item):
        loads.append(loaders.model_version.load_many([job.model_id for job in jobs]))
    for history in (field for field in item if field.name.value == "history"):
        # Each history selection (aliases may ask for different pages) primes its own page;
        # its arguments are read as Strawberry reads a selected field's.
        arguments = convert_arguments(info._raw_info, history.arguments)
        page_loader = loaders.history_page_of(arguments)
        if page_loader is not None:
            loads.append(page_loader.load_many([job.job_id for job in jobs]))
    # A failed load is not raised here: the loader keeps the failed result, so each item's field
    # reports it, as it would have without priming.
    await asyncio.gather(*loads, return_exceptions=True)
