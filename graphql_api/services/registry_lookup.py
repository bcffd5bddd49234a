"""Reading the version a registry call names, checked to be a version of the model it names.

Shared by ``setModelAlias`` (``services/registry_aliases.py``) and ``rollbackModel``
(``services/registry_rollback.py``): both take a model name and a model id, and refuse an id
that does not exist or belongs to another model, with the same errors.
"""

from __future__ import annotations

from graphql_api.domain.errors import NotFoundError, ValidationError, ValidationRule
from graphql_api.domain.models import ModelVersion
from graphql_api.storage.base import ModelVersionStore

RESOURCE = "ModelVersion"


async def version_of_model(
    versions: ModelVersionStore, model_name: str, model_id: str, *, field: str, why: str = ""
) -> ModelVersion:
    """The version ``model_id`` of ``model_name``: NotFoundError if there is none, a
    ``model_name`` ValidationError on ``field`` if it is a version of another model (``why``,
    when given, is added to that message)."""
    target = await versions.get(model_id)
    if target is None:
        raise NotFoundError(RESOURCE, model_id, field=field)
    if target.model_name != model_name:
        raise ValidationError(
            field,
            f"{RESOURCE} {model_id!r} is a version of {target.model_name!r}, not of "
            f"{model_name!r}{why}",
            rule=ValidationRule.model_name,
        )
    return target
