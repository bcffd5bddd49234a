"""The schema: root types from ``resolvers``, and the extensions every operation runs with."""

from __future__ import annotations

from typing import Any, cast

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import DisableIntrospection, MaxTokensLimiter
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.schema import SubscriptionResult
from strawberry.types import ExecutionContext

from graphql_api.auth.guard import guard_root_fields
from graphql_api.auth.scope import scope_root_fields
from graphql_api.errors import ClientErrors
from graphql_api.execution import Executor
from graphql_api.input_coercion import install as install_input_coercion
from graphql_api.limits.documents import AcceptedDocuments
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
from graphql_api.types.metric_series import INT64_SCALAR, Int64
from resolvers.api_keys import ApiKeyMutation, ApiKeyQuery
from resolvers.queries import Query
from resolvers.registry_mutations import RegistryMutation
from resolvers.subscriptions import Subscription
from resolvers.training_mutations import TrainingMutation
from resolvers.webhooks import WebhookMutation, WebhookQuery


@strawberry.type(description="Every lifecycle transition of models and training jobs.")
class Mutation(RegistryMutation, TrainingMutation, ApiKeyMutation, WebhookMutation):
    pass


@strawberry.type(
    name="Query", description="Reads for dashboards, the registry viewer and inference services."
)
class RootQuery(Query, ApiKeyQuery, WebhookQuery):
    pass


guard_root_fields(RootQuery, Mutation)
scope_root_fields(RootQuery, Mutation)


class MLTrainSchema(strawberry.Schema):
    #: The documents this schema accepted (cached parse and validation); set by build_schema.
    accepted_documents: AcceptedDocuments

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # ClientErrors logs what deserves it (unexpected errors, with their request id);
        # Strawberry's default would log every expected error as if it were a failure.
        return None

    async def subscribe(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> SubscriptionResult:
        """Any operation, not only subscriptions, for the legacy graphql-ws protocol's ``start``.

        graphql-transport-ws runs every ``subscribe`` through ``Schema.stream``, so a query or
        mutation sent over it gets one ``next`` and ``complete``. Strawberry's legacy
        graphql-ws handler calls this method instead, which allows subscriptions only, and the
        refusal reached clients as "Unexpected error." (the protocol, like
        subscriptions-transport-ws before it, runs queries and mutations too). Both now take
        the same path as HTTP: the same extensions (limits, validation), the same context (the
        connection's key, so the role check of every root field applies).
        """
        # A query or mutation yields one result and completes; each yielded item is a
        # strawberry ExecutionResult (incremental delivery, @defer/@stream, is not enabled).
        return cast(
            "SubscriptionResult",
            await self.stream(
                query,
                variable_values=variable_values,
                context_value=context_value,
                root_value=root_value,
                operation_name=operation_name,
                operation_extensions=operation_extensions,
            ),
        )


def build_schema(
    limits: QueryLimits | None = None, *, introspection: bool = True, **options: Any
) -> MLTrainSchema:
    """The schema with these cost limits; ``create_app`` builds one per app from its settings."""
    limits = limits or QueryLimits()
    # Documents that passed every check, for this schema only: 256 of them, and at most 32
    # documents' worth of tokens at the token limit (see limits/documents.py).
    accepted = AcceptedDocuments(max_entries=256, max_tokens=32 * limits.max_tokens)
    extensions: list[Any] = [
        lambda: ClientErrors(max_tokens=limits.max_tokens),
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
        # Parsing, the cost limits, then graphql-core's rules; only accepted documents are
        # cached (see limits/rules.py).
        lambda: CostFirstValidation(limits, accepted),
        OperationNameRequired,  # after validation: it adds to validation's errors
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    schema = MLTrainSchema(
        query=RootQuery,
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
        # Subscription events: one execution per distinct operation, shared (live.fanout);
        # plain fields and known model classes without per-field machinery (execution.py).
        execution_context_class=Executor,
        config=StrawberryConfig(scalar_map={Int64: INT64_SCALAR}),
        **options,
    )
    schema.accepted_documents = accepted
    # Variables' lists of scalars coerced in one loop each (input_coercion.py): a metric
    # series call carries thousands of numbers.
    install_input_coercion()
    return schema


schema = build_schema()
