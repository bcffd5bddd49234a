"""JSON on the wire: requests decoded strictly, answers encoded fast.

Requests are decoded by the standard library, which keeps every integer exact (orjson would
turn one beyond 64 bits into a float without a word, where validation should refuse it), and
then refused if a string holds an unpaired surrogate escape (``"\\ud800"``): JSON's grammar
allows one, but it is not Unicode text, MongoDB cannot store it, and orjson cannot write it
back. Answers are encoded with orjson, about 15x faster than ``json.dumps`` on a 33 KB page.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def decode(data: str | bytes) -> Any:
    """The request's JSON; raises ``json.JSONDecodeError`` naming the rule that was broken."""
    document = json.loads(data)
    # Only an escape can produce a surrogate; most requests have none and skip the walk.
    escapes = (b"\\ud", b"\\uD") if isinstance(data, bytes) else ("\\ud", "\\uD")
    if any(escape in data for escape in escapes):  # type: ignore[operator]
        _refuse_unpaired_surrogates(document, data)
    return document


def _refuse_unpaired_surrogates(value: Any, source: str | bytes) -> None:
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
            document = source.decode("utf-8", "replace") if isinstance(source, bytes) else source
            raise json.JSONDecodeError(
                f"strings must be Unicode text: {text[: error.start + 1]!r} has an unpaired "
                "surrogate escape (\\ud800-\\udfff without its pair)",
                document,
                0,
            ) from None


def encode(data: object) -> str:
    """A str, not bytes: WebSocket frames must stay text frames for GraphQL clients."""
    return orjson.dumps(data).decode()
