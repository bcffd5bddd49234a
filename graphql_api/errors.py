"""How errors reach clients: expected ones with a code, unexpected ones masked and logged.

Domain errors raised by queries (a bad filter, an oversized ``first``) become GraphQL errors
whose ``extensions`` carry ``code`` and ``field``. GraphQL's own errors (syntax, validation,
variables) keep their messages and get a code (``request_errors``). Storage's
``DatabaseUnavailable`` (any operation: query, mutation or subscription) becomes
``DATABASE_UNAVAILABLE`` with ``retryable: true`` (docs/retrying.md). Anything else is a bug:
the client sees "Unexpected error." with a request id, and the log has the traceback under
the same id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

from graphql_api import request_errors
from graphql_api.domain.errors import DomainError, NotFoundError, ValidationError
from graphql_api.limits.rules import token_limit_error
from graphql_api.storage.base import DatabaseUnavailable

log = logging.getLogger("mltrain.errors")


class ClientErrors(MaskErrors):
    def __init__(self, max_tokens: int | None = None) -> None:
        super().__init__()
        self.max_tokens = max_tokens

    def on_operation(self) -> Iterator[None]:
        try:
            yield from super().on_operation()
        except GraphQLError as error:
            # ParserCache parses inside its own hook, so a parse error (the token limit
            # among them) leaves the operation as an exception instead of as its result.
            restated = (
                None if self.max_tokens is None else token_limit_error(error, self.max_tokens)
            ) or request_errors.with_code(error)
            if restated is error:
                raise
            raise restated from None

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._for_client(error) for error in errors]

    def _process_result(self, result: Any) -> None:
        # MaskErrors tests ``result`` against a runtime-checkable Protocol, which on Python 3.11
        # walks the protocol's members on every call. It runs for every subscription delivery:
        # profiled, it was the largest single cost of one once executions were shared
        # (bench/README.md, "Fan-out"). Same test, as a plain attribute read.
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)

    def _for_client(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if original is None or isinstance(original, GraphQLError):
            return request_errors.with_code(error)
        if isinstance(original, DomainError):
            extensions: dict[str, object] = {"code": original.code.value}
            if isinstance(original, (ValidationError, NotFoundError)) and original.field:
                extensions["field"] = original.field
            if isinstance(original, ValidationError):
                extensions["rule"] = original.rule.value
            return GraphQLError(
                original.message,
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                extensions=extensions,
            )
        request_id = self._request_id()
        if isinstance(original, DatabaseUnavailable):
            # An outage, not a bug: one line per failed field, no traceback.
            log.warning(
                "database unavailable in %s (request %s): %s",
                ".".join(str(p) for p in error.path or []) or "operation",
                request_id,
                original.detail,
            )
            return GraphQLError(
                f"The database is unavailable ({original.reason}); retry later. A read "
                "changed nothing; a write may or may not have been applied (docs/retrying.md "
                "says how to retry it safely).",
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                extensions={
                    "code": "DATABASE_UNAVAILABLE",
                    "retryable": True,
                    "requestId": request_id,
                },
            )
        log.error(
            "unexpected error in %s (request %s)",
            ".".join(str(p) for p in error.path or []) or "operation",
            request_id,
            exc_info=original,
        )
        return GraphQLError(
            self.error_message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )

    def _request_id(self) -> str:
        context = self.execution_context.context
        return str(getattr(context, "request_id", "unknown"))
