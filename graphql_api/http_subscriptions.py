"""Subscriptions over HTTP: the multipart protocol GraphiQL (and Apollo Client) speak.

GraphiQL sends a subscription it does not recognise as one (a named operation without an
operation name, or any operation when no WebSocket fetcher is set up) as an HTTP POST with
``Accept: application/json, multipart/mixed``: the same request it sends for queries. Strawberry
serves multipart subscriptions only for ``multipart/mixed;subscriptionSpec=1.0`` and, choosing
by the header alone, would then refuse queries sent with it. So the endpoint looks at the
operation: a subscription whose request accepts ``multipart/mixed`` (with or without the spec
parameter) is streamed by Strawberry's multipart transport, through the same schema,
resolvers, limits and key checks as over WebSocket; a subscription that does not is refused
with a 400 saying where subscriptions are served, instead of failing as a query would.
"""

from __future__ import annotations

from graphql import GraphQLError, OperationType, get_operation_ast, parse

#: Why a subscription sent as a plain HTTP request is refused.
NOT_OVER_PLAIN_HTTP = (
    "Subscriptions are served over WebSocket at this path (graphql-transport-ws or graphql-ws) "
    "or over HTTP with `Accept: multipart/mixed;subscriptionSpec=1.0`; this request accepts "
    "neither."
)


def is_subscription(query: str | None, operation_name: str | None, max_tokens: int) -> bool:
    """True if the operation the request would run is a subscription. Parsed only when the
    text names one (most requests are not), within the same token limit as execution; a
    document that does not parse is left to the normal path to report."""
    if not query or "subscription" not in query:
        return False
    try:
        document = parse(query, no_location=True, max_tokens=max_tokens)
    except GraphQLError:
        return False
    operation = get_operation_ast(document, operation_name)
    return operation is not None and operation.operation is OperationType.SUBSCRIPTION


def accepts_multipart(accept: str) -> bool:
    """Whether an ``Accept`` header lists ``multipart/mixed`` (any parameters)."""
    return any(
        part.split(";", 1)[0].strip().lower() == "multipart/mixed" for part in accept.split(",")
    )
