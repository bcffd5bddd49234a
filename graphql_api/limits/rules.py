"""Query cost limits: depth, fields, root fields and aliases, checked before anything else.

They are checked at validation, before graphql-core's own rules and before any resolver, so an
over-limit document costs only its parse (itself bounded by the token limit, which
Strawberry's ``MaxTokensLimiter`` passes to the parser) and one walk of it. Each error
carries ``extensions: {code: LIMIT_EXCEEDED, limit, max}``.

The walk (``DocumentMeasure``) counts fragment spreads as expanded, since that is the work of
any walk that expands the selection (Strawberry's ``info.selected_fields`` is one): ``...F
...F`` costs F twice, so twenty fragments that each spread the next one twice cost a million
fields, and are refused. It still
reads each fragment once: a fragment's cost does not depend on where it is spread, so it is
computed on first use and reused (memoised by name), and counts saturate at ``SATURATED`` so
that numbers stay small. Its work is therefore one visit per selection of the document, however
the fragments nest (tests/test_limits_cost.py counts the visits). The cost model is in
docs/security.md.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OverlappingFieldsCanBeMergedRule,
    SelectionSetNode,
    ValidationContext,
    parse,
    validate,
)
from graphql.validation.validate import ValidationAbortedError
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from graphql_api.limits.documents import AcceptedDocuments, IndexedSource

LIMIT_EXCEEDED = "LIMIT_EXCEEDED"

#: Where field counts stop growing: far above any limit, small enough to stay a machine word.
SATURATED = 1 << 40


@dataclass(frozen=True)
class QueryLimits:
    max_depth: int = 10
    max_aliases: int = 30
    max_root_fields: int = 10
    max_tokens: int = 2000
    max_fields: int = 1000
    max_field_comparisons: int = 2_000


@dataclass(frozen=True, slots=True)
class SelectionCost:
    """What a selection set asks for, fragments expanded."""

    #: Deepest field nesting below it (a leaf field is 1); introspection fields (``__schema``,
    #: ``__type``) and what is under them are not counted: GraphiQL's schema query nests deeply.
    depth: int = 0
    #: Every field, at every level, with each fragment spread counted as its fields (saturating).
    fields: int = 0
    #: Fields at its own level, through fragments, other than ``__typename`` (saturating).
    root_fields: int = 0


NOTHING = SelectionCost()


@dataclass
class _Frame:
    """A selection set being measured. The walk keeps its own stack of these: the parser caps
    field nesting, but not how long a chain of fragments spreading each other is, and such a
    chain must not exhaust Python's stack."""

    selections: SelectionSetNode
    #: How the finished set joins its parent: the field that owns it, or None for a fragment.
    via: FieldNode | None
    #: The fragment it is the body of, to memoise, or None.
    fragment: str | None
    index: int = 0
    depth: int = 0
    fields: int = 0
    root_fields: int = 0

    def add(self, cost: SelectionCost, via: FieldNode | None) -> None:
        if via is None:  # an inline fragment or a spread: its selections are at this level
            self.depth = max(self.depth, cost.depth)
            self.fields = min(self.fields + cost.fields, SATURATED)
            self.root_fields = min(self.root_fields + cost.root_fields, SATURATED)
            return
        name = via.name.value
        if not name.startswith("__"):
            self.depth = max(self.depth, cost.depth + 1)
        self.fields = min(self.fields + 1 + cost.fields, SATURATED)
        self.root_fields = min(self.root_fields + (name != "__typename"), SATURATED)

    def result(self) -> SelectionCost:
        return SelectionCost(self.depth, self.fields, self.root_fields)


