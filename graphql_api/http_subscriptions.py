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

import asyncio
from collections.abc import AsyncIterator, Callable

from graphql import GraphQLError, OperationType, get_operation_ast, parse
from strawberry.http.streaming import MultipartSubscriptionTransport

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


def ending_when(
    stream: Callable[[], AsyncIterator[str]],
    ended: asyncio.Future[str],
    encode_json: Callable[[object], str],
) -> Callable[[], AsyncIterator[str]]:
    """``stream`` (a multipart subscription's parts), ended once ``ended`` gets a reason (its
    key was revoked or expired: auth/stored_keys.py): a last part with the reason as a
    transport error (``payload: null`` and ``errors``, as the multipart subscription protocol
    ends a stream), then the closing boundary. Each part is awaited in a task of its own so
    that a quiet stream (heartbeats every few seconds) ends at once too; these streams are
    few (at most MLTRAIN_MAX_CONNECTIONS_PER_KEY a key), so the task per part costs little."""
    transport = MultipartSubscriptionTransport()

    async def guarded() -> AsyncIterator[str]:
        source = stream()
        part: asyncio.Future[str] | None = None
        try:
            while True:
                part = asyncio.ensure_future(anext(source))
                await asyncio.wait({part, ended}, return_when=asyncio.FIRST_COMPLETED)
                if part.done():
                    try:
                        yield part.result()
                    except StopAsyncIteration:
                        return
                    continue
                part.cancel()
                await asyncio.wait({part})
                error = {"message": ended.result(), "extensions": {"code": "UNAUTHENTICATED"}}
                yield transport.encode_multipart_data(
                    {"payload": None, "errors": [error]}, encode_json
                )
                yield transport.encode_complete()
                return
        finally:
            if part is not None and not part.done():
                # The client left (this generator is cancelled or closed) while a part was
                # awaited: cancelling that await ends the source as its consumer's cancel
                # would have (its heartbeat and subscription stop); it cannot be closed
                # while that await runs in it.
                part.cancel()
            else:
                # Strawberry's streams are async generators (typed as iterators): close it.
                close = getattr(source, "aclose", None)
                if close is not None:
                    await close()

    return guarded
