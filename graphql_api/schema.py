"""The schema: root types from ``resolvers``, and the extensions every operation runs with."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.types import ExecutionContext

from graphql_api.auth.guard import guard_root_fields
from graphql_api.errors import ClientErrors
from graphql_api.limits.rules import QueryLimits, cost_rules
from graphql_api.live.fanout import SharingExecutor
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
    # Built once: the ValidationCache keys on the rule classes, so classes made per request
    # would miss it every time (measured: validation was a quarter of a dashboard query).
    rules = cost_rules(limits)
    extensions: list[Any] = [
        lambda: ClientErrors(max_tokens=limits.max_tokens),
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        lambda: AddValidationRules(rules),  # type: ignore[arg-type]
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
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
        # Subscription events: one execution per distinct operation, shared (live.fanout).
        execution_context_class=SharingExecutor,
        **options,
    )


schema = build_schema()
