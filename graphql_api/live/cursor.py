"""Opaque cursors into the change log: what a client passes back as ``after``.

A cursor is the URL-safe base64 of ``chg:<seq>``: clients must not build or read them, which
leaves the log free to change how it numbers events.
"""

from __future__ import annotations

import base64
import binascii

from graphql_api.domain.errors import ValidationError, ValidationRule

_PREFIX = "chg:"


def encode(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{seq}".encode()).decode().rstrip("=")


def decode(cursor: str, field: str = "after") -> int:
    """The sequence number behind ``cursor``; ValidationError (on ``field``) if it is not one."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    number = text.removeprefix(_PREFIX)
    if not text.startswith(_PREFIX) or not number.isdigit() or len(number) > 18:
        raise ValidationError(
            field,
            "is not a cursor of this feed: pass back an event's cursor unchanged",
            rule=ValidationRule.cursor,
        )
    return int(number)
