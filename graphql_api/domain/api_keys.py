"""API keys kept in the database (issued while running): what one is, its model scope, and the
rules a new one must follow. Pure: no I/O.

A stored key is checked like a configured one (SHA-256 digest of a high-entropy secret,
``graphql_api.auth.keys``); it can also expire, be revoked, and be limited to model names.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from graphql_api.domain import text
from graphql_api.domain.errors import ValidationError, ValidationRule

#: A key name: recorded as the actor of every change, so the same rule as configured keys.
KEY_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Model-name patterns one key may carry.
MAX_SCOPE_PATTERNS = 20
#: Characters a pattern may not hold: ``[``/``]`` character classes and ``\\`` escapes are not
#: supported (a name with them cannot be matched literally and a class is easy to get wrong).
_UNSUPPORTED_IN_PATTERN = frozenset("[]\\")


@dataclass(frozen=True)
class ModelScope:
    """Model-name patterns (``*`` any run of characters, ``?`` one character); empty: every
    model. A name is in scope when it matches one pattern, whole and case-sensitively."""

    patterns: tuple[str, ...] = ()
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.patterns:
            object.__setattr__(self, "_regex", re.compile(self.regex()))

    @property
    def unrestricted(self) -> bool:
        return not self.patterns

    def allows(self, model_name: str | None) -> bool:
        if self._regex is None:
            return True
        return model_name is not None and self._regex.fullmatch(model_name) is not None

    def regex(self) -> str:
        """One anchored regular expression matching exactly the names in scope (what storage
        filters with: ``^(?:churn\\-.*)$``)."""
        return "^(?:" + "|".join(_pattern_regex(p) for p in self.patterns) + ")$"


#: The scope of a key limited to no model names.
EVERY_MODEL = ModelScope()


def _pattern_regex(pattern: str) -> str:
    out = []
    for char in pattern:
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        else:
            out.append(re.escape(char))
    return "".join(out)


def parse_scope(patterns: Sequence[str] | None, where: str = "modelNames") -> ModelScope:
    """The scope of these patterns; ValidationError naming ``where`` (and the index) if one
    is not a pattern this server supports."""
    if not patterns:
        return ModelScope()
    if len(patterns) > MAX_SCOPE_PATTERNS:
        raise ValidationError(
            where,
            f"at most {MAX_SCOPE_PATTERNS} patterns (got {len(patterns)})",
            rule=ValidationRule.max_items,
        )
    for index, pattern in enumerate(patterns):
        path = f"{where}[{index}]"
        bad = sorted(_UNSUPPORTED_IN_PATTERN & set(pattern))
        if bad:
            raise ValidationError(
                path,
                f"pattern {pattern!r} uses {', '.join(bad)}: only '*' (any characters) and "
                "'?' (one character) are wildcards",
                rule=ValidationRule.characters,
            )
        try:
            text.check_name(pattern)
        except text.PolicyError as error:
            raise ValidationError(path, error.message, rule=error.rule) from None
    return ModelScope(tuple(dict.fromkeys(patterns)))


def check_key_name(name: str, where: str = "name") -> str:
    if not KEY_NAME_PATTERN.fullmatch(name):
        raise ValidationError(
            where,
            "must be 1-64 ASCII letters, digits, '.', '_' or '-', starting with a letter or "
            "digit (it is recorded as the actor of every change the key makes)",
            rule=ValidationRule.id_pattern,
        )
    return name


def check_expiry(expires_at: datetime | None, now: datetime, where: str = "expiresAt") -> None:
    if expires_at is None:
        return
    if expires_at.tzinfo is None:
        raise ValidationError(
            where, "must carry a timezone (e.g. 2027-01-01T00:00:00Z)", rule=ValidationRule.timezone
        )
    if expires_at <= now:
        raise ValidationError(
            where, f"must be in the future (now is {now.isoformat()})", rule=ValidationRule.min
        )


@dataclass(frozen=True)
class StoredApiKey:
    """A key as the database keeps it: never the secret, only its SHA-256 digest."""

    name: str
    role: str
    digest: str
    scope: ModelScope
    created_at: datetime
    created_by: str | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


#: Every secret starts with this, so a leaked one is recognisable (secret scanners, logs).
SECRET_PREFIX = "mlt_"


def new_secret() -> str:
    """32 random bytes (256 bits) behind the prefix: too much entropy to guess or to reverse
    from its SHA-256 digest, which is why a fast digest suffices (docs/security.md)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


#: The roles a key can have, least first (``graphql_api.auth.roles.Role``; a test keeps the two
#: equal): the services check a new key's role against this without importing the transport.
ROLE_NAMES = ("viewer", "worker", "operator", "admin")
