"""The executor every operation runs with: graphql-core's, with shortcuts for plain fields.

A dashboard answer has about 800 fields, ~700 of them leaves read straight off a domain model
(``jobId``, ``status``, ``createdDate``...). For each, Strawberry and graphql-core build a
resolve-info tuple, call Strawberry's basic-field wrapper (which calls ``StrawberryField.
get_result``, which calls ``getattr``), check the value for ``__await__`` (on a pydantic model
a miss goes through pydantic's slow ``__getattr__``), then complete it through the non-null and
leaf branches. Profiled (bench/README.md, "Server CPU per request"), that per-field machinery
was most of a request's CPU.

1. **Plain leaves.** A field Strawberry built as a *basic* field (no resolver, no field
   extensions: Strawberry marks its resolver ``_is_default``) whose type is a scalar or enum,
   with no arguments, is read as Strawberry's default resolver reads it (``getattr(source,
   python_name)``) and coerced by its own type, with nothing else built (no resolve info, no
   response path, no resolver call); the object's answers keep the selection's order.
   Anything unusual (a missing attribute, a null for a non-null type, a value that fails
   coercion, an awaitable, an exception as value, resolver middleware) takes graphql-core's
   ordinary path, which builds the same error it always did.
2. **Awaitability by type.** ``await`` looks ``__await__`` up on the type, so whether a value
   can be awaited is a property of its class (generators aside, whose flag is per code
   object). Classes found not awaitable are remembered (a bounded set), so a model instance is
   probed once per class, not once per field.
3. **Known model classes.** Strawberry's pydantic-backed types check each object with
   ``is_type_of``: a ``strawberry.cast`` mark on the instance wins, else ``isinstance(obj,
   (type, model))``. Looking for the mark on a pydantic model is another slow ``__getattr__``
   miss. An object whose class is exactly the type's model or Strawberry class, with no mark in
   its ``__dict__`` (where ``strawberry.cast`` puts it on a pydantic model), is accepted as
   ``is_type_of`` would accept it, without the probe.
4. **Lists of plain objects.** A list whose items are objects of one type, every selected
   field of which is a plain leaf (a series' ``points { step value }``: 4,000 objects in a
   20-job compare query), is answered in one loop: the selection collected once, each item
   checked as 3. checks it (or, for a type without ``is_type_of``, found not to be an error
   or an awaitable) and its leaves read as 1. reads them. Anything else in any item (a null
   where the type says non-null, a leaf that takes the ordinary path, ``@defer``/``@stream``)
   hands the whole list to graphql-core's ordinary path, which answers it as it always did.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable
from inspect import CO_ITERABLE_COROUTINE
from types import CoroutineType, GeneratorType
from typing import Any, NamedTuple, TypeGuard

from graphql import (
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    is_leaf_type,
)
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.cast import TYPE_CAST_ATTRIBUTE
from strawberry.types.field import StrawberryField

from graphql_api.live.fanout import SharingExecutor

#: At most this many classes are remembered as not awaitable; past it, probing goes on as
#: before (a process has a bounded set of classes, but the bound does not rely on that).
MAX_REMEMBERED_CLASSES = 4096

_not_awaitable: set[type] = {
    type(None),
    bool,
    int,
    float,
    str,
    bytes,
    bytearray,
    list,
    tuple,
    dict,
    set,
    frozenset,
}


def is_awaitable(value: Any) -> TypeGuard[Awaitable[Any]]:
    """graphql-core's ``is_awaitable``, with the answer for a class remembered once it is no."""
    cls = type(value)
    if cls in _not_awaitable:
        return False
    if isinstance(value, CoroutineType):
        return True
    if isinstance(value, GeneratorType):
        return bool(value.gi_code.co_flags & CO_ITERABLE_COROUTINE)
    if hasattr(value, "__await__"):
        return True
    if not hasattr(cls, "__await__") and len(_not_awaitable) < MAX_REMEMBERED_CLASSES:
        _not_awaitable.add(cls)
    return False


