"""No pattern matches before a trailing newline (issue 10, item 8: every ``$``-anchored regex).

Python's ``$`` also matches just before a final ``\\n``; every pattern is matched whole
(``fullmatch``), or by pydantic-core's Rust engine where ``$`` is the very end.
"""

from __future__ import annotations

import pytest

from graphql_api.auth.keys import KeyConfigError, generate
from graphql_api.auth.roles import Role
from graphql_api.domain import text
from graphql_api.domain.semver import SemVer
from tests.conftest import GraphQLClient
from tests.operations import REGISTER


@pytest.mark.parametrize("name", ["ci-worker\n", "ci-worker\r\n", "ci worker", "\nci"])
def test_api_key_names_with_a_newline_are_refused(name: str) -> None:
    with pytest.raises(KeyConfigError):
        generate(name, Role.WORKER)


def test_a_plain_api_key_name_is_accepted() -> None:
    _, key = generate("ci-worker", Role.WORKER)
    assert key.name == "ci-worker"


@pytest.mark.parametrize("value", ["1.0.0\n", "2.0.0-rc.1\n", "1.0.0+b\n"])
def test_semver_refuses_a_trailing_newline(value: str) -> None:
    with pytest.raises(ValueError, match="Semantic Versioning"):
        SemVer.parse(value)


@pytest.mark.parametrize("value", ["model-1\n", "model-1\r\n", "\nmodel-1"])
def test_ids_refuse_a_trailing_newline(value: str) -> None:
    with pytest.raises(text.PolicyError):
        text.check_id(value)


@pytest.mark.parametrize("model_id", ["model-1\n", "model-1\r\n"])
async def test_a_chosen_model_id_with_a_newline_is_refused(
    gql: GraphQLClient, model_id: str
) -> None:
    payload = {"modelName": "m", "version": "1.0.0", "modelType": "REGRESSION", "modelId": model_id}
    result = (await gql.data(REGISTER, input=payload))["registerModelVersion"]
    assert result["__typename"] == "ValidationError" and result["field"] == "modelId"
