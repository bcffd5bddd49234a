"""``resolveModelVersion``: the highest version of a model that a range matches.

The name's versions are read highest precedence first (the ``model_name_semver`` index
orders them), a page at a time, until one matches: the cost is the versions above the answer
(one page for the usual "^1.4" of a model whose newest major is 1), at most every version of
that one name for a range nothing matches.
"""

from __future__ import annotations

from collections.abc import Collection

from graphql_api.domain import text, validation
from graphql_api.domain.enums import ModelStatus
from graphql_api.domain.errors import ValidationError, ValidationRule
from graphql_api.domain.models import ModelVersion
from graphql_api.domain.semver_ranges import parse_range
from graphql_api.storage.base import Storage

PAGE = 100
#: Without ``statuses``: every version that is not retired.
DEFAULT_STATUSES = frozenset({ModelStatus.DEVELOPMENT, ModelStatus.TESTING, ModelStatus.PRODUCTION})


class VersionResolver:
    def __init__(self, storage: Storage) -> None:
        self._versions = storage.model_versions

    async def resolve(
        self,
        model_name: str,
        range_text: str,
        statuses: Collection[ModelStatus] | None = None,
        include_prerelease: bool = False,
    ) -> ModelVersion | None:
        validation.checked(text.check_name, model_name, "modelName")
        try:
            wanted = parse_range(range_text, include_prerelease)
        except ValueError as error:
            raise ValidationError("range", str(error), rule=ValidationRule.semver_range) from None
        if statuses is not None and not statuses:
            raise ValidationError(
                "statuses", "name at least one status (or leave it out)", rule=ValidationRule.min
            )
        allowed = DEFAULT_STATUSES if statuses is None else frozenset(statuses)
        below: tuple[str, str] | None = None
        while True:
            page = await self._versions.by_precedence(model_name, allowed, below, PAGE)
            for version in page:
                if wanted.matches(version.semver, include_prerelease):
                    return version
            if len(page) < PAGE:
                return None
            last = page[-1]
            below = (last.semver.sort_key, last.model_id)
