"""Query cost limits as GraphQL validation rules: depth, aliases and root fields.

They run at validation, before any resolver, so an over-limit document costs only its parse
(itself bounded by the token limit, which Strawberry's ``MaxTokensLimiter`` passes to the
parser). Each error carries ``extensions: {code: LIMIT_EXCEEDED, limit, max}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
)

LIMIT_EXCEEDED = "LIMIT_EXCEEDED"


@dataclass(frozen=True)
class QueryLimits:
    max_depth: int = 10
    max_aliases: int = 30
    max_root_fields: int = 10
    max_tokens: int = 2000


def limit_error(message: str, limit: str, maximum: int, **where: Any) -> GraphQLError:
    return GraphQLError(
        message, extensions={"code": LIMIT_EXCEEDED, "limit": limit, "max": maximum}, **where
    )


def cost_rules(limits: QueryLimits) -> list[type[ValidationRule]]:
    """Validation rules bound to these limits (graphql-core instantiates rules per document)."""

    class QueryDepthRule(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            depth = self._depth(node.selection_set, 0, frozenset())
            if depth > limits.max_depth:
                self.report_error(
                    limit_error(
                        f"Query depth exceeds the limit of {limits.max_depth} "
                        "(maxQueryDepth, MLTRAIN_MAX_QUERY_DEPTH).",
                        "maxQueryDepth",
                        limits.max_depth,
                        nodes=[node],
                    )
                )

        def _depth(
            self, selections: SelectionSetNode | None, depth: int, seen: frozenset[str]
        ) -> int:
            # Stops descending once past the limit: a hostile document cannot make this walk
            # long. ``seen`` breaks fragment cycles (reported by another rule).
            if selections is None or depth > limits.max_depth:
                return depth
            deepest = depth
            for selection in selections.selections:
                if isinstance(selection, FieldNode):
                    # Introspection (GraphiQL's schema query nests deeply) is not data; it can
                    # be switched off instead (MLTRAIN_INTROSPECTION=false).
                    if selection.name.value.startswith("__"):
                        continue
                    found = self._depth(selection.selection_set, depth + 1, seen)
                elif isinstance(selection, InlineFragmentNode):
                    found = self._depth(selection.selection_set, depth, seen)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.context.get_fragment(name)
                    if fragment is None or name in seen:
                        continue
                    found = self._depth(fragment.selection_set, depth, seen | {name})
                else:  # pragma: no cover - no other selection kinds exist
                    continue
                deepest = max(deepest, found)
                if deepest > limits.max_depth:
                    break
            return deepest

    class MaxAliasesRule(ValidationRule):
        count = 0

        def enter_field(self, node: FieldNode, *_: Any) -> None:
            if node.alias is None:
                return
            self.count += 1
            if self.count == limits.max_aliases + 1:  # report once
                self.report_error(
                    limit_error(
                        f"The document has more than {limits.max_aliases} aliases "
                        "(maxAliases, MLTRAIN_MAX_ALIASES).",
                        "maxAliases",
                        limits.max_aliases,
                        nodes=[node],
                    )
                )

    class MaxRootFieldsRule(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            count = self._count(node.selection_set, frozenset())
            if count > limits.max_root_fields:
                self.report_error(
                    limit_error(
                        f"The operation selects {count} root fields; the limit is "
                        f"{limits.max_root_fields} (maxRootFields, MLTRAIN_MAX_ROOT_FIELDS).",
                        "maxRootFields",
                        limits.max_root_fields,
                        nodes=[node],
                    )
                )

        def _count(self, selections: SelectionSetNode, seen: frozenset[str]) -> int:
            count = 0
            for selection in selections.selections:
                if isinstance(selection, FieldNode):
                    count += selection.name.value != "__typename"
                elif isinstance(selection, InlineFragmentNode):
                    count += self._count(selection.selection_set, seen)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.context.get_fragment(name)
                    if fragment is not None and name not in seen:
                        count += self._count(fragment.selection_set, seen | {name})
            return count

    return [QueryDepthRule, MaxAliasesRule, MaxRootFieldsRule]


def token_limit_error(error: GraphQLError, max_tokens: int) -> GraphQLError | None:
    """The parser's token-limit syntax error, restated to name the limit; None for others."""
    if "tokens. Parsing aborted" not in error.message:
        return None
    return limit_error(
        f"The document has more than {max_tokens} tokens (maxTokens, MLTRAIN_MAX_TOKENS).",
        "maxTokens",
        max_tokens,
    )
