"""Variables are coerced as graphql-core coerces them (``graphql_api/input_coercion.py``): the
same value, or the same refusal, for every input type of the schema and random values; the
same answer to "nested too deeply"; and a bad item in a column is still reported by path."""

from __future__ import annotations

import math
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLFloat,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
)
from graphql.execution import values as graphql_values
from graphql.language.parser import MAX_NESTING_DEPTH
from graphql.pyutils import Undefined
from hypothesis import given, settings
from hypothesis import strategies as st

from graphql_api import input_coercion
from graphql_api.input_coercion import (
    GRAPHQL_COERCE_INPUT_VALUE,
    GRAPHQL_INPUT_IS_NESTED_TOO_DEEPLY,
    coerce_input_value,
    input_is_nested_too_deeply,
)
from graphql_api.schema import schema
from tests.conftest import GraphQLClient

GRAPHQL_SCHEMA: GraphQLSchema = schema._schema

# Names a random object may use: every input field's, so objects are often valid.
FIELD_NAMES = sorted(
    {
        name
        for named in GRAPHQL_SCHEMA.type_map.values()
        if isinstance(named, GraphQLInputObjectType)
        for name in named.fields
    }
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["1.0.0", "^1.4", "s3://b/k", "2026-12-02T05:00:00Z", "PENDING", "DESC"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(st.sampled_from(FIELD_NAMES), inner, max_size=6),
    ),
    max_leaves=40,
)


def input_types() -> list[GraphQLInputType]:
    """Every named input type of the schema (objects, scalars, enums), bare and wrapped as
    variables are declared: non-null, list, list of non-null."""
    named = [
        t
        for name, t in GRAPHQL_SCHEMA.type_map.items()
        if not name.startswith("__")
        and isinstance(t, (GraphQLScalarType, GraphQLEnumType, GraphQLInputObjectType))
    ]
    wrapped: list[GraphQLInputType] = []
    for t in named:
        wrapped += [
            t,
            GraphQLNonNull(t),
            GraphQLList(t),
            GraphQLList(GraphQLNonNull(t)),
            GraphQLNonNull(GraphQLList(GraphQLNonNull(t))),
        ]
    return wrapped


TYPES = input_types()


def same(left: Any, right: Any) -> bool:
    if left is Undefined or right is Undefined:
        return left is right
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    return type(left) is type(right) and bool(left == right)


def test_the_schema_has_input_objects_scalars_and_enums_to_compare() -> None:
    names = {str(t) for t in TYPES}
    assert {"MetricSeriesInput", "MetricPointInput", "Int64", "Float", "TrainingStatus"} <= names
    assert "[MetricSeriesInput!]!" in names


@settings(max_examples=400, deadline=None)
@given(type_=st.sampled_from(TYPES), value=json_values)
def test_coercion_gives_what_graphql_core_gives(type_: GraphQLInputType, value: Any) -> None:
    assert same(coerce_input_value(value, type_), GRAPHQL_COERCE_INPUT_VALUE(value, type_))


@settings(max_examples=200, deadline=None)
@given(
    type_=st.sampled_from(TYPES),
    value=st.lists(st.one_of(scalars, st.lists(scalars, max_size=3)), max_size=20),
)
def test_lists_of_numbers_and_of_anything_else_coerce_as_graphql_core_does(
    type_: GraphQLInputType, value: Any
) -> None:
    assert same(coerce_input_value(value, type_), GRAPHQL_COERCE_INPUT_VALUE(value, type_))


def test_a_valid_series_coerces_to_the_same_columns() -> None:
    series = GRAPHQL_SCHEMA.type_map["MetricSeriesInput"]
    assert isinstance(series, GraphQLInputObjectType)
    type_ = GraphQLNonNull(GraphQLList(GraphQLNonNull(series)))
    value = [{"key": "loss", "steps": list(range(250)), "values": [s / 7 for s in range(250)]}]
    ours = coerce_input_value(value, type_)
    assert same(ours, GRAPHQL_COERCE_INPUT_VALUE(value, type_))
    assert ours[0]["steps"][:3] == [0, 1, 2]


# A recursive input type: the only way a value can nest as deep as the limit.
NODE: GraphQLInputObjectType = GraphQLInputObjectType(
    "Node",
    lambda: {
        "child": GraphQLInputField(NODE),
        "children": GraphQLInputField(GraphQLList(NODE)),
        "values": GraphQLInputField(GraphQLList(GraphQLNonNull(GraphQLFloat))),
        "names": GraphQLInputField(GraphQLList(GraphQLString)),
    },
)
_ = GraphQLSchema(
    GraphQLObjectType("Query", {"node": GraphQLField(GraphQLString, {"n": NODE})})  # type: ignore[dict-item]
)


def nested(depth: int, leaf_field: str, leaves: list[Any]) -> dict[str, Any]:
    value: dict[str, Any] = {leaf_field: leaves}
    for _ in range(depth):
        value = {"child": value}
    return value


@pytest.mark.parametrize("leaves", [[], [1.0], [1.0, 2.0], 3.0, [[1.0]], None])
@pytest.mark.parametrize("leaf_field", ["values", "names"])
@pytest.mark.parametrize(
    "depth",
    [MAX_NESTING_DEPTH - 3, MAX_NESTING_DEPTH - 2, MAX_NESTING_DEPTH - 1, MAX_NESTING_DEPTH],
)
def test_too_deep_is_answered_as_graphql_core_answers(
    depth: int, leaf_field: str, leaves: Any
) -> None:
    value = nested(depth, leaf_field, leaves)
    expected = GRAPHQL_INPUT_IS_NESTED_TOO_DEEPLY(value, NODE)
    assert input_is_nested_too_deeply(value, NODE) is expected


def test_too_deep_cases_cover_both_answers() -> None:
    answers = {
        GRAPHQL_INPUT_IS_NESTED_TOO_DEEPLY(nested(d, "values", [1.0]), NODE)
        for d in (MAX_NESTING_DEPTH - 3, MAX_NESTING_DEPTH - 1)
    }
    assert answers == {True, False}


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_too_deep_agrees_on_random_values_of_a_recursive_type(value: Any) -> None:
    for type_ in (NODE, GraphQLList(NODE), GraphQLNonNull(GraphQLList(GraphQLNonNull(NODE)))):
        assert input_is_nested_too_deeply(value, type_) is GRAPHQL_INPUT_IS_NESTED_TOO_DEEPLY(
            value, type_
        )


def test_the_schema_coerces_variables_with_these_functions() -> None:
    """Building the schema puts them in place; if a graphql-core upgrade stops that, this
    fails, and the functions are to be checked against the new release before moving on."""
    assert input_coercion.install() is True
    assert getattr(graphql_values, "coerce_input_value") is coerce_input_value  # noqa: B009
    assert graphql_values.input_is_nested_too_deeply is input_is_nested_too_deeply


REPORT_SERIES = """
mutation Report($id: ID!, $series: [MetricSeriesInput!]!) {
  reportTrainingMetrics(jobId: $id, series: $series) { __typename }
}
"""


async def test_a_bad_number_in_a_column_is_refused_by_its_path(gql: GraphQLClient) -> None:
    columns = {"key": "loss", "steps": [0, 1, 2], "values": [0.5, "high", 0.25]}
    body = await gql.execute(REPORT_SERIES, id="no-such-job", series=[columns])
    (error,) = body["errors"]
    assert "'$series'" in error["message"] and "[0].values[1]" in error["message"], error
    assert "Float" in error["message"], error
    assert body.get("data") is None
