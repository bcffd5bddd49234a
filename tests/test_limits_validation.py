"""graphql-core's validation of a document within the cost limits does bounded work.

Issue 10: OverlappingFieldsCanBeMerged compares every two same-named fields of a selection set
and, recursively, their sub-selections: 330 copies of ``modelVersion { modelId }`` (660 fields,
7.3 KB, inside every cost limit) cost it 54,000 comparisons and 0.4 to 1.2 s on this VM, once
per distinct document, blocking the event loop. Its work is now bounded by
``maxFieldComparisons``; the tests count the comparisons graphql-core makes (pairs of fields
and pairs of fragments), not seconds. Suggestions ("Did you mean ...?"), an edit distance from
each unknown name to every known one, are not computed. Timings: bench/README.md.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from graphql import get_introspection_query, parse, specified_rules
from graphql.validation.rules import overlapping_fields_can_be_merged as overlap

from bench.queries import DASHBOARD, JOB
from graphql_api.auth.roles import Role
from graphql_api.limits.rules import QueryLimits, bounded_rules, cost_errors, validate_rules
from graphql_api.schema import build_schema
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.security_helpers import RoleClient, client, secured_app
from tests.test_limits_cost import MAX_TOKENS, README_DASHBOARD

# The module (``graphql.pyutils.suggestion_list`` the attribute is its function).
suggestions = importlib.import_module("graphql.pyutils.suggestion_list")

DEFAULT = QueryLimits().max_field_comparisons
SCHEMA = build_schema()._schema


def in_a_job(selection: str) -> str:
    return f"query{{trainingJobs(first:1){{edges{{node{{{selection}}}}}}}}}"


def fragments(count: int, body: str) -> str:
    spreads = " ".join(f"...F{i}" for i in range(count))
    definitions = " ".join(f"fragment F{i} on TrainingJob{{{body}}}" for i in range(count))
    return f"{in_a_job(spreads)} {definitions}"


#: Documents within every cost limit and the token limit whose overlap check, unbounded, makes
#: far more comparisons than the default allows. Attackers vary the shape, so do these.
REPEATED = {
    "issue: 330 x modelVersion{modelId}": in_a_job(" ".join(["modelVersion{modelId}"] * 330)),
    "990 x one leaf": in_a_job(" ".join(["jobId"] * 990)),
    "90 x modelVersion, 9 leaves each": in_a_job(
        " ".join(["modelVersion{" + " ".join(["modelId"] * 9) + "}"] * 90)
    ),
    "nested copies": in_a_job(
        " ".join(
            ["modelVersion{trainingJobs{edges{node{" + "modelVersion{modelId} " * 3 + "}}}}"] * 30
        )
    ),
    "150 x one argument field": in_a_job(
        " ".join(["modelVersion{trainingJobs(first:1){totalCount}}"] * 150)
    ),
    "200 inline fragments": in_a_job(" ".join(["...on TrainingJob{modelVersion{modelId}}"] * 200)),
    "220 distinct fragments": fragments(220, "jobId"),
    "150 fragments of a relation": fragments(150, "modelVersion{modelId}"),
    "150 fragments of __typename": fragments(150, "__typename"),
}


class Comparisons:
    """Counts the comparisons graphql-core's overlap rule makes: pairs of fields (each with
    its sub-selections' pairs counted in turn) and pairs of fragments."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("find_conflict", "collect_conflicts_between_fragments"):
            original = getattr(overlap, name)
            monkeypatch.setattr(overlap, name, self._counting(original))

    def _counting(self, original: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(*args, **kwargs)

        return counted


@pytest.fixture
def comparisons(monkeypatch: pytest.MonkeyPatch) -> Iterator[Comparisons]:
    yield Comparisons(monkeypatch)


def validate_as_served(text: str, limits: QueryLimits | None = None) -> list[Any]:
    limits = limits or QueryLimits()
    rules = bounded_rules(tuple(specified_rules), limits.max_field_comparisons)
    return validate_rules(SCHEMA, parse(text, max_tokens=MAX_TOKENS), rules)


@pytest.mark.parametrize("name", list(REPEATED))
def test_repeated_fields_within_the_cost_limits_get_bounded_comparisons(
    comparisons: Comparisons, name: str
) -> None:
    document = parse(REPEATED[name], max_tokens=MAX_TOKENS)  # within the token limit
    assert cost_errors(document, QueryLimits()) == []  # and every cost limit
    # Unbounded (graphql-core's own budget, 500,000 units), the check makes many more.
    validate_rules(SCHEMA, document, (*specified_rules,))
    unbounded, comparisons.count = comparisons.count, 0
    assert unbounded > DEFAULT, unbounded

    errors = validate_as_served(REPEATED[name])
    assert comparisons.count <= DEFAULT + 1  # the comparison that ran out of budget
    assert [e.extensions for e in errors] == [
        {"code": "LIMIT_EXCEEDED", "limit": "maxFieldComparisons", "max": DEFAULT}
    ]
    assert "MLTRAIN_MAX_FIELD_COMPARISONS" in errors[0].message


LEGITIMATE = {
    "README dashboard": README_DASHBOARD,
    "bench dashboard": str(DASHBOARD["query"]),
    "bench job": str(JOB["query"]),
    "GraphiQL introspection": get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    ),
    # A client that composes a page from fragments, each asking for the fields it needs:
    # n fragments sharing 4 fields cost 3n(n-1) comparisons (20: 1,140; 26: 1,950).
    "20 fragments sharing 4 fields": fragments(20, "__typename jobId status modelVersion{modelId}"),
}

