"""The executor's shortcuts (graphql_api/execution.py): plain leaves read without Strawberry's
per-field wrapper, and awaitability decided once per class. Counted work over HTTP, and the same
answers and errors as graphql-core's ordinary path for every unusual value."""

from __future__ import annotations

import asyncio
import enum
import json
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.field import StrawberryField

from graphql_api import execution
from tests.api_helpers import create_job_id, register_id, running_job
from tests.conftest import GraphQLClient

DASHBOARD = """
query($first: Int) {
  trainingJobs(first: $first) {
    edges { node {
      jobId modelId status hyperparameters datasetId startedDate completedDate metrics logsUrl
      createdDate failureReason modelVersion { modelName version status }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Counts Strawberry's per-field resolver calls and pydantic ``__getattr__`` misses."""
    counts = {"get_result": 0, "pydantic_misses": 0}
    get_result = StrawberryField.get_result
    # Defined only outside TYPE_CHECKING in pydantic, so not visible to mypy as an attribute.
    getattr_miss = vars(pydantic.BaseModel)["__getattr__"]

    def counted_get_result(self: StrawberryField, *args: Any, **kwargs: Any) -> Any:
        counts["get_result"] += 1
        return get_result(self, *args, **kwargs)

    def counted_miss(self: pydantic.BaseModel, name: str) -> Any:
        counts["pydantic_misses"] += 1
        return getattr_miss(self, name)

    monkeypatch.setattr(StrawberryField, "get_result", counted_get_result)
    monkeypatch.setattr(pydantic.BaseModel, "__getattr__", counted_miss)
    yield counts


async def test_a_page_of_jobs_reads_its_leaves_without_per_field_resolvers(
    gql: GraphQLClient, counted: dict[str, int]
) -> None:
    model_id = await register_id(gql, "1.0.0", "churn")
    for _ in range(6):
        await create_job_id(gql, model_id)
    await gql.data(DASHBOARD, first=6)  # warm: classes seen once are remembered
    counted.update(get_result=0, pydantic_misses=0)

    data = await gql.data(DASHBOARD, first=6)

    nodes = [edge["node"] for edge in data["trainingJobs"]["edges"]]
    assert len(nodes) == 6
    assert all(n["status"] == "PENDING" and n["modelId"] == model_id for n in nodes)
    assert all(n["modelVersion"]["modelName"] == "churn" for n in nodes)
    assert all(n["modelVersion"]["version"] == "1.0.0" for n in nodes)
    # 6 jobs x 14 leaves were read; only resolvers with code of their own ran (trainingJobs,
    # edges, node, modelVersion per job...), and no model was probed for a missing attribute.
    assert counted["get_result"] < 6 * 3 + 5, counted
    assert counted["pydantic_misses"] == 0, counted


# --- the same answers and errors as graphql-core's ordinary path ------------------------------


class Colour(enum.Enum):
    RED = "RED"


class Record(pydantic.BaseModel):
    name: str | None = None
    count: Any = None
    colour: Any = None


@strawberry.experimental.pydantic.type(model=Record)
class RecordType:
    name: strawberry.auto
    count: int | None
    colour: Colour | None


@strawberry.experimental.pydantic.type(model=Record, name="OtherRecord")
class OtherRecordType:
    name: strawberry.auto


@strawberry.type
class Plain:
    name: str
    maybe: str | None
    count: int
    colour: Colour

    @strawberry.field
    def shout(self) -> str:
        return f"{self.count}!"


@strawberry.type
class WithBroken:
    value: str

    @strawberry.field
    def doubled(self) -> str:
        return self.value * 2


async def _coroutine_value() -> str:
    return "awaited"


def _rows() -> list[Any]:
    return [
        Plain(name="a", maybe=None, count=1, colour=Colour.RED),
        Plain(name=None, maybe="m", count=2, colour=Colour.RED),  # type: ignore[arg-type]  # null in non-null
        Plain(name="b", maybe="m", count=2**40, colour=Colour.RED),  # Int out of range
        Plain(name="c", maybe="m", count=3, colour="GREEN"),  # type: ignore[arg-type]  # not an enum value
        Plain(name=_coroutine_value(), maybe="m", count=4, colour=Colour.RED),  # type: ignore[arg-type]
        Plain(name=ValueError("an exception as value"), maybe="m", count=5, colour=Colour.RED),  # type: ignore[arg-type]
    ]


