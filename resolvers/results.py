"""Expected failures become data: a mutation returns the record or a typed error."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from graphql_api.domain.errors import DomainError
from graphql_api.types.errors import MutationError, to_graphql

T = TypeVar("T")


async def result_of(change: Awaitable[T]) -> T | MutationError:
    try:
        return await change
    except DomainError as error:
        return to_graphql(error)
