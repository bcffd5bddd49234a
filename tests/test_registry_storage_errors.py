"""How storage reads the error documents real servers send under concurrent writes.

The documents below are copied from FerretDB v2.7 + DocumentDB 0.107 (20 concurrent
``find_one_and_update`` calls moving a unique key, and concurrent inserts of one unique key),
from FerretDB v1 (SQLite) and from MongoDB; see docs/real-server.md.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import DuplicateKeyError, OperationFailure, WriteError

from graphql_api.domain.errors import ConflictError
from graphql_api.storage.mongo import MongoStorage, collection
from graphql_api.storage.mongo.collection import is_duplicate_key, is_transient, retry_transient

DOCUMENTDB_EXCLUSION = OperationFailure(
    'conflicting key value violates exclusion constraint "documents_rum_index_3"',
    1,
    {
        "ok": 0.0,
        "errmsg": 'conflicting key value violates exclusion constraint "documents_rum_index_3"',
        "code": 1,
        "codeName": "InternalError",
    },
)
DOCUMENTDB_DEADLOCK_ON_UPDATE = OperationFailure(
    "deadlock detected",
    1,
    {"ok": 0.0, "errmsg": "deadlock detected", "code": 1, "codeName": "InternalError"},
)
DOCUMENTDB_DEADLOCK_ON_INSERT = WriteError(
    "deadlock detected",
    16908292,
    {"index": 0, "code": 16908292, "errmsg": "deadlock detected"},
)
DOCUMENTDB_DUPLICATE_ID = DuplicateKeyError(
    "Duplicate key violation on the requested collection: Index '_id_'",
    11000,
    {
        "index": 0,
        "code": 11000,
        "errmsg": "Duplicate key violation on the requested collection: Index '_id_'",
    },
)
FERRETDB_V1_UNIQUE = OperationFailure(
    "UNIQUE constraint failed: _ferretdb_model_versions.production_slot", 1
)
MONGODB_WRITE_CONFLICT = OperationFailure(
    "WriteConflict error: this operation conflicted with another operation",
    112,
    {"errmsg": "WriteConflict", "code": 112, "codeName": "WriteConflict"},
)
OTHER = OperationFailure("Unsupported OP_QUERY command", 352, {"errmsg": "x", "code": 352})


@pytest.mark.parametrize(
    ("error", "duplicate", "transient"),
    [
        (DOCUMENTDB_EXCLUSION, True, False),
        (DOCUMENTDB_DUPLICATE_ID, True, False),
        (FERRETDB_V1_UNIQUE, True, False),
        (DOCUMENTDB_DEADLOCK_ON_UPDATE, False, True),
        (DOCUMENTDB_DEADLOCK_ON_INSERT, False, True),
        (MONGODB_WRITE_CONFLICT, False, True),
        (OTHER, False, False),
        (ValueError("deadlock detected"), False, False),
    ],
)
def test_unique_violations_and_deadlocks_are_told_apart(
    error: Exception, duplicate: bool, transient: bool
) -> None:
    assert is_duplicate_key(error) is duplicate
    assert is_transient(error) is transient


async def test_a_deadlock_is_retried_and_the_write_then_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(collection, "FIRST_TRANSIENT_DELAY", 0.0)
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise DOCUMENTDB_DEADLOCK_ON_UPDATE
        return "written"

    assert await retry_transient(flaky, "moving the pointer") == "written"
    assert calls == 3


async def test_a_deadlock_that_persists_is_a_conflict_after_a_bounded_number_of_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(collection, "FIRST_TRANSIENT_DELAY", 0.0)
    calls = 0

    async def always() -> None:
        nonlocal calls
        calls += 1
        raise DOCUMENTDB_DEADLOCK_ON_INSERT

    with pytest.raises(ConflictError, match="moving the pointer: the database kept"):
        await retry_transient(always, "moving the pointer")
    assert calls == collection.TRANSIENT_ATTEMPTS


@pytest.mark.parametrize("error", [DOCUMENTDB_EXCLUSION, OTHER])
async def test_other_errors_are_not_retried(error: OperationFailure) -> None:
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise error

    with pytest.raises(OperationFailure):
        await retry_transient(failing, "x")
    assert calls == 1


async def test_start_up_survives_index_creation_that_deadlocks_with_another_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Instances (or CI's test workers) creating indexes at once on DocumentDB can deadlock
    on PostgreSQL's catalog; the start-up retries instead of failing (seen once in CI)."""
    monkeypatch.setattr(collection, "FIRST_TRANSIENT_DELAY", 0.0)
    store = MongoStorage.connect(None, "mltrain_index_deadlock")
    mock_collection = type(store.database["training_jobs"])
    create_index = mock_collection.create_index
    refused: list[str] = []

    async def deadlocking_once(self: Any, keys: Any, **options: Any) -> Any:
        name = f"{self.name}.{options.get('name')}"
        if name not in refused:
            refused.append(name)
            raise DOCUMENTDB_DEADLOCK_ON_UPDATE
        return await create_index(self, keys, **options)

    monkeypatch.setattr(mock_collection, "create_index", deadlocking_once)
    try:
        await store.ensure_indexes()
        assert "training_jobs.status_created_date" in refused
        indexes = await store.database["training_jobs"].index_information()
        assert {"created_date", "status_created_date"} <= set(indexes)
    finally:
        await store.close()