class PlainLeaf(NamedTuple):
    python_name: str
    leaf_type: GraphQLLeafType
    non_null: bool


#: Per schema: {object type name: {field name: how to read it}}; built on first use.
_plain_leaves: weakref.WeakKeyDictionary[GraphQLSchema, dict[str, dict[str, PlainLeaf]]] = (
    weakref.WeakKeyDictionary()
)


def plain_leaves(schema: GraphQLSchema) -> dict[str, dict[str, PlainLeaf]]:
    """The schema's fields that are plain attribute reads of a scalar or enum."""
    found = _plain_leaves.get(schema)
    if found is None:
        found = {}
        for type_ in schema.type_map.values():
            if not isinstance(type_, GraphQLObjectType) or type_.name.startswith("__"):
                continue
            fields: dict[str, PlainLeaf] = {}
            for name, field in type_.fields.items():
                definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
                field_type = field.type
                non_null = isinstance(field_type, GraphQLNonNull)
                leaf_type = field_type.of_type if non_null else field_type
                if (
                    isinstance(definition, StrawberryField)
                    and getattr(field.resolve, "_is_default", False)
                    and definition.default_resolver is getattr
                    and not field.args
                    and is_leaf_type(leaf_type)
                ):
                    fields[name] = PlainLeaf(definition.python_name, leaf_type, non_null)
            if fields:
                found[type_.name] = fields
        _plain_leaves[schema] = found
    return found


#: Per schema: {object type name: the classes its pydantic ``is_type_of`` accepts unmarked}.
_model_classes: weakref.WeakKeyDictionary[GraphQLSchema, dict[str, frozenset[type]]] = (
    weakref.WeakKeyDictionary()
)


def model_classes(schema: GraphQLSchema) -> dict[str, frozenset[type]]:
    """For each Strawberry pydantic type: its Strawberry class and its model."""
    found = _model_classes.get(schema)
    if found is None:
        found = {}
        for type_ in schema.type_map.values():
            if not isinstance(type_, GraphQLObjectType) or type_.extensions is None:
                continue
            definition = type_.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(definition, StrawberryObjectDefinition):
                continue
            model = getattr(definition.origin, "_pydantic_type", None)
            if model is not None and definition.is_type_of is not None:
                found[type_.name] = frozenset((definition.origin, model))
        _model_classes[schema] = found
    return found


def is_unmarked_model(value: Any, classes: frozenset[type]) -> bool:
    """``value`` is exactly one of a type's ``classes`` (3. in the module's doc) with no
    ``strawberry.cast`` mark: accepted as its ``is_type_of`` would accept it. A slotted
    class (no ``__dict__``) is not checked here: False."""
    if type(value) not in classes:
        return False
    marks = getattr(value, "__dict__", None)
    return marks is not None and TYPE_CAST_ATTRIBUTE not in marks


def read_plain_leaf(leaf: PlainLeaf, source: Any) -> Any:
    """The field's answer, or Undefined when graphql-core's ordinary path must make it (an
    error, or a value that is not plain)."""
    try:
        value = getattr(source, leaf.python_name)
    except Exception:  # graphql-core's path reports it as it always did
        return Undefined
    if value is None:
        return Undefined if leaf.non_null else None
    if isinstance(value, BaseException) or is_awaitable(value):
        return Undefined
    try:
        coerced = leaf.leaf_type.coerce_output_value(value)
    except Exception:
        return Undefined
    return Undefined if coerced is None else coerced


