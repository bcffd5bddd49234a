"""The schema: root types from ``resolvers``, and the extensions every operation runs with."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql.error import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.types import ExecutionContext

from graphql_api.errors import ClientErrors
from graphql_api.types.errors import (
    ConflictError,
    InvalidTransitionError,
    NotFoundError,
    ValidationError,
)
from resolvers.queries import Query
from resolvers.registry_mutations import RegistryMutation
from resolvers.training_mutations import TrainingMutation


@strawberry.type(description="Every lifecycle transition of models and training jobs.")
class Mutation(RegistryMutation, TrainingMutation):
    pass


class MLTrainSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # ClientErrors logs what deserves it (unexpected errors, with their request id);
        # Strawberry's default would log every expected error as if it were a failure.
        return None


def build_schema(**options: Any) -> strawberry.Schema:
    return MLTrainSchema(
        query=Query,
        mutation=Mutation,
        types=[NotFoundError, InvalidTransitionError, ConflictError, ValidationError],
        extensions=[
            ClientErrors,
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
        ],
        **options,
    )


schema = build_schema()
