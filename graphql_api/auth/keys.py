"""API keys: generated once, stored only as SHA-256 digests, verified in constant time.

A secret is 32 random bytes (URL-safe base64) behind the ``mlt_`` prefix. With that much
entropy a plain SHA-256 digest cannot be reversed or guessed, so no slow password hash is needed
and verification stays cheap on every request.

The operator configures keys as ``name:role:sha256hex`` entries, comma-separated in
``MLTRAIN_API_KEYS`` or one a line (``#`` comments) or a JSON list of
``{"name", "role", "sha256"}`` objects in the file ``MLTRAIN_API_KEYS_FILE``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from graphql_api.auth.roles import Role
from graphql_api.domain.api_keys import EVERY_MODEL, ModelScope

SECRET_PREFIX = "mlt_"
# Matched with ``fullmatch``: a ``$`` anchor would also match before a trailing newline.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DIGEST_PATTERN = re.compile(r"[0-9a-f]{64}")


class KeyConfigError(ValueError):
    """The configured keys cannot be used; the server refuses to start."""


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: Role
    digest: str  # sha256 hex of the secret; the secret itself is never kept
    #: Model names the key may see and change (keys issued while running; configured keys
    #: see every model).
    scope: ModelScope = EVERY_MODEL
    #: When it stops working (keys issued while running); None: never.
    expires_at: datetime | None = None
    #: Issued while running (kept in the database): may expire and be revoked.
    stored: bool = False

    def entry(self) -> str:
        """The ``name:role:sha256hex`` line an operator puts in the environment or key file."""
        return f"{self.name}:{self.role.value}:{self.digest}"


def digest_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate(name: str, role: Role) -> tuple[str, ApiKey]:
    """A new secret (to show once) and the key that verifies it."""
    _check_name(name)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    return secret, ApiKey(name=name, role=role, digest=digest_of(secret))


class KeyRing:
    """The configured keys. Empty means no authentication (open mode)."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self.keys = tuple(keys)
        names = [k.name for k in self.keys]
        if len(set(names)) != len(names):
            raise KeyConfigError("API key names must be unique (they identify the actor)")
        if len({k.digest for k in self.keys}) != len(self.keys):
            raise KeyConfigError("two API keys have the same secret")

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def verify(self, secret: str | None) -> ApiKey | None:
        """The key whose secret this is, or None. Compares against every key so the time
        taken does not tell which digest matched how far."""
        if not secret:
            return None
        candidate = digest_of(secret)
        found: ApiKey | None = None
        for key in self.keys:
            if hmac.compare_digest(candidate, key.digest):
                found = key
        return found

    @classmethod
    def load(cls, entries: str | None = None, file: Path | None = None) -> KeyRing:
        keys: list[ApiKey] = []
        if entries:
            keys += [_parse_entry(e, "MLTRAIN_API_KEYS") for e in entries.split(",") if e.strip()]
        if file is not None:
            keys += _parse_file(file)
        return cls(keys)


def bearer_secret(header: str | None) -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` header value, else None."""
    if not header:
        return None
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


def _check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise KeyConfigError(
            f"API key name {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "(it is recorded as the actor of every change the key makes)"
        )
    return name


def _make(name: str, role: str, digest: str, where: str) -> ApiKey:
    try:
        parsed_role = Role(role.strip().lower())
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise KeyConfigError(f"{where}: unknown role {role!r} (one of {allowed})") from None
    digest = digest.strip().lower()
    if not DIGEST_PATTERN.fullmatch(digest):
        raise KeyConfigError(
            f"{where}: key {name!r} needs the SHA-256 hex digest of its secret (64 hex "
            "digits; `mltrain keys create` prints it), never the secret itself"
        )
    return ApiKey(name=_check_name(name.strip()), role=parsed_role, digest=digest)


def _parse_entry(entry: str, where: str) -> ApiKey:
    parts = entry.strip().split(":")
    if len(parts) != 3:
        raise KeyConfigError(f"{where}: expected name:role:sha256hex, got {entry.strip()[:80]!r}")
    name, role, digest = parts
    return _make(name, role, digest, where=where)


def _parse_file(file: Path) -> list[ApiKey]:
    try:
        text = file.read_text()
    except OSError as error:
        raise KeyConfigError(f"cannot read API key file {file}: {error}") from error
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise KeyConfigError(f"{file}: invalid JSON: {error}") from error
        keys = []
        for item in items:
            if not isinstance(item, dict) or not {"name", "role", "sha256"} <= set(item):
                raise KeyConfigError(f"{file}: each key needs name, role and sha256")
            keys.append(_make(str(item["name"]), str(item["role"]), str(item["sha256"]), str(file)))
        return keys
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [_parse_entry(line, str(file)) for line in lines if line]
