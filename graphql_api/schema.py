"""The schema: root types from ``resolvers``, and the extensions every operation runs with."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import DisableIntrospection, MaxTokensLimiter, ParserCache
from strawberry.types import ExecutionContext

from graphql_api.auth.guard import guard_root_fields
from graphql_api.errors import ClientErrors
from graphql_api.limits.rules import CostFirstValidation, QueryLimits
from graphql_api.operation_name import OperationNameRequired
from graphql_api.types.errors import (
    ConflictError,
    ForbiddenError,
    InvalidTransitionError,
    NotFoundError,
    UnauthenticatedError,
    ValidationError,
)
from resolvers.queries import Query
from resolvers.registry_mutations import RegistryMutation
from resolvers.subscriptions import Subscription
from resolvers.training_mutations import TrainingMutation


@strawberry.type(description="Every lifecycle transition of models and training jobs.")
class Mutation(RegistryMutation, TrainingMutation):
    pass


guard_root_fields(Query, Mutation)


class MLTrainSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # ClientErrors logs what deserves it (unexpected errors, with their request id);
        # Strawberry's default would log every expected error as if it were a failure.
        return None


def build_schema(
    limits: QueryLimits | None = None, *, introspection: bool = True, **options: Any
) -> strawberry.Schema:
    """The schema with these cost limits; ``create_app`` builds one per app from its settings."""
    limits = limits or QueryLimits()
    extensions: list[Any] = [
        lambda: ClientErrors(max_tokens=limits.max_tokens),
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: ParserCache(maxsize=256),
        # The cost limits, then graphql-core's rules (cached per document; see limits/rules.py).
        lambda: CostFirstValidation(limits),
        OperationNameRequired,  # after validation: it adds to validation's errors
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    return MLTrainSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[
            NotFoundError,
            InvalidTransitionError,
            ConflictError,
            ValidationError,
            UnauthenticatedError,
            ForbiddenError,
        ],
        extensions=extensions,
        **options,
    )


schema = build_schema()
