"""Error codes and validation rules are GraphQL enums (issue 11, item 6): a client can handle
every case, and every rule the code can raise is a value of ``ValidationRule``."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from graphql_api.domain import errors as domain
from graphql_api.schema import schema
from graphql_api.types.errors import MutationError, to_graphql
from tests import operations as ops
from tests.conftest import GraphQLClient

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = [*ROOT.joinpath("graphql_api").rglob("*.py"), *ROOT.joinpath("resolvers").rglob("*.py")]


def rule_arguments(tree: ast.AST) -> list[tuple[int, ast.expr]]:
    """Each rule handed to a ``ValidationError`` or ``PolicyError`` (by keyword or position),
    and each value of a ``"rule"`` key in a dict literal (a GraphQL error's extensions)."""
    found: list[tuple[int, ast.expr]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            position = {"ValidationError": 2, "PolicyError": 1}.get(str(name))
            if position is None:
                continue
            found += [(node.lineno, k.value) for k in node.keywords if k.arg == "rule"]
            if len(node.args) > position:
                found.append((node.lineno, node.args[position]))
        elif isinstance(node, ast.Dict):
            found += [
                (node.lineno, value)
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant) and key.value == "rule"
            ]
    return found


def test_every_rule_the_code_raises_is_a_value_of_the_enum() -> None:
    # mypy refuses a plain string where a ValidationRule is expected; this also catches a
    # rule written where mypy does not look (a dict of extensions, an untyped call).
    rules, strays = set(), []
    for path in PRODUCT:
        for line, value in rule_arguments(ast.parse(path.read_text())):
            where = f"{path.relative_to(ROOT)}:{line}"
            match value:
                case ast.Attribute(value=ast.Name(id="ValidationRule"), attr=member):
                    rules.add(member)
                case ast.Attribute(
                    value=ast.Attribute(value=ast.Name(id="ValidationRule"), attr=member),
                    attr="value",
                ):
                    rules.add(member)
                case ast.Name() | ast.Attribute():
                    pass  # passed on (error.rule, rule): typed, mypy checks the source
                case _:
                    strays.append(f"{where}: {ast.unparse(value)}")
    assert not strays, f"rules that are not ValidationRule members: {strays}"
    assert rules <= {rule.name for rule in domain.ValidationRule}
    assert len(rules) >= 20, rules  # the scan found the raise sites, not nothing


def test_the_schema_lists_every_rule_and_every_code_by_its_wire_spelling() -> None:
    sdl = schema.as_str()
    rule_enum = sdl.split("enum ValidationRule {", 1)[1].split("}", 1)[0].split()
    assert rule_enum == [rule.value for rule in domain.ValidationRule]
    code_enum = sdl.split("enum ErrorCode {", 1)[1].split("}", 1)[0].split()
    assert code_enum == [code.value for code in domain.ErrorCode]
    assert "code: ErrorCode!" in sdl and "rule: ValidationRule!" in sdl


def error_instances() -> list[domain.DomainError]:
    return [
        domain.NotFoundError("TrainingJob", "j"),
        domain.InvalidTransitionError("TrainingJob", "j", "RUNNING", "PENDING"),
        domain.ConflictError("taken", field="version"),
        domain.ValidationError("metrics", "bad", rule=domain.ValidationRule.max_items),
        domain.UnauthenticatedError(),
        domain.ForbiddenError("promoteModelVersion", "viewer", "operator"),
        domain.LeaseLostError("j"),
    ]


def test_each_error_family_has_its_own_code_and_graphql_type() -> None:
    errors = error_instances()
    assert {type(e) for e in errors} == set(domain.DomainError.__subclasses__())
    # CURSOR_EXPIRED belongs to a ValidationError subclass raised only by queries and
    # subscriptions (a GraphQL error's extensions.code), never as a mutation's typed error.
    query_only = {domain.ErrorCode.CURSOR_EXPIRED}
    assert sorted(e.code for e in errors) == sorted(set(domain.ErrorCode) - query_only)
    graphql_types = {type(to_graphql(e)) for e in errors}
    assert graphql_types == set(MutationError.__args__)


def result_union(name: str) -> set[str]:
    union = schema._schema.get_type(name)
    return {member.name for member in getattr(union, "types", [])}


def test_every_result_union_holds_every_error_type() -> None:
    errors = {t.__name__ for t in MutationError.__args__}
    for union in ("ModelVersionResult", "TrainingJobResult"):
        assert result_union(union) - {"ModelVersion", "TrainingJob"} == errors


# Pydantic's own checks reach clients under Pydantic's names: each listed, none `invalid`.
def register_input(**overrides: Any) -> dict[str, Any]:
    return {
        "modelName": "churn",
        "version": "1.0.0",
        "modelType": "PREDICTION",
        **overrides,
    }


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        ({"version": "1.0"}, "version", "value_error"),
        ({"version": "v1.0.0"}, "version", "value_error"),
        ({"modelId": "has space"}, "modelId", "string_pattern_mismatch"),
        ({"modelId": "-leading-dash"}, "modelId", "string_pattern_mismatch"),
        ({"metrics": [1, 2]}, "metrics", "dict_type"),
        ({"metrics": 0.5}, "metrics", "dict_type"),
        ({"metrics": "f1"}, "metrics", "dict_type"),
        ({"metrics": {"f1": "high"}}, "metrics.f1", "number"),
        ({"metrics": {"f1": True}}, "metrics.f1", "number"),
        ({"metrics": {"f1": None}}, "metrics.f1", "number"),
        ({"metrics": {"$gt": 1}}, "metrics", "key_dollar"),
        ({"modelName": ""}, "modelName", "min_length"),
        ({"modelName": "x" * 201}, "modelName", "max_length"),
    ],
)
async def test_model_checks_answer_a_listed_rule(
    gql: GraphQLClient, overrides: dict[str, Any], field: str, rule: str
) -> None:
    result = (await gql.data(ops.REGISTER, input=register_input(**overrides)))[
        "registerModelVersion"
    ]
    assert result["__typename"] == "ValidationError", result
    assert (result["code"], result["field"], result["rule"]) == ("VALIDATION_ERROR", field, rule)


@pytest.mark.parametrize("hyperparameters", [[1], 3, "lr", None])
async def test_hyperparameters_that_are_not_an_object_answer_dict_type(
    gql: GraphQLClient, hyperparameters: Any
) -> None:
    model = (await gql.data(ops.REGISTER, input=register_input()))["registerModelVersion"]
    result = (
        await gql.data(
            ops.CREATE_JOB,
            input={
                "modelId": model["modelId"],
                "datasetId": "d",
                "hyperparameters": hyperparameters,
            },
        )
    )["createTrainingJob"]
    if hyperparameters is None:  # null is "none given": an empty object
        assert result["__typename"] == "TrainingJob", result
        return
    assert result["__typename"] == "ValidationError", result
    assert (result["field"], result["rule"]) == ("hyperparameters", "dict_type")


async def test_query_argument_errors_carry_the_same_values_as_strings(gql: GraphQLClient) -> None:
    body = await gql.execute("{ trainingJobs(first: 101) { edges { cursor } } }")
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "VALIDATION_ERROR", "field": "first", "rule": "max"}
    assert error["extensions"]["rule"] in {rule.value for rule in domain.ValidationRule}
