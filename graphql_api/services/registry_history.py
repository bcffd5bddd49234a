"""The registry's history: who changed what, when, from what to what, and why.

Read from the change log, so every entry's cursor also resumes ``modelVersionUpdates`` right
after it. A version's history is its own events; a model's history is the events of all its
versions (deployments, rollbacks, alias moves, archives, ...), in log order.
"""

from __future__ import annotations

from collections.abc import Sequence

from graphql_api.domain import text, validation
from graphql_api.domain.errors import CursorExpiredError
from graphql_api.domain.events import StoredEvent
from graphql_api.storage.base import Storage


class ModelHistoryService:
    def __init__(self, storage: Storage) -> None:
        self._events = storage.events

    async def version_pages(
        self, model_ids: Sequence[str], after_seq: int, first: int
    ) -> dict[str, list[StoredEvent]]:
        """Each version's changes after ``after_seq``: ``first`` and one more when a next page
        exists; batched. CursorExpiredError below the retention floor (read after the page,
        as for job histories)."""
        pages = await self._events.page_for_entities(model_ids, after_seq, first)
        await self._check_floor(after_seq)
        return pages

    async def version_counts(self, model_ids: Sequence[str]) -> dict[str, int]:
        return await self._events.count_for_entities(model_ids)

    async def model_page(self, model_name: str, after_seq: int, first: int) -> list[StoredEvent]:
        validation.checked(text.check_name, model_name, "modelName")
        page = await self._events.page_for_model(model_name, after_seq, first)
        await self._check_floor(after_seq)
        return page

    async def model_count(self, model_name: str) -> int:
        return await self._events.count_for_model(model_name)

    async def _check_floor(self, after_seq: int) -> None:
        if after_seq > 0 and after_seq < await self._events.floor():
            raise CursorExpiredError()
