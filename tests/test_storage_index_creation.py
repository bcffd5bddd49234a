"""Start-up over a database that already has its indexes sends no index DDL; what is missing,
or differs from what the code asks for, is sent (and a conflicting index is refused by the
server as before, never silently kept)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from graphql_api.storage.mongo import MongoStorage


@pytest.fixture
def create_index_calls(storage: MongoStorage) -> Iterator[list[str]]:
    """The names of the indexes the storage asks the server to create, from now on."""
    collection_class = type(storage.database["model_versions"])
    create_index = collection_class.create_index
    calls: list[str] = []

    def counting(self: Any, keys: Any, **options: Any) -> Any:
        calls.append(f"{self.name}.{options.get('name')}")
        return create_index(self, keys, **options)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(collection_class, "create_index", counting)
        yield calls


async def test_a_start_up_over_a_database_with_every_index_creates_none(
    storage: MongoStorage, create_index_calls: list[str]
) -> None:
    await storage.ensure_indexes()
    assert create_index_calls == []


async def test_a_dropped_index_is_made_again_and_only_it(
    storage: MongoStorage, create_index_calls: list[str]
) -> None:
    versions = storage.database["model_versions"]
    await versions.drop_index("model_name_semver")
    await storage.ensure_indexes()
    assert create_index_calls == ["model_versions.model_name_semver"]
    info = await versions.index_information()
    assert [tuple(k) for k in info["model_name_semver"]["key"]] == [
        ("model_name", 1),
        ("version_sort_key", -1),
    ]


async def test_an_index_of_the_same_name_with_another_key_is_sent_to_the_server(
    storage: MongoStorage, create_index_calls: list[str]
) -> None:
    jobs = storage.database["training_jobs"]
    await jobs.drop_index("created_date")
    await jobs.create_index([("created_date", 1)], name="created_date")
    create_index_calls.clear()
    try:
        # MongoDB and DocumentDB: IndexKeySpecsConflict (86); the mock says it in its own words.
        with pytest.raises(OperationFailure, match="created_date"):
            await storage.ensure_indexes()
        assert create_index_calls == ["training_jobs.created_date"]
    finally:
        await jobs.drop_index("created_date")  # the next test's start-up would refuse it too
