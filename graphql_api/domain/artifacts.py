"""What makes a model version deployable: where its weights are, their digest, and metadata.

The rules follow the text policy (``domain/text.py``): tag keys and values are names (visible
characters, single spaces, NFC), a description is free text, an artifact URI is a URL of a
storage scheme. Like every policy rule they hold for new input only; records read back keep
loading as stored.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from graphql_api.domain import text
from graphql_api.domain.errors import ValidationRule

#: Where model weights are kept: object stores, HDFS, a web server, a local or mounted path.
ARTIFACT_SCHEMES = frozenset(
    {"s3", "gs", "az", "abfs", "abfss", "wasbs", "hdfs", "https", "http", "file"}
)
#: ``sha256:`` and 64 lowercase hexadecimal digits, as OCI image digests spell it.
DIGEST_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")
MAX_TAGS = 50
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256


class Tag(BaseModel):
    """A key/value label of a model version (``team: fraud``, ``dataset: 2026-q3``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(max_length=MAX_TAG_KEY_LENGTH)
    value: str = Field(max_length=MAX_TAG_VALUE_LENGTH)


def check_artifact_uri(value: str) -> str:
    """An absolute URI of one of ``ARTIFACT_SCHEMES``: with a bucket or host, or, for
    ``file``, an absolute path (``file:///models/churn/2.0.0``)."""
    _check_ascii_url(value)
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in ARTIFACT_SCHEMES:
        allowed = ", ".join(sorted(ARTIFACT_SCHEMES))
        raise text.PolicyError(
            f"the scheme must be one of {allowed} (got {parts.scheme or 'none'!r})",
            ValidationRule.url_scheme,
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise text.PolicyError(
                "a file URI must be an absolute path: file:///path/to/model",
                ValidationRule.url,
            )
        return value
    if not parts.netloc:
        raise text.PolicyError(
            f"must be an absolute URI with a bucket or host ({scheme}://bucket/path/to/model)",
            ValidationRule.url,
        )
    text.refuse_credentials(scheme, parts.username, parts.password)
    return value


def check_artifact_digest(value: str) -> str:
    if not DIGEST_PATTERN.fullmatch(value):
        raise text.PolicyError(
            "must be 'sha256:' followed by 64 lowercase hexadecimal digits (the SHA-256 of the "
            "artifact)",
            ValidationRule.digest,
        )
    return value


def check_tag(tag: Tag) -> Tag:
    _checked_part(tag.key, MAX_TAG_KEY_LENGTH, "key")
    _checked_part(tag.value, MAX_TAG_VALUE_LENGTH, "value")
    return tag


def check_tags(tags: list[Tag]) -> list[Tag]:
    """At most ``MAX_TAGS``, each key once, keys and values names (``text.check_label``)."""
    if len(tags) > MAX_TAGS:
        raise text.PolicyError(
            f"at most {MAX_TAGS} tags per version (got {len(tags)})", ValidationRule.max_items
        )
    seen: set[str] = set()
    for index, tag in enumerate(tags):
        try:
            check_tag(tag)
        except text.PolicyError as error:
            raise text.PolicyError(error.message, error.rule, f"[{index}].{error.path}") from None
        if tag.key in seen:
            raise text.PolicyError(
                f"the key {tag.key!r} appears twice: each key at most once per version",
                ValidationRule.duplicate,
                f"[{index}].key",
            )
        seen.add(tag.key)
    return tags


def _checked_part(value: str, maximum: int, part: str) -> None:
    try:
        text.check_label(value, maximum)
    except text.PolicyError as error:
        raise text.PolicyError(error.message, error.rule, part) from None


def _check_ascii_url(value: str) -> None:
    if not value:
        raise text.PolicyError("must not be empty", ValidationRule.min_length)
    if len(value) > text.MAX_URL_LENGTH:
        raise text.PolicyError(
            f"must be at most {text.MAX_URL_LENGTH} characters", ValidationRule.max_length
        )
    for char in value:
        if not "!" <= char <= "~":
            raise text.PolicyError(
                "must be visible ASCII without spaces (percent-encode the rest), not "
                + text.describe(char),
                ValidationRule.url,
            )


ArtifactUri = Annotated[
    str,
    Field(max_length=text.MAX_URL_LENGTH),
    AfterValidator(text.on_input(check_artifact_uri)),
]
ArtifactDigest = Annotated[str, AfterValidator(text.on_input(check_artifact_digest))]


def _tags_on_input(value: list[Tag], info: ValidationInfo) -> list[Tag]:
    if text.is_new_input(info):
        check_tags(value)
    return value


Tags = Annotated[list[Tag], AfterValidator(_tags_on_input)]
