"""The domain enums, exposed to GraphQL."""

from __future__ import annotations

import strawberry

from graphql_api.domain import enums as domain
from graphql_api.domain import events, queries

TrainingStatus = strawberry.enum(domain.TrainingStatus, description="Status of a training job.")
ModelStatus = strawberry.enum(
    domain.ModelStatus,
    description="Lifecycle status of a model version: development -> testing -> production; "
    "archived (an addition to the seed) when retired or withdrawn.",
)
ModelType = strawberry.enum(domain.ModelType, description="What kind of prediction a model makes.")
ChangeKind = strawberry.enum(events.ChangeKind, description="What a recorded change did.")
ModelVersionOrder = strawberry.enum(
    queries.ModelVersionOrder,
    description="Orderings of model versions; VERSION_* follow SemVer precedence.",
)
TrainingJobOrder = strawberry.enum(queries.TrainingJobOrder, description="Orderings of jobs.")
