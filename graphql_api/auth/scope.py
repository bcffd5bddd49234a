"""A key limited to model names (``modelNames: ["churn-*"]``) sees and changes only those.

Enforced at the root fields, like the role check (``guard.py``), so that no resolver needs to
know: a field extension on every root query and mutation field.

* **Mutations** naming a record of another model answer ``NotFoundError`` on the field that
  named it, exactly as for a record that does not exist (a scoped key cannot even learn that
  ``fraud-2.0.0`` exists); ``registerModelVersion`` of a name outside the scope answers
  ``ForbiddenError`` (the name is the caller's own input, nothing to hide). Nothing changes.
* **Lookups** (``modelVersion``, ``trainingJob``, ``productionModelVersion``,
  ``latestModelVersion``) of another model answer null, as for one that does not exist.
* **Lists** (``modelVersions``, ``trainingJobs``) are filtered in the database query itself:
  the ids of the versions in scope are read first (one more round trip) and intersected with
  the client's filter, so pages, ``hasNextPage`` and ``totalCount`` count only what the key
  may see (``narrowed``, called by the list resolvers).
* **Subscriptions** skip the events of other models (``resolvers/subscriptions.py``);
  ``trainingMetricUpdates`` answers NotFoundError for a job of another model, as for one
  that does not exist (``resolvers/metric_subscriptions.py``).
* **Claims** (``claimTrainingJob``) name no record: the key claims only jobs of its models
  (``claimable_model_ids``, applied in the claim's query), and the queue looks empty to it
  when the queue holds only other models' jobs. The other worker mutations name a job and
  are checked like every job mutation.
* A root field this table does not know (added later) is refused to scoped keys: fail closed.
  ``models`` and ``modelHistory`` are refused to them for now (``REFUSED_TO_LIMITED``).

Records reached from an allowed one (a version's jobs, a job's version, their history) belong
to the same model, so nested fields need no check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from strawberry.extensions import FieldExtension
from strawberry.types import Info
from strawberry.types.base import get_object_definition

from graphql_api.domain.api_keys import ModelScope
from graphql_api.domain.errors import DomainError, ForbiddenError, NotFoundError
from graphql_api.domain.queries import ModelVersionFilter, TrainingJobFilter
from graphql_api.types.errors import to_graphql

F = TypeVar("F", ModelVersionFilter, TrainingJobFilter)


class OutOfScopeError(ForbiddenError):
    """A key limited to model names asked for another model (or for a field not open to such
    keys); nothing changed."""

    def __init__(self, operation: str, role: str, what: str, scope: ModelScope) -> None:
        super().__init__(operation, role, role)
        patterns = ", ".join(scope.patterns)
        self.message = f"this key is limited to model names {patterns}: {what}"
        self.args = (self.message,)


def key_scope(context: Any) -> ModelScope | None:
    """The caller's scope, or None when it may see every model."""
    key = getattr(context, "api_key", None)
    if key is None or key.scope.unrestricted:
        return None
    scope: ModelScope = key.scope
    return scope


async def _version_name(context: Any, model_id: str) -> str | None:
    version = await context.loaders.model_version.load(model_id)
    return None if version is None else str(version.model_name)


def _version_argument(argument: str, field: str) -> Callable[..., Awaitable[DomainError | None]]:
    async def check(context: Any, scope: ModelScope, kwargs: dict[str, Any]) -> DomainError | None:
        model_id = str(_dig(kwargs, argument))
        name = await _version_name(context, model_id)
        if name is not None and not scope.allows(name):
            return NotFoundError("ModelVersion", model_id, field=field)
        return None

    return check


async def job_outside(
    context: Any, scope: ModelScope, job_id: str, field: str
) -> NotFoundError | None:
    """NotFoundError (on ``field``) when job ``job_id`` exists but belongs to a model outside
    ``scope``: to such a key it does not exist."""
    job = await context.services.training.get(job_id)
    if job is None:
        return None
    name = await _version_name(context, str(job.model_id))
    if not scope.allows(name):
        return NotFoundError("TrainingJob", job_id, field=field)
    return None


async def _job_argument(
    context: Any, scope: ModelScope, kwargs: dict[str, Any]
) -> DomainError | None:
    return await job_outside(context, scope, str(kwargs["job_id"]), "jobId")


async def _new_name(context: Any, scope: ModelScope, kwargs: dict[str, Any]) -> DomainError | None:
    name = str(kwargs["input"].model_name)
    if not scope.allows(name):
        role = context.api_key.role.value
        return OutOfScopeError("registerModelVersion", role, f"{name!r} is not one of them", scope)
    return None


def _dig(kwargs: dict[str, Any], path: str) -> Any:
    head, _, rest = path.partition(".")
    value = kwargs[head]
    return getattr(value, rest) if rest else value


Check = Callable[[Any, ModelScope, dict[str, Any]], Awaitable[DomainError | None]]


def _named_model(operation: str) -> Check:
    """A mutation naming a model by ``model_name``: refused outside the scope (the name is the
    caller's own input, nothing to hide), as for registration."""

    async def check(context: Any, scope: ModelScope, kwargs: dict[str, Any]) -> DomainError | None:
        name = str(kwargs["model_name"])
        if not scope.allows(name):
            role = context.api_key.role.value
            return OutOfScopeError(operation, role, f"{name!r} is not one of them", scope)
        return None

    return check


def _every(*checks: Check) -> Check:
    """The first refusal of ``checks``, in order."""

    async def check(context: Any, scope: ModelScope, kwargs: dict[str, Any]) -> DomainError | None:
        for one in checks:
            refused = await one(context, scope, kwargs)
            if refused is not None:
                return refused
        return None

    return check