EXPECTED = {name: 0 for name in LEGITIMATE} | {"20 fragments sharing 4 fields": 1_140}


@pytest.mark.parametrize("name", list(LEGITIMATE))
def test_legitimate_documents_stay_far_below_the_bound(comparisons: Comparisons, name: str) -> None:
    assert validate_as_served(LEGITIMATE[name]) == []
    assert comparisons.count == EXPECTED[name] < DEFAULT


def test_conflicts_within_the_bound_are_still_reported() -> None:
    errors = validate_as_served(in_a_job("jobId status jobId:status"))
    assert ["conflict" in e.message for e in errors] == [True]
    assert errors[0].extensions == {}


@pytest.fixture
async def api(storage: MongoStorage) -> AsyncIterator[RoleClient]:
    async with secured_app(storage) as app, client(app) as http:
        yield RoleClient(http)


async def test_over_http_a_repeated_document_is_refused_naming_the_limit(api: RoleClient) -> None:
    body = (await api.post(Role.VIEWER, REPEATED["issue: 330 x modelVersion{modelId}"])).json()
    assert body["data"] is None
    assert [e["extensions"] for e in body["errors"]] == [
        {"code": "LIMIT_EXCEEDED", "limit": "maxFieldComparisons", "max": DEFAULT}
    ]
    assert await api.data(Role.VIEWER, "{ trainingJobs { totalCount } }")  # still serving


async def test_the_comparison_bound_is_a_setting(storage: MongoStorage) -> None:
    few = in_a_job(" ".join(["jobId"] * 20))  # 190 comparisons
    async with secured_app(storage, max_field_comparisons=100) as app, client(app) as http:
        body = (await RoleClient(http).post(Role.VIEWER, few)).json()
        assert body["errors"][0]["extensions"]["max"] == 100
    assert Settings().max_field_comparisons == DEFAULT == 2_000


def test_unknown_names_get_no_suggestions(monkeypatch: pytest.MonkeyPatch) -> None:
    # 100 unknown variable types (400 tokens): an edit distance to every type name per error
    # took 0.6 s. Counted: no distance is measured at all.
    measured: list[str] = []
    original = suggestions.LexicalDistance.measure

    def counting(self: Any, option: str, threshold: int) -> int | None:
        measured.append(option)
        distance: int | None = original(self, option, threshold)
        return distance

    monkeypatch.setattr(suggestions.LexicalDistance, "measure", counting)
    variables = " ".join(f"$v{i}:TrainingStatuz" for i in range(100))
    uses = " ".join(f"$v{i}" for i in range(100))
    errors = validate_as_served(
        f"query({variables}){{trainingJobs(filter:{{statuses:[{uses}]}}){{totalCount}}}}"
    )
    assert errors and all("Did you mean" not in e.message for e in errors)
    errors = validate_as_served(in_a_job("jobIdd statuss"))
    assert [e.message for e in errors] == [
        "Cannot query field 'jobIdd' on type 'TrainingJob'.",
        "Cannot query field 'statuss' on type 'TrainingJob'.",
    ]
    assert measured == []
