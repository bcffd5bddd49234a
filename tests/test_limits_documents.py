"""Parsed documents: only accepted ones are cached, and error locations cost a lookup.

Issue 10: Strawberry's ParserCache kept every parsed document, refused or not (256 hostile
documents at the token limit: ~355,000 live objects, full GC pauses 3-4x longer; measured in
bench/README.md). And graphql-core located each error by scanning the text from its start:
100 unused variables after 900,000 newlines (within the token and body limits) took 50 s to
validate. The tests count what the cache holds and the scans made, not seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from graphql import Source, parse

import graphql_api.limits.documents as documents
import graphql_api.limits.rules as rules
from graphql_api.auth.roles import Role
from graphql_api.limits.documents import AcceptedDocuments, IndexedSource, token_count
from graphql_api.limits.rules import QueryLimits
from graphql_api.schema import MLTrainSchema, build_schema
from graphql_api.storage.mongo import MongoStorage
from tests.security_helpers import RoleClient, client, secured_app
from tests.test_limits_cost import chain
from tests.test_limits_validation import REPEATED


def refused_documents(count: int) -> list[str]:
    """Distinct documents refused for each reason a document can be: cost, validation, syntax."""
    kinds = [
        lambda i: chain(19).replace("F", f"X{i}F"),  # maxQueryFields
        lambda i: REPEATED["990 x one leaf"].replace("jobId", f"j{i}:jobId", 1),  # comparisons
        lambda i: f"{{ trainingJobs {{ nope{i} }} }}",  # an unknown field
        lambda i: f"query($v{i}: Int) {{ __typename }}",  # an unused variable
        lambda i: f"{{ trainingJobs {{ edges {{ node {{ jobId{i} ",  # a syntax error
    ]
    return [kinds[i % len(kinds)](i) for i in range(count)]


async def execute(schema: MLTrainSchema, query: str) -> Any:
    return await schema.execute(query)


async def test_refused_documents_are_not_cached() -> None:
    schema = build_schema()
    for query in refused_documents(300):
        result = await execute(schema, query)
        assert result.errors, query
    assert len(schema.accepted_documents) == 0
    assert schema.accepted_documents.tokens == 0


async def test_accepted_documents_are_cached_and_not_checked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = build_schema()
    checked: list[object] = []
    full_check = rules.cost_errors

    def counting(*args: Any) -> Any:
        checked.append(args[0])
        return full_check(*args)

    monkeypatch.setattr(rules, "cost_errors", counting)
    for _ in range(3):
        assert (await execute(schema, "query Q { __typename }")).data == {"__typename": "Query"}
    assert len(checked) == 1
    assert len(schema.accepted_documents) == 1


async def test_the_cache_is_bounded_by_entries_and_by_tokens() -> None:
    schema = build_schema(QueryLimits(max_tokens=100))
    cache = schema.accepted_documents
    for i in range(400):
        await execute(schema, f"query Q{i} {{ __typename }}")  # 5 tokens each, with <EOF>
    assert len(cache) == cache.max_entries == 256
    # 30 aliases (the limit) of __typename: 94 tokens, near this schema's token limit.
    big = "query B{i} {{ " + " ".join(f"a{j}: __typename" for j in range(30)) + " }}"
    for i in range(60):
        assert not (await execute(schema, big.format(i=i))).errors
    # Bounded by its tokens, not its entries: about 33 big documents fit, not 60.
    assert cache.max_tokens - 100 < cache.tokens <= cache.max_tokens == 32 * 100
    assert len(cache) < 40
    assert cache.tokens == sum(token_count(doc) for doc, _ in cache._entries.values())


def test_a_cache_forgets_the_least_recently_used() -> None:
    cache = AcceptedDocuments(max_entries=2, max_tokens=1000)
    a, b, c = (parse(f"query {name} {{ __typename }}") for name in "ABC")
    cache.add("a", a)
    cache.add("b", b)
    assert cache.get("a") is a  # now the most recent
    cache.add("c", c)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (a, None, c)


@pytest.mark.parametrize(
    "text",
    [
        "{ a }",
        "\n\n{ a\n b }\n",
        "\r\n{ a\r\n\r b }",
        "# comment\n\n\n   { a b\n\n c }",
    ],
)
def test_locations_are_graphql_cores(text: str) -> None:
    indexed, plain = IndexedSource(text), Source(text)
    for position in range(len(text) + 1):
        if text[position - 1 : position + 1] == "\r\n":
            continue  # inside a line break: no token starts there
        assert indexed.get_location(position) == plain.get_location(position), position


@pytest.fixture
async def api(storage: MongoStorage) -> AsyncIterator[RoleClient]:
    async with secured_app(storage) as app, client(app) as http:
        yield RoleClient(http)


PADDED = {
    # One node per error: 100 unused variables.
    "unused variables": "query(" + " ".join(f"$v{i}: Int" for i in range(150)) + ") { __typename }",
    # Two nodes per error: 15 pairs of aliases that name different fields.
    "conflicting aliases": "{ trainingJobs { edges { node { "
    + " ".join(f"a{i}: jobId a{i}: status" for i in range(15))
    + " } } } }",
}


#: Text before the document (ignored characters; comments count as tokens) and its lines.
PADDINGS = {
    "newlines": ("\n" * 20_000, 20_000),
    "CRLF": ("\r\n" * 20_000, 20_000),
    "a long comment": ("# " + "x" * 500_000 + "\n" * 100, 100),
}


@pytest.mark.parametrize("name", list(PADDED))
@pytest.mark.parametrize("padding", list(PADDINGS))
async def test_errors_deep_in_a_long_document_are_located_without_scanning_it(
    api: RoleClient, monkeypatch: pytest.MonkeyPatch, name: str, padding: str
) -> None:
    scans: list[int] = []
    scan_one, scan_many = Source.get_location, documents._graphql_get_locations

    def counting_one(self: Source, position: int) -> Any:
        scans.append(position)
        return scan_one(self, position)

    def counting_many(locations: Any) -> Any:
        scans.append(len(locations))
        return scan_many(locations)

    monkeypatch.setattr(Source, "get_location", counting_one)
    monkeypatch.setattr(documents, "_graphql_get_locations", counting_many)
    text, lines = PADDINGS[padding]
    body = (await api.post(Role.VIEWER, text + PADDED[name])).json()
    errors = body["errors"]
    assert len(errors) >= 15, errors[:3]
    # (graphql-core's "Too many validation errors" after 100 has no location)
    located = [loc for e in errors for loc in e.get("locations", [])]
    assert len(located) >= 30 and all(loc["line"] == lines + 1 for loc in located), errors[:3]
    assert scans == []  # graphql-core's scans from the start of the text: none
