"""JSON on the wire: requests decoded strictly, answers encoded fast.

Requests are decoded by the standard library, which keeps every integer exact (orjson would
turn one beyond 64 bits into a float without a word, where validation should refuse it), and
then refused if a string holds an unpaired surrogate escape (``"\\ud800"``): JSON's grammar
allows one, but it is not Unicode text, MongoDB cannot store it, and orjson cannot write it
back. Bodies must be UTF-8 (RFC 8259) and nest at most ``MAX_NESTING`` arrays and objects:
the deepest legitimate request (hyperparameters nest 8 levels, inside ``variables.input``) is
about a dozen levels, while ~1,000 levels exhaust Python's recursion limit in the parser and in
every walk after it. Every refusal is a ``json.JSONDecodeError`` saying what is wrong, which the
endpoint answers with HTTP 400 (WebSocket: close 4400).
Answers are encoded with orjson, about 15x faster than ``json.dumps`` on a 33 KB page.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


class RefusedJSON(json.JSONDecodeError):
    """Well-formed JSON that breaks one of our rules; its text is the rule, without the
    "line 1 column 1" position a syntax error carries."""

    def __str__(self) -> str:
        return self.msg


#: Arrays and objects one JSON document may nest (documented in docs/security.md).
MAX_NESTING = 64


def decode(data: str | bytes) -> Any:
    """The request's JSON; raises ``json.JSONDecodeError`` naming the rule that was broken."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RefusedJSON(
                f"the body is not UTF-8 text: byte 0x{data[error.start]:02x} at position "
                f"{error.start} cannot start or continue a UTF-8 character",
                data.decode("utf-8", "replace"),
                error.start,
            ) from None
    else:
        text = data
    try:
        document = json.loads(text)
    except RecursionError:
        raise _too_deep(text) from None
    # Only a document with more brackets than the bound can nest past it; most skip the walk.
    if text.count("[") + text.count("{") > MAX_NESTING and _nesting(document) > MAX_NESTING:
        raise _too_deep(text)
    # Only an escape can produce a surrogate; most requests have none and skip the walk.
    if "\\ud" in text or "\\uD" in text:
        _refuse_unpaired_surrogates(document, text)
    return document


def _too_deep(text: str) -> RefusedJSON:
    return RefusedJSON(f"arrays and objects nest deeper than {MAX_NESTING} levels", text, 0)


def _nesting(document: Any) -> int:
    """How deep arrays and objects nest; iterative, so no depth can exhaust the stack."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            deepest = max(deepest, depth)
            if deepest > MAX_NESTING:
                return deepest
            stack.extend((child, depth + 1) for child in value)
    return deepest


def _refuse_unpaired_surrogates(value: Any, source: str) -> None:
    texts = [value] if isinstance(value, str) else []
    if isinstance(value, dict):
        texts.extend(value)  # the keys
        for item in value.values():
            _refuse_unpaired_surrogates(item, source)
    elif isinstance(value, list):
        for item in value:
            _refuse_unpaired_surrogates(item, source)
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise RefusedJSON(
                f"strings must be Unicode text: {text[: error.start + 1]!r} has an unpaired "
                "surrogate escape (\\ud800-\\udfff without its pair)",
                source,
                0,
            ) from None


def kind(value: object) -> str:
    """What a JSON value is, in JSON's words, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def encode(data: object) -> str:
    """A str, not bytes: WebSocket frames must stay text frames for GraphQL clients."""
    return orjson.dumps(data).decode()
