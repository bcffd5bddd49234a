"""Strawberry's resolver decorators, typed for mypy strict.

``@strawberry.field(description=...)`` (and ``mutation``/``subscription``) matches the overload
that also serves ``x: int = strawberry.field(...)``, so it returns ``Any``: under
``disallow_untyped_decorators`` every decorated resolver is an error, and Strawberry's mypy
plugin (on; it only covers the experimental pydantic types) does not change that. These wrappers
call Strawberry unchanged and tell mypy that the decorated method keeps its signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

import strawberry

P = ParamSpec("P")
R = TypeVar("R")


def field(
    *, description: str, graphql_type: object | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``@strawberry.field``: ``graphql_type`` names the GraphQL type when the method returns a
    domain model that Strawberry shows through a generated type."""
    # A StrawberryField that wraps the method; Strawberry's stub cannot say so (see above).
    return cast(
        Callable[[Callable[P, R]], Callable[P, R]],
        strawberry.field(description=description, graphql_type=graphql_type),
    )


def mutation(
    *, description: str, graphql_type: object | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``@strawberry.mutation``, typed as ``field`` is."""
    return cast(
        Callable[[Callable[P, R]], Callable[P, R]],
        strawberry.mutation(description=description, graphql_type=graphql_type),
    )


def subscription(
    *, description: str, graphql_type: object | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``@strawberry.subscription``, typed as ``field`` is; ``graphql_type`` is the type of one
    event."""
    return cast(
        Callable[[Callable[P, R]], Callable[P, R]],
        strawberry.subscription(description=description, graphql_type=graphql_type),
    )
