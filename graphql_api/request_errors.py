"""Codes for GraphQL's own request errors: a document that does not parse, one that does not
validate against the schema, and variables whose values do not fit their types.

graphql-core reports these with a message and locations only. Clients branch on
``extensions.code`` for every other error, so these get one too: ``GRAPHQL_PARSE_FAILED`` and
``GRAPHQL_VALIDATION_FAILED`` (the codes Apollo Server gives them, which GraphQL clients
already know), and for a variable ``VALIDATION_ERROR`` with ``field`` (the variable and the
path inside its value, ``$input.metrics``) and ``rule`` (``required``: missing or null where
the type is non-null; ``type``: a value of the wrong type, or an input field the type does not
have), as every argument error carries them. The messages stay graphql-core's.
"""

from __future__ import annotations

import re

from graphql.error import GraphQLError

from graphql_api.domain.errors import ErrorCode, ValidationRule

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"

#: graphql-core's words for a variable's value (graphql/execution/values.py): the variable,
#: where in its value, what is wrong.
_VARIABLE = re.compile(r"Variable '\$(?P<name>\w+)' has invalid value(?: at (?P<at>[^:]+))?: ")
_REQUIRED_FIELD = re.compile(r"to include required field '(?P<field>\w+)'")
_MISSING = ("to be provided", "not to be None", "was not provided", "must not be null")


def with_code(error: GraphQLError) -> GraphQLError:
    """``error`` with ``extensions.code`` (and, for a variable, ``field`` and ``rule``) if it
    is one of GraphQL's own request errors without a code; else ``error`` itself."""
    # graphql-core wraps a variable's coercion error in another GraphQLError; an error raised
    # while executing has a path (and, from a resolver, an original that is not GraphQL's).
    original = error.original_error
    if error.path is not None or not (original is None or isinstance(original, GraphQLError)):
        return error
    if error.extensions and "code" in error.extensions:
        return error  # ours already (limits, operationName)
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        extensions=extensions_of(error.message),
    )


def extensions_of(message: str) -> dict[str, object]:
    """The extensions a request error with ``message`` gets."""
    if message.startswith("Syntax Error"):
        return {"code": PARSE_FAILED}
    variable = _VARIABLE.match(message)
    if variable is None:
        return {"code": VALIDATION_FAILED}
    field = f"${variable['name']}{variable['at'] or ''}"
    detail = message[variable.end() :]
    rule = ValidationRule.type
    if required := _REQUIRED_FIELD.search(detail):
        field, rule = f"{field}.{required['field']}", ValidationRule.required
    elif any(words in detail for words in _MISSING):
        rule = ValidationRule.required
    return {"code": ErrorCode.VALIDATION_ERROR.value, "field": field, "rule": rule.value}
