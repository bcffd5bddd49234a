"""Alias names of a model (``champion``, ``staging``, ``canary-eu``).

An alias is stored as a field name of the model's registry document, so its characters are
kept to ones every MongoDB-wire server stores as they are: lowercase ASCII letters, digits,
``-`` and ``_``, starting with a letter. ``production`` is reserved: it always names the
version in production (``productionModelVersion``) and moves only by deployments and rollbacks.
"""

from __future__ import annotations

import re

from graphql_api.domain import text
from graphql_api.domain.errors import ValidationRule

PRODUCTION_ALIAS = "production"
ALIAS_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}")
#: Aliases one model name may have: every version's ``aliases`` reads them all.
MAX_ALIASES = 100


def check_alias(value: str) -> str:
    """A settable alias: the pattern, and not ``production``."""
    check_alias_name(value)
    if value == PRODUCTION_ALIAS:
        raise text.PolicyError(
            f"{PRODUCTION_ALIAS!r} is reserved: it always names the version in production and "
            "moves only by promoteModelVersion(to: PRODUCTION) and rollbackModelVersion",
            ValidationRule.reserved,
        )
    return value


def check_alias_name(value: str) -> str:
    """An alias to look up (``production`` included)."""
    if not ALIAS_PATTERN.fullmatch(value):
        raise text.PolicyError(
            "must be 1-63 lowercase ASCII letters, digits, '-' or '_', starting with a letter",
            ValidationRule.alias_pattern,
        )
    return value