@dataclass
class DocumentMeasure:
    """Measures the operations of one document; each fragment is walked at most once."""

    fragments: dict[str, FragmentDefinitionNode]
    #: Selections visited so far: at most the number of selections in the document.
    visits: int = 0
    #: Aliased fields, each counted where it is written (not per expansion).
    aliases: int = 0
    _memo: dict[str, SelectionCost] = field(default_factory=dict)
    _in_progress: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, document: DocumentNode) -> DocumentMeasure:
        return cls(
            {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        )

    def operation(self, node: OperationDefinitionNode) -> SelectionCost:
        return self.selection_set(node.selection_set)

    def selection_set(self, root: SelectionSetNode) -> SelectionCost:
        stack = [_Frame(root, None, None)]
        while True:
            frame = stack[-1]
            if frame.index == len(frame.selections.selections):
                stack.pop()
                cost = frame.result()
                if frame.fragment is not None:
                    self._memo[frame.fragment] = cost
                    self._in_progress.discard(frame.fragment)
                if not stack:
                    return cost
                stack[-1].add(cost, frame.via)
                continue
            selection = frame.selections.selections[frame.index]
            frame.index += 1
            self.visits += 1
            if isinstance(selection, FieldNode):
                self.aliases += selection.alias is not None
                if selection.selection_set is None:
                    frame.add(NOTHING, selection)
                else:
                    stack.append(_Frame(selection.selection_set, selection, None))
            elif isinstance(selection, InlineFragmentNode):
                stack.append(_Frame(selection.selection_set, None, None))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                known = self._memo.get(name)
                if known is not None:
                    frame.add(known, None)
                    continue
                fragment = self.fragments.get(name)
                # An unknown fragment or a cycle: other rules report it, and it is no cost.
                if fragment is None or name in self._in_progress:
                    continue
                self._in_progress.add(name)
                stack.append(_Frame(fragment.selection_set, None, name))


def limit_error(message: str, limit: str, maximum: int, **where: Any) -> GraphQLError:
    return GraphQLError(
        message, extensions={"code": LIMIT_EXCEEDED, "limit": limit, "max": maximum}, **where
    )


def _amount(count: int) -> str:
    return f"over {SATURATED:,}" if count >= SATURATED else f"{count:,}"


def cost_errors(document: DocumentNode, limits: QueryLimits) -> list[GraphQLError]:
    """Every limit an operation of ``document`` exceeds, from one walk of it."""
    measure = DocumentMeasure.of(document)
    errors: list[GraphQLError] = []
    for node in document.definitions:
        if not isinstance(node, OperationDefinitionNode):
            continue
        cost = measure.operation(node)
        if cost.depth > limits.max_depth:
            errors.append(
                limit_error(
                    f"Query depth exceeds the limit of {limits.max_depth} "
                    "(maxQueryDepth, MLTRAIN_MAX_QUERY_DEPTH).",
                    "maxQueryDepth",
                    limits.max_depth,
                    nodes=[node],
                )
            )
        if cost.root_fields > limits.max_root_fields:
            errors.append(
                limit_error(
                    f"The operation selects {_amount(cost.root_fields)} root fields; the "
                    f"limit is {limits.max_root_fields} (maxRootFields, "
                    "MLTRAIN_MAX_ROOT_FIELDS).",
                    "maxRootFields",
                    limits.max_root_fields,
                    nodes=[node],
                )
            )
        if cost.fields > limits.max_fields:
            errors.append(
                limit_error(
                    f"The operation selects {_amount(cost.fields)} fields, counting each "
                    f"fragment spread as the fields it expands to; the limit is "
                    f"{limits.max_fields:,} (maxQueryFields, MLTRAIN_MAX_QUERY_FIELDS).",
                    "maxQueryFields",
                    limits.max_fields,
                    nodes=[node],
                )
            )
    if measure.aliases > limits.max_aliases:
        errors.append(
            limit_error(
                f"The document has more than {limits.max_aliases} aliases "
                "(maxAliases, MLTRAIN_MAX_ALIASES).",
                "maxAliases",
                limits.max_aliases,
            )
        )
    return errors


class FieldComparisonsExceeded(ValidationAbortedError):
    """graphql-core's overlap check ran out of its budget: validation stops here.

    A ``ValidationAbortedError``, so ``graphql.validate`` keeps it as the last error and stops
    visiting the document, as it does for its own budget."""


@functools.cache
def bounded_overlap_rule(max_comparisons: int) -> type[ASTValidationRule]:
    """graphql-core's OverlappingFieldsCanBeMerged with a work budget of ``max_comparisons``.

    The rule compares every two fields with the same response name in a selection set,
    fragments included, and recursively their sub-selections, so its work grows with the
    square of repeated fields and multiplies through nesting: 330 copies of
    ``modelVersion { modelId }`` in one selection (660 fields, 7.3 KB, within every other
    limit) cost it 54,000 comparisons, 0.4 to 1.2 s on this VM. graphql-core meters that work
    (``spend_complexity_budget``: 2 units per pair of fields compared, 1 per response name or
    argument matched) against ``MAX_COMPLEXITY_BUDGET`` (500,000 units), a module-wide
    setting; this subclass gives each validation its own, smaller budget instead. Its other
    work, collecting each selection set's fields, is done once per selection set (cached by
    the rule), so the check's work is linear in the document plus at most this budget.
    The README's and the dashboard's queries and GraphiQL's introspection spend nothing (no
    response name repeats in a selection set); n fragments spread side by side that share 4
    fields cost 3n(n-1) comparisons (tests/test_limits_validation.py counts them).
    """

    class BoundedOverlappingFieldsCanBeMergedRule(OverlappingFieldsCanBeMergedRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self.rule_context.remaining_complexity_budget = 2 * max_comparisons

        def enter_selection_set(self, *args: Any) -> None:
            try:
                super().enter_selection_set(*args)
            except ValidationAbortedError:
                if self.rule_context.remaining_complexity_budget >= 0:
                    raise  # graphql-core's own abort (too many errors), not the budget
                raise FieldComparisonsExceeded(
                    "The document repeats the same fields too often for them to be checked "
                    f"for conflicts: more than {max_comparisons:,} field comparisons "
                    "(maxFieldComparisons, MLTRAIN_MAX_FIELD_COMPARISONS). Select each field "
                    "once per selection set, or alias the copies.",
                    extensions={
                        "code": LIMIT_EXCEEDED,
                        "limit": "maxFieldComparisons",
                        "max": max_comparisons,
                    },
                ) from None

    return BoundedOverlappingFieldsCanBeMergedRule


@functools.cache
def bounded_rules(
    rules: tuple[type[ASTValidationRule], ...], max_comparisons: int
) -> tuple[type[ASTValidationRule], ...]:
    """``rules`` (Strawberry's, then the two it always adds) with the overlap check bounded."""
    bounded = bounded_overlap_rule(max_comparisons)
    return tuple(
        bounded if rule is OverlappingFieldsCanBeMergedRule else rule
        for rule in (*rules, MaybeNullValidationRule, OneOfInputValidationRule)
    )


def validate_rules(
    schema: GraphQLSchema, document: DocumentNode, rules: tuple[type[ASTValidationRule], ...]
) -> list[GraphQLError]:
    """graphql-core's validation, as Strawberry's ``validate_document`` runs it, except that
    errors carry no "Did you mean ...?" suggestions: computing them is an edit distance from
    the unknown name to every known one, per error (up to 100 per document): 100 unknown
    variable types (400 tokens) took 0.6 s. GraphiQL and editors suggest from the schema
    themselves; with introspection off, suggestions would also reveal the schema."""
    return validate(schema, document, rules, hide_suggestions=True)


class CostFirstValidation(SchemaExtension):
    """Parsing and validation: the cost limits first, then graphql-core's rules; only documents
    that pass both are cached.

    graphql-core's own rules are not all linear: OverlappingFieldsCanBeMerged compares the
    fields of a selection set pairwise (measured: 0.43 s for 300 copies of one field, a 7.5 KB
    document inside the token limit). Checked first, an over-limit document costs one linear
    walk. Documents within the limits are then validated in full, with that rule's work
    bounded (``bounded_overlap_rule``) and without suggestions (``validate_rules``).

    This replaces Strawberry's ``ParserCache`` and ``ValidationCache``: the first kept refused
    documents too, the second would validate before the cost check. A document in
    ``accepted`` (same query text, same schema) passed both checks, so it is not checked again.
    """

    def __init__(self, limits: QueryLimits, accepted: AcceptedDocuments) -> None:
        self.limits = limits
        self.accepted = accepted
        self.known = False

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        assert query is not None  # Strawberry answers a missing query before parsing
        document = self.accepted.get(query)
        self.known = document is not None
        if document is None:
            # Parsed here, as ParserCache did, so a syntax error (the token limit's among
            # them) leaves the operation as an exception, which ClientErrors restates.
            document = parse(IndexedSource(query), **context.parse_options)
        context.graphql_document = document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        assert document is not None  # Strawberry validates only a parsed document
        if self.known:
            context.pre_execution_errors = []
            yield
            return
        refused = cost_errors(document, self.limits)
        if refused:
            context.pre_execution_errors = refused
        else:
            rules = bounded_rules(context.validation_rules, self.limits.max_field_comparisons)
            errors = validate_rules(context.schema._schema, document, rules)
            context.pre_execution_errors = errors
            if not errors:
                assert context.query is not None
                self.accepted.add(context.query, document)
        yield


def token_limit_error(error: GraphQLError, max_tokens: int) -> GraphQLError | None:
    """The parser's token-limit syntax error, restated to name the limit; None for others."""
    if "tokens. Parsing aborted" not in error.message:
        return None
    return limit_error(
        f"The document has more than {max_tokens} tokens (maxTokens, MLTRAIN_MAX_TOKENS).",
        "maxTokens",
        max_tokens,
    )
