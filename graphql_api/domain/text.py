"""The character policy of every free-text input field (docs/input-policy.md has the table).

What a person reads must be what is stored: a name may not hide characters (zero-width
spaces, bidi overrides, control characters) or differ from another only by Unicode
normalization, and a URL must be one a log viewer can open safely (no ``javascript:``).

The policy applies to values *written* from now on. Records stored before it keep loading: the
models check it only when validating new input (``INPUT_CONTEXT``), never when reading back.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationInfo

from graphql_api.domain.errors import ValidationRule

#: Pydantic validation context of new input; models validated without it (records read back,
#: event snapshots) skip the checks that were added after records could be stored.
INPUT_CONTEXT: dict[str, Any] = {"new_input": True}

MAX_NAME_LENGTH = 200
MAX_KEY_LENGTH = 128
MAX_TEXT_LENGTH = 4_096
MAX_URL_LENGTH = 2_048
#: Ids (modelId, jobId): ASCII letters and digits, then also '.', '_', ':', '-'.
ID_REGEX = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
_ID = re.compile(ID_REGEX)
URL_SCHEMES = frozenset({"http", "https", "s3", "gs", "az", "abfs", "abfss", "hdfs"})

# Unicode general categories a name may not contain: controls (Cc: NUL, newline, ...), format
# characters (Cf: zero-width spaces and joiners, bidi overrides, BOM), surrogates, private use,
# unassigned code points, and line/paragraph/space separators other than the plain space.
_NOT_IN_NAMES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})
# Characters that render as nothing although their category is a letter, mark or symbol
# (Hangul fillers, the braille blank, invisible Khmer vowels, the combining grapheme joiner).
_BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5\u034f")
# Free text (a failure reason) may span lines and use any visible character, but not hide
# control characters or reorder what is shown (Trojan Source, CVE-2021-42574).
_NOT_IN_TEXT = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})
_TEXT_CONTROLS_ALLOWED = frozenset("\t\n\r")
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


class PolicyError(ValueError):
    """A value broke a rule. ``rule`` is the stable name clients get in ``ValidationError.rule``;
    ``path`` (optional) is where inside the field, e.g. ``optimizer.betas[1]``."""

    def __init__(self, message: str, rule: ValidationRule, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.path = path


_CONTROL_NAMES = {"\x00": "NUL", "\t": "TAB", "\n": "LINE FEED", "\r": "CARRIAGE RETURN"}


def describe(char: str) -> str:
    """``U+200B (ZERO WIDTH SPACE)``: a character named so that an invisible one shows."""
    name = unicodedata.name(char, "") or _CONTROL_NAMES.get(char, "a control character")
    return f"U+{ord(char):04X} ({name})"


def check_name(value: str) -> str:
    """Names (model names, dataset ids): 1-200 visible characters, single spaces allowed inside."""
    _check_length(value, MAX_NAME_LENGTH)
    _check_visible(value, "")
    return value


def check_label(value: str, maximum: int) -> str:
    """A name of another length (tag keys and values): 1-``maximum`` visible characters."""
    _check_length(value, maximum)
    _check_visible(value, "")
    return value


def check_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise PolicyError(
            "must be 1-128 ASCII letters, digits, '.', '_', ':' or '-', starting with a letter "
            "or digit",
            ValidationRule.id_pattern,
        )
    return value


def check_key(value: str, what: str, *, new_input: bool = True) -> str:
    """Metric and hyperparameter keys: a name MongoDB can store as one field name.

    Keys read back (``new_input=False``) are held to the rules they were written under: not
    empty, bounded, no leading ``$``, no ``.``, no NUL.
    """
    if not value:
        raise PolicyError(f"{what} keys must not be empty", ValidationRule.min_length)
    if len(value) > MAX_KEY_LENGTH:
        raise PolicyError(
            f"{what} key {value[:40]!r}... is longer than {MAX_KEY_LENGTH} characters",
            ValidationRule.max_length,
        )
    if value.startswith("$"):
        raise PolicyError(
            f"{what} key {value!r} must not start with '$'", ValidationRule.key_dollar
        )
    if "." in value:
        raise PolicyError(f"{what} key {value!r} must not contain '.'", ValidationRule.key_dot)
    if new_input:
        _check_visible(value, f"{what} key {value!r}")
    elif "\x00" in value:
        raise PolicyError(
            f"{what} key {value!r} must not contain a NUL character", ValidationRule.characters
        )
    return value


def check_text(value: str) -> str:
    """Free text (a failure reason): 1-4,096 characters, lines allowed, nothing hidden."""
    _check_length(value, MAX_TEXT_LENGTH)
    for char in value:
        if char in _BIDI_CONTROLS:
            raise PolicyError(
                f"must not contain the bidirectional control {describe(char)}",
                ValidationRule.characters,
            )
        if unicodedata.category(char) in _NOT_IN_TEXT and char not in _TEXT_CONTROLS_ALLOWED:
            raise PolicyError(f"must not contain {describe(char)}", ValidationRule.characters)
    return value


def check_url(value: str) -> str:
    """A location to open (logs): an absolute http(s) or object-storage URL, ASCII only."""
    _check_length(value, MAX_URL_LENGTH)
    for char in value:
        if not "!" <= char <= "~":
            raise PolicyError(
                "must be visible ASCII without spaces (percent-encode the rest), not "
                + describe(char),
                ValidationRule.url,
            )
    parts = urlsplit(value)
    allowed = ", ".join(sorted(URL_SCHEMES))
    if parts.scheme.lower() not in URL_SCHEMES:
        raise PolicyError(f"the scheme must be one of {allowed}", ValidationRule.url_scheme)
    if not parts.netloc:
        raise PolicyError(
            "must be an absolute URL with a host or bucket (e.g. s3://bucket/run.log)",
            ValidationRule.url,
        )
    refuse_credentials(parts.scheme, parts.username, parts.password)
    return value


#: Schemes whose user part names a place, not a person: ``abfss://container@account...``.
_USER_IS_A_PLACE = frozenset({"abfs", "abfss", "wasb", "wasbs"})


def refuse_credentials(scheme: str, username: str | None, password: str | None) -> None:
    """A URL stored in a record is shown to every key that may read the record: it must not
    carry a secret. A password (``user:secret@``) never; a user part alone (``token@``) only
    where the scheme uses it for a place (Azure's container)."""
    if password is not None or (username is not None and scheme.lower() not in _USER_IS_A_PLACE):
        raise PolicyError(
            "must not carry credentials (user:password@ or token@): every key that reads the "
            "record would see them; give the reader its own access to the storage instead",
            ValidationRule.url,
        )


def on_input(check: Callable[[str], str]) -> Callable[[str, ValidationInfo], str]:
    """A Pydantic after-validator that applies ``check`` to new input only (see module doc)."""

    def validate(value: str, info: ValidationInfo) -> str:
        if is_new_input(info):
            check(value)
        return value

    return validate


def is_new_input(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("new_input"))


def _check_length(value: str, maximum: int) -> None:
    if not value:
        raise PolicyError("must not be empty", ValidationRule.min_length)
    if len(value) > maximum:
        raise PolicyError(f"must be at most {maximum} characters", ValidationRule.max_length)


def _check_visible(value: str, subject: str) -> None:
    what = f"{subject} must" if subject else "must"
    for char in value:
        if (unicodedata.category(char) in _NOT_IN_NAMES and char != " ") or char in _BLANK_LOOKING:
            raise PolicyError(
                f"{what} not contain {describe(char)}: only visible characters and single spaces",
                ValidationRule.characters,
            )
    if value[0] == " " or value[-1] == " ":
        raise PolicyError(f"{what} not start or end with a space", ValidationRule.characters)
    if "  " in value:
        raise PolicyError(f"{what} not contain two spaces in a row", ValidationRule.characters)
    if not unicodedata.is_normalized("NFC", value):
        raise PolicyError(
            f"{what} be in Unicode normalization form NFC (compose accents: "
            "'\\u00e9', not 'e\\u0301')",
            ValidationRule.unicode_nfc,
        )