@strawberry.type
class Query:
    @strawberry.field
    def plain(self) -> list[Plain | None] | None:  # errors stay where they happen
        return _rows()

    @strawberry.field
    def records(self) -> list[RecordType | None] | None:
        return [
            Record(name="r", count=1, colour=Colour.RED),  # type: ignore[list-item]
            Record(name=None, count="not an int", colour=None),  # type: ignore[list-item]
        ]

    @strawberry.field
    def cast_away(self) -> list[RecordType | None] | None:
        # Marked as another type: RecordType's is_type_of refuses it (an error, as before).
        return [
            strawberry.cast(OtherRecordType, Record(name="cast")),  # type: ignore[list-item]
            Record(name="kept"),  # type: ignore[list-item]
        ]

    @strawberry.field
    def missing(self) -> list[WithBroken | None] | None:
        return [object()]  # type: ignore[list-item]  # no attribute: graphql-core's error

    # Lists whose selections are all plain leaves (answered in one loop when nothing is odd).
    @strawberry.field
    def good(self) -> list[Plain]:
        return [Plain(name=f"g{i}", maybe=None, count=i, colour=Colour.RED) for i in range(3)]

    @strawberry.field
    def good_tuple(self) -> list[Plain | None] | None:
        return (Plain(name="t", maybe="m", count=1, colour=Colour.RED), None)  # type: ignore[return-value]

    @strawberry.field
    def null_in_non_null(self) -> list[Plain] | None:
        return [Plain(name="n", maybe=None, count=1, colour=Colour.RED), None]  # type: ignore[list-item]

    @strawberry.field
    def good_records(self) -> list[RecordType]:
        return [Record(name=f"r{i}", count=i, colour=Colour.RED) for i in range(3)]  # type: ignore[misc]

    @strawberry.field
    def awaitable_items(self) -> list[Plain | None] | None:
        return [_plain_later()]  # type: ignore[list-item]

    @strawberry.field
    def error_items(self) -> list[Plain | None] | None:
        return [ValueError("an exception as item")]  # type: ignore[list-item]


async def _plain_later() -> Plain:
    return Plain(name="later", maybe=None, count=9, colour=Colour.RED)


QUERY = """{
  plain { name maybe shout count colour }
  again: plain { colour shout name maybe }
  records { name count colour }
  castAway { name }
  missing { value }
  onlyLeaves: plain { name maybe count colour }
  good { colour name count maybe }
  alias: good { n: name, c: count }
  goodTuple { name maybe }
  nullInNonNull { name }
  goodRecords { name count colour }
  castLeaves: castAway { name }
  awaitableItems { name count }
  errorItems { name }
}"""


def _answer(executor: type[Any]) -> tuple[str, list[tuple[str, Any]]]:
    schema = strawberry.Schema(query=Query, execution_context_class=executor)
    result = asyncio.run(schema.execute(QUERY))
    errors = sorted((e.message, e.path) for e in result.errors or [])
    return json.dumps(result.data), errors  # as sent: the order of the answers counts


def test_unusual_values_answer_and_fail_as_graphql_core_makes_them() -> None:
    expected = _answer(StrawberryGraphQLCoreExecutionContext)
    assert expected[1], "the matrix must include errors"
    assert '"again": [{"colour": "RED", "shout": "1!", "name": "a", "maybe": null}' in expected[0]
    assert '"alias": [{"n": "g0", "c": 0}, {"n": "g1", "c": 1}' in expected[0]
    assert '"nullInNonNull": null' in expected[0]
    assert '"awaitableItems": [{"name": "later", "count": 9}]' in expected[0]
    assert _answer(execution.Executor) == expected


def test_resolver_middleware_sees_every_field() -> None:
    seen: list[str] = []

    class Spy(strawberry.extensions.SchemaExtension):
        def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append(info.field_name)
            return _next(root, info, *args, **kwargs)

    schema = strawberry.Schema(
        query=Query, execution_context_class=execution.Executor, extensions=[Spy]
    )
    asyncio.run(schema.execute("{ records { name count } }"))
    assert seen.count("name") == 2 and seen.count("count") == 2


def test_the_remembered_classes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    remembered: set[type] = set()
    monkeypatch.setattr(execution, "_not_awaitable", remembered)
    monkeypatch.setattr(execution, "MAX_REMEMBERED_CLASSES", 10)
    classes = [type(f"C{i}", (), {}) for i in range(50)]
    assert not any(execution.is_awaitable(cls()) for cls in classes)
    assert len(remembered) == 10


def test_awaitables_stay_awaitable_after_their_class_was_probed() -> None:
    class Later:
        def __await__(self) -> Iterator[None]:
            yield None

    coroutine = _coroutine_value()
    awaitable = execution.is_awaitable(coroutine)
    coroutine.close()
    assert awaitable
    assert execution.is_awaitable(Later()) and execution.is_awaitable(Later())
    loop = asyncio.new_event_loop()
    try:
        assert execution.is_awaitable(loop.create_future())
    finally:
        loop.close()


SERIES_POINTS = """
query($id: ID!) { trainingJob(jobId: $id) {
  metricSeries(keys: ["loss"], maxPoints: 500) { key totalPoints points { step value } } } }"""

REPORT_SERIES = """
mutation($id: ID!, $series: [MetricSeriesInput!]) {
  reportTrainingMetrics(jobId: $id, series: $series) { __typename } }"""


async def test_a_series_points_are_answered_without_an_execution_per_point(
    gql: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = await running_job(gql)
    steps = list(range(300))
    columns = {"key": "loss", "steps": steps, "values": [s / 10 for s in steps]}
    await gql.data(REPORT_SERIES, id=job_id, series=[columns])
    objects: list[str] = []
    execute_fields = execution.Executor.execute_fields

    def counted(self: execution.Executor, parent_type: Any, *args: Any) -> Any:
        objects.append(parent_type.name)
        return execute_fields(self, parent_type, *args)

    monkeypatch.setattr(execution.Executor, "execute_fields", counted)

    data = await gql.data(SERIES_POINTS, id=job_id)

    (series,) = data["trainingJob"]["metricSeries"]
    assert series["totalPoints"] == 300
    assert series["points"] == [{"step": s, "value": s / 10} for s in steps]
    # The query, the job and the series go through execution; the 300 points do not.
    assert "MetricPoint" not in objects, objects
