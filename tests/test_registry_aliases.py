"""Aliases over HTTP: compare-and-set moves, the reserved `production`, lookups, deletion,
limits, events, and concurrent moves on both backends."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse, print_ast, validate

from graphql_api.schema import schema
from graphql_api.storage.mongo import MongoStorage
from tests.conftest import GraphQLClient
from tests.operations import ARCHIVE, PROMOTE, REGISTER
from tests.registry_operations import (
    BY_ALIAS,
    DELETE_ALIAS,
    REGISTER_DEPLOYABLE,
    SET_ALIAS,
    VERSION_ALIASES,
)
from tests.security_helpers import snapshot


async def versions_of(gql: GraphQLClient, name: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        data = await gql.data(
            REGISTER, input={"modelName": name, "version": f"1.{n}.0", "modelType": "REGRESSION"}
        )
        ids.append(str(data["registerModelVersion"]["modelId"]))
    return ids


@pytest.fixture
def name() -> str:
    return f"churn-{uuid.uuid4().hex[:6]}"


async def set_alias(
    gql: GraphQLClient, name: str, alias: str, model_id: str, expected: str | None = None
) -> dict[str, Any]:
    answer: dict[str, Any] = (
        await gql.data(SET_ALIAS, name=name, alias=alias, id=model_id, expected=expected)
    )["setModelAlias"]
    return answer


async def by_alias(gql: GraphQLClient, name: str, alias: str) -> str | None:
    found = (await gql.data(BY_ALIAS, name=name, alias=alias))["modelVersionByAlias"]
    return None if found is None else str(found["modelId"])


async def aliases_of(gql: GraphQLClient, model_id: str) -> list[str]:
    aliases: list[str] = (await gql.data(VERSION_ALIASES, id=model_id))["modelVersion"]["aliases"]
    return aliases


async def test_an_alias_is_created_moved_by_compare_and_set_and_read_back(
    gql: GraphQLClient, storage: MongoStorage, name: str
) -> None:
    first, second, third = await versions_of(gql, name, 3)
    created = await set_alias(gql, name, "champion", first)
    assert created["modelId"] == first
    assert await by_alias(gql, name, "champion") == first
    assert await aliases_of(gql, first) == ["champion"]
    # Creating it again, as if it did not exist, loses: it names `first` now.
    before = await snapshot(storage)
    taken = await set_alias(gql, name, "champion", second)
    assert (taken["__typename"], taken["field"]) == ("ConflictError", "expectedModelId")
    assert repr(first) in taken["message"]
    # A stale expectation loses the same way, naming the holder.
    stale = await set_alias(gql, name, "champion", third, expected=second)
    assert stale["__typename"] == "ConflictError" and repr(first) in stale["message"]
    assert await snapshot(storage) == before
    moved = await set_alias(gql, name, "champion", second, expected=first)
    assert moved["modelId"] == second
    assert await by_alias(gql, name, "champion") == second
    assert (await aliases_of(gql, first), await aliases_of(gql, second)) == ([], ["champion"])
    # The client's retry of the move that landed (its expectation is stale now) is answered.
    again = await set_alias(gql, name, "champion", second, expected=first)
    assert again["modelId"] == second
    events = await storage.events.for_entity(second, 20)
    alias_events = [(e.kind.value, e.alias, e.previous_model_id) for e in events if e.alias]
    assert alias_events == [("ALIAS_SET", "champion", first)]


async def test_several_aliases_name_one_version_and_are_listed_sorted(
    gql: GraphQLClient, name: str
) -> None:
    (version,) = await versions_of(gql, name, 1)
    for alias in ("staging", "canary-eu", "a_b"):
        await set_alias(gql, name, alias, version)
    assert await aliases_of(gql, version) == ["a_b", "canary-eu", "staging"]
    assert await by_alias(gql, name, "no-such-alias") is None
    assert await by_alias(gql, f"{name}-other", "staging") is None


async def test_production_is_reserved_and_always_names_the_production_version(
    gql: GraphQLClient, name: str
) -> None:
    old, new = await versions_of(gql, name, 2)
    refused = await set_alias(gql, name, "production", old)
    assert (refused["__typename"], refused["field"], refused["rule"]) == (
        "ValidationError",
        "alias",
        "reserved",
    )
    assert await by_alias(gql, name, "production") is None
    for model_id in (old, new):
        await gql.data(PROMOTE, id=model_id, to="TESTING")
    await gql.data(PROMOTE, id=old, to="PRODUCTION")
    assert await by_alias(gql, name, "production") == old
    assert await aliases_of(gql, old) == ["production"]
    await gql.data(PROMOTE, id=new, to="PRODUCTION")
    assert await by_alias(gql, name, "production") == new
    assert (await aliases_of(gql, old), await aliases_of(gql, new)) == ([], ["production"])
    deleted = (await gql.data(DELETE_ALIAS, name=name, alias="production", expected=None))[
        "deleteModelAlias"
    ]
    assert (deleted["__typename"], deleted["rule"]) == ("ValidationError", "reserved")


@pytest.mark.parametrize(
    "alias",
    ["Champion", "champ.ion", "$where", "", "1st", "-x", "a" * 64, "caf\u00e9", "a b", "a\u200b"],
)
async def test_alias_names_outside_the_pattern_are_refused(
    gql: GraphQLClient, name: str, alias: str
) -> None:
    (version,) = await versions_of(gql, name, 1)
    refused = await set_alias(gql, name, alias, version)
    assert (refused["__typename"], refused["field"], refused["rule"]) == (
        "ValidationError",
        "alias",
        "alias_pattern",
    )
    body = await gql.execute(BY_ALIAS, name=name, alias=alias)
    assert body["data"]["modelVersionByAlias"] is None
    assert body["errors"][0]["extensions"]["rule"] == "alias_pattern"


async def test_an_alias_names_a_live_version_of_its_own_model(
    gql: GraphQLClient, name: str
) -> None:
    (mine,) = await versions_of(gql, name, 1)
    (other,) = await versions_of(gql, f"{name}-other", 1)
    foreign = await set_alias(gql, name, "champion", other)
    assert (foreign["__typename"], foreign["field"], foreign["rule"]) == (
        "ValidationError",
        "modelId",
        "model_name",
    )
    missing = await set_alias(gql, name, "champion", "no-such-version")
    assert (missing["__typename"], missing["field"]) == ("NotFoundError", "modelId")
    await gql.data(ARCHIVE, id=mine)
    archived = await set_alias(gql, name, "champion", mine)
    assert (archived["__typename"], archived["field"]) == ("ConflictError", "modelId")
    assert "ARCHIVED" in archived["message"]


async def test_delete_answers_the_version_and_then_the_alias_is_gone(
    gql: GraphQLClient, storage: MongoStorage, name: str
) -> None:
    first, second = await versions_of(gql, name, 2)
    await set_alias(gql, name, "staging", first)

    async def delete(expected: str | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = (
            await gql.data(DELETE_ALIAS, name=name, alias="staging", expected=expected)
        )["deleteModelAlias"]
        return answer

    wrong = await delete(expected=second)
    assert wrong["__typename"] == "ConflictError" and repr(first) in wrong["message"]
    assert (await delete(expected=first))["modelId"] == first
    assert await by_alias(gql, name, "staging") is None
    assert await aliases_of(gql, first) == []
    gone = await delete()
    assert (gone["__typename"], gone["field"]) == ("NotFoundError", "alias")
    kinds = [(e.kind.value, e.alias) for e in await storage.events.for_entity(first, 20) if e.alias]
    assert kinds == [("ALIAS_SET", "staging"), ("ALIAS_DELETED", "staging")]
    # Deleted, it can be created again from nothing.
    assert (await set_alias(gql, name, "staging", second))["modelId"] == second


async def test_concurrent_moves_of_one_alias_have_one_winner_and_losers_learn_it(
    gql: GraphQLClient, name: str
) -> None:
    ids = await versions_of(gql, name, 6)
    await set_alias(gql, name, "champion", ids[0])
    for trial in range(3):
        holder = await by_alias(gql, name, "champion")
        assert holder is not None
        targets = [i for i in ids if i != holder] * 4
        answers = await asyncio.gather(
            *(set_alias(gql, name, "champion", t, expected=holder) for t in targets)
        )
        winners = [a["modelId"] for a in answers if a["__typename"] == "ModelVersion"]
        now = await by_alias(gql, name, "champion")
        # Only moves to the winning version answer it (one move, and its duplicates as retries).
        assert winners and set(winners) == {now}, (trial, answers)
        for answer in answers:
            if answer["__typename"] != "ModelVersion":
                assert answer["__typename"] == "ConflictError", answer
                assert repr(now) in answer["message"]


async def test_a_model_holds_at_most_a_hundred_aliases(
    gql: GraphQLClient, storage: MongoStorage, name: str
) -> None:
    (version,) = await versions_of(gql, name, 1)
    await asyncio.gather(*(set_alias(gql, name, f"a{n}", version) for n in range(100)))
    before = await snapshot(storage)
    refused = await set_alias(gql, name, "one-more", version)
    assert (refused["__typename"], refused["field"], refused["rule"]) == (
        "ValidationError",
        "alias",
        "max_items",
    )
    assert await snapshot(storage) == before
    assert len(await aliases_of(gql, version)) == 100
    # Once one is deleted, there is room for another.
    await gql.data(DELETE_ALIAS, name=name, alias="a0", expected=None)
    assert (await set_alias(gql, name, "one-more", version))["modelId"] == version


def readme_deploy_operations() -> dict[str, str]:
    """The README's "Deploy from the registry" operations, by name."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("## Deploy from the registry")
    section = readme[start : readme.index("\n## ", start + 1)]
    (block,) = re.findall(r"```graphql\n(.*?)```", section, re.S)
    document = parse(block)
    return {
        d.name.value: print_ast(d)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode) and d.name is not None
    }


async def test_the_readme_deploy_section_is_valid_and_answers_what_it_says(
    gql: GraphQLClient, name: str
) -> None:
    operations = readme_deploy_operations()
    assert set(operations) == {"Serving", "Follow"}
    for operation in operations.values():
        assert validate(schema._schema, parse(operation)) == []
    registered = await gql.data(
        REGISTER_DEPLOYABLE,
        input={
            "modelName": name,
            "version": "2.0.0",
            "modelType": "REGRESSION",
            "artifactUri": "s3://models/churn/2.0.0",
            "artifactDigest": "sha256:" + "ab" * 32,
        },
    )
    model_id = registered["registerModelVersion"]["modelId"]
    assert (await gql.data(operations["Serving"], model=name))["modelVersionByAlias"] is None
    for stage in ("TESTING", "PRODUCTION"):
        await gql.data(PROMOTE, id=model_id, to=stage)
    serving = (await gql.data(operations["Serving"], model=name))["modelVersionByAlias"]
    assert serving == {
        "modelId": model_id,
        "version": "2.0.0",
        "artifactUri": "s3://models/churn/2.0.0",
        "artifactDigest": "sha256:" + "ab" * 32,
    }
