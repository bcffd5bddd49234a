"""Rate limits: a token bucket per key (per client address without keys) for requests, and one
for mutation cost, in this process (docs/security.md, rate limits).

A bucket holds at most ``burst`` tokens and gains ``rate`` a second; a request takes one
token, a mutation operation takes one per mutation root field from the second bucket. Without
enough tokens the request is refused with how long until there will be: HTTP 429 with
``Retry-After``, or a WebSocket closed with 4429. Nothing waits in the server: a refused
request costs a dictionary lookup and a little arithmetic.

Why not a library: ``limits`` offers fixed and moving windows (not a bucket with a burst and a
steady rate) behind a storage abstraction made for Redis; ``aiolimiter`` makes callers wait
for capacity, where a server must refuse at once and say when to retry. The bucket is twenty
lines with an injectable clock, tested directly.

Buckets live in memory, per instance: with N instances behind a balancer a key may make up to
N times the configured rate in all (the sizing rule is in docs/security.md). The table of
buckets is bounded: past ``max_holders`` the full ones (indistinguishable from new) are
dropped, so a flood of client addresses cannot grow it without bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationType,
    SelectionSetNode,
    get_operation_ast,
    parse,
)
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from graphql_api.auth.http import scope_key
from graphql_api.responses import graphql_error_response
from graphql_api.websocket import client_address

#: Close code of a WebSocket over its rate (graphql-transport-ws uses 4429 for too many
#: requests too).
RATE_LIMITED_CLOSE = 4429
#: Buckets kept per limiter before full ones are dropped.
MAX_HOLDERS = 10_000


@dataclass
class TokenBucket:
    rate: float  # tokens gained per second
    burst: float  # most tokens held
    tokens: float
    updated: float  # clock reading of the last refill

    def take(self, cost: float, now: float) -> float:
        """Take ``cost`` tokens if there are that many: 0.0. Otherwise take nothing and return
        the seconds until there will be (a cost above the burst can never pass: inf)."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if cost <= self.tokens:
            self.tokens -= cost
            return 0.0
        if cost > self.burst:
            return math.inf
        return (cost - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.updated) * self.rate >= self.burst


class RateLimiter:
    """A bucket per holder (a key name, or ``address:<ip>``); ``rate`` 0 turns it off."""

    def __init__(
        self,
        rate: float,
        burst: int = 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_holders: int = MAX_HOLDERS,
    ) -> None:
        self.rate = rate
        self.burst = float(burst or max(1, math.ceil(2 * rate)))
        self._clock = clock
        self._max_holders = max_holders
        self._buckets: dict[str, TokenBucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, holder: str, cost: float = 1) -> float:
        """0.0 if ``holder`` may go ahead (the tokens are taken), else the seconds to wait."""
        if not self.enabled or cost <= 0:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(holder)
        if bucket is None:
            if len(self._buckets) >= self._max_holders:
                self._drop_full(now)
            bucket = self._buckets[holder] = TokenBucket(self.rate, self.burst, self.burst, now)
        return bucket.take(cost, now)

    def _drop_full(self, now: float) -> None:
        for holder in [h for h, b in self._buckets.items() if b.full(now)]:
            del self._buckets[holder]

    def __len__(self) -> int:
        return len(self._buckets)


@dataclass
class RateLimits:
    requests: RateLimiter
    mutations: RateLimiter

    @property
    def enabled(self) -> bool:
        return self.requests.enabled or self.mutations.enabled


def holder_of(key_name: str | None, address: str) -> str:
    """Whose bucket: the key's, or without keys the client address's."""
    return key_name if key_name is not None else f"address:{address}"


def retry_after(wait: float) -> int:
    """``Retry-After`` in whole seconds, at least 1 (a client must not retry at once)."""
    return max(1, math.ceil(min(wait, 86_400)))


def refusal_message(limit: str, setting: str, wait: float) -> str:
    if math.isinf(wait):
        return (
            f"Rate limit: this operation costs more than the {limit} bucket holds "
            f"({setting}_BURST); split it."
        )
    return (
        f"Rate limit exceeded ({limit}, {setting} on this instance): retry after "
        f"{retry_after(wait)} s."
    )


def mutation_cost(query: str | None, operation_name: str | None, max_tokens: int) -> int:
    """Mutation root fields the request would run (0 for anything else). Parsed only when the
    text names a mutation; a document that does not parse is left to the normal path."""
    if not query or "mutation" not in query:
        return 0
    try:
        document = parse(query, no_location=True, max_tokens=max_tokens)
    except GraphQLError:
        return 0
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation is not OperationType.MUTATION:
        return 0
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    return _root_fields(operation.selection_set, fragments, set())


def _root_fields(
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    seen: set[str],
) -> int:
    count = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            count += selection.name.value != "__typename"
        elif isinstance(selection, InlineFragmentNode):
            count += _root_fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in seen:
                seen.add(name)
                count += _root_fields(fragments[name].selection_set, fragments, seen)
    return count


#: Whose buckets the HTTP request being served draws from (set by ``LimitRequests``, read
#: where the operation is known: the mutation cost).
CURRENT_HOLDER: ContextVar[str | None] = ContextVar("mltrain_rate_holder", default=None)


class RateLimited(Exception):
    """Refused for its rate: the transport answers 429 (HTTP) or closes with 4429."""

    def __init__(self, limit: str, setting: str, wait: float) -> None:
        super().__init__(refusal_message(limit, setting, wait))
        self.message = str(self)
        self.limit = limit
        self.wait = wait

    def response(self) -> Response:
        seconds = retry_after(self.wait)
        extensions = {"code": "RATE_LIMITED", "limit": self.limit, "retryAfter": seconds}
        return graphql_error_response(
            429, self.message, extensions, headers={"Retry-After": str(seconds)}
        )


REQUESTS = ("requests", "MLTRAIN_RATE_LIMIT_REQUESTS")
MUTATIONS = ("mutations", "MLTRAIN_RATE_LIMIT_MUTATIONS")


def charge(
    limits: RateLimits, holder: str, mutation_fields: int = 0, *, request: bool = True
) -> None:
    """Take a request token (if ``request``) and ``mutation_fields`` mutation tokens from
    ``holder``'s buckets; RateLimited if either is short (the mutation bucket is only charged
    once the request bucket allowed the request)."""
    if request:
        wait = limits.requests.take(holder)
        if wait:
            raise RateLimited(*REQUESTS, wait)
    if mutation_fields:
        wait = limits.mutations.take(holder, mutation_fields)
        if wait:
            raise RateLimited(*MUTATIONS, wait)


class LimitRequests:
    """ASGI middleware: every HTTP request to /graphql takes a token from its key's bucket (or
    its client address's, without keys), after the key check."""

    def __init__(self, app: ASGIApp, limits: RateLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.limits.enabled:
            await self.app(scope, receive, send)
            return
        key = scope_key(scope)
        holder = holder_of(None if key is None else key.name, client_address(scope))
        try:
            charge(self.limits, holder)
        except RateLimited as refused:
            await refused.response()(scope, receive, send)
            return
        token = CURRENT_HOLDER.set(holder)
        try:
            await self.app(scope, receive, send)
        finally:
            CURRENT_HOLDER.reset(token)