class Executor(SharingExecutor):
    """Strawberry's executor (with subscription sharing, live.fanout) plus the shortcuts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.is_awaitable = is_awaitable
        middleware = self.middleware_manager
        # Resolver middleware must see every field: then no shortcut is taken.
        self._plain_leaves = (
            plain_leaves(self.schema) if middleware is None or not middleware.middlewares else {}
        )
        self._model_classes = model_classes(self.schema)

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: Any,
        info: Any,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        classes = self._model_classes.get(return_type.name)
        if classes is not None and is_unmarked_model(result, classes):
            return self.collect_and_execute_subfields(
                return_type, field_details_list, path, result, position_context
            )
        return super().complete_object_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def complete_iterable_value(
        self,
        item_type: GraphQLOutputType,
        field_details_list: Any,
        info: Any,
        path: Path,
        items: Any,
        position_context: Any,
    ) -> Any:
        answers = self._plain_objects(item_type, field_details_list, path, items)
        if answers is not None:
            return answers
        return super().complete_iterable_value(
            item_type, field_details_list, info, path, items, position_context
        )

    def _plain_objects(
        self, item_type: GraphQLOutputType, field_details_list: Any, path: Path, items: Any
    ) -> list[Any] | None:
        """A list of objects whose selected fields are all plain leaves, answered in one loop
        (4. in the module's doc); None: graphql-core's ordinary path answers it."""
        if type(items) is not list and type(items) is not tuple:
            return None
        non_null = isinstance(item_type, GraphQLNonNull)
        object_type = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if not isinstance(object_type, GraphQLObjectType):
            return None
        fields = self._plain_leaves.get(object_type.name)
        if fields is None:
            return None
        accepted = self._model_classes.get(object_type.name)
        if object_type.is_type_of is not None and accepted is None:
            return None
        grouped_field_set, new_defer_usages, _ = self.collect_subfields(
            object_type, field_details_list
        )
        if new_defer_usages or self.get_stream_usage(field_details_list, path) is not None:
            return None
        reads: list[tuple[str, PlainLeaf]] = []
        for response_name, details in grouped_field_set.items():
            leaf = fields.get(details[0].node.name.value)
            if leaf is None:
                return None
            reads.append((response_name, leaf))
        answers: list[Any] = []
        for item in items:
            if item is None:
                if non_null:
                    return None
                answers.append(None)
                continue
            if accepted is not None:
                if not is_unmarked_model(item, accepted):
                    return None
            elif isinstance(item, BaseException) or is_awaitable(item):
                return None
            answer: dict[str, Any] = {}
            for response_name, leaf in reads:
                value = read_plain_leaf(leaf, item)
                if value is Undefined:
                    return None
                answer[response_name] = value
            answers.append(answer)
        return answers

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: dict[str, Any],
        position_context: Any,
    ) -> Any:
        fields = self._plain_leaves.get(parent_type.name)
        if fields is None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        plain: dict[str, Any] = {}
        rest: dict[str, Any] = {}
        for response_name, field_details_list in grouped_field_set.items():
            leaf = fields.get(field_details_list[0].node.name.value)
            if leaf is not None:
                value = read_plain_leaf(leaf, source_value)
                if value is not Undefined:
                    plain[response_name] = value
                    continue
            rest[response_name] = field_details_list
        if not rest:
            return plain
        resolved = super().execute_fields(parent_type, source_value, path, rest, position_context)
        if not plain:
            return resolved
        if isinstance(resolved, dict):  # else the awaitable graphql-core returns
            return _merged(grouped_field_set, plain, resolved)
        return _merged_later(grouped_field_set, plain, resolved)


def _merged(
    grouped_field_set: dict[str, Any], plain: dict[str, Any], resolved: dict[str, Any]
) -> dict[str, Any]:
    """The answers in the selection's order (the order a client sees them in)."""
    return {
        name: plain[name] if name in plain else resolved[name]
        for name in grouped_field_set
        if name in plain or name in resolved
    }


async def _merged_later(
    grouped_field_set: dict[str, Any], plain: dict[str, Any], resolved: Awaitable[dict[str, Any]]
) -> dict[str, Any]:
    return _merged(grouped_field_set, plain, await resolved)
