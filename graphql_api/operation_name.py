"""A document with several operations must say which to run (GraphQL spec, "GetOperation").

Strawberry, given no ``operationName``, runs the document's first operation; the spec says
that is a request error when there are several. The refusal is an error of the request's
``operationName`` field, like every other argument error: ``extensions {code field rule}``.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from graphql_api.domain.errors import ErrorCode, ValidationRule


class OperationNameRequired(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        # ExecutionContext.operation_name falls back to the first operation's name, so only the
        # name the request gave tells whether it chose one. It is private: should Strawberry
        # rename it, the check is skipped (and tests/test_operation_name.py fails) rather than
        # every request failing with an AttributeError.
        chosen = getattr(context, "_provided_operation_name", "")
        if document is not None and chosen is None:
            names = [
                node.name.value if node.name else "(anonymous)"
                for node in document.definitions
                if isinstance(node, OperationDefinitionNode)
            ]
            if len(names) > 1:
                error = GraphQLError(
                    f"operationName: the document has {len(names)} operations "
                    f"({', '.join(names)}); say which one to run.",
                    extensions={
                        "code": ErrorCode.VALIDATION_ERROR.value,
                        "field": "operationName",
                        "rule": ValidationRule.required.value,
                    },
                )
                # A new list: the validation cache hands the same one to every request.
                context.pre_execution_errors = [*(context.pre_execution_errors or []), error]
        yield
