"""The cost of a document counts fragment spreads as expanded, and is measured in one linear walk.

Issue 10, item 1: twenty fragments that each spread the next one twice (943 bytes) made the
server walk a million fields, blocking every client. These documents are now refused before
anything runs, with ``LIMIT_EXCEEDED`` naming ``maxQueryFields``; the walks that read a
selection (the cost rules, the relation priming) visit each selection of the document a bounded
number of times however the fragments nest: the tests count visits, not seconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    Visitor,
    get_introspection_query,
    parse,
    visit,
)

import graphql_api.limits.rules as rules
import resolvers.prefetch as prefetch
from graphql_api.auth.roles import Role
from graphql_api.domain.enums import ModelType
from graphql_api.limits.rules import SATURATED, DocumentMeasure, QueryLimits, cost_errors
from graphql_api.services.container import Services
from graphql_api.settings import Settings
from graphql_api.storage.mongo import MongoStorage
from tests.security_helpers import RoleClient, client, secured_app, snapshot

MAX_TOKENS = 2000  # the documented default: every hostile document below fits in it

# Hostile documents -----------------------------------------------------------------------


def chain(
    levels: int,
    *,
    on: str = "TrainingJob",
    width: int = 2,
    leaf: str = "jobId",
    root: str = "query{trainingJobs(first:1){edges{node{...F0}}}}",
    inline: bool = False,
) -> str:
    """``fragment Fi on <on> {...Fi+1 ...Fi+1}`` (``width`` spreads), down to ``leaf``."""

    def spreads(i: int) -> str:
        one = f"...F{i + 1}"
        if inline:  # each spread wrapped in an inline fragment
            one = f"...on {on}{{{one}}}"
        return " ".join([one] * width)

    fragments = " ".join(f"fragment F{i} on {on}{{{spreads(i)}}}" for i in range(levels))
    return f"{root} {fragments} fragment F{levels} on {on}{{{leaf}}}"


def diamond(levels: int) -> str:
    """Each level spread by two different fragments: no fragment is spread twice in a row."""
    parts = []
    for i in range(levels):
        parts.append(f"fragment F{i} on TrainingJob{{...A{i} ...B{i}}}")
        parts.append(f"fragment A{i} on TrainingJob{{...F{i + 1}}}")
        parts.append(f"fragment B{i} on TrainingJob{{status ...F{i + 1}}}")
    return (
        "query{trainingJobs(first:1){edges{node{...F0}}}} "
        + " ".join(parts)
        + f" fragment F{levels} on TrainingJob{{jobId}}"
    )


def connection_chain(levels: int) -> str:
    return chain(
        levels,
        on="TrainingJobConnection",
        leaf="totalCount",
        root="query{trainingJobs(first:1){...F0}}",
    )


def query_chain(levels: int) -> str:
    return chain(levels, on="Query", leaf="__typename", root="query{...F0}")


def query_chain_of_root_fields(levels: int) -> str:
    return chain(levels, on="Query", leaf="trainingJobs{totalCount}", root="{...F0}")


def introspection_chain(levels: int) -> str:
    return chain(levels, on="__Type", leaf="name", root="{__schema{types{...F0}}}")


#: name -> (document of n levels, levels that fit the default token limit)
HOSTILE: dict[str, tuple[Callable[[int], str], int]] = {
    "issue: job fragments x2, n=19": (chain, 19),
    "job fragments x2, n=45": (chain, 45),
    "job fragments x3": (lambda n: chain(n, width=3), 30),
    "job fragments x7": (lambda n: chain(n, width=7), 14),
    "through inline fragments": (lambda n: chain(n, inline=True), 20),
    "diamonds": (diamond, 25),
    "on the connection": (connection_chain, 40),
    "issue: on Query (__typename)": (query_chain, 40),
    "on Query, root fields": (query_chain_of_root_fields, 40),
    "on introspection types": (introspection_chain, 40),
}


def selections_in(document: str) -> int:
    """Fields, inline fragments and fragment spreads written in the document."""
    count = 0

    class Count(Visitor):
        def enter(self, node: object, *_: Any) -> None:
            nonlocal count
            count += isinstance(node, FieldNode | InlineFragmentNode | FragmentSpreadNode)

    visit(parse(document), Count())
    return count


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def measured(document: str) -> tuple[list[rules.SelectionCost], int]:
    ast = parse(document)
    measure = DocumentMeasure.of(ast)
    costs = [
        measure.operation(node)
        for node in ast.definitions
        if isinstance(node, OperationDefinitionNode)
    ]
    return costs, measure.visits


# The measure, on its own -----------------------------------------------------------------


@pytest.mark.parametrize("name", list(HOSTILE))
def test_the_hostile_documents_fit_the_default_token_limit(name: str) -> None:
    make, levels = HOSTILE[name]
    parse(make(levels), max_tokens=MAX_TOKENS)  # raises if over


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("levels", [1, 5, 12, 40, 160, 640])
def test_the_walk_visits_each_written_selection_once(name: str, levels: int) -> None:
    make, _ = HOSTILE[name]
    document = make(levels)
    _, visits = measured(document)
    assert visits == selections_in(document)


def test_spreads_count_as_expanded_and_saturate() -> None:
    # trainingJobs, edges, node, then 2**n copies of jobId.
    for levels in (0, 1, 2, 10, 20):
        [cost], _ = measured(chain(levels))
        assert cost.fields == 3 + 2**levels
        assert cost.depth == 4
    [cost], _ = measured(chain(levels=600))
    assert cost.fields == SATURATED
    [cost], _ = measured(chain(12, width=3))
    assert cost.fields == 3 + 3**12
    [cost], _ = measured(query_chain_of_root_fields(10))
    assert (cost.root_fields, cost.fields) == (2**10, 2 * 2**10)
    [cost], _ = measured(diamond(10))  # F(i) = A(i) + B(i) = 2 F(i+1) + 1
    assert cost.fields == 3 + 2**10 + (2**10 - 1)


def test_depth_and_root_fields_still_count_through_fragments() -> None:
    limits = QueryLimits(max_depth=4, max_root_fields=1)
    deep = """{ trainingJobs { ...E } }
      fragment E on TrainingJobConnection { edges { node { modelVersion { modelId } } } }"""
    wide = "{ ...R ...R } fragment R on Query { trainingJobs { totalCount } }"
    assert [(e.extensions or {})["limit"] for e in cost_errors(parse(deep), limits)] == [
        "maxQueryDepth"
    ]
    assert [(e.extensions or {})["limit"] for e in cost_errors(parse(wide), limits)] == [
        "maxRootFields"
    ]
    cyclic = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A __typename }"
    assert cost_errors(parse(cyclic), limits) == []  # no hang; NoFragmentCycles reports it


def test_a_long_fragment_chain_does_not_exhaust_the_stack() -> None:
    # The parser caps field nesting, not how long a chain of fragments is; the walk keeps its
    # own stack, so a chain longer than Python's recursion limit is measured too.
    document = chain(5000, width=1, leaf="modelVersion{modelId}")
    [cost], visits = measured(document)
    assert (cost.depth, cost.fields, visits) == (5, 5, selections_in(document))


# Over HTTP -------------------------------------------------------------------------------


@pytest.fixture
async def api(storage: MongoStorage) -> AsyncIterator[RoleClient]:
    async with secured_app(storage) as app, client(app) as http:
        yield RoleClient(http)


def refused_for_fields(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.get("data") is None, body
    errors = body["errors"]
    assert all(e["extensions"]["code"] == "LIMIT_EXCEEDED" for e in errors), errors
    fields = [e for e in errors if e["extensions"]["limit"] == "maxQueryFields"]
    assert fields, errors
    assert fields[0]["extensions"]["max"] == 1000
    assert "MLTRAIN_MAX_QUERY_FIELDS" in fields[0]["message"]


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_documents_are_refused_for_their_cost(
    api: RoleClient, services: Services, name: str
) -> None:
    await seed_job(services)  # something for the query to find, were it run
    make, levels = HOSTILE[name]
    refused_for_fields(await api.post(Role.VIEWER, make(levels)))


async def test_a_refused_mutation_changes_nothing(api: RoleClient, storage: MongoStorage) -> None:
    version = await api.data(
        Role.OPERATOR,
        """mutation { registerModelVersion(input: {modelName: "m", version: "1.0.0",
             modelType: CLASSIFICATION}) { ... on ModelVersion { modelId } } }""",
    )
    model_id = version["registerModelVersion"]["modelId"]
    before = await snapshot(storage)
    root = (
        f'mutation{{createTrainingJob(input:{{modelId:"{model_id}",datasetId:"d"}})'
        "{...on TrainingJob{...F0}}}"
    )
    response = await api.post(Role.OPERATOR, chain(19, root=root))
    refused_for_fields(response)
    assert await snapshot(storage) == before


async def test_a_refused_document_is_not_validated_further(
    api: RoleClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # graphql-core's overlap rule compares same-named fields pairwise: 300 copies of one root
    # field took 0.43 s to validate. Refused for its root fields, it must not get there.
    validated: list[object] = []
    full_validation = rules.validate_rules

    def counting(*args: Any) -> Any:
        validated.append(args[1])
        return full_validation(*args)

    monkeypatch.setattr(rules, "validate_rules", counting)
    repeated = "{" + " ".join(["trainingJobs{totalCount}"] * 300) + "}"
    parse(repeated, max_tokens=MAX_TOKENS)
    errors = (await api.post(Role.VIEWER, repeated)).json()["errors"]
    assert [e["extensions"]["limit"] for e in errors] == ["maxRootFields"]
    assert validated == []
    await api.data(Role.VIEWER, "{ trainingJobs { totalCount } }")
    assert len(validated) == 1


async def test_the_field_limit_is_a_setting(storage: MongoStorage) -> None:
    async with secured_app(storage, max_query_fields=5) as app, client(app) as http:
        api = RoleClient(http)
        assert await api.data(Role.VIEWER, "{ trainingJobs { edges { node { jobId } } } }")
        six = (
            "{ trainingJobs { totalCount ...P } }"
            " fragment P on TrainingJobConnection { edges { node { jobId status } } }"
        )
        body = (await api.post(Role.VIEWER, six)).json()
        assert body["errors"][0]["extensions"] == {
            "code": "LIMIT_EXCEEDED",
            "limit": "maxQueryFields",
            "max": 5,
        }
        assert "6 fields" in body["errors"][0]["message"]


def test_documented_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().max_query_fields == 1000
    monkeypatch.setenv("MLTRAIN_MAX_QUERY_FIELDS", "250")
    assert Settings().max_query_fields == 250


README_DASHBOARD = """{ trainingJobs(first: 50, filter: {statuses: [RUNNING, FAILED]}) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { jobId status metrics startedDate modelVersion { modelName version } } } } }"""


async def test_the_readme_dashboard_and_graphiql_introspection_pass_the_defaults(
    api: RoleClient,
) -> None:
    assert await api.data(Role.VIEWER, README_DASHBOARD)
    # GraphiQL asks for everything the schema can tell (descriptions, deprecations, ...).
    full = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    assert (await api.data(Role.VIEWER, full))["__schema"]["types"]


# Relation priming reads the selection once per fragment ------------------------------------


async def seed_job(services: Services) -> str:
    version = await services.registry.register(
        model_name="churn", version="1.0.0", model_type=ModelType.CLASSIFICATION
    )
    job = await services.training.create(model_id=version.model_id, dataset_id="d")
    return job.job_id


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("levels", [1, 8, 64, 512])
def test_the_priming_walk_reads_each_fragment_once_per_level(name: str, levels: int) -> None:
    make, _ = HOSTILE[name]
    document = parse(make(levels))
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    walk = prefetch.SelectionWalk(fragments_of(document))
    root_fields = [s for s in operation.selection_set.selections if isinstance(s, FieldNode)]
    walk.names_at(root_fields, ["edges", "node"])
    assert walk.visits <= 3 * selections_in(make(levels))


class CountingWalk(prefetch.SelectionWalk):
    instances: list[prefetch.SelectionWalk] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        CountingWalk.instances.append(self)


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[prefetch.SelectionWalk]]:
    CountingWalk.instances = []
    monkeypatch.setattr(prefetch, "SelectionWalk", CountingWalk)
    yield CountingWalk.instances


async def test_priming_through_doubled_fragments_stays_linear(
    storage: MongoStorage, services: Services, walks: list[prefetch.SelectionWalk]
) -> None:
    # With the field limit out of the way, the document reaches the resolvers: a million
    # expanded selections that ask for each job's model version.
    job_id = await seed_job(services)
    document = chain(20, leaf="jobId modelVersion { version }")
    async with (
        secured_app(storage, max_query_fields=SATURATED) as app,
        client(app) as http,
    ):
        data = await RoleClient(http).data(Role.VIEWER, document)
    [edge] = data["trainingJobs"]["edges"]
    assert edge["node"] == {"jobId": job_id, "modelVersion": {"version": "1.0.0"}}
    [walk] = walks
    assert 0 < walk.visits <= 3 * selections_in(document)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            "{ trainingJobs { edges { node { jobId modelVersion { version } } } } }",
            {"jobId", "modelVersion"},
        ),
        (
            "{ trainingJobs { e: edges { n: node { mv: modelVersion { version } } } } }",
            {"modelVersion"},
        ),
        (
            "{ trainingJobs { ...C } } fragment C on TrainingJobConnection { edges { ...E } }"
            " fragment E on TrainingJobEdge { node { ... on TrainingJob { history { kind } } } }",
            {"history"},
        ),
        (
            "{ trainingJobs { edges { node { jobId } } edges { node { ...J } } } }"
            " fragment J on TrainingJob { modelVersion { version } }",
            {"jobId", "modelVersion"},
        ),
        ("{ trainingJobs { totalCount } }", set()),
    ],
)
def test_the_priming_walk_finds_relations_through_fragments_and_aliases(
    document: str, expected: set[str]
) -> None:
    ast = parse(document)
    operation = ast.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    root_fields = [s for s in operation.selection_set.selections if isinstance(s, FieldNode)]
    walk = prefetch.SelectionWalk(fragments_of(ast))
    assert walk.names_at(root_fields, ["edges", "node"]) == expected