#: Root mutation field -> how to tell whether the record it changes is in the key's scope.
MUTATION_SCOPES: dict[str, Check | None] = {
    "registerModelVersion": _new_name,
    "promoteModelVersion": _version_argument("model_id", "modelId"),
    "archiveModelVersion": _version_argument("model_id", "modelId"),
    "updateModelVersionMetrics": _version_argument("model_id", "modelId"),
    "createTrainingJob": _version_argument("input.model_id", "modelId"),
    "cancelTrainingJob": _job_argument,
    "startTrainingJob": _job_argument,
    "reportTrainingMetrics": _job_argument,
    "completeTrainingJob": _job_argument,
    "failTrainingJob": _job_argument,
    "setTrainingJobLogsUrl": _job_argument,
    "heartbeatTrainingJob": _job_argument,
    "acknowledgeTrainingJobCancel": _job_argument,
    "retryTrainingJob": _job_argument,
    # Names no job: its resolver claims only jobs of the key's models (claimable_model_ids).
    "claimTrainingJob": None,
    "updateModelVersion": _version_argument("model_id", "modelId"),
    "setModelAlias": _every(
        _named_model("setModelAlias"), _version_argument("model_id", "modelId")
    ),
    "deleteModelAlias": _named_model("deleteModelAlias"),
    "rollbackModelVersion": _every(
        _named_model("rollbackModelVersion"), _version_argument("to_model_id", "toModelId")
    ),
    # Refused to scoped keys by their resolvers (a scoped key may not manage keys).
    "createApiKey": None,
    "revokeApiKey": None,
    # Refused to scoped keys by their resolvers (a webhook is told of every model's changes).
    "createWebhook": None,
    "updateWebhook": None,
    "deleteWebhook": None,
    "testWebhook": None,
    "redeliverWebhookDelivery": None,
    "replayWebhook": None,
}

#: Root query fields answering one record of a model named by an argument: null outside.
NAMED_LOOKUPS = {
    "productionModelVersion",
    "latestModelVersion",
    "modelVersionByAlias",
    "resolveModelVersion",
}
#: Root query fields answering one record by id: null when it belongs to another model.
ID_LOOKUPS = {"modelVersion", "trainingJob"}
#: Lists filtered by ``narrowed`` in their resolvers; fields that check for themselves.
SELF_SCOPED = {"modelVersions", "trainingJobs", "apiKeys", "webhooks", "__typename"}
#: Root query fields not yet open to limited keys (refused with FORBIDDEN, fail closed): the
#: list of models and a name's history would need the scope applied inside their queries.
REFUSED_TO_LIMITED = {"models", "modelHistory"}
QUERY_FIELDS = NAMED_LOOKUPS | ID_LOOKUPS | SELF_SCOPED | REFUSED_TO_LIMITED


async def narrowed(context: Any, where: F) -> F:
    """``where`` (a list filter with ``model_ids``) limited to the versions in the caller's
    scope: applied in the query, so pages and counts hold only what the key may see."""
    scope = key_scope(context)
    if scope is None:
        return where
    in_scope = await context.services.api_keys.model_ids_in_scope(scope)
    asked = where.model_ids
    allowed = in_scope if asked is None else [i for i in asked if i in set(in_scope)]
    return dataclasses.replace(where, model_ids=tuple(allowed))


async def claimable_model_ids(context: Any) -> list[str] | None:
    """The versions whose jobs the caller may claim: None for every one, else those in its
    scope (applied in the claim's query, so a queue of other models' jobs looks empty)."""
    scope = key_scope(context)
    if scope is None:
        return None
    ids: list[str] = await context.services.api_keys.model_ids_in_scope(scope)
    return ids


class ScopeCheck(FieldExtension):
    async def _refusal(self, info: Info[Any, Any], kwargs: dict[str, Any]) -> DomainError | None:
        scope = key_scope(info.context)
        if scope is None:
            return None
        operation = info.operation.operation.value
        field = info.field_name
        role = info.context.api_key.role.value
        if operation == "mutation":
            if field not in MUTATION_SCOPES:
                return OutOfScopeError(field, role, f"{field} is not open to such keys", scope)
            check = MUTATION_SCOPES[field]
            return None if check is None else await check(info.context, scope, kwargs)
        if field not in QUERY_FIELDS or field in REFUSED_TO_LIMITED:
            return OutOfScopeError(field, role, f"{field} is not open to such keys", scope)
        return None

    async def resolve_async(
        self,
        next_: Callable[..., Awaitable[Any]],
        source: Any,
        info: Info[Any, Any],
        **kwargs: Any,
    ) -> Any:
        refused = await self._refusal(info, kwargs)
        if refused is not None:
            if info.operation.operation.value == "mutation":
                return to_graphql(refused)
            raise refused
        scope = key_scope(info.context)
        if (
            scope is not None
            and info.field_name in NAMED_LOOKUPS
            and not scope.allows(kwargs.get("model_name"))
        ):
            return None
        result = await next_(source, info, **kwargs)
        if scope is not None and result is not None and info.field_name in ID_LOOKUPS:
            name = getattr(result, "model_name", None)
            if name is None:
                name = await _version_name(info.context, str(result.model_id))
            if not scope.allows(name):
                return None
        return result


def scope_root_fields(*root_types: type) -> None:
    """Put the scope check on every field of these root types (once, however often called)."""
    for root_type in root_types:
        for field in get_object_definition(root_type, strict=True).fields:
            if not any(isinstance(e, ScopeCheck) for e in field.extensions):
                field.extensions.append(ScopeCheck())
