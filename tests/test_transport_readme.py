"""The README's promises about getting started and the API, checked against the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from graphql import DocumentNode, OperationDefinitionNode, parse, print_ast, validate

from graphql_api.app import create_app
from graphql_api.limits.rules import QueryLimits
from graphql_api.schema import build_schema
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def api_operations() -> list[OperationDefinitionNode]:
    (block,) = re.findall(r"```graphql\n(.*?)```", section("The API in five operations"), re.S)
    document: DocumentNode = parse(block)
    return [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]


def test_the_api_section_shows_five_operations_of_every_kind() -> None:
    operations = api_operations()
    assert len(operations) == 5
    kinds = {operation.operation.value for operation in operations}
    assert kinds == {"query", "mutation", "subscription"}


def test_each_readme_operation_is_valid_against_the_schema() -> None:
    schema = build_schema(
        QueryLimits(max_depth=10, max_aliases=30, max_root_fields=10, max_tokens=2000),
        introspection=True,
    )
    for operation in api_operations():
        errors = validate(schema._schema, DocumentNode(definitions=(operation,)))
        assert errors == [], (print_ast(operation), errors)


async def test_the_readme_queries_and_mutations_run_on_the_demo() -> None:
    app = create_app(Settings(), storage=MongoStorage.connect(None, "readme"), demo=True)
    answers: list[dict[str, Any]] = []
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            for operation in api_operations():
                if operation.operation.value == "subscription":
                    continue
                response = await http.post("/graphql", json={"query": print_ast(operation)})
                assert response.status_code == 200
                assert "errors" not in response.json(), response.json()
                answers.append(response.json()["data"])
    production, registry, jobs, report = answers
    assert production["productionModelVersion"]["version"]
    assert registry["promoteModelVersion"] == {"status": "TESTING"}
    assert jobs["trainingJobs"]["totalCount"] > 0
    assert report["reportTrainingMetrics"]["code"] == "NOT_FOUND"  # the README's "…" job id


@pytest.mark.parametrize(
    ("command", "extra"), [("pip install -e . &&", None), ('pip install -e ".[test]"', "pytest")]
)
def test_the_quickstart_runs_the_server_without_the_test_tools(
    command: str, extra: str | None
) -> None:
    quickstart = section("Quickstart")
    (line,) = [text for text in quickstart.splitlines() if command in text]
    if extra is None:
        assert "mltrain serve --demo" in line
    else:
        assert extra in line
