"""Variable coercion with lists of scalars coerced in one loop, not one recursion per item.

A 1,000-point ``reportTrainingMetrics(series:)`` call carries its points as lists of scalars
(``steps: [Int64!]!``, ``values: [Float!]!``): 2,000 numbers. graphql-core coerces a variable
by recursing into every list item (``coerce_input_value``: the non-null wrapper, then the leaf,
each call re-testing the type's kind) after walking every item once more to check the nesting
depth (``input_is_nested_too_deeply``). Profiled (bench/README.md, "Metric series"), that was
about a fifth of the call's CPU.

This module holds equivalents of those two functions: the same results, the same
``Undefined`` for a value that does not coerce, the same answer to "too deep", with a list of
leaves (scalar or enum items, nullable or not) done in one loop over its items. Errors are
still described by graphql-core's own ``validate_input_value``, which runs only once coercion
has failed, so what a client is told is unchanged. ``install`` puts them in place of
graphql-core's in ``graphql.execution.values``, the module that coerces variables, for the
graphql-core release line they were checked against (3.3); on any other it leaves
graphql-core as it is. ``tests/test_input_coercion.py`` checks the equivalence on random
values of every input type of the schema.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    is_required_input_field,
)
from graphql.language.parser import MAX_NESTING_DEPTH
from graphql.pyutils import Undefined, is_iterable
from graphql.version import version_info

log = logging.getLogger("mltrain.execution")

#: graphql-core's module that defines ``coerce_input_value`` (its package re-exports the
#: function under the same name, so the module is reached through importlib).
_graphql_coercion = importlib.import_module("graphql.utilities.coerce_input_value")
_graphql_values = importlib.import_module("graphql.execution.values")
#: graphql-core's own functions, as this module found them.
GRAPHQL_COERCE_INPUT_VALUE = _graphql_coercion.coerce_input_value
GRAPHQL_INPUT_IS_NESTED_TOO_DEEPLY = _graphql_values.input_is_nested_too_deeply
_coerce_default_value = _graphql_coercion.coerce_default_value

_LEAF_TYPES = (GraphQLScalarType, GraphQLEnumType)


def coerce_input_value(input_value: Any, type_: GraphQLInputType) -> Any:
    """graphql-core 3.3's ``coerce_input_value``, with lists of leaves in one loop."""
    if isinstance(type_, GraphQLNonNull):
        if input_value is None or input_value is Undefined:
            return Undefined
        type_ = type_.of_type
    elif input_value is None or input_value is Undefined:
        return None

    if isinstance(type_, GraphQLList):
        item_type = type_.of_type
        if not is_iterable(input_value):
            # A non-list value is a list of one.
            coerced_item = coerce_input_value(input_value, item_type)
            return Undefined if coerced_item is Undefined else [coerced_item]
        non_null = isinstance(item_type, GraphQLNonNull)
        leaf = item_type.of_type if non_null else item_type
        if isinstance(leaf, _LEAF_TYPES):
            return _coerce_leaves(input_value, leaf, non_null)
        coerced_list: list[Any] = []
        for item_value in input_value:
            coerced_item = coerce_input_value(item_value, item_type)
            if coerced_item is Undefined:
                return Undefined
            coerced_list.append(coerced_item)
        return coerced_list

    if isinstance(type_, GraphQLInputObjectType):
        return _coerce_input_object(input_value, type_)

    # A leaf. The variable's declared type is an input type, so there is no other kind.
    try:
        return type_.coerce_input_value(input_value)
    except Exception:  # as graphql-core: a value that does not coerce
        return Undefined


def _coerce_leaves(items: Any, leaf: GraphQLScalarType | GraphQLEnumType, non_null: bool) -> Any:
    coerce = leaf.coerce_input_value
    coerced_list: list[Any] = []
    append = coerced_list.append
    for item_value in items:
        if item_value is None or item_value is Undefined:
            if non_null:
                return Undefined
            append(None)
            continue
        try:
            coerced_item = coerce(item_value)
        except Exception:  # as graphql-core: an item that does not coerce
            return Undefined
        if coerced_item is Undefined:
            return Undefined
        append(coerced_item)
    return coerced_list


def _coerce_input_object(input_value: Any, type_: GraphQLInputObjectType) -> Any:
    if not isinstance(input_value, dict):
        return Undefined
    fields = type_.fields
    defined_field_count = 0
    for field_name, field_value in input_value.items():
        if field_value is Undefined:
            continue
        defined_field_count += 1
        if field_name not in fields:
            return Undefined
    coerced_dict: dict[str, Any] = {}
    for field_name, field in fields.items():
        field_value = input_value.get(field_name, Undefined)
        if field_value is Undefined:
            if is_required_input_field(field):
                return Undefined
            coerced_default_value = _coerce_default_value(field)
            if coerced_default_value is not Undefined:
                coerced_dict[field.out_name or field_name] = coerced_default_value
        else:
            coerced_field = coerce_input_value(field_value, field.type)
            if coerced_field is Undefined:
                return Undefined
            coerced_dict[field.out_name or field_name] = coerced_field
    if type_.is_one_of:
        keys = list(coerced_dict)
        if defined_field_count != 1 or len(keys) != 1 or coerced_dict[keys[0]] is None:
            return Undefined
    return type_.out_type(coerced_dict)


def input_is_nested_too_deeply(value: Any, type_: GraphQLInputType) -> bool:
    """graphql-core 3.3's check, without visiting each item of a list of leaves: such an
    item nests no further, so all it could add is its own depth, the list's plus one."""
    stack: list[tuple[Any, Any, int]] = [(value, type_, 0)]
    while stack:
        value, type_, depth = stack.pop()
        if depth > MAX_NESTING_DEPTH:
            return True
        if isinstance(type_, GraphQLNonNull):
            type_ = type_.of_type
        if isinstance(type_, GraphQLList):
            items = value if isinstance(value, (list, tuple)) else [value]
            item_type = type_.of_type
            leaf = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
            if isinstance(leaf, _LEAF_TYPES):
                if items and depth + 1 > MAX_NESTING_DEPTH:
                    return True
                continue
            stack.extend((item, item_type, depth + 1) for item in items)
        elif isinstance(type_, GraphQLInputObjectType) and isinstance(value, dict):
            stack.extend(
                (value[name], field.type, depth + 1)
                for name, field in type_.fields.items()
                if name in value
            )
    return False


def install() -> bool:
    """Coerce variables with this module's functions; whether they are in place. Only on the
    graphql-core line they were checked against, and only over graphql-core's own functions
    (never over someone else's replacement)."""
    values = _graphql_values
    if getattr(values, "coerce_input_value", None) is coerce_input_value:
        return True
    if (
        version_info.major,
        version_info.minor,
    ) != (3, 3) or (
        values.coerce_input_value is not GRAPHQL_COERCE_INPUT_VALUE
        or values.input_is_nested_too_deeply is not GRAPHQL_INPUT_IS_NESTED_TOO_DEEPLY
    ):
        log.info("variable coercion left as graphql-core %s has it", version_info)
        return False
    setattr(values, "coerce_input_value", coerce_input_value)  # noqa: B010 - see the docstring
    setattr(values, "input_is_nested_too_deeply", input_is_nested_too_deeply)  # noqa: B010
    return True
